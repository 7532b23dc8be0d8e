//! JWT-SVIDs issued by a running authority, verified by PyJWT against the published JWKS.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on a setup error"
)]

mod common;

use std::process::Command;

use common::Authority;

fn mint(authority: &Authority, out: &std::path::Path, body: &str) -> (u16, String) {
    authority.request(
        "POST",
        "/v1/agent/jwt",
        Some(body),
        Some((&out.join("svid.pem"), &out.join("svid.key"))),
    )
}

/// Verifies `token` with PyJWT against the JWKS at `jwks_path`; returns the claims or the error.
fn pyjwt_verify(
    jwks_path: &std::path::Path,
    token: &str,
    audience: &str,
    issuer: &str,
) -> Result<serde_json::Value, String> {
    let script = r#"
import json, sys
import jwt
jwks = json.load(open(sys.argv[1]))
token, audience, issuer = sys.argv[2], sys.argv[3], sys.argv[4]
kid = jwt.get_unverified_header(token)["kid"]
key = next(k for k in jwt.PyJWKSet.from_dict(jwks).keys if k.key_id == kid)
claims = jwt.decode(token, key, algorithms=["ES256"], audience=audience, issuer=issuer)
print(json.dumps(claims))
"#;
    let output = Command::new("python3")
        .args(["-c", script])
        .arg(jwks_path)
        .args([token, audience, issuer])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !stderr.contains("No module named 'jwt'"),
        "PyJWT is missing: run `pip install 'pyjwt[crypto]'`"
    );
    if output.status.success() {
        Ok(serde_json::from_slice(&output.stdout).unwrap())
    } else {
        Err(stderr)
    }
}

#[test]
fn pyjwt_verifies_issued_token() {
    let authority = Authority::start();
    let out = authority.enrolled_agent("alice@example.org", "jwt-bot");

    let (status, body) = mint(
        &authority,
        &out,
        r#"{"audience": "https://crm.example.org"}"#,
    );
    assert_eq!(status, 200, "{body}");
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    let token = response["token"].as_str().unwrap();

    let (status, discovery) =
        authority.request("GET", "/.well-known/openid-configuration", None, None);
    assert_eq!(status, 200, "{discovery}");
    let discovery: serde_json::Value = serde_json::from_str(&discovery).unwrap();
    let issuer = discovery["issuer"].as_str().unwrap();
    assert_eq!(
        discovery["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json")
    );

    let (status, jwks) = authority.request("GET", "/.well-known/jwks.json", None, None);
    assert_eq!(status, 200, "{jwks}");
    let jwks_path = authority.dir.path().join("jwks.json");
    std::fs::write(&jwks_path, &jwks).unwrap();

    let claims = pyjwt_verify(&jwks_path, token, "https://crm.example.org", issuer)
        .expect("PyJWT must accept the token");
    assert_eq!(claims["sub"], "spiffe://example.org/agent/jwt-bot");
    assert_eq!(
        claims["aud"], "https://crm.example.org",
        "exactly one audience, as a string"
    );
    assert_eq!(claims["owner"], "alice@example.org");
    assert_eq!(claims["iss"], issuer, "iss must equal the discovery issuer");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 300, "default lifetime is 5 minutes");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    let wrong = pyjwt_verify(&jwks_path, token, "https://other.example.org", issuer);
    assert!(
        wrong.is_err_and(|e| e.contains("InvalidAudienceError")),
        "PyJWT must reject another audience"
    );
}

#[test]
fn jwt_request_rejects_bad_input() {
    let authority = Authority::start();
    let out = authority.enrolled_agent("alice@example.org", "jwt-bad");
    for (body, code) in [
        (r#"{"audience": ""}"#, "invalid_audience"),
        (r#"{"audience": "a", "ttl": "2h"}"#, "invalid_ttl"),
        (r#"{}"#, "invalid_request"),
    ] {
        let (status, response) = mint(&authority, &out, body);
        assert_eq!(status, 400, "{body}: {response}");
        let response: serde_json::Value = serde_json::from_str(&response).unwrap();
        assert_eq!(response["error"]["code"], code, "{body}");
    }

    let (status, response) =
        authority.request("POST", "/v1/agent/jwt", Some(r#"{"audience": "a"}"#), None);
    assert_eq!(
        status, 401,
        "a JWT-SVID needs the agent's client certificate: {response}"
    );
}

#[test]
fn suspended_agent_gets_no_jwt() {
    let authority = Authority::start();
    let out = authority.enrolled_agent("alice@example.org", "jwt-suspended");
    authority.sigil_ok(&["agent", "suspend", "jwt-suspended"]);
    let (status, response) = mint(
        &authority,
        &out,
        r#"{"audience": "https://crm.example.org"}"#,
    );
    assert_eq!(status, 403, "{response}");
}
