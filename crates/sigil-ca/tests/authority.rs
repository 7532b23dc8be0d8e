//! `CaCertificate`: the profile of the root and signing CAs, loading from PEM, and rotation
//! timing.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::path::Path;

use common::{Authority, TestKey, csr_der, openssl, spiffe_id, trust_domain};
use rcgen::{BasicConstraints, CertificateParams, DnType, DnValue, IsCa, KeyPair, KeyUsagePurpose};
use sigil_ca::authority::CA_BACKDATE;
use sigil_ca::{CaCertificate, CaError, SvidRequest, check_csr, issue_svid, verify_svid};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::{
    OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER, OID_X509_EXT_NAME_CONSTRAINTS,
    OID_X509_EXT_SUBJECT_KEY_IDENTIFIER,
};
use x509_parser::parse_x509_certificate;

fn write(dir: &Path, name: &str, contents: &str) {
    std::fs::write(dir.join(name), contents).unwrap();
}

fn key_identifier(der: &[u8], oid: &x509_parser::oid_registry::Oid<'_>) -> Vec<u8> {
    let (_, certificate) = parse_x509_certificate(der).unwrap();
    let extension = certificate.get_extension_unique(oid).unwrap().unwrap();
    match extension.parsed_extension() {
        ParsedExtension::SubjectKeyIdentifier(identifier) => identifier.0.to_vec(),
        ParsedExtension::AuthorityKeyIdentifier(identifier) => {
            identifier.key_identifier.as_ref().unwrap().0.to_vec()
        }
        other => panic!("unexpected extension {other:?}"),
    }
}

/// Issues an SVID from `signing` and checks that OpenSSL verifies it up to `root_pem`.
fn assert_issues_verifiable_svid(signing: &CaCertificate, root_pem: &str, now: OffsetDateTime) {
    let key = TestKey::P256.generate();
    let public_key = check_csr(&csr_der(&key)).unwrap();
    let id = spiffe_id("/a");
    let request = SvidRequest {
        spiffe_id: &id,
        public_key: &public_key,
        lifetime: Duration::hours(1),
        now,
        dns_names: &[],
        ip_addresses: &[],
    };
    let issued = issue_svid(signing, &request).unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "root.pem", root_pem);
    write(dir.path(), "signing.pem", signing.cert_pem());
    write(dir.path(), "leaf.pem", &issued.pem);

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
fn root_profile() {
    let now = datetime!(2030-03-01 10:00:00 UTC);

    let root = CaCertificate::create_root(&trust_domain(), now, Duration::days(365)).unwrap();

    let (_, certificate) = parse_x509_certificate(root.cert_der()).unwrap();
    assert_eq!(
        certificate.subject().to_string(),
        "O=Sigil, CN=Sigil root CA example.org"
    );
    assert_eq!(
        certificate.issuer().as_raw(),
        certificate.subject().as_raw()
    );
    let constraints = certificate.basic_constraints().unwrap().unwrap();
    assert!(constraints.critical);
    assert!(constraints.value.ca);
    assert_eq!(constraints.value.path_len_constraint, None);
    let key_usage = certificate.key_usage().unwrap().unwrap();
    assert!(key_usage.critical);
    assert!(key_usage.value.key_cert_sign());
    assert!(key_usage.value.crl_sign());
    assert!(!key_usage.value.digital_signature());
    assert!(
        certificate
            .get_extension_unique(&OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
            .unwrap()
            .is_some()
    );
    assert!(
        certificate
            .get_extension_unique(&OID_X509_EXT_NAME_CONSTRAINTS)
            .unwrap()
            .is_none()
    );
    assert_eq!(certificate.raw_serial().len(), 16);
    assert_eq!(root.serial_hex(), hex::encode(certificate.raw_serial()));
    assert_eq!(root.not_before(), now - CA_BACKDATE);
    assert_eq!(root.not_after(), now + Duration::days(365));
    assert_eq!(CA_BACKDATE, Duration::minutes(5));
}

#[test]
fn root_profile_in_openssl_text() {
    let root = CaCertificate::create_root(
        &trust_domain(),
        OffsetDateTime::now_utc(),
        Duration::days(1),
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "root.pem", root.cert_pem());

    let text = openssl(dir.path(), &["x509", "-in", "root.pem", "-noout", "-text"]);

    assert!(
        text.contains("X509v3 Basic Constraints: critical\n                CA:TRUE\n"),
        "{text}"
    );
    assert!(
        text.contains("X509v3 Key Usage: critical\n                Certificate Sign, CRL Sign\n"),
        "{text}"
    );
    assert!(text.contains("ASN1 OID: prime256v1"), "{text}");
    assert!(
        text.contains("Signature Algorithm: ecdsa-with-SHA256"),
        "{text}"
    );
}

#[test]
fn intermediate_profile() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);

    let signing = &authority.signing;

    let (_, certificate) = parse_x509_certificate(signing.cert_der()).unwrap();
    let prefix = &signing.serial_hex()[..8];
    assert_eq!(
        certificate.subject().to_string(),
        format!("O=Sigil, CN=Sigil signing CA example.org {prefix}")
    );
    let constraints = certificate.basic_constraints().unwrap().unwrap();
    assert!(constraints.critical);
    assert!(constraints.value.ca);
    assert_eq!(constraints.value.path_len_constraint, Some(0));
    let key_usage = certificate.key_usage().unwrap().unwrap();
    assert!(key_usage.critical);
    assert!(key_usage.value.digital_signature());
    assert!(key_usage.value.key_cert_sign());
    assert!(key_usage.value.crl_sign());
    assert_eq!(
        key_identifier(signing.cert_der(), &OID_X509_EXT_AUTHORITY_KEY_IDENTIFIER),
        key_identifier(
            authority.root.cert_der(),
            &OID_X509_EXT_SUBJECT_KEY_IDENTIFIER
        )
    );
}

