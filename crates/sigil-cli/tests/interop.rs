//! Interoperability: what Sigil emits, checked with tools Sigil does not control. The `openssl`
//! and `curl` command-line tools, Python's `ssl` module and the `spiffe` crate verify SVIDs,
//! chains, CRLs and the authority's TLS endpoint from real `sigil serve`, `sigil` and
//! `sigil-agent` processes on loopback.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers: a failed step fails the test"
)]

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::{
    Authority, TRUST_DOMAIN, openssl, openssl_csr, openssl_ok, openssl_serial, pem_blocks,
    split_chain,
};
use time::OffsetDateTime;
use time::macros::format_description;

const OWNER: &str = "alice@example.org";

/// Parses an `openssl x509 -dateopt iso_8601` date such as `2030-01-01 12:00:00Z`.
fn parse_openssl_date(value: &str) -> OffsetDateTime {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::PrimitiveDateTime::parse(value.trim(), format)
        .unwrap_or_else(|err| panic!("`{value}` is not an openssl ISO 8601 date: {err}"))
        .assume_utc()
}

/// Returns the notBefore and notAfter of `cert` as openssl reads them.
fn openssl_dates(cert: &Path) -> (OffsetDateTime, OffsetDateTime) {
    let text = openssl_ok(
        Path::new("."),
        &[
            "x509",
            "-in",
            &cert.display().to_string(),
            "-noout",
            "-dates",
            "-dateopt",
            "iso_8601",
        ],
    );
    let field = |name: &str| {
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("openssl printed no {name}: {text}"));
        parse_openssl_date(line)
    };
    (field("notBefore="), field("notAfter="))
}

/// Returns the text openssl prints for the certificate in `cert`.
fn openssl_text(cert: &Path) -> String {
    openssl_ok(
        Path::new("."),
        &[
            "x509",
            "-in",
            &cert.display().to_string(),
            "-text",
            "-noout",
        ],
    )
}

/// Returns the trimmed lines that openssl indents below the line containing `heading`.
fn section_after<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut lines = text.lines().skip_while(|line| !line.contains(heading));
    let heading_line = lines
        .next()
        .unwrap_or_else(|| panic!("openssl output has no `{heading}`:\n{text}"));
    let heading_indent = indent(heading_line);
    lines
        .take_while(|line| indent(line) > heading_indent)
        .map(str::trim)
        .collect()
}

