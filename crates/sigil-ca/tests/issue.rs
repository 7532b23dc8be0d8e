//! `issue_svid` and `issue_with_new_key`: the profile of issued X.509-SVIDs, checked with
//! x509-parser, OpenSSL, the `spiffe` crate and Sigil's own verifier.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::net::IpAddr;

use common::{Authority, TestKey, csr_der, openssl, spiffe_id, trust_domain};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName};
use sigil_ca::issue::SVID_BACKDATE;
use sigil_ca::{CaError, SvidRequest, check_csr, issue_svid, issue_with_new_key, verify_svid};
use sigil_core::SpiffeId;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::oid_registry::{
    OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_BASIC_CONSTRAINTS,
    OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
    OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
};
use x509_parser::parse_x509_certificate;

const LIFETIME: Duration = Duration::hours(1);

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, certificate) = parse_x509_certificate(der).unwrap();
    assert!(rest.is_empty());
    certificate
}

fn general_names<'a>(certificate: &'a X509Certificate<'_>) -> Vec<&'a GeneralName<'a>> {
    certificate
        .subject_alternative_name()
        .unwrap()
        .map(|extension| extension.value.general_names.iter().collect())
        .unwrap_or_default()
}

fn uris<'a>(certificate: &'a X509Certificate<'_>) -> Vec<&'a str> {
    general_names(certificate)
        .into_iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) => Some(*uri),
            _ => None,
        })
        .collect()
}

/// Issues an SVID for a new key of `test_key` with the given SANs.
fn issue(
    authority: &Authority,
    test_key: TestKey,
    id: &SpiffeId,
    now: OffsetDateTime,
) -> (sigil_ca::IssuedCertificate, rcgen::KeyPair) {
    let key = test_key.generate();
    let public_key = check_csr(&csr_der(&key)).unwrap();
    let request = SvidRequest {
        spiffe_id: id,
        public_key: &public_key,
        lifetime: LIFETIME,
        now,
        dns_names: &[],
        ip_addresses: &[],
    };

    (issue_svid(&authority.signing, &request).unwrap(), key)
}

#[test]
fn svid_names_and_subject() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);
    let id = spiffe_id("/agents/alice");

    let (issued, _) = issue(&authority, TestKey::P256, &id, now);

    let certificate = parse(&issued.der);
    assert_eq!(uris(&certificate), vec![id.as_str()]);
    assert_eq!(general_names(&certificate).len(), 1);
    assert_eq!(certificate.subject().to_string(), "O=Sigil");
    let san = certificate
        .get_extension_unique(&OID_X509_EXT_SUBJECT_ALT_NAME)
        .unwrap()
        .unwrap();
    assert!(
        !san.critical,
        "SAN must not be critical when the subject is not empty"
    );
    assert_eq!(certificate.version().0, 2, "must be X.509 v3");
}

#[test]
fn svid_is_end_entity_for_signing() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);

    let (issued, _) = issue(&authority, TestKey::P256, &spiffe_id("/a"), now);

    let certificate = parse(&issued.der);
    let constraints = certificate.basic_constraints().unwrap().unwrap();
    assert!(!constraints.value.ca);
    assert!(constraints.critical);
    assert!(!certificate.is_ca());

    let key_usage = certificate.key_usage().unwrap().unwrap();
    assert!(key_usage.critical, "key usage must be critical");
    assert!(key_usage.value.digital_signature());
    assert_eq!(
        key_usage.value.flags, 1,
        "digitalSignature must be the only key usage"
    );
}

#[test]
fn svid_has_server_and_client_auth() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);

    let (issued, _) = issue(&authority, TestKey::P256, &spiffe_id("/a"), now);

    let certificate = parse(&issued.der);
    let eku = certificate.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth);
    assert!(eku.client_auth);
    assert!(!eku.any);
    assert!(!eku.code_signing);
    assert!(!eku.email_protection);
    assert!(!eku.time_stamping);
    assert!(!eku.ocsp_signing);
    assert!(eku.other.is_empty());
}

#[test]
fn svid_names_signing_key() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);

    let (issued, _) = issue(&authority, TestKey::P256, &spiffe_id("/a"), now);

    let certificate = parse(&issued.der);
    let signing = parse(authority.signing.cert_der());
    let ParsedExtension::AuthorityKeyIdentifier(aki) = certificate
        .get_extension_unique(&OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER)
        .unwrap()
        .unwrap()
        .parsed_extension()
    else {
        panic!("authority key identifier has unexpected content");
    };
    let ParsedExtension::SubjectKeyIdentifier(signing_ski) = signing
        .get_extension_unique(&OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        .unwrap()
        .unwrap()
        .parsed_extension()
    else {
        panic!("subject key identifier has unexpected content");
    };
    assert_eq!(aki.key_identifier.as_ref().unwrap().0, signing_ski.0);
    assert_eq!(certificate.issuer().as_raw(), signing.subject().as_raw());
}

