//! `svid_from_leaf`, `verify_chain` and `verify_svid`: each shape rule and chain failure, on
//! leaves crafted with rcgen and signed by a Sigil signing CA.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use common::{Authority, TRUST_DOMAIN, spiffe_id, trust_domain};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::CertificateDer;
use sigil_ca::{
    CaCertificate, CaError, issue_with_new_key, svid_from_leaf, verify_chain, verify_svid,
};
use sigil_core::TrustDomain;
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::ParsedExtension;
use x509_parser::oid_registry::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER;

/// Builds an rcgen issuer for a Sigil signing CA, so that tests can sign leaves Sigil never
/// would.
fn rcgen_issuer(signing: &CaCertificate) -> Issuer<'static, KeyPair> {
    let (_, certificate) = x509_parser::parse_x509_certificate(signing.cert_der()).unwrap();
    let common_name = certificate
        .subject()
        .iter_common_name()
        .next()
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned();
    let extension = certificate
        .get_extension_unique(&OID_X509_EXT_SUBJECT_KEY_IDENTIFIER)
        .unwrap()
        .unwrap();
    let ParsedExtension::SubjectKeyIdentifier(key_id) = extension.parsed_extension() else {
        panic!("unexpected subject key identifier content");
    };

    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Sigil");
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_identifier_method = KeyIdMethod::PreSpecified(key_id.0.to_vec());
    Issuer::new(params, KeyPair::from_pem(&signing.key_pem()).unwrap())
}

/// Parameters of a leaf with Sigil's SVID profile for `uris`.
fn leaf_params(uris: &[&str], now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Sigil");
    params.subject_alt_names = uris
        .iter()
        .map(|uri| SanType::URI((*uri).try_into().unwrap()))
        .collect();
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - Duration::minutes(1);
    params.not_after = now + Duration::hours(1);
    params
}

struct Setup {
    now: OffsetDateTime,
    authority: Authority,
    issuer: Issuer<'static, KeyPair>,
}

impl Setup {
    fn new() -> Self {
        let now = OffsetDateTime::now_utc();
        let authority = Authority::new(&trust_domain(), now);
        let issuer = rcgen_issuer(&authority.signing);
        Self {
            now,
            authority,
            issuer,
        }
    }

    fn sign(&self, params: &CertificateParams) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &self.issuer).unwrap().into()
    }

    fn chain(&self, leaf: &CertificateDer<'static>) -> Vec<CertificateDer<'static>> {
        vec![leaf.clone(), self.authority.signing.cert_der().clone()]
    }

    fn roots(&self) -> Vec<CertificateDer<'static>> {
        vec![self.authority.root.cert_der().clone()]
    }

    fn verify(&self, leaf: &CertificateDer<'static>) -> Result<sigil_ca::LeafSvid, CaError> {
        verify_svid(&self.chain(leaf), &self.roots(), &trust_domain(), self.now)
    }
}

#[test]
fn crafted_profile_leaf_passes() {
    let setup = Setup::new();
    let leaf = setup.sign(&leaf_params(
        &["spiffe://example.org/agents/alice"],
        setup.now,
    ));

    let svid = setup.verify(&leaf).unwrap();

    assert_eq!(svid.spiffe_id, spiffe_id("/agents/alice"));
}

#[test]
fn leaf_without_basic_constraints_passes() {
    let setup = Setup::new();
    let mut params = leaf_params(&["spiffe://example.org/a"], setup.now);
    params.is_ca = IsCa::NoCa;
    let leaf = setup.sign(&params);

    let svid = setup.verify(&leaf).unwrap();

    assert_eq!(svid.spiffe_id, spiffe_id("/a"));
}

fn assert_uri_san_count(setup: &Setup, uris: &[&str]) {
    let mut params = leaf_params(uris, setup.now);
    if uris.is_empty() {
        params.subject_alt_names = vec![SanType::DnsName("a.example.org".try_into().unwrap())];
    }
    let leaf = setup.sign(&params);

    let shape_error = svid_from_leaf(&leaf, &trust_domain()).unwrap_err();
    let verify_error = setup.verify(&leaf).unwrap_err();

    let expected: Vec<String> = uris.iter().map(|uri| (*uri).to_owned()).collect();
    assert!(
        matches!(&shape_error, CaError::UriSanCount { uris } if *uris == expected),
        "{shape_error:?}"
    );
    assert!(
        matches!(verify_error, CaError::UriSanCount { .. }),
        "{verify_error:?}"
    );
    assert!(
        shape_error
            .to_string()
            .contains(&format!("found {}", uris.len())),
        "{shape_error}"
    );
}

