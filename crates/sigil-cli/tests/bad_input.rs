//! Bad input against a real authority over TLS on loopback: malformed request bodies, hostile
//! CSRs, invalid names and fields, malformed SPIFFE IDs, and leaf certificates that break the
//! X.509-SVID rules although the authority's own signing CA signed them.
//!
//! Every rejection must carry a 4xx status and an error body naming the problem, leave the
//! registry unchanged and add an audit event that does not contain the credential.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed step fails the test"
)]

mod common;

use std::path::{Path, PathBuf};

use common::{Authority, csr_pem, generate_key, generate_p256_key, openssl_stdout};
use serde_json::json;
use sigil_core::{AgentName, CoreError, SpiffeId};

const OWNER: &str = "alice@example.org";
const AGENT: &str = "crm-bot";
const AGENT_ID: &str = "spiffe://example.org/agent/crm-bot";
const ADMIN_ID: &str = "spiffe://example.org/admin/root";

/// Attests `AGENT` with `token` through `sigil-agent` and asserts that it succeeds.
fn assert_token_still_works(authority: &Authority, token: &str) {
    let unused: Vec<_> = authority.sql_rows("SELECT used_at FROM join_tokens");
    assert_eq!(unused.len(), 1, "one join token was created");
    assert!(
        unused[0]["used_at"].is_null(),
        "a rejected request consumed the join token"
    );
    assert_eq!(
        authority.agent_serials(AGENT).len(),
        0,
        "a rejected request stored a credential"
    );

    let out = authority.dir.path().join("agent-after-rejections");
    let attested = authority.agent_once(&out, Some(token));
    assert!(
        attested.status.success(),
        "the join token no longer works after rejected requests: {}",
        String::from_utf8_lossy(&attested.stderr)
    );
    assert_eq!(
        authority.agent_serials(AGENT).len(),
        1,
        "attestation stored one credential"
    );
    assert_eq!(authority.agent_status(AGENT), "active");
}

/// A request body for `POST /v1/agent/attest` and the rejection it must get.
struct BodyCase<'a> {
    case: &'a str,
    content_type: Option<&'a str>,
    body: &'a str,
    status: u16,
    code: &'a str,
    /// Words the error message must contain.
    words: &'a str,
}