#[test]
fn svid_has_expected_extensions() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);

    let (issued, _) = issue(&authority, TestKey::P256, &spiffe_id("/a"), now);

    let certificate = parse(&issued.der);
    let mut oids: Vec<String> = certificate
        .extensions()
        .iter()
        .map(|extension| extension.oid.to_id_string())
        .collect();
    oids.sort();
    let mut expected: Vec<String> = [
        OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER,
        OID_X509_EXT_SUBJECT_ALT_NAME,
        OID_X509_EXT_KEY_USAGE,
        OID_X509_EXT_EXTENDED_KEY_USAGE,
        OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
        OID_X509_EXT_BASIC_CONSTRAINTS,
    ]
    .iter()
    .map(|oid| oid.to_id_string())
    .collect();
    expected.sort();
    assert_eq!(oids, expected);
}

#[test]
fn serial_is_positive_and_16_bytes() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);

    for _ in 0..20 {
        let (issued, _) = issue(&authority, TestKey::P256, &spiffe_id("/a"), now);

        let certificate = parse(&issued.der);
        let serial = certificate.raw_serial();
        assert_eq!(serial.len(), 16);
        assert_eq!(serial[0] & 0x80, 0, "serial must be positive");
        assert_ne!(serial[0], 0, "serial must have no leading zero byte");
        assert_eq!(issued.serial_hex, hex::encode(serial));
        assert_eq!(issued.serial_hex.len(), 32);
    }
}

#[test]
fn validity_is_backdated_and_whole_seconds() {
    let now = datetime!(2031-06-01 14:30:15.999 +02:00);
    let authority = Authority::new(&trust_domain(), now);

    let (issued, _) = issue(&authority, TestKey::P256, &spiffe_id("/a"), now);

    assert_eq!(SVID_BACKDATE, Duration::seconds(30));
    assert_eq!(issued.not_before, datetime!(2031-06-01 12:29:45 UTC));
    assert_eq!(issued.not_after, datetime!(2031-06-01 13:30:15 UTC));
    let certificate = parse(&issued.der);
    assert_eq!(
        certificate.validity().not_before.to_datetime(),
        issued.not_before
    );
    assert_eq!(
        certificate.validity().not_after.to_datetime(),
        issued.not_after
    );
}

#[test]
fn validity_crossing_2050_in_local_offset() {
    // 2049 in the local offset, but 2050 in UTC, so the times need GeneralizedTime.
    let now = datetime!(2049-12-31 22:00:00 -05:00);
    let authority = Authority::new(&trust_domain(), now);

    let (issued, _) = issue(&authority, TestKey::P256, &spiffe_id("/a"), now);

    assert_eq!(issued.not_before, datetime!(2050-01-01 02:59:30 UTC));
    let certificate = parse(&issued.der);
    assert_eq!(
        certificate.validity().not_before.to_datetime(),
        issued.not_before
    );
}

#[test]
fn lifetime_is_clamped_to_signing_ca() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);
    let key = TestKey::P256.generate();
    let public_key = check_csr(&csr_der(&key)).unwrap();
    let id = spiffe_id("/a");
    let request = SvidRequest {
        spiffe_id: &id,
        public_key: &public_key,
        lifetime: Duration::days(400),
        now,
        dns_names: &[],
        ip_addresses: &[],
    };

    let issued = issue_svid(&authority.signing, &request).unwrap();

    assert_eq!(issued.not_after, authority.signing.not_after());
    let certificate = parse(&issued.der);
    assert_eq!(
        certificate.validity().not_after.to_datetime(),
        authority.signing.not_after()
    );
}

#[test]
fn issuing_after_signing_ca_expiry_fails() {
    let created = now() - Duration::days(40);
    let authority = Authority::new(&trust_domain(), created);
    let key = TestKey::P256.generate();
    let public_key = check_csr(&csr_der(&key)).unwrap();
    let id = spiffe_id("/a");
    let request = SvidRequest {
        spiffe_id: &id,
        public_key: &public_key,
        lifetime: LIFETIME,
        now: now(),
        dns_names: &[],
        ip_addresses: &[],
    };

    let error = issue_svid(&authority.signing, &request).unwrap_err();

    assert!(matches!(error, CaError::IssuerExpired { .. }), "{error:?}");
    assert!(error.to_string().contains("rotate"), "{error}");
}