#[test]
fn intermediate_verifies_with_openssl() {
    let authority = Authority::new(&trust_domain(), OffsetDateTime::now_utc());
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "root.pem", authority.root.cert_pem());
    write(dir.path(), "signing.pem", authority.signing.cert_pem());

    let output = openssl(
        dir.path(),
        &["verify", "-CAfile", "root.pem", "signing.pem"],
    );

    assert_eq!(output.trim(), "signing.pem: OK");
}

#[test]
fn intermediates_get_distinct_names() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);

    let second = CaCertificate::create_intermediate(
        &authority.root,
        &trust_domain(),
        now,
        Duration::days(30),
    )
    .unwrap();

    let (_, first) = parse_x509_certificate(authority.signing.cert_der()).unwrap();
    let (_, second) = parse_x509_certificate(second.cert_der()).unwrap();
    assert_ne!(first.subject().as_raw(), second.subject().as_raw());
}

#[test]
fn intermediate_does_not_outlive_root() {
    let now = OffsetDateTime::now_utc();
    let root = CaCertificate::create_root(&trust_domain(), now, Duration::days(10)).unwrap();

    let signing =
        CaCertificate::create_intermediate(&root, &trust_domain(), now, Duration::days(30))
            .unwrap();

    assert_eq!(signing.not_after(), root.not_after());
}

#[test]
fn intermediate_of_expired_root_fails() {
    let created = OffsetDateTime::now_utc() - Duration::days(20);
    let root = CaCertificate::create_root(&trust_domain(), created, Duration::days(10)).unwrap();

    let error = CaCertificate::create_intermediate(
        &root,
        &trust_domain(),
        OffsetDateTime::now_utc(),
        Duration::days(1),
    )
    .unwrap_err();

    assert!(matches!(error, CaError::IssuerExpired { .. }), "{error:?}");
}

#[test]
fn from_pem_round_trips() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);
    let signing = &authority.signing;

    let reloaded = CaCertificate::from_pem(signing.cert_pem(), &signing.key_pem()).unwrap();

    assert_eq!(reloaded.cert_der(), signing.cert_der());
    assert_eq!(reloaded.cert_pem(), signing.cert_pem());
    assert_eq!(*reloaded.key_pem(), *signing.key_pem());
    assert_eq!(reloaded.fingerprint(), signing.fingerprint());
    assert_eq!(reloaded.serial_hex(), signing.serial_hex());
    assert_eq!(reloaded.not_before(), signing.not_before());
    assert_eq!(reloaded.not_after(), signing.not_after());
    assert_issues_verifiable_svid(&reloaded, authority.root.cert_pem(), now);
}

#[test]
fn reloaded_root_signs_new_intermediates() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);
    let root =
        CaCertificate::from_pem(authority.root.cert_pem(), &authority.root.key_pem()).unwrap();

    let signing =
        CaCertificate::create_intermediate(&root, &trust_domain(), now, Duration::days(1)).unwrap();

    assert_issues_verifiable_svid(&signing, authority.root.cert_pem(), now);
}

#[test]
fn from_pem_rejects_key_of_another_ca() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);

    let error = CaCertificate::from_pem(authority.signing.cert_pem(), &authority.root.key_pem())
        .unwrap_err();

    assert!(
        matches!(&error, CaError::CaKeyMismatch { fingerprint } if fingerprint == authority.signing.fingerprint()),
        "{error:?}"
    );
}

#[test]
fn from_pem_rejects_a_leaf() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);
    let (issued, key_pem) = sigil_ca::issue_with_new_key(
        &authority.signing,
        &spiffe_id("/a"),
        Duration::hours(1),
        now,
        &[],
        &[],
    )
    .unwrap();

    let error = CaCertificate::from_pem(&issued.pem, &key_pem).unwrap_err();

    assert!(
        matches!(&error, CaError::InvalidCaCertificate { reason } if reason.contains("not mark it as a CA")),
        "{error:?}"
    );
}