impl<'a> BodyCase<'a> {
    fn new(
        case: &'a str,
        content_type: Option<&'a str>,
        body: &'a str,
        (status, code): (u16, &'a str),
        words: &'a str,
    ) -> Self {
        Self {
            case,
            content_type,
            body,
            status,
            code,
            words,
        }
    }
}

#[test]
fn attest_rejects_bad_bodies() {
    let authority = Authority::start();
    authority.register(OWNER, AGENT);
    let token = authority.token(AGENT);
    let key = generate_p256_key(&authority.dir.path().join("agent.key"));
    let csr = csr_pem(&key, &[]);

    let valid = json!({"join_token": token, "csr": csr}).to_string();
    let truncated = valid[..valid.len() / 2].to_owned();
    let oversized = json!({"join_token": token, "csr": "A".repeat(70 * 1024)}).to_string();
    let unknown_field = json!({"join_token": token, "csr": csr, "ca": true}).to_string();
    let missing_csr = json!({"join_token": token}).to_string();
    let wrong_type = json!({"join_token": token, "csr": 42}).to_string();
    let array = json!([token, csr]).to_string();

    let json_type = Some("application/json");
    let cases = [
        BodyCase::new(
            "truncated JSON",
            json_type,
            &truncated,
            (400, "malformed_json"),
            "not valid JSON",
        ),
        BodyCase::new(
            "text/plain body",
            Some("text/plain"),
            &valid,
            (415, "unsupported_media_type"),
            "Content-Type",
        ),
        BodyCase::new(
            "form body",
            None,
            &valid,
            (415, "unsupported_media_type"),
            "Content-Type",
        ),
        BodyCase::new(
            "body over 64 KiB",
            json_type,
            &oversized,
            (413, "payload_too_large"),
            "65536",
        ),
        BodyCase::new(
            "array of the field values",
            json_type,
            &array,
            (400, "invalid_request"),
            "expected a JSON object",
        ),
        BodyCase::new(
            "unknown field",
            json_type,
            &unknown_field,
            (400, "invalid_request"),
            "unknown field",
        ),
        BodyCase::new(
            "missing csr",
            json_type,
            &missing_csr,
            (400, "invalid_request"),
            "csr",
        ),
        BodyCase::new(
            "csr not a string",
            json_type,
            &wrong_type,
            (400, "invalid_request"),
            "csr",
        ),
    ];
    for BodyCase {
        case,
        content_type,
        body,
        status,
        code,
        words,
    } in cases
    {
        let before = authority.checkpoint();
        let reply = authority.send(
            "POST",
            "/v1/agent/attest",
            content_type,
            Some(body.as_bytes()),
            None,
        );
        authority.assert_rejected(case, &before, &reply, status, code, &[&token]);
        let message = reply.error_message();
        assert!(
            message.contains(words),
            "{case}: the message does not mention {words:?}: {message}"
        );
    }

    assert_token_still_works(&authority, &token);
}

/// Returns a PEM CSR for `key` whose signature has its last byte inverted.
fn csr_with_flipped_signature(dir: &Path, key: &Path) -> String {
    let der = dir.join("flipped.der");
    let key_text = key.display().to_string();
    let der_text = der.display().to_string();
    openssl_stdout(&[
        "req",
        "-new",
        "-key",
        &key_text,
        "-subj",
        "/O=sigil-test",
        "-outform",
        "DER",
        "-out",
        &der_text,
    ]);

    let mut bytes = std::fs::read(&der).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&der, &bytes).unwrap();

    let base64 = String::from_utf8(openssl_stdout(&["base64", "-in", &der_text])).unwrap();
    format!("-----BEGIN CERTIFICATE REQUEST-----\n{base64}-----END CERTIFICATE REQUEST-----\n")
}

#[test]
fn attest_rejects_bad_csrs() {
    let authority = Authority::start();
    authority.register(OWNER, AGENT);
    let token = authority.token(AGENT);
    let dir = authority.dir.path();

    let p256 = generate_p256_key(&dir.join("p256.key"));
    let rsa_1024 = generate_key(
        &dir.join("rsa1024.key"),
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
    );
    let p224 = generate_key(
        &dir.join("p224.key"),
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-224"],
    );
    let secp256k1 = generate_key(
        &dir.join("k1.key"),
        &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
        ],
    );
    let bundle = std::fs::read_to_string(authority.bundle()).unwrap();

    // (case, CSR, words the message must contain)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "malformed PEM",
            "-----BEGIN CERTIFICATE REQUEST-----\nnot base64 at all!\n-----END CERTIFICATE REQUEST-----\n".to_owned(),
            "malformed CSR",
        ),
        ("certificate instead of a CSR", bundle, "CSR"),
        ("empty CSR", String::new(), "CSR"),
        ("flipped signature", csr_with_flipped_signature(dir, &p256), "signature"),
        ("RSA-1024 key", csr_pem(&rsa_1024, &[]), "RSA-1024"),
        ("P-224 key", csr_pem(&p224, &[]), "P-224"),
        ("secp256k1 key", csr_pem(&secp256k1, &[]), "secp256k1"),
    ];
    for (case, csr, words) in cases {
        let before = authority.checkpoint();
        let reply = authority.send_json(
            "POST",
            "/v1/agent/attest",
            &json!({"join_token": token, "csr": csr}),
            None,
        );
        authority.assert_rejected(case, &before, &reply, 400, "invalid_csr", &[&token]);
        let message = reply.error_message();
        assert!(
            message.contains(words),
            "{case}: the message does not mention {words:?}: {message}"
        );
    }

    assert_token_still_works(&authority, &token);
}