/// Returns stdout followed by stderr; openssl prints some results on each.
fn combined_output(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn openssl_verify_accepts_agent_svid() {
    let authority = Authority::start();
    let out = authority.enrolled_agent(OWNER, "crm-bot");
    let chain = std::fs::read_to_string(out.join("svid.pem")).unwrap();
    let (leaf, signing) = split_chain(&chain, authority.dir.path(), "svid");
    let bundle = authority.bundle().display().to_string();

    let accepted = openssl(
        authority.dir.path(),
        &[
            "verify",
            "-CAfile",
            &bundle,
            "-untrusted",
            &signing.display().to_string(),
            &leaf.display().to_string(),
        ],
    );
    let accepted_text = combined_output(&accepted);
    assert!(
        accepted.status.success(),
        "openssl verify rejected the agent SVID: {accepted_text}"
    );
    assert!(
        accepted_text.trim_end().ends_with(": OK"),
        "openssl verify did not print OK: {accepted_text}"
    );

    let without_signing_ca = openssl(
        authority.dir.path(),
        &["verify", "-CAfile", &bundle, &leaf.display().to_string()],
    );
    assert!(
        !without_signing_ca.status.success(),
        "openssl verify accepted the leaf without its signing CA, so the check above proves nothing: {}",
        combined_output(&without_signing_ca)
    );
}

#[test]
fn agent_svid_profile_in_openssl() {
    let authority = Authority::start();
    authority.sigil_ok(&["owner", "add", OWNER]);
    authority.sigil_ok(&[
        "agent", "register", "crm-bot", "--owner", OWNER, "--ttl", "5m",
    ]);
    let token = authority.token("crm-bot");
    let out = authority.dir.path().join("agent");

    let before = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let attested = authority.agent_once(&out, Some(&token));
    let after = OffsetDateTime::now_utc();
    assert!(
        attested.status.success(),
        "attestation failed: {}",
        String::from_utf8_lossy(&attested.stderr)
    );

    let chain = std::fs::read_to_string(out.join("svid.pem")).unwrap();
    let (leaf, _) = split_chain(&chain, authority.dir.path(), "svid");
    let text = openssl_text(&leaf);

    let expected_id = format!("spiffe://{TRUST_DOMAIN}/agent/crm-bot");
    let sans = section_after(&text, "X509v3 Subject Alternative Name");
    assert_eq!(
        sans.len(),
        1,
        "the SAN extension must be one line: {sans:?}"
    );
    let names: Vec<&str> = sans[0].split(", ").collect();
    assert_eq!(
        names,
        vec![format!("URI:{expected_id}")],
        "the SVID must carry exactly one URI SAN and no other name"
    );
    assert_eq!(
        text.matches("URI:").count(),
        1,
        "the certificate must contain exactly one URI name:\n{text}"
    );

    let basic_constraints = section_after(&text, "X509v3 Basic Constraints");
    assert_eq!(
        basic_constraints,
        vec!["CA:FALSE"],
        "the SVID must not be a CA:\n{text}"
    );

    assert!(
        text.contains("X509v3 Key Usage: critical"),
        "key usage must be critical:\n{text}"
    );
    let key_usage = section_after(&text, "X509v3 Key Usage");
    assert_eq!(
        key_usage,
        vec!["Digital Signature"],
        "key usage must be digitalSignature only:\n{text}"
    );

    let extended_key_usage = section_after(&text, "X509v3 Extended Key Usage");
    assert_eq!(
        extended_key_usage.len(),
        1,
        "extended key usage must be one line: {extended_key_usage:?}"
    );
    let purposes: BTreeSet<&str> = extended_key_usage[0].split(", ").collect();
    let expected_purposes: BTreeSet<&str> = [
        "TLS Web Server Authentication",
        "TLS Web Client Authentication",
    ]
    .into();
    assert_eq!(
        purposes, expected_purposes,
        "extended key usage must be serverAuth and clientAuth"
    );

    let serial_lines = section_after(&text, "Serial Number:");
    assert_eq!(
        serial_lines.len(),
        1,
        "openssl prints a 16-byte serial on its own line: {serial_lines:?}"
    );
    let serial_octets: Vec<&str> = serial_lines[0].split(':').collect();
    assert_eq!(
        serial_octets.len(),
        16,
        "the serial must be 16 bytes: {}",
        serial_lines[0]
    );
    assert!(
        !text.contains("(Negative)"),
        "the serial must be positive:\n{text}"
    );

    let (not_before, not_after) = openssl_dates(&leaf);
    let backdate = sigil_ca::issue::SVID_BACKDATE;
    assert!(
        not_before < before,
        "notBefore {not_before} must be earlier than the issuance at {before} or later"
    );
    let issued_at = not_before + backdate;
    assert!(
        issued_at >= before,
        "notBefore {not_before} plus the {backdate} backdating must not precede the request at {before}"
    );
    assert!(
        issued_at <= after,
        "notBefore {not_before} plus the {backdate} backdating must not follow the response at {after}"
    );
    assert_eq!(
        not_after - not_before,
        time::Duration::minutes(5) + backdate,
        "lifetime must be the agent's 5m ttl plus the {backdate} backdating"
    );
}

#[test]
fn spiffe_crate_parses_agent_svid() {
    let authority = Authority::start();
    let out = authority.enrolled_agent(OWNER, "crm-bot");
    let chain_pem = std::fs::read(out.join("svid.pem")).unwrap();
    let key_pem = std::fs::read(out.join("svid.key")).unwrap();

    let chain: Vec<x509_parser::pem::Pem> = x509_parser::pem::Pem::iter_from_buffer(&chain_pem)
        .collect::<Result<_, _>>()
        .expect("svid.pem is valid PEM");
    assert_eq!(
        chain.len(),
        2,
        "svid.pem must contain the leaf and the signing CA"
    );
    assert!(
        chain.iter().all(|pem| pem.label == "CERTIFICATE"),
        "svid.pem must contain only certificates"
    );
    let keys: Vec<x509_parser::pem::Pem> = x509_parser::pem::Pem::iter_from_buffer(&key_pem)
        .collect::<Result<_, _>>()
        .expect("svid.key is valid PEM");
    assert_eq!(keys.len(), 1, "svid.key must contain one key");
    assert_eq!(
        keys[0].label, "PRIVATE KEY",
        "svid.key must be a PKCS#8 key"
    );

    let chain_der: Vec<u8> = chain.iter().flat_map(|pem| pem.contents.clone()).collect();
    let svid = spiffe::X509Svid::parse_from_der(&chain_der, &keys[0].contents)
        .unwrap_or_else(|err| panic!("the spiffe crate rejected the agent SVID: {err}"));
    assert_eq!(
        svid.spiffe_id().to_string(),
        format!("spiffe://{TRUST_DOMAIN}/agent/crm-bot"),
        "the spiffe crate read another SPIFFE ID"
    );
    assert_eq!(
        svid.cert_chain().len(),
        2,
        "the parsed chain must keep the signing CA"
    );
    assert_eq!(
        svid.leaf().as_ref(),
        chain[0].contents.as_slice(),
        "the parsed leaf must be the first certificate"
    );

    let reversed: Vec<u8> = chain
        .iter()
        .rev()
        .flat_map(|pem| pem.contents.clone())
        .collect();
    let rejected = spiffe::X509Svid::parse_from_der(&reversed, &keys[0].contents);
    assert!(
        matches!(
            rejected,
            Err(spiffe::X509SvidError::LeafCertificateHasCaFlag
                | spiffe::X509SvidError::LeafCertificateHasCrlSign
                | spiffe::X509SvidError::LeafCertificateHasKeyCertSign)
        ),
        "the spiffe crate must reject the signing CA as a leaf, so that the check above means something: {rejected:?}"
    );

    let bundle_pem = std::fs::read(authority.bundle()).unwrap();
    let bundle = x509_parser::pem::Pem::iter_from_buffer(&bundle_pem)
        .next()
        .expect("bundle.pem contains a certificate")
        .expect("bundle.pem is valid PEM");
    let trust_domain = spiffe::TrustDomain::new(TRUST_DOMAIN).unwrap();
    let parsed_bundle = spiffe::X509Bundle::parse_from_der(trust_domain, &bundle.contents)
        .unwrap_or_else(|err| panic!("the spiffe crate rejected the trust bundle: {err}"));
    assert_eq!(
        parsed_bundle.authorities().len(),
        1,
        "the trust bundle must contain the root CA alone"
    );
}

#[test]
fn curl_renewal_returns_verifiable_chain() {
    let authority = Authority::start();
    let out = authority.enrolled_agent(OWNER, "crm-bot");
    let dir = authority.dir.path();
    let presented_serial = openssl_serial(&out.join("svid.pem"));

    let (csr, new_key) = openssl_csr(dir, "renewal");
    let body = serde_json::json!({ "csr": csr }).to_string();
    let (status, response) = authority.request(
        "POST",
        "/v1/agent/renew",
        Some(&body),
        Some((&out.join("svid.pem"), &out.join("svid.key"))),
    );
    assert_eq!(status, 200, "renewal over curl failed: {response}");

    let response: serde_json::Value =
        serde_json::from_str(&response).expect("the renewal response is JSON");
    let svid = response["svid"]
        .as_str()
        .expect("the response has an `svid` string");
    let bundle = response["bundle"]
        .as_str()
        .expect("the response has a `bundle` string");
    let expires_at = response["expires_at"]
        .as_str()
        .expect("the response has an `expires_at` string");
    assert_eq!(
        bundle.trim(),
        std::fs::read_to_string(authority.bundle()).unwrap().trim(),
        "the returned bundle must be the data directory's bundle.pem"
    );

    let (leaf, signing) = split_chain(svid, dir, "renewed");
    let verified = openssl_ok(
        dir,
        &[
            "verify",
            "-CAfile",
            &authority.bundle().display().to_string(),
            "-untrusted",
            &signing.display().to_string(),
            &leaf.display().to_string(),
        ],
    );
    assert!(
        verified.trim_end().ends_with(": OK"),
        "openssl verify did not accept the renewed chain: {verified}"
    );

    let leaf_key = openssl_ok(
        dir,
        &[
            "x509",
            "-in",
            &leaf.display().to_string(),
            "-noout",
            "-pubkey",
        ],
    );
    let csr_key = openssl_ok(
        dir,
        &["pkey", "-in", &new_key.display().to_string(), "-pubout"],
    );
    assert_eq!(
        leaf_key, csr_key,
        "the renewed SVID must certify the CSR's key"
    );
    let subject = openssl_ok(
        dir,
        &[
            "x509",
            "-in",
            &leaf.display().to_string(),
            "-noout",
            "-subject",
        ],
    );
    assert!(
        !subject.contains("CN = x"),
        "the CSR's subject must not reach the certificate: {subject}"
    );

    let (_, not_after) = openssl_dates(&leaf);
    let reported =
        OffsetDateTime::parse(expires_at, &time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|err| panic!("expires_at `{expires_at}` is not RFC 3339: {err}"));
    assert_eq!(
        reported, not_after,
        "expires_at must be the certificate's notAfter"
    );

    let new_serial = openssl_serial(&leaf);
    assert_ne!(
        new_serial, presented_serial,
        "renewal must issue a new serial"
    );
    let agent_detail = authority.sigil_json(&["agent", "show", "crm-bot"]);
    let credentials = agent_detail["credentials"]
        .as_array()
        .expect("agent show lists credentials");
    let renewed = credentials
        .iter()
        .find(|credential| {
            credential["serial"]
                .as_str()
                .map(str::to_ascii_lowercase)
                .as_deref()
                == Some(new_serial.as_str())
        })
        .unwrap_or_else(|| {
            panic!("agent show does not list the renewed serial {new_serial}: {agent_detail}")
        });
    assert_eq!(
        renewed["parent_serial"]
            .as_str()
            .map(str::to_ascii_lowercase),
        Some(presented_serial.clone()),
        "the renewed credential's parent must be the presented certificate"
    );
}

#[test]
fn crl_lists_decommissioned_serials() {
    let authority = Authority::start();
    let dir = authority.dir.path();
    let out = authority.enrolled_agent(OWNER, "crm-bot");
    let renewed = authority.agent_once(&out, None);
    assert!(
        renewed.status.success(),
        "renewal failed: {}",
        String::from_utf8_lossy(&renewed.stderr)
    );
    let bystander = authority.enrolled_agent(OWNER, "billing-bot");

    let chain = std::fs::read_to_string(out.join("svid.pem")).unwrap();
    let (leaf, signing) = split_chain(&chain, dir, "revoked");
    let bystander_chain = std::fs::read_to_string(bystander.join("svid.pem")).unwrap();
    let (bystander_leaf, _) = split_chain(&bystander_chain, dir, "bystander");

    authority.sigil_ok(&["agent", "decommission", "crm-bot"]);
    let agent_detail = authority.sigil_json(&["agent", "show", "crm-bot"]);
    let credentials = agent_detail["credentials"]
        .as_array()
        .expect("agent show lists credentials");
    assert_eq!(
        credentials.len(),
        2,
        "the agent has its attested and its renewed SVID: {agent_detail}"
    );
    let expected: BTreeSet<String> = credentials
        .iter()
        .map(|credential| {
            assert_eq!(
                credential["state"], "revoked",
                "decommission must revoke every credential: {credential}"
            );
            credential["serial"].as_str().unwrap().to_ascii_lowercase()
        })
        .collect();

    let crl = dir.join("crl.der");
    let fetched = authority.curl(&[
        "-sf",
        "-o",
        &crl.display().to_string(),
        &format!("{}/v1/crl", authority.url),
    ]);
    assert!(
        fetched.status.success(),
        "curl could not fetch /v1/crl: {}",
        combined_output(&fetched)
    );

    let text = openssl_ok(
        dir,
        &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
    );
    let listed: BTreeSet<String> = text
        .lines()
        .filter_map(|line| line.trim().strip_prefix("Serial Number: "))
        .map(str::to_ascii_lowercase)
        .collect();
    assert_eq!(
        listed, expected,
        "the CRL must list exactly the decommissioned agent's serials:\n{text}"
    );

    let signed = openssl_ok(
        dir,
        &[
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl.der",
            "-noout",
            "-verify",
            "-CAfile",
            &signing.display().to_string(),
        ],
    );
    assert!(
        signed.contains("verify OK"),
        "openssl did not verify the CRL against the signing CA: {signed}"
    );
    let bundle = authority.bundle().display().to_string();
    let against_root = openssl(
        dir,
        &[
            "crl", "-inform", "DER", "-in", "crl.der", "-noout", "-verify", "-CAfile", &bundle,
        ],
    );
    assert!(
        !combined_output(&against_root).contains("verify OK"),
        "the CRL must not verify against the root, which did not sign it: {}",
        combined_output(&against_root)
    );

    openssl_ok(
        dir,
        &["crl", "-inform", "DER", "-in", "crl.der", "-out", "crl.pem"],
    );
    let signing_arg = signing.display().to_string();
    let revoked = openssl(
        dir,
        &[
            "verify",
            "-crl_check",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            &bundle,
            "-untrusted",
            &signing_arg,
            &leaf.display().to_string(),
        ],
    );
    assert!(
        !revoked.status.success(),
        "openssl verify with the CRL accepted a revoked SVID"
    );
    assert!(
        combined_output(&revoked).contains("certificate revoked"),
        "openssl must reject it as revoked: {}",
        combined_output(&revoked)
    );
    let live = openssl(
        dir,
        &[
            "verify",
            "-crl_check",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            &bundle,
            "-untrusted",
            &signing_arg,
            &bystander_leaf.display().to_string(),
        ],
    );
    assert!(
        live.status.success(),
        "openssl verify with the CRL rejected another agent's live SVID: {}",
        combined_output(&live)
    );
}

/// Fetches `/v1/crl.pem` (the root's CRL, then one per live signing CA) into `<dir>/crl.pem`.
fn fetch_crl_pem(authority: &Authority, dir: &Path) -> String {
    let fetched = authority.curl(&[
        "-sf",
        "-o",
        &dir.join("crl.pem").display().to_string(),
        &format!("{}/v1/crl.pem", authority.url),
    ]);
    assert!(
        fetched.status.success(),
        "curl could not fetch /v1/crl.pem: {}",
        combined_output(&fetched)
    );
    std::fs::read_to_string(dir.join("crl.pem")).unwrap()
}

/// nginx (`ssl_crl`), Apache (`SSLCARevocationCheck chain`) and curl (`--crlfile`) check CRLs
/// for every certificate in the chain, as `openssl verify -crl_check_all` does.
#[test]
fn crl_check_all_accepts_live_svid() {
    let authority = Authority::start();
    let dir = authority.dir.path();
    let out = authority.enrolled_agent(OWNER, "crm-bot");
    let chain = std::fs::read_to_string(out.join("svid.pem")).unwrap();
    let (leaf, signing) = split_chain(&chain, dir, "svid");
    fetch_crl_pem(&authority, dir);

    let checked = openssl(
        dir,
        &[
            "verify",
            "-crl_check_all",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            &authority.bundle().display().to_string(),
            "-untrusted",
            &signing.display().to_string(),
            &leaf.display().to_string(),
        ],
    );
    assert!(
        checked.status.success(),
        "a chain-wide CRL check rejected a live SVID: {}",
        combined_output(&checked)
    );

    let with_crl = authority.curl(&[
        "-sS",
        "--crlfile",
        &dir.join("crl.pem").display().to_string(),
        &format!("{}/healthz", authority.url),
    ]);
    assert!(
        with_crl.status.success(),
        "curl --crlfile with the authority's own CRL rejected the authority: {}",
        combined_output(&with_crl)
    );
}

/// After a rotation, SVIDs issued by the previous signing CA stay valid until they expire, so a
/// relying party that checks CRLs needs one from that CA too.
#[test]
fn crl_check_accepts_svid_of_previous_signing_ca() {
    let authority = Authority::start_with(&[
        "--signing-ca-lifetime",
        "20s",
        "--rotation-check-interval",
        "1s",
    ]);
    let dir = authority.dir.path();
    let out = authority.enrolled_agent(OWNER, "crm-bot");
    let chain = std::fs::read_to_string(out.join("svid.pem")).unwrap();
    let (leaf, signing) = split_chain(&chain, dir, "svid");
    let previous_signing = std::fs::read_to_string(&signing).unwrap();
    let signing_path = authority.data.join("ca/signing.pem");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(25);
    while std::fs::read_to_string(&signing_path).unwrap() == previous_signing {
        assert!(
            std::time::Instant::now() < deadline,
            "the signing CA did not rotate within 25 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // The CRLs are rebuilt right after the new signing CA is saved; wait for the one from
    // the new CA to appear beside the previous CA's.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while pem_blocks(&fetch_crl_pem(&authority, dir)).len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "/v1/crl.pem has no CRL of the previous signing CA"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let checked = openssl(
        dir,
        &[
            "verify",
            "-crl_check_all",
            "-CRLfile",
            "crl.pem",
            "-CAfile",
            &authority.bundle().display().to_string(),
            "-untrusted",
            &signing.display().to_string(),
            &leaf.display().to_string(),
        ],
    );
    assert!(
        checked.status.success(),
        "a CRL check rejected a live SVID of the previous signing CA: {}",
        combined_output(&checked)
    );
}

/// The CRLs of `/v1/crl.pem` are signed by the root and by the signing CA, and a chain-wide
/// check with them accepts an active agent's SVID and rejects a decommissioned agent's.
#[test]
fn crl_pem_revokes_decommissioned_chain() {
    let authority = Authority::start();
    let dir = authority.dir.path();
    let retired = authority.enrolled_agent(OWNER, "old-bot");
    let active = authority.enrolled_agent(OWNER, "crm-bot");
    let retired_serial = openssl_serial(&retired.join("svid.pem"));
    let (retired_leaf, signing) = split_chain(
        &std::fs::read_to_string(retired.join("svid.pem")).unwrap(),
        dir,
        "retired",
    );
    let (active_leaf, _) = split_chain(
        &std::fs::read_to_string(active.join("svid.pem")).unwrap(),
        dir,
        "active",
    );
    authority.sigil_ok(&["agent", "decommission", "old-bot"]);

    let crls = pem_blocks(&fetch_crl_pem(&authority, dir));
    assert_eq!(
        crls.len(),
        2,
        "the root's CRL and the signing CA's: {crls:?}"
    );
    let bundle = authority.bundle().display().to_string();
    let signing_arg = signing.display().to_string();
    for (index, (crl, issuer, listed)) in [
        (&crls[0], &bundle, Vec::<String>::new()),
        (&crls[1], &signing_arg, vec![retired_serial.clone()]),
    ]
    .into_iter()
    .enumerate()
    {
        let file = format!("crl-{index}.pem");
        std::fs::write(dir.join(&file), crl).unwrap();
        let verified = openssl_ok(
            dir,
            &["crl", "-in", &file, "-noout", "-verify", "-CAfile", issuer],
        );
        assert!(verified.contains("verify OK"), "CRL {index}: {verified}");
        let text = openssl_ok(dir, &["crl", "-in", &file, "-noout", "-text"]);
        let serials: Vec<String> = text
            .lines()
            .filter_map(|line| line.trim().strip_prefix("Serial Number: "))
            .map(str::to_ascii_lowercase)
            .collect();
        assert_eq!(
            serials, listed,
            "CRL {index} lists the wrong serials:\n{text}"
        );
    }

    let check = |leaf: &Path| {
        openssl(
            dir,
            &[
                "verify",
                "-crl_check_all",
                "-CRLfile",
                "crl.pem",
                "-CAfile",
                &bundle,
                "-untrusted",
                &signing_arg,
                &leaf.display().to_string(),
            ],
        )
    };
    let accepted = check(&active_leaf);
    assert!(
        accepted.status.success(),
        "a chain-wide CRL check rejected the active agent: {}",
        combined_output(&accepted)
    );
    let rejected = check(&retired_leaf);
    assert!(
        !rejected.status.success(),
        "a chain-wide CRL check accepted the decommissioned agent"
    );
    assert!(
        combined_output(&rejected).contains("certificate revoked"),
        "openssl must reject it as revoked: {}",
        combined_output(&rejected)
    );
}

/// Connects with Python's `ssl` module, the bundle as the only CA, and prints one line per case.
/// Every connection goes to 127.0.0.1, where the test authority listens, and each case sets the
/// name that Python checks against the serving certificate.
const PYTHON_CLIENT: &str = r#"
import json, socket, ssl, sys

port, bundle, cert, key, csr_path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]

def exchange(server_hostname, request, client_identity=False):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=bundle)
    if client_identity:
        context.load_cert_chain(cert, key)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            tls.sendall(request)
            data = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                data += chunk
            return tls.version(), data