#[test]
fn non_positive_lifetime_fails() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);
    let key = TestKey::P256.generate();
    let public_key = check_csr(&csr_der(&key)).unwrap();
    let id = spiffe_id("/a");

    for lifetime in [Duration::ZERO, Duration::minutes(-5)] {
        let request = SvidRequest {
            spiffe_id: &id,
            public_key: &public_key,
            lifetime,
            now,
            dns_names: &[],
            ip_addresses: &[],
        };

        let error = issue_svid(&authority.signing, &request).unwrap_err();

        assert!(
            matches!(error, CaError::InvalidLifetime { .. }),
            "{error:?}"
        );
    }
}

#[test]
fn svid_spki_equals_csr_spki() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);

    for test_key in TestKey::ALL {
        let key = test_key.generate();
        let public_key = check_csr(&csr_der(&key)).unwrap();
        let id = spiffe_id("/a");
        let request = SvidRequest {
            spiffe_id: &id,
            public_key: &public_key,
            lifetime: LIFETIME,
            now,
            dns_names: &[],
            ip_addresses: &[],
        };

        let issued = issue_svid(&authority.signing, &request).unwrap();

        let certificate = parse(&issued.der);
        assert_eq!(
            certificate.public_key().raw,
            public_key.spki_der(),
            "{test_key:?}"
        );
        assert_eq!(
            certificate.public_key().raw,
            key.subject_public_key_info(),
            "{test_key:?}"
        );
        assert_eq!(
            issued.public_key_fingerprint,
            public_key.fingerprint(),
            "{test_key:?}"
        );
    }
}

#[test]
fn issued_certificate_fields_match_the_der() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);

    let (issued, _) = issue(&authority, TestKey::Ed25519, &spiffe_id("/a"), now);

    let from_pem = CertificateDer::from_pem_slice(issued.pem.as_bytes()).unwrap();
    assert_eq!(from_pem, issued.der);
    assert_eq!(
        issued.fingerprint,
        sigil_ca::fingerprint::sha256_hex(&issued.der)
    );
}

#[test]
fn csr_requests_are_ignored() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);
    let key = TestKey::P256.generate();
    let mut params = CertificateParams::new(vec![
        "evil.example.com".to_owned(),
        "admin.example.org".to_owned(),
    ])
    .unwrap();
    params.subject_alt_names.push(SanType::URI(
        "spiffe://example.org/admin".try_into().unwrap(),
    ));
    params.distinguished_name.push(DnType::CommonName, "admin");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let csr = params.serialize_request(&key).unwrap();
    let public_key = check_csr(csr.der()).unwrap();
    let id = spiffe_id("/agents/bob");
    let request = SvidRequest {
        spiffe_id: &id,
        public_key: &public_key,
        lifetime: LIFETIME,
        now,
        dns_names: &[],
        ip_addresses: &[],
    };

    let issued = issue_svid(&authority.signing, &request).unwrap();

    let certificate = parse(&issued.der);
    assert_eq!(uris(&certificate), vec!["spiffe://example.org/agents/bob"]);
    assert_eq!(
        general_names(&certificate).len(),
        1,
        "no DNS names from the CSR"
    );
    assert_eq!(certificate.subject().to_string(), "O=Sigil");
    assert_eq!(certificate.subject().iter_common_name().count(), 0);
    assert!(!certificate.is_ca());
    let key_usage = certificate.key_usage().unwrap().unwrap().value;
    assert!(!key_usage.key_cert_sign());
    assert!(!key_usage.crl_sign());
    assert!(key_usage.digital_signature());
}

#[test]
fn openssl_verifies_the_chain() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);
    let (issued, _) = issue(&authority, TestKey::P384, &spiffe_id("/a"), now);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("root.pem"), authority.root.cert_pem()).unwrap();
    std::fs::write(dir.path().join("signing.pem"), authority.signing.cert_pem()).unwrap();
    std::fs::write(dir.path().join("leaf.pem"), &issued.pem).unwrap();

    let output = openssl(
        dir.path(),
        &[
            "verify",
            "-CAfile",
            "root.pem",
            "-untrusted",
            "signing.pem",
            "leaf.pem",
        ],
    );

    assert_eq!(output.trim(), "leaf.pem: OK");
}