#[test]
fn attest_ignores_csr_extensions() {
    let authority = Authority::start();
    authority.register(OWNER, AGENT);
    let token = authority.token(AGENT);
    let dir = authority.dir.path();
    let key = generate_p256_key(&dir.join("hostile.key"));
    let csr = csr_pem(
        &key,
        &[
            "-subj",
            "/CN=admin",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
            "-addext",
            "subjectAltName=URI:spiffe://example.org/admin,DNS:evil.example.com,DNS:localhost",
        ],
    );
    let csr_file = dir.join("hostile.csr");
    std::fs::write(&csr_file, &csr).unwrap();
    let requested = String::from_utf8(openssl_stdout(&[
        "req",
        "-in",
        &csr_file.display().to_string(),
        "-noout",
        "-text",
    ]))
    .unwrap();
    assert!(
        requested.contains("CA:TRUE"),
        "the CSR does not request CA=true: {requested}"
    );
    assert!(
        requested.contains("URI:spiffe://example.org/admin"),
        "the CSR does not request the admin ID"
    );

    let reply = authority.send_json(
        "POST",
        "/v1/agent/attest",
        &json!({"join_token": token, "csr": csr}),
        None,
    );
    assert_eq!(reply.status, 200, "attestation failed: {}", reply.body);
    let issued = dir.join("issued.pem");
    std::fs::write(&issued, reply.json()["svid"].as_str().unwrap()).unwrap();
    let issued_text = issued.display().to_string();
    let text = String::from_utf8(openssl_stdout(&[
        "x509",
        "-in",
        &issued_text,
        "-noout",
        "-text",
    ]))
    .unwrap();
    let subject = String::from_utf8(openssl_stdout(&[
        "x509",
        "-in",
        &issued_text,
        "-noout",
        "-subject",
    ]))
    .unwrap();

    assert_eq!(
        text.matches("URI:").count(),
        1,
        "the certificate has more than one URI SAN: {text}"
    );
    assert!(
        text.contains(&format!("URI:{AGENT_ID}")),
        "the URI SAN is not the agent's ID: {text}"
    );
    assert!(
        !text.contains("spiffe://example.org/admin"),
        "the CSR's admin ID was copied: {text}"
    );
    assert!(
        !text.contains("DNS:"),
        "the CSR's DNS names were copied: {text}"
    );
    assert!(
        text.contains("CA:FALSE"),
        "the certificate is not marked CA:FALSE: {text}"
    );
    assert!(!text.contains("CA:TRUE"), "the certificate is a CA: {text}");
    assert!(
        !text.contains("Certificate Sign"),
        "the certificate has keyCertSign: {text}"
    );
    assert!(
        !text.contains("CRL Sign"),
        "the certificate has cRLSign: {text}"
    );
    assert!(
        text.contains("Digital Signature"),
        "the certificate lacks digitalSignature: {text}"
    );
    assert!(
        !subject.contains("admin"),
        "the CSR's subject CN=admin was copied: {subject}"
    );

    let issued_key = openssl_stdout(&["x509", "-in", &issued_text, "-noout", "-pubkey"]);
    let csr_key = openssl_stdout(&["pkey", "-in", &key.display().to_string(), "-pubout"]);
    assert_eq!(
        issued_key, csr_key,
        "the certificate does not carry the CSR's public key"
    );
}

#[test]
fn admin_routes_reject_unknown_agent() {
    let authority = Authority::start();
    authority.register(OWNER, AGENT);
    let (cert, key) = authority.admin_identity();
    let admin = Some((cert.as_path(), key.as_path()));

    let cases: Vec<(&str, &str, Option<serde_json::Value>)> = vec![
        ("GET", "/v1/admin/agents/nobody", None),
        ("POST", "/v1/admin/agents/nobody/suspend", Some(json!({}))),
        ("POST", "/v1/admin/agents/nobody/resume", Some(json!({}))),
        (
            "POST",
            "/v1/admin/agents/nobody/decommission",
            Some(json!({"reason": "test"})),
        ),
        (
            "POST",
            "/v1/admin/agents/nobody/grants",
            Some(json!({"entitlement": "invoke:tool:crm/*"})),
        ),
        ("POST", "/v1/admin/tokens", Some(json!({"agent": "nobody"}))),
    ];
    for (method, path, body) in cases {
        let case = format!("{method} {path}");
        let before = authority.checkpoint();
        let reply = match &body {
            Some(body) => authority.send_json(method, path, body, admin),
            None => authority.send(method, path, None, None, admin),
        };
        authority.assert_rejected(&case, &before, &reply, 404, "not_found", &[]);
        assert!(
            reply.error_message().contains("nobody"),
            "{case}: the message does not name the agent: {}",
            reply.body
        );
    }
}

