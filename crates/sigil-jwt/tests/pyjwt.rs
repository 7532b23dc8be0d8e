//! Interoperability with PyJWT, a verifier written outside this project.
//!
//! The tests write the JWKS and a minted token to a temporary directory and run `python3` with
//! PyJWT, which loads the JWKS with `PyJWKSet`, verifies the token with `jwt.decode` and prints
//! the claims. PyJWT must be installed (`pip install 'pyjwt[crypto]'`); without it the tests fail
//! so that CI cannot skip them silently.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers abort the test on any failure"
)]
#![allow(clippy::panic, reason = "test helpers abort the test on any failure")]

mod common;

use std::path::Path;
use std::process::Command;

use common::{AUDIENCE, OWNER, SUBJECT, mint_with};
use serde_json::Value;
use sigil_jwt::{KeySet, SigningKey};
use time::OffsetDateTime;

/// Exit status of the script when `import jwt` fails.
const EXIT_IMPORT_FAILED: i32 = 3;
/// Exit status of the script when PyJWT rejects the token.
const EXIT_REJECTED: i32 = 2;

/// Loads the JWKS, verifies the token for one audience and prints the claims, or the name of
/// PyJWT's exception when it rejects the token. Also prints the RFC 7638 thumbprint of every
/// JWKS key, computed with `hashlib`, as a third opinion on the key IDs.
const SCRIPT: &str = r#"
import base64, hashlib, json, sys
try:
    import jwt
except ImportError as error:
    print(f"import jwt failed: {error}", file=sys.stderr)
    sys.exit(3)

jwks_path, token_path, audience = sys.argv[1:4]
with open(jwks_path) as f:
    jwks_text = f.read()
with open(token_path) as f:
    token = f.read()

thumbprints = []
for k in json.loads(jwks_text)["keys"]:
    canonical = json.dumps(
        {"crv": k["crv"], "kty": k["kty"], "x": k["x"], "y": k["y"]},
        separators=(",", ":"), sort_keys=True)
    digest = hashlib.sha256(canonical.encode()).digest()
    thumbprints.append(base64.urlsafe_b64encode(digest).rstrip(b"=").decode())

key_set = jwt.PyJWKSet.from_json(jwks_text)
kid = jwt.get_unverified_header(token)["kid"]
try:
    claims = jwt.decode(token, key_set[kid], algorithms=["ES256"], audience=audience,
                        options={"require": ["exp", "iat", "sub", "aud"]})
except jwt.InvalidTokenError as error:
    print(json.dumps({"rejected": type(error).__name__, "thumbprints": thumbprints}))
    sys.exit(2)
print(json.dumps({"claims": claims, "thumbprints": thumbprints, "version": jwt.__version__}))
"#;

/// The outcome of one PyJWT run.
struct PyJwtOutput {
    accepted: bool,
    json: Value,
}

fn run_pyjwt(dir: &Path, audience: &str) -> PyJwtOutput {
    let output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(dir.join("jwks.json"))
        .arg(dir.join("token"))
        .arg(audience)
        .output()
        .unwrap_or_else(|error| {
            panic!("failed to run python3 ({error}); install Python 3 and `pip install 'pyjwt[crypto]'`")
        });
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);

    match output.status.code() {
        Some(EXIT_IMPORT_FAILED) => panic!(
            "PyJWT is not installed for python3; run `pip install 'pyjwt[crypto]'` ({stderr})"
        ),
        Some(0) | Some(EXIT_REJECTED) => PyJwtOutput {
            accepted: output.status.success(),
            json: serde_json::from_str(&stdout)
                .unwrap_or_else(|error| panic!("unreadable output {stdout:?} ({error}): {stderr}")),
        },
        _ => panic!("python3 failed with {}: {stderr}", output.status),
    }
}

/// Mints a token with a fresh key set at the real current time, because PyJWT checks the times
/// against the system clock, and writes the token and JWKS to `dir`.
fn write_token_and_jwks(dir: &Path) -> KeySet {
    let now = OffsetDateTime::now_utc();
    let key_set = KeySet::new(SigningKey::generate(now).unwrap()).unwrap();
    let minted = mint_with(&key_set, AUDIENCE, now);
    std::fs::write(dir.join("token"), &minted.token).unwrap();
    std::fs::write(
        dir.join("jwks.json"),
        serde_json::to_string(&key_set.jwks()).unwrap(),
    )
    .unwrap();
    key_set
}

#[test]
fn pyjwt_verifies_minted_token() {
    let dir = tempfile::tempdir().unwrap();
    let key_set = write_token_and_jwks(dir.path());

    let output = run_pyjwt(dir.path(), AUDIENCE);

    assert!(output.accepted, "PyJWT rejected the token: {}", output.json);
    let claims = &output.json["claims"];
    assert_eq!(claims["sub"], SUBJECT);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["owner"], OWNER);
    assert_eq!(
        output.json["thumbprints"],
        serde_json::json!([key_set.current().kid()])
    );
}

#[test]
fn pyjwt_rejects_wrong_audience() {
    let dir = tempfile::tempdir().unwrap();
    write_token_and_jwks(dir.path());

    let output = run_pyjwt(dir.path(), "https://billing.example.org");

    assert!(
        !output.accepted,
        "PyJWT accepted the token: {}",
        output.json
    );
    assert_eq!(output.json["rejected"], "InvalidAudienceError");
}