#[test]
fn openssl_text_shows_the_profile() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);
    let (issued, _) = issue(&authority, TestKey::P256, &spiffe_id("/agents/alice"), now);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("leaf.pem"), &issued.pem).unwrap();

    let text = openssl(dir.path(), &["x509", "-in", "leaf.pem", "-noout", "-text"]);

    assert_eq!(text.matches("URI:").count(), 1, "{text}");
    assert!(
        text.contains("URI:spiffe://example.org/agents/alice"),
        "{text}"
    );
    assert!(
        text.contains("X509v3 Key Usage: critical\n                Digital Signature\n"),
        "{text}"
    );
    assert!(
        text.contains("X509v3 Basic Constraints: critical\n                CA:FALSE"),
        "{text}"
    );
    assert!(
        text.contains("TLS Web Server Authentication, TLS Web Client Authentication"),
        "{text}"
    );
    assert!(text.contains("Subject: O = Sigil\n"), "{text}");
}

#[test]
fn spiffe_crate_parses_the_svid() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);
    let id = spiffe_id("/agents/alice");
    let (issued, key) = issue(&authority, TestKey::P256, &id, now);
    let chain = [issued.der.as_ref(), authority.signing.cert_der().as_ref()].concat();

    let svid = spiffe::X509Svid::parse_from_der(&chain, &key.serialize_der()).unwrap();

    assert_eq!(svid.spiffe_id().to_string(), id.as_str());
}

#[test]
fn verify_svid_accepts_every_key_type() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);
    let id = spiffe_id("/agents/alice");

    for test_key in TestKey::ALL {
        let (issued, _) = issue(&authority, test_key, &id, now);
        let chain = [issued.der.clone(), authority.signing.cert_der().clone()];

        let leaf = verify_svid(
            &chain,
            &[authority.root.cert_der().clone()],
            &trust_domain(),
            now,
        )
        .unwrap();

        assert_eq!(leaf.spiffe_id, id, "{test_key:?}");
        assert_eq!(leaf.serial_hex, issued.serial_hex, "{test_key:?}");
        assert_eq!(leaf.not_after, issued.not_after, "{test_key:?}");
        assert_eq!(leaf.fingerprint, issued.fingerprint, "{test_key:?}");
        assert_eq!(
            leaf.public_key_fingerprint, issued.public_key_fingerprint,
            "{test_key:?}"
        );
    }
}

#[test]
fn issue_with_new_key_returns_matching_key() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);
    let id = spiffe_id("/admins/carol");

    let (issued, key_pem) =
        issue_with_new_key(&authority.signing, &id, LIFETIME, now, &[], &[]).unwrap();

    assert!(key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
    let key = rcgen::KeyPair::from_pem(&key_pem).unwrap();
    let certificate = parse(&issued.der);
    assert_eq!(certificate.public_key().raw, key.subject_public_key_info());
    let pkcs8 = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let chain = [issued.der.as_ref(), authority.signing.cert_der().as_ref()].concat();
    let svid = spiffe::X509Svid::parse_from_der(&chain, pkcs8.secret_pkcs8_der()).unwrap();
    assert_eq!(svid.spiffe_id().to_string(), id.as_str());
}

#[test]
fn server_certificate_carries_dns_and_ip_sans() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);
    let id = spiffe_id("/sigil/server");
    let dns_names = ["sigil.example.org".to_owned(), "localhost".to_owned()];
    let ip_addresses: [IpAddr; 2] = ["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()];

    let (issued, _) = issue_with_new_key(
        &authority.signing,
        &id,
        LIFETIME,
        now,
        &dns_names,
        &ip_addresses,
    )
    .unwrap();

    let certificate = parse(&issued.der);
    assert_eq!(uris(&certificate), vec![id.as_str()]);
    assert_eq!(general_names(&certificate).len(), 5);
    let end_entity = webpki::EndEntityCert::try_from(&issued.der).unwrap();
    for name in ["sigil.example.org", "localhost", "127.0.0.1", "::1"] {
        let server_name = ServerName::try_from(name).unwrap();
        end_entity
            .verify_is_valid_for_subject_name(&server_name)
            .unwrap();
    }
    let other = ServerName::try_from("other.example.org").unwrap();
    assert!(end_entity.verify_is_valid_for_subject_name(&other).is_err());
}

#[test]
fn invalid_dns_name_is_rejected() {
    let now = now();
    let authority = Authority::new(&trust_domain(), now);
    let id = spiffe_id("/sigil/server");

    for name in ["", "bad name", "exa mple.org", "ünicode.example"] {
        let dns_names = [name.to_owned()];

        let error = issue_with_new_key(&authority.signing, &id, LIFETIME, now, &dns_names, &[])
            .unwrap_err();

        assert!(
            matches!(&error, CaError::InvalidDnsName { name: named, .. } if named == name),
            "{name:?}: {error:?}"
        );
    }
}