#[test]
fn register_rejects_bad_names() {
    let authority = Authority::start();
    authority.sigil_ok(&["owner", "add", OWNER]);
    let long = "a".repeat(256);

    // (name, words the message must contain)
    let cases: Vec<(&str, &str)> = vec![
        ("..", "`.` or `..`"),
        (".", "`.` or `..`"),
        ("a/b", "`/`"),
        ("../admin", "`/`"),
        ("a b", "only letters"),
        ("%2e%2e", "only letters"),
        ("", "empty"),
        (long.as_str(), "255 bytes"),
    ];
    for (name, words) in cases {
        let case = format!("register {name:?}");
        let before = authority.checkpoint();
        let stderr = authority.sigil_fails(&["agent", "register", name, "--owner", OWNER]);
        assert!(
            stderr.contains("HTTP 400, invalid_name"),
            "{case}: {stderr}"
        );
        assert!(
            stderr.contains(words),
            "{case}: the message does not mention {words:?}: {stderr}"
        );
        authority.assert_nothing_stored(&case, &before, "invalid_name", &[]);
    }

    let agents = authority.sigil_json(&["agent", "list"]);
    assert_eq!(
        agents["agents"].as_array().unwrap().len(),
        0,
        "an agent was registered: {agents}"
    );
}

#[test]
fn cli_rejects_dot_segment_names() {
    let authority = Authority::start();
    authority.register(OWNER, AGENT);

    let commands: Vec<Vec<&str>> = vec![
        vec!["agent", "show", ".."],
        vec!["agent", "show", "."],
        vec!["agent", "show", "../admin"],
        vec!["agent", "suspend", ".."],
        vec!["agent", "resume", "."],
        vec!["agent", "decommission", "."],
        vec!["agent", "decommission", ".."],
        vec!["agent", "grant", "..", "invoke:tool:crm/*"],
        vec!["token", "create", ".."],
        vec!["owner", "depart", ".."],
    ];
    for args in commands {
        let case = args.join(" ");
        let before = authority.checkpoint();
        let stderr = authority.sigil_fails(&args);
        assert!(
            stderr.contains("invalid name") || stderr.contains("invalid e-mail address"),
            "{case}: the message does not name the invalid name: {stderr}"
        );
        assert!(
            !stderr.contains("no route"),
            "{case}: the name was resolved as a URL path: {stderr}"
        );
        assert_eq!(
            authority.registry_counts(),
            before.counts,
            "{case}: the registry changed"
        );
    }
    assert_eq!(
        authority.agent_status(AGENT),
        "registered",
        "a command reached the registered agent"
    );
}

#[test]
fn register_rejects_unknown_or_departed_owner() {
    let authority = Authority::start();
    authority.sigil_ok(&["owner", "add", "bob@example.org"]);
    authority.sigil_ok(&["owner", "depart", "bob@example.org"]);

    let before = authority.checkpoint();
    let stderr =
        authority.sigil_fails(&["agent", "register", AGENT, "--owner", "nobody@example.org"]);
    assert!(
        stderr.contains("HTTP 404, not_found"),
        "unknown owner: {stderr}"
    );
    assert!(
        stderr.contains("nobody@example.org"),
        "unknown owner: the message does not name the owner: {stderr}"
    );
    authority.assert_nothing_stored("unknown owner", &before, "not_found", &[]);

    let before = authority.checkpoint();
    let stderr = authority.sigil_fails(&["agent", "register", AGENT, "--owner", "bob@example.org"]);
    assert!(
        stderr.contains("HTTP 422, rejected"),
        "departed owner: {stderr}"
    );
    assert!(
        stderr.contains("departed"),
        "departed owner: the message does not say why: {stderr}"
    );
    authority.assert_nothing_stored("departed owner", &before, "rejected", &[]);
}

