//! `build_crl`: CRLs that OpenSSL, webpki and x509-parser read back.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use common::{Authority, openssl, spiffe_id, trust_domain};
use sigil_ca::{CaError, RevokedSerial, build_crl, issue_with_new_key};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER;
use x509_parser::prelude::{FromDer, ParsedExtension};
use x509_parser::revocation_list::CertificateRevocationList;

/// Issues `count` SVIDs and returns their serial hex.
fn issued_serials(authority: &Authority, count: usize, now: OffsetDateTime) -> Vec<String> {
    (0..count)
        .map(|index| {
            let id = spiffe_id(&format!("/agents/{index}"));
            let (issued, _) =
                issue_with_new_key(&authority.signing, &id, Duration::hours(1), now, &[], &[])
                    .unwrap();
            issued.serial_hex
        })
        .collect()
}

fn revoked(serials: &[String], revoked_at: OffsetDateTime) -> Vec<RevokedSerial> {
    serials
        .iter()
        .map(|serial_hex| RevokedSerial {
            serial_hex: serial_hex.clone(),
            revoked_at,
        })
        .collect()
}

fn signing_key_id(authority: &Authority) -> Vec<u8> {
    let (_, certificate) =
        x509_parser::parse_x509_certificate(authority.signing.cert_der()).unwrap();
    let extension = certificate
        .get_extension_unique(&OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        .unwrap()
        .unwrap();
    let ParsedExtension::SubjectKeyIdentifier(identifier) = extension.parsed_extension() else {
        panic!("unexpected subject key identifier content");
    };
    identifier.0.to_vec()
}

/// Formats bytes as OpenSSL prints key identifiers: uppercase hex pairs joined by colons.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn openssl_lists_the_revoked_serials() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);
    let serials = issued_serials(&authority, 3, now);
    let dir = tempfile::tempdir().unwrap();

    let der = build_crl(
        &authority.signing,
        &revoked(&serials, now),
        42,
        now,
        now + Duration::hours(1),
    )
    .unwrap();
    std::fs::write(dir.path().join("crl.der"), &der).unwrap();

    let text = openssl(
        dir.path(),
        &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
    );
    for serial in &serials {
        let line = format!("Serial Number: {}", serial.to_uppercase());
        assert!(text.contains(&line), "{line} missing from\n{text}");
    }
    assert_eq!(text.matches("Serial Number:").count(), 3, "{text}");
    assert!(
        text.contains("X509v3 CRL Number: \n                42\n"),
        "{text}"
    );
    assert!(text.contains("X509v3 Authority Key Identifier"), "{text}");
    assert!(
        text.contains(&colon_hex(&signing_key_id(&authority))),
        "{text}"
    );
    assert!(text.contains("Version 2 (0x1)"), "{text}");
}

#[test]
fn openssl_verifies_the_crl_signature() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);
    let serials = issued_serials(&authority, 1, now);
    let dir = tempfile::tempdir().unwrap();
    let der = build_crl(
        &authority.signing,
        &revoked(&serials, now),
        1,
        now,
        now + Duration::hours(1),
    )
    .unwrap();
    std::fs::write(dir.path().join("crl.der"), &der).unwrap();
    std::fs::write(dir.path().join("signing.pem"), authority.signing.cert_pem()).unwrap();

    let output = std::process::Command::new("openssl")
        .args([
            "crl",
            "-inform",
            "DER",
            "-in",
            "crl.der",
            "-CAfile",
            "signing.pem",
            "-noout",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();

    assert!(output.status.success(), "{output:?}");
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("verify OK"),
        "{output:?}"
    );
}

#[test]
fn empty_crl_has_no_entries() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);
    let dir = tempfile::tempdir().unwrap();

    let der = build_crl(&authority.signing, &[], 7, now, now + Duration::hours(1)).unwrap();
    std::fs::write(dir.path().join("crl.der"), &der).unwrap();

    let text = openssl(
        dir.path(),
        &["crl", "-inform", "DER", "-in", "crl.der", "-noout", "-text"],
    );
    assert!(text.contains("No Revoked Certificates."), "{text}");
}