#[test]
fn rejects_two_spiffe_ids() {
    let setup = Setup::new();

    assert_uri_san_count(
        &setup,
        &["spiffe://example.org/a", "spiffe://example.org/b"],
    );
}

#[test]
fn rejects_spiffe_id_plus_https_uri() {
    let setup = Setup::new();

    assert_uri_san_count(&setup, &["spiffe://example.org/a", "https://example.org/a"]);
}

#[test]
fn rejects_leaf_without_uri_san() {
    let setup = Setup::new();

    assert_uri_san_count(&setup, &[]);
}

#[test]
fn rejects_ca_leaf() {
    let setup = Setup::new();
    let mut params = leaf_params(&["spiffe://example.org/a"], setup.now);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let leaf = setup.sign(&params);

    let shape_error = svid_from_leaf(&leaf, &trust_domain()).unwrap_err();
    let verify_error = setup.verify(&leaf).unwrap_err();

    assert!(matches!(shape_error, CaError::LeafIsCa), "{shape_error:?}");
    assert!(
        matches!(
            verify_error,
            CaError::ChainInvalid {
                source: webpki::Error::CaUsedAsEndEntity,
                ..
            }
        ),
        "{verify_error:?}"
    );
}

fn assert_key_usage_rejected(usages: Vec<KeyUsagePurpose>, check: fn(&CaError) -> bool) {
    let setup = Setup::new();
    let mut params = leaf_params(&["spiffe://example.org/a"], setup.now);
    params.key_usages = usages;
    let leaf = setup.sign(&params);

    let shape_error = svid_from_leaf(&leaf, &trust_domain()).unwrap_err();
    let verify_error = setup.verify(&leaf).unwrap_err();

    assert!(check(&shape_error), "{shape_error:?}");
    assert!(check(&verify_error), "{verify_error:?}");
}

#[test]
fn rejects_key_cert_sign() {
    assert_key_usage_rejected(
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
        ],
        |error| {
            matches!(
                error,
                CaError::ForbiddenKeyUsage {
                    usage: "keyCertSign"
                }
            )
        },
    );
}

#[test]
fn rejects_crl_sign() {
    assert_key_usage_rejected(
        vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::CrlSign],
        |error| matches!(error, CaError::ForbiddenKeyUsage { usage: "cRLSign" }),
    );
}

#[test]
fn rejects_missing_digital_signature() {
    assert_key_usage_rejected(vec![KeyUsagePurpose::KeyEncipherment], |error| {
        matches!(error, CaError::MissingDigitalSignature)
    });
}

#[test]
fn rejects_missing_key_usage() {
    assert_key_usage_rejected(Vec::new(), |error| {
        matches!(error, CaError::MissingKeyUsage)
    });
}

fn assert_invalid_spiffe_id(uri: &str) {
    let setup = Setup::new();
    let leaf = setup.sign(&leaf_params(&[uri], setup.now));

    let error = setup.verify(&leaf).unwrap_err();

    assert!(
        matches!(&error, CaError::InvalidSpiffeId { uri: named, .. } if named == uri),
        "{uri}: {error:?}"
    );
    assert!(
        error.to_string().contains("is not a valid SPIFFE ID"),
        "{error}"
    );
}

#[test]
fn rejects_spiffe_id_without_path() {
    assert_invalid_spiffe_id("spiffe://example.org");
}

#[test]
fn rejects_https_uri_alone() {
    assert_invalid_spiffe_id("https://example.org/a");
}

#[test]
fn rejects_non_canonical_spiffe_id() {
    assert_invalid_spiffe_id("spiffe://example.org/a/../b");
}

#[test]
fn rejects_other_trust_domain() {
    let setup = Setup::new();
    let leaf = setup.sign(&leaf_params(&["spiffe://other.org/a"], setup.now));

    let error = setup.verify(&leaf).unwrap_err();

    assert!(
        matches!(&error, CaError::ForeignTrustDomain { spiffe_id, trust_domain }
            if spiffe_id == "spiffe://other.org/a" && trust_domain == TRUST_DOMAIN),
        "{error:?}"
    );
}