#[test]
fn register_rejects_bad_fields() {
    let authority = Authority::start();
    authority.sigil_ok(&["owner", "add", OWNER]);

    for email in [
        "garbage",
        "a@b",
        "@example.org",
        "a b@example.org",
        "a@@example.org",
    ] {
        let case = format!("owner add {email:?}");
        let before = authority.checkpoint();
        let stderr = authority.sigil_fails(&["owner", "add", email]);
        assert!(
            stderr.contains("HTTP 400, invalid_email"),
            "{case}: {stderr}"
        );
        authority.assert_nothing_stored(&case, &before, "invalid_email", &[]);

        let case = format!("agent register --owner {email:?}");
        let before = authority.checkpoint();
        let stderr = authority.sigil_fails(&["agent", "register", AGENT, "--owner", email]);
        assert!(
            stderr.contains("HTTP 400, invalid_email"),
            "{case}: {stderr}"
        );
        authority.assert_nothing_stored(&case, &before, "invalid_email", &[]);
    }

    for entitlement in [
        "nocolon",
        "a b:c",
        ":tool:crm",
        "invoke:",
        "invoke:tool:*/crm",
        "invoke:tool crm",
    ] {
        let case = format!("--entitlement {entitlement:?}");
        let before = authority.checkpoint();
        let stderr = authority.sigil_fails(&[
            "agent",
            "register",
            AGENT,
            "--owner",
            OWNER,
            "--entitlement",
            entitlement,
        ]);
        assert!(
            stderr.contains("HTTP 400, invalid_entitlement"),
            "{case}: {stderr}"
        );
        authority.assert_nothing_stored(&case, &before, "invalid_entitlement", &[]);
    }

    for ttl in ["30s", "25h", "fifteen", "0s"] {
        let case = format!("--ttl {ttl}");
        let before = authority.checkpoint();
        let stderr =
            authority.sigil_fails(&["agent", "register", AGENT, "--owner", OWNER, "--ttl", ttl]);
        assert!(stderr.contains("HTTP 400, invalid_ttl"), "{case}: {stderr}");
        assert!(
            stderr.contains(&format!("`{ttl}`")),
            "{case}: the message does not quote the value given: {stderr}"
        );
        authority.assert_nothing_stored(&case, &before, "invalid_ttl", &[]);
    }
}