#[test]
fn fields_read_back_with_x509_parser() {
    let now = datetime!(2030-05-05 05:05:05.5 UTC);
    let next_update = datetime!(2030-05-05 06:05:05 UTC);
    let revoked_at = datetime!(2030-05-05 04:00:00 UTC);
    let authority = Authority::new(&trust_domain(), now);
    let serials = issued_serials(&authority, 2, now);

    let der = build_crl(
        &authority.signing,
        &revoked(&serials, revoked_at),
        u64::MAX,
        now,
        next_update,
    )
    .unwrap();

    let (rest, crl) = CertificateRevocationList::from_der(&der).unwrap();
    assert!(rest.is_empty());
    let (_, signing) = x509_parser::parse_x509_certificate(authority.signing.cert_der()).unwrap();
    assert_eq!(crl.issuer().as_raw(), signing.subject().as_raw());
    assert_eq!(
        crl.last_update().to_datetime(),
        datetime!(2030-05-05 05:05:05 UTC)
    );
    assert_eq!(crl.next_update().unwrap().to_datetime(), next_update);
    assert_eq!(crl.crl_number().unwrap().to_string(), u64::MAX.to_string());
    let listed: Vec<String> = crl
        .iter_revoked_certificates()
        .map(|entry| hex::encode(entry.raw_serial()))
        .collect();
    assert_eq!(listed, serials);
    for entry in crl.iter_revoked_certificates() {
        assert_eq!(entry.revocation_date.to_datetime(), revoked_at);
    }
}

/// Verifies `leaf` up to the authority's root with webpki, checking the end entity against
/// `crl`.
fn webpki_verify_with_crl(
    authority: &Authority,
    leaf: &rustls_pki_types::CertificateDer<'_>,
    crl: &[u8],
    now: OffsetDateTime,
) -> Result<(), webpki::Error> {
    let crl = webpki::CertRevocationList::from(webpki::BorrowedCertRevocationList::from_der(crl)?);
    let crls = [&crl];
    let revocation = webpki::RevocationOptionsBuilder::new(&crls)
        .unwrap()
        .with_depth(webpki::RevocationCheckDepth::EndEntity)
        .build();
    let anchors = [webpki::anchor_from_trusted_cert(authority.root.cert_der()).unwrap()];
    let intermediates = [authority.signing.cert_der().clone()];
    let time = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        now.unix_timestamp() as u64,
    ));

    webpki::EndEntityCert::try_from(leaf)?
        .verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &anchors,
            &intermediates,
            time,
            webpki::KeyUsage::client_auth(),
            Some(revocation),
            None,
        )
        .map(|_| ())
}

#[test]
fn webpki_rejects_revoked_and_accepts_others() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);
    let (revoked_leaf, _) = issue_with_new_key(
        &authority.signing,
        &spiffe_id("/a"),
        Duration::hours(1),
        now,
        &[],
        &[],
    )
    .unwrap();
    let (valid_leaf, _) = issue_with_new_key(
        &authority.signing,
        &spiffe_id("/b"),
        Duration::hours(1),
        now,
        &[],
        &[],
    )
    .unwrap();
    let entries = revoked(std::slice::from_ref(&revoked_leaf.serial_hex), now);

    let crl = build_crl(
        &authority.signing,
        &entries,
        3,
        now,
        now + Duration::hours(1),
    )
    .unwrap();

    let revoked_result = webpki_verify_with_crl(&authority, &revoked_leaf.der, &crl, now);
    assert_eq!(revoked_result, Err(webpki::Error::CertRevoked));
    webpki_verify_with_crl(&authority, &valid_leaf.der, &crl, now).unwrap();
}

#[test]
fn next_update_must_follow_now() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);

    for next_update in [now, now - Duration::hours(1)] {
        let error = build_crl(&authority.signing, &[], 1, now, next_update).unwrap_err();

        assert!(
            matches!(error, CaError::InvalidCrlWindow { .. }),
            "{error:?}"
        );
    }
}

#[test]
fn invalid_serial_hex_is_rejected() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);

    for serial_hex in ["", "xyz", "ABCD", "123"] {
        let entry = RevokedSerial {
            serial_hex: serial_hex.to_owned(),
            revoked_at: now,
        };

        let error = build_crl(
            &authority.signing,
            &[entry],
            1,
            now,
            now + Duration::hours(1),
        )
        .unwrap_err();

        assert!(
            matches!(&error, CaError::InvalidSerial { value } if value == serial_hex),
            "{serial_hex:?}: {error:?}"
        );
    }
}