#[test]
fn from_pem_rejects_garbage() {
    let authority = Authority::new(&trust_domain(), OffsetDateTime::now_utc());

    let bad_certificate = CaCertificate::from_pem("garbage", &authority.root.key_pem());
    let bad_key = CaCertificate::from_pem(authority.root.cert_pem(), "garbage");

    assert!(matches!(
        bad_certificate,
        Err(CaError::InvalidCaCertificate { .. })
    ));
    assert!(matches!(bad_key, Err(CaError::InvalidCaKey { .. })));
}

#[test]
fn from_pem_rejects_non_p256_key() {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let certificate = params.self_signed(&key).unwrap();

    let error = CaCertificate::from_pem(&certificate.pem(), &key.serialize_pem()).unwrap_err();

    assert!(
        matches!(&error, CaError::InvalidCaKey { reason } if reason.contains("P-256")),
        "{error:?}"
    );
}

#[test]
fn from_pem_loads_rcgen_printable_string_ca() {
    let now = OffsetDateTime::now_utc();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        DnType::CountryName,
        DnValue::PrintableString("DE".try_into().unwrap()),
    );
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Example");
    params.distinguished_name.push(
        DnType::CommonName,
        DnValue::PrintableString("Example Root".try_into().unwrap()),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(1);
    let certificate = params.self_signed(&key).unwrap();

    let root = CaCertificate::from_pem(&certificate.pem(), &key.serialize_pem()).unwrap();

    let signing =
        CaCertificate::create_intermediate(&root, &trust_domain(), now, Duration::hours(2))
            .unwrap();
    assert_issues_verifiable_svid(&signing, &certificate.pem(), now);
}

/// Creates a self-signed P-256 CA with OpenSSL and returns its certificate and key PEM.
fn openssl_ca(dir: &Path, subject: &str, extra: &[&str]) -> (String, String) {
    let mut args = vec![
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        subject,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ];
    args.extend_from_slice(extra);
    openssl(dir, &args);

    let certificate = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    let key = std::fs::read_to_string(dir.join("ca.key")).unwrap();
    (certificate, key)
}

#[test]
fn from_pem_loads_a_ca_made_by_openssl() {
    let now = OffsetDateTime::now_utc();
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key) = openssl_ca(dir.path(), "/C=DE/O=Example/CN=Example Root", &[]);

    let root = CaCertificate::from_pem(&certificate, &key).unwrap();

    let signing =
        CaCertificate::create_intermediate(&root, &trust_domain(), now, Duration::hours(2))
            .unwrap();
    assert_issues_verifiable_svid(&signing, &certificate, now);
}

#[test]
fn from_pem_rejects_multi_valued_rdn() {
    let dir = tempfile::tempdir().unwrap();
    let (certificate, key) = openssl_ca(
        dir.path(),
        "/O=Example+CN=Example Root",
        &["-multivalue-rdn"],
    );

    let error = CaCertificate::from_pem(&certificate, &key).unwrap_err();

    assert!(
        matches!(&error, CaError::InvalidCaCertificate { reason } if reason.contains("multi-valued RDN")),
        "{error:?}"
    );
}

#[test]
fn debug_shows_no_key_material() {
    let root = CaCertificate::create_root(
        &trust_domain(),
        OffsetDateTime::now_utc(),
        Duration::days(1),
    )
    .unwrap();
    let key_pem = root.key_pem();

    let debug = format!("{root:?}");

    assert!(debug.contains("Sigil root CA example.org"), "{debug}");
    assert!(debug.contains(root.fingerprint()), "{debug}");
    for line in key_pem.lines().filter(|line| !line.starts_with("-----")) {
        assert!(!debug.contains(line), "{debug}");
    }
    assert!(!debug.to_lowercase().contains("private"), "{debug}");
}

#[test]
fn half_life() {
    let now = datetime!(2030-01-01 00:00:00 UTC);
    let root = CaCertificate::create_root(&trust_domain(), now, Duration::days(10)).unwrap();
    let half = root.not_before() + (root.not_after() - root.not_before()) / 2;

    assert!(!root.is_past_half_life(now));
    assert!(!root.is_past_half_life(half - Duration::seconds(1)));
    assert!(root.is_past_half_life(half));
    assert!(root.is_past_half_life(root.not_after() + Duration::days(1)));
}

#[test]
fn ca_certificate_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}

    assert_send_sync::<CaCertificate>();
}

#[test]
fn verify_svid_accepts_svids_of_reloaded_ca() {
    let now = OffsetDateTime::now_utc();
    let authority = Authority::new(&trust_domain(), now);
    let signing =
        CaCertificate::from_pem(authority.signing.cert_pem(), &authority.signing.key_pem())
            .unwrap();
    let (issued, _) = sigil_ca::issue_with_new_key(
        &signing,
        &spiffe_id("/a"),
        Duration::hours(1),
        now,
        &[],
        &[],
    )
    .unwrap();

    let leaf = verify_svid(
        &[issued.der.clone(), signing.cert_der().clone()],
        &[authority.root.cert_der().clone()],
        &trust_domain(),
        now,
    )
    .unwrap();

    assert_eq!(leaf.spiffe_id, spiffe_id("/a"));
}