#[test]
fn spiffe_id_parser_rejects_malformed() {
    // (case, input, words the error must contain)
    let cases = [
        (
            "dot-dot segment",
            "spiffe://example.org/a/../admin",
            "`.` or `..`",
        ),
        (
            "dot-dot agent name",
            "spiffe://example.org/agent/../admin",
            "`.` or `..`",
        ),
        ("dot segment", "spiffe://example.org/./a", "`.` or `..`"),
        ("empty segment", "spiffe://example.org//a", "empty"),
        ("trailing slash", "spiffe://example.org/a/", "empty"),
        (
            "percent-encoded letter",
            "spiffe://example.org/%61dmin",
            "percent-encoding",
        ),
        (
            "percent-encoded dots",
            "spiffe://example.org/agent/%2e%2e/admin",
            "percent-encoding",
        ),
        (
            "percent-encoded trust domain",
            "spiffe://ex%61mple.org/a",
            "percent-encoding",
        ),
        ("userinfo", "spiffe://u@example.org/a", "userinfo"),
        ("port", "spiffe://example.org:8443/a", "colon"),
        ("bare colon", "spiffe://example.org:/a", "colon"),
        ("query", "spiffe://example.org/a?x=1", "query"),
        ("fragment", "spiffe://example.org/a#x", "fragment"),
        ("IPv6 literal", "spiffe://[::1]/a", "IP literal"),
        ("empty trust domain", "spiffe:///a", "trust domain is empty"),
        ("no path", "spiffe://example.org", "no path"),
        ("https scheme", "https://example.org/a", "scheme"),
        ("uppercase scheme", "SPIFFE://example.org/a", "scheme"),
        ("scheme without slashes", "spiffe:example.org/a", "scheme"),
        ("URN form", "urn:spiffe:example.org:a", "scheme"),
        (
            "uppercase trust domain",
            "spiffe://Example.org/a",
            "trust domain",
        ),
        ("space in path", "spiffe://example.org/a b", "only letters"),
        ("empty string", "", "scheme"),
    ];
    for (case, input, words) in cases {
        let err = match SpiffeId::parse(input) {
            Ok(id) => panic!("{case}: {input:?} was accepted as {id:?}"),
            Err(err) => err,
        };
        assert!(
            matches!(err, CoreError::InvalidSpiffeId { .. }),
            "{case}: wrong error kind {err:?}"
        );
        let message = err.to_string();
        assert!(
            message.contains(words),
            "{case}: the message does not mention {words:?}: {message}"
        );
    }

    let admin = SpiffeId::parse("spiffe://example.org/admin").unwrap();
    assert_eq!(admin.path(), "/admin");
    assert_eq!(
        admin.as_str(),
        "spiffe://example.org/admin",
        "a valid ID was changed while parsing"
    );
}

#[test]
fn agent_name_rejects_path_syntax() {
    let long = "a".repeat(256);
    for name in [
        "..",
        ".",
        "a/b",
        "../admin",
        "a b",
        "",
        "%2e%2e",
        "a\u{0}b",
        long.as_str(),
    ] {
        let err = match AgentName::new(name) {
            Ok(accepted) => panic!("{name:?} was accepted as {accepted:?}"),
            Err(err) => err,
        };
        assert!(
            matches!(err, CoreError::InvalidName { .. }),
            "{name:?}: wrong error kind {err:?}"
        );
    }
    assert!(
        AgentName::new("crm-bot.v2_1").is_ok(),
        "a valid name was rejected"
    );
}

/// The rejection expected for a request presented with a forged leaf.
#[derive(Debug, Clone, Copy)]
enum Expected {
    /// An HTTP rejection with this status, code and words in the message.
    Http(u16, &'static str, &'static str),
    /// A failed TLS handshake. rustls rejects a client certificate with CA=true during the
    /// handshake (webpki's `CaUsedAsEndEntity`), so no HTTP request, status or audit event
    /// exists; the server logs the failure instead.
    TlsFailure,
}

/// A leaf certificate signed by the authority's own signing CA.
struct ForgedLeaf {
    case: String,
    chain: PathBuf,
    key: PathBuf,
    expected: Expected,
}

/// Signs a leaf for the CSR of `leaf.key` with the signing CA of the data directory, with the
/// `openssl x509` extension lines `extensions`. Returns the file with the leaf, then the CA.
fn forge_leaf(authority: &Authority, file_name: &str, extensions: &[String]) -> PathBuf {
    let dir = authority.dir.path();
    let key = dir.join("leaf.key");
    let csr = dir.join("leaf.csr");
    if !key.exists() {
        generate_p256_key(&key);
        std::fs::write(&csr, csr_pem(&key, &[])).unwrap();
    }

    let extfile = dir.join(format!("{file_name}.ext"));
    std::fs::write(&extfile, extensions.join("\n") + "\n").unwrap();
    let leaf = dir.join(format!("{file_name}.pem"));
    let signing_cert = authority.data.join("ca/signing.pem");
    let signing_key = authority.data.join("ca/signing.key");
    openssl_stdout(&[
        "x509",
        "-req",
        "-in",
        &csr.display().to_string(),
        "-CA",
        &signing_cert.display().to_string(),
        "-CAkey",
        &signing_key.display().to_string(),
        "-days",
        "1",
        "-extfile",
        &extfile.display().to_string(),
        "-out",
        &leaf.display().to_string(),
    ]);

    let chain = dir.join(format!("{file_name}-chain.pem"));
    let mut text = std::fs::read_to_string(&leaf).unwrap();
    text.push_str(&std::fs::read_to_string(&signing_cert).unwrap());
    std::fs::write(&chain, text).unwrap();
    chain
}