for name in ["localhost", "127.0.0.1", "::1", "sigil.invalid"]:
    try:
        version, data = exchange(name, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        print("healthz", name, version, data.split(b"\r\n")[0].decode())
    except ssl.SSLCertVerificationError as err:
        print("healthz", name, "verify-failed", err.verify_message)

body = json.dumps({"csr": open(csr_path).read()}).encode()
request = (
    b"POST /v1/agent/renew HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
    b"Content-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
)
version, data = exchange("localhost", request, client_identity=True)
head, _, payload = data.partition(b"\r\n\r\n")
print("renew", head.split(b"\r\n")[0].decode(), "svid" in json.loads(payload))
"#;

#[test]
fn python_ssl_verifies_authority() {
    let authority = Authority::start();
    let dir = authority.dir.path();
    let out = authority.enrolled_agent(OWNER, "crm-bot");
    let (csr, _) = openssl_csr(dir, "python");
    let csr_path = dir.join("python.csr");
    assert!(
        csr.contains("CERTIFICATE REQUEST"),
        "openssl wrote no CSR to {}",
        csr_path.display()
    );
    let script = dir.join("client.py");
    std::fs::write(&script, PYTHON_CLIENT).unwrap();

    let output = Command::new("python3")
        .arg(&script)
        .arg(authority.port.to_string())
        .arg(authority.bundle())
        .arg(out.join("svid.pem"))
        .arg(out.join("svid.key"))
        .arg(&csr_path)
        .output()
        .expect("python3 is needed by the tests");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the Python client failed: {printed}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = printed.lines().collect();

    for name in ["localhost", "127.0.0.1", "::1"] {
        let line = lines
            .iter()
            .find(|line| line.starts_with(&format!("healthz {name} ")))
            .unwrap_or_else(|| panic!("no result for {name}: {printed}"));
        assert!(
            line.ends_with("HTTP/1.1 200 OK"),
            "Python could not reach /healthz as {name}: {line}"
        );
    }
    let uncovered = lines
        .iter()
        .find(|line| line.starts_with("healthz sigil.invalid "))
        .unwrap_or_else(|| panic!("no result for sigil.invalid: {printed}"));
    assert!(
        uncovered.contains("verify-failed Hostname mismatch"),
        "Python must reject a name the serving certificate does not cover: {uncovered}"
    );
    assert!(
        lines.contains(&"renew HTTP/1.1 200 OK True"),
        "Python presenting the agent SVID could not renew it: {printed}"
    );
}