#[test]
fn rejects_certificate_of_another_ca() {
    let setup = Setup::new();
    let other = Authority::new(&trust_domain(), setup.now);
    let (issued, _) = issue_with_new_key(
        &other.signing,
        &spiffe_id("/a"),
        Duration::hours(1),
        setup.now,
        &[],
        &[],
    )
    .unwrap();

    let with_own_intermediate = verify_svid(
        &[issued.der.clone(), other.signing.cert_der().clone()],
        &setup.roots(),
        &trust_domain(),
        setup.now,
    )
    .unwrap_err();
    let with_our_intermediate = setup.verify(&issued.der).unwrap_err();

    // The other root has the same name as ours, so webpki tries our root and its signature
    // check fails.
    assert!(
        matches!(
            with_own_intermediate,
            CaError::ChainInvalid {
                source: webpki::Error::InvalidSignatureForPublicKey,
                ..
            }
        ),
        "{with_own_intermediate:?}"
    );
    // The other signing CA's name differs from ours by its serial suffix.
    assert!(
        matches!(
            with_our_intermediate,
            CaError::ChainInvalid {
                source: webpki::Error::UnknownIssuer,
                ..
            }
        ),
        "{with_our_intermediate:?}"
    );
}

#[test]
fn rejects_certificate_of_another_trust_domain_ca() {
    let setup = Setup::new();
    let other_domain = TrustDomain::new("other.org").unwrap();
    let other = Authority::new(&other_domain, setup.now);
    let id = sigil_core::SpiffeId::parse("spiffe://other.org/a").unwrap();
    let (issued, _) =
        issue_with_new_key(&other.signing, &id, Duration::hours(1), setup.now, &[], &[]).unwrap();

    let error = verify_svid(
        &[issued.der.clone(), other.signing.cert_der().clone()],
        &setup.roots(),
        &trust_domain(),
        setup.now,
    )
    .unwrap_err();

    assert!(
        matches!(
            error,
            CaError::ChainInvalid {
                source: webpki::Error::UnknownIssuer,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("another CA"), "{error}");
}

#[test]
fn rejects_expired_certificate() {
    let setup = Setup::new();
    let issued_at = setup.now - Duration::hours(2);
    let (issued, _) = issue_with_new_key(
        &setup.authority.signing,
        &spiffe_id("/a"),
        Duration::hours(1),
        issued_at,
        &[],
        &[],
    )
    .unwrap();

    let error = setup.verify(&issued.der).unwrap_err();

    assert!(
        matches!(
            error,
            CaError::ChainInvalid {
                source: webpki::Error::CertExpired { .. },
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("expired at"), "{error}");
}

#[test]
fn rejects_certificate_not_yet_valid() {
    let setup = Setup::new();
    let (issued, _) = issue_with_new_key(
        &setup.authority.signing,
        &spiffe_id("/a"),
        Duration::hours(1),
        setup.now + Duration::hours(1),
        &[],
        &[],
    )
    .unwrap();

    let error = setup.verify(&issued.der).unwrap_err();

    assert!(
        matches!(
            error,
            CaError::ChainInvalid {
                source: webpki::Error::CertNotValidYet { .. },
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn rejects_missing_intermediate() {
    let setup = Setup::new();
    let leaf = setup.sign(&leaf_params(&["spiffe://example.org/a"], setup.now));

    let error = verify_chain(&[leaf], &setup.roots(), setup.now).unwrap_err();

    assert!(
        matches!(
            error,
            CaError::ChainInvalid {
                source: webpki::Error::UnknownIssuer,
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn rejects_leaf_without_client_auth() {
    let setup = Setup::new();
    let mut params = leaf_params(&["spiffe://example.org/a"], setup.now);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = setup.sign(&params);

    let error = setup.verify(&leaf).unwrap_err();

    assert!(matches!(error, CaError::ChainInvalid { .. }), "{error:?}");
    assert!(error.to_string().contains("clientAuth"), "{error}");
}

#[test]
fn rejects_empty_chain() {
    let setup = Setup::new();

    let error = verify_chain(&[], &setup.roots(), setup.now).unwrap_err();

    assert!(matches!(error, CaError::EmptyChain), "{error:?}");
}

#[test]
fn rejects_invalid_trust_anchor() {
    let setup = Setup::new();
    let leaf = setup.sign(&leaf_params(&["spiffe://example.org/a"], setup.now));
    let bad_root = CertificateDer::from(vec![0x30, 0x00]);

    let error = verify_chain(&setup.chain(&leaf), &[bad_root], setup.now).unwrap_err();

    assert!(
        matches!(error, CaError::InvalidTrustAnchor { .. }),
        "{error:?}"
    );
}

#[test]
fn rejects_garbage_leaf() {
    let setup = Setup::new();
    let garbage = CertificateDer::from(b"not a certificate".to_vec());

    let shape_error = svid_from_leaf(&garbage, &trust_domain()).unwrap_err();
    let chain_error = verify_chain(&[garbage], &setup.roots(), setup.now).unwrap_err();

    assert!(
        matches!(shape_error, CaError::MalformedCertificate { .. }),
        "{shape_error:?}"
    );
    assert!(
        matches!(chain_error, CaError::ChainInvalid { .. }),
        "{chain_error:?}"
    );
}

#[test]
fn rejects_trailing_bytes_after_leaf() {
    let setup = Setup::new();
    let mut leaf = setup
        .sign(&leaf_params(&["spiffe://example.org/a"], setup.now))
        .to_vec();
    leaf.push(0);

    let error = svid_from_leaf(&leaf, &trust_domain()).unwrap_err();

    assert!(
        matches!(&error, CaError::MalformedCertificate { reason } if reason.contains("follow")),
        "{error:?}"
    );
}

#[test]
fn rejects_duplicate_key_usage() {
    let setup = Setup::new();
    let mut params = leaf_params(&["spiffe://example.org/a"], setup.now);
    // A second key usage extension with only digitalSignature set.
    let key_usage_oid = [2, 5, 29, 15];
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &key_usage_oid,
            vec![0x03, 0x02, 0x07, 0x80],
        ));
    let leaf = setup.sign(&params);

    let error = svid_from_leaf(&leaf, &trust_domain()).unwrap_err();

    assert!(
        matches!(&error, CaError::MalformedCertificate { reason } if reason.contains("more than once")),
        "{error:?}"
    );
}

#[test]
fn rejects_unparsable_basic_constraints() {
    let setup = Setup::new();
    let mut params = leaf_params(&["spiffe://example.org/a"], setup.now);
    params.is_ca = IsCa::NoCa;
    // x509-parser's own basic_constraints() reports this extension as absent.
    let basic_constraints_oid = [2, 5, 29, 19];
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            &basic_constraints_oid,
            vec![0x01, 0x01, 0xff],
        ));
    let leaf = setup.sign(&params);

    let error = svid_from_leaf(&leaf, &trust_domain()).unwrap_err();

    assert!(
        matches!(&error, CaError::MalformedCertificate { reason } if reason.contains("basicConstraints")),
        "{error:?}"
    );
}

#[test]
fn svid_from_leaf_reads_the_facts() {
    let setup = Setup::new();
    let (issued, _) = issue_with_new_key(
        &setup.authority.signing,
        &spiffe_id("/agents/alice"),
        Duration::hours(1),
        setup.now,
        &[],
        &[],
    )
    .unwrap();

    let svid = svid_from_leaf(&issued.der, &trust_domain()).unwrap();

    assert_eq!(svid.spiffe_id, spiffe_id("/agents/alice"));
    assert_eq!(svid.serial_hex, issued.serial_hex);
    assert_eq!(svid.not_after, issued.not_after);
    assert_eq!(svid.fingerprint, issued.fingerprint);
    assert_eq!(svid.public_key_fingerprint, issued.public_key_fingerprint);
}

#[test]
fn svid_from_leaf_checks_the_given_trust_domain() {
    let setup = Setup::new();
    let leaf = setup.sign(&leaf_params(&["spiffe://example.org/a"], setup.now));
    let other = TrustDomain::new("other.org").unwrap();

    let error = svid_from_leaf(&leaf, &other).unwrap_err();

    assert!(
        matches!(error, CaError::ForeignTrustDomain { .. }),
        "{error:?}"
    );
}