/// Returns leaves for the ID `id` that each break one SVID rule. `other` is a second SPIFFE ID.
fn broken_leaves(authority: &Authority, label: &str, id: &str, other: &str) -> Vec<ForgedLeaf> {
    let san = format!("subjectAltName=URI:{id}");
    let usage = "keyUsage=critical,digitalSignature".to_owned();
    let eku = "extendedKeyUsage=clientAuth,serverAuth".to_owned();
    let leaf_only = "basicConstraints=critical,CA:FALSE".to_owned();
    let invalid = |words| Expected::Http(403, "invalid_svid", words);

    let cases: Vec<(&str, Vec<String>, Expected)> = vec![
        (
            "two SPIFFE IDs",
            vec![
                format!("{san},URI:{other}"),
                usage.clone(),
                eku.clone(),
                leaf_only.clone(),
            ],
            invalid("exactly one URI SAN"),
        ),
        (
            "SPIFFE ID and https URI",
            vec![
                format!("{san},URI:https://example.org/callback"),
                usage.clone(),
                eku.clone(),
                leaf_only.clone(),
            ],
            invalid("exactly one URI SAN"),
        ),
        (
            "CA=true",
            vec![
                san.clone(),
                usage.clone(),
                eku.clone(),
                "basicConstraints=critical,CA:TRUE".to_owned(),
            ],
            Expected::TlsFailure,
        ),
        (
            "keyCertSign",
            vec![
                san.clone(),
                "keyUsage=critical,digitalSignature,keyCertSign".to_owned(),
                eku.clone(),
                leaf_only.clone(),
            ],
            invalid("keyCertSign"),
        ),
        (
            "cRLSign",
            vec![
                san.clone(),
                "keyUsage=critical,digitalSignature,cRLSign".to_owned(),
                eku.clone(),
                leaf_only.clone(),
            ],
            invalid("cRLSign"),
        ),
        (
            "no digitalSignature",
            vec![
                san.clone(),
                "keyUsage=critical,keyEncipherment".to_owned(),
                eku.clone(),
                leaf_only.clone(),
            ],
            invalid("digitalSignature"),
        ),
        (
            "no key usage",
            vec![san.clone(), eku.clone(), leaf_only.clone()],
            invalid("key usage"),
        ),
        (
            "SPIFFE ID without a path",
            vec![
                "subjectAltName=URI:spiffe://example.org".to_owned(),
                usage.clone(),
                eku.clone(),
                leaf_only.clone(),
            ],
            invalid("no path"),
        ),
    ];

    cases
        .into_iter()
        .enumerate()
        .map(|(index, (case, extensions, expected))| ForgedLeaf {
            case: format!("{label}: {case}"),
            chain: forge_leaf(authority, &format!("{label}-{index}"), &extensions),
            key: authority.dir.path().join("leaf.key"),
            expected,
        })
        .collect()
}

/// Returns a well-formed leaf for `id` that the authority never issued.
fn unissued_leaf(authority: &Authority, file_name: &str, id: &str) -> PathBuf {
    let extensions = [
        format!("subjectAltName=URI:{id}"),
        "keyUsage=critical,digitalSignature".to_owned(),
        "extendedKeyUsage=clientAuth,serverAuth".to_owned(),
        "basicConstraints=critical,CA:FALSE".to_owned(),
    ];
    forge_leaf(authority, file_name, &extensions)
}

/// Sends one request with `leaf` and checks the expected rejection.
fn assert_leaf_rejected(
    authority: &Authority,
    leaf: &ForgedLeaf,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) {
    let case = format!("{method} {path} with {}", leaf.case);
    let identity = Some((leaf.chain.as_path(), leaf.key.as_path()));
    let handshake_failures = authority.server_log().matches("CaUsedAsEndEntity").count();
    let before = authority.checkpoint();
    let reply = match body {
        Some(body) => authority.send_json(method, path, body, identity),
        None => authority.send(method, path, None, None, identity),
    };

    match leaf.expected {
        Expected::Http(status, code, words) => {
            authority.assert_rejected(&case, &before, &reply, status, code, &[]);
            let message = reply.error_message();
            assert!(
                message.contains(words),
                "{case}: the message does not mention {words:?}: {message}"
            );
        }
        Expected::TlsFailure => {
            assert_eq!(
                reply.status, 0,
                "{case}: an HTTP response arrived: {}",
                reply.body
            );
            assert_ne!(reply.curl_exit, 0, "{case}: curl reported success");
            assert_eq!(
                authority.registry_counts(),
                before.counts,
                "{case}: the registry changed"
            );
            assert!(
                authority.wait_for_log_count("CaUsedAsEndEntity", handshake_failures + 1),
                "{case}: the server did not log the rejected CA certificate"
            );
        }
    }
}

#[test]
fn renew_rejects_forged_leaves() {
    let authority = Authority::start();
    authority.register(OWNER, AGENT);
    let key = generate_p256_key(&authority.dir.path().join("renewal.key"));
    let body = json!({"csr": csr_pem(&key, &[])});

    let mut leaves = broken_leaves(
        &authority,
        "agent",
        AGENT_ID,
        "spiffe://example.org/agent/other",
    );
    leaves.extend(broken_leaves(&authority, "admin", ADMIN_ID, AGENT_ID));
    leaves.push(ForgedLeaf {
        case: "well-formed agent leaf never issued".to_owned(),
        chain: unissued_leaf(&authority, "unissued-agent", AGENT_ID),
        key: authority.dir.path().join("leaf.key"),
        expected: Expected::Http(403, "unknown_certificate", "not issued by this authority"),
    });
    leaves.push(ForgedLeaf {
        case: "well-formed admin leaf".to_owned(),
        chain: unissued_leaf(&authority, "unissued-admin", ADMIN_ID),
        key: authority.dir.path().join("leaf.key"),
        expected: Expected::Http(403, "agent_required", "not an agent identity"),
    });

    for leaf in &leaves {
        assert_leaf_rejected(&authority, leaf, "POST", "/v1/agent/renew", Some(&body));
    }
    assert_eq!(
        authority.agent_status(AGENT),
        "registered",
        "a forged leaf activated the agent"
    );
    assert!(
        authority.agent_serials(AGENT).is_empty(),
        "a forged leaf obtained a credential"
    );
}

#[test]
fn admin_routes_reject_forged_leaves() {
    let authority = Authority::start();
    authority.register(OWNER, AGENT);

    let mut leaves = broken_leaves(&authority, "admin", ADMIN_ID, AGENT_ID);
    leaves.extend(broken_leaves(&authority, "agent", AGENT_ID, ADMIN_ID));
    leaves.push(ForgedLeaf {
        case: "well-formed agent leaf of a registered agent".to_owned(),
        chain: unissued_leaf(&authority, "unissued-agent", AGENT_ID),
        key: authority.dir.path().join("leaf.key"),
        expected: Expected::Http(403, "admin_required", "not an admin identity"),
    });

    let owner = json!({"email": "mallory@example.org"});
    for leaf in &leaves {
        assert_leaf_rejected(&authority, leaf, "GET", "/v1/admin/agents", None);
        assert_leaf_rejected(&authority, leaf, "POST", "/v1/admin/owners", Some(&owner));
    }
    let owners = authority.sigil_json(&["owner", "list"]);
    assert_eq!(
        owners["owners"].as_array().unwrap().len(),
        1,
        "a forged leaf added an owner: {owners}"
    );
}
