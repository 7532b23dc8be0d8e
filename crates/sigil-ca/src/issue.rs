//! Issuing X.509-SVIDs (SPIFFE X.509 SVID specification) signed by a Sigil signing CA.
//!
//! Every field of an issued certificate comes from the authority's inputs: the SPIFFE ID, the
//! lifetime, the optional DNS and IP SANs of server certificates, and the public key. Nothing
//! is copied from a CSR except that key.

use std::net::IpAddr;

use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose,
    PublicKeyData, SanType, SerialNumber,
};
use rustls_pki_types::{CertificateDer, DnsName};
use sigil_core::SpiffeId;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use crate::authority::CaCertificate;
use crate::csr::CsrPublicKey;
use crate::signing_key::P256SigningKey;
use crate::validity::Validity;
use crate::{CaError, fingerprint, pem, serial};

/// How far an SVID's notBefore lies before its issuance time, so that relying parties whose
/// clocks run slightly behind accept it at once.
pub const SVID_BACKDATE: Duration = Duration::seconds(30);

/// Organization, the only attribute of an SVID's subject. A non-empty subject lets the SAN
/// extension stay non-critical (RFC 5280 section 4.2.1.6).
const SUBJECT_ORGANIZATION: &str = "Sigil";

/// A request to issue an SVID for a public key taken from a checked CSR.
#[derive(Debug, Clone, Copy)]
pub struct SvidRequest<'a> {
    /// The identity, written as the certificate's only URI SAN.
    pub spiffe_id: &'a SpiffeId,
    /// The subject public key, from [`crate::csr::check_csr`].
    pub public_key: &'a CsrPublicKey,
    /// Requested lifetime; the certificate still ends no later than the signing CA.
    pub lifetime: Duration,
    /// Issuance time.
    pub now: OffsetDateTime,
    /// DNS SANs, for server and gateway certificates; usually empty.
    pub dns_names: &'a [String],
    /// IP address SANs, for server and gateway certificates; usually empty.
    pub ip_addresses: &'a [IpAddr],
}

/// An issued certificate and the facts Sigil records about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedCertificate {
    /// The certificate in DER.
    pub der: CertificateDer<'static>,
    /// The certificate as a PEM `CERTIFICATE` block.
    pub pem: String,
    /// Serial number as 32 lowercase hexadecimal digits: Sigil's serials are 16 bytes whose
    /// top bit is clear and next bit set, so there is neither a leading zero nor a sign byte.
    pub serial_hex: String,
    /// Start of validity: issuance time minus [`SVID_BACKDATE`], in UTC whole seconds.
    pub not_before: OffsetDateTime,
    /// End of validity, in UTC whole seconds.
    pub not_after: OffsetDateTime,
    /// Lowercase hexadecimal SHA-256 of the certificate's DER.
    pub fingerprint: String,
    /// Lowercase hexadecimal SHA-256 of the certificate's SubjectPublicKeyInfo DER.
    pub public_key_fingerprint: String,
}

/// The names an SVID is issued for.
struct SvidNames<'a> {
    spiffe_id: &'a SpiffeId,
    dns_names: &'a [String],
    ip_addresses: &'a [IpAddr],
}

/// Issues an X.509-SVID for the CSR key in `request`, signed by `signing`.
///
/// The certificate has subject `O=Sigil`; SANs of exactly one URI (the SPIFFE ID) plus the
/// requested DNS names and IP addresses; basicConstraints CA=false; critical key usage
/// digitalSignature; extended key usage serverAuth and clientAuth; subject and authority key
/// identifiers; a random 16-byte serial; notBefore `now - SVID_BACKDATE`; and notAfter
/// `now + lifetime`, clamped to the signing CA's notAfter.
pub fn issue_svid(
    signing: &CaCertificate,
    request: &SvidRequest<'_>,
) -> Result<IssuedCertificate, CaError> {
    let names = SvidNames {
        spiffe_id: request.spiffe_id,
        dns_names: request.dns_names,
        ip_addresses: request.ip_addresses,
    };

    issue_for_key(
        signing,
        request.public_key,
        &names,
        request.lifetime,
        request.now,
    )
}

/// Issues an X.509-SVID like [`issue_svid`] for a new ECDSA P-256 key, and returns the key
/// as a PKCS#8 `PRIVATE KEY` PEM block.
///
/// For the authority's own server certificate and for admin identities, whose keys Sigil
/// creates itself.
pub fn issue_with_new_key(
    signing: &CaCertificate,
    spiffe_id: &SpiffeId,
    lifetime: Duration,
    now: OffsetDateTime,
    dns_names: &[String],
    ip_addresses: &[IpAddr],
) -> Result<(IssuedCertificate, Zeroizing<String>), CaError> {
    let key = P256SigningKey::generate()?;
    let names = SvidNames {
        spiffe_id,
        dns_names,
        ip_addresses,
    };

    let issued = issue_for_key(signing, &key, &names, lifetime, now)?;
    Ok((issued, key.pkcs8_pem()))
}

fn issue_for_key(
    signing: &CaCertificate,
    public_key: &impl PublicKeyData,
    names: &SvidNames<'_>,
    lifetime: Duration,
    now: OffsetDateTime,
) -> Result<IssuedCertificate, CaError> {
    let validity = Validity::backdated(now, SVID_BACKDATE, lifetime, Some(signing.not_after()))?;
    let serial = serial::random_serial();
    let params = svid_params(names, validity, &serial)?;

    let certificate = params
        .signed_by(public_key, signing.issuer())
        .map_err(CaError::rcgen("sign the SVID"))?;
    let der = CertificateDer::from(certificate);

    Ok(IssuedCertificate {
        pem: pem::encode(pem::CERTIFICATE, &der),
        fingerprint: fingerprint::sha256_hex(&der),
        public_key_fingerprint: fingerprint::sha256_hex(&public_key.subject_public_key_info()),
        serial_hex: serial::to_hex(&serial),
        not_before: validity.not_before,
        not_after: validity.not_after,
        der,
    })
}

fn svid_params(
    names: &SvidNames<'_>,
    validity: Validity,
    serial: &[u8],
) -> Result<CertificateParams, CaError> {
    let mut subject = DistinguishedName::new();
    subject.push(DnType::OrganizationName, SUBJECT_ORGANIZATION);

    let mut params = CertificateParams::default();
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params.distinguished_name = subject;
    params.subject_alt_names = subject_alt_names(names)?;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;

    Ok(params)
}

/// Returns the SANs: the SPIFFE ID first, then the DNS names, then the IP addresses.
fn subject_alt_names(names: &SvidNames<'_>) -> Result<Vec<SanType>, CaError> {
    let spiffe_id = Ia5String::try_from(names.spiffe_id.as_str())
        .map_err(CaError::rcgen("encode the SPIFFE ID as a URI SAN"))?;

    let mut sans = Vec::with_capacity(1 + names.dns_names.len() + names.ip_addresses.len());
    sans.push(SanType::URI(spiffe_id));
    for name in names.dns_names {
        sans.push(SanType::DnsName(dns_name(name)?));
    }
    for address in names.ip_addresses {
        sans.push(SanType::IpAddress(*address));
    }

    Ok(sans)
}

fn dns_name(name: &str) -> Result<Ia5String, CaError> {
    let invalid = |reason: String| CaError::InvalidDnsName {
        name: name.to_owned(),
        reason,
    };

    DnsName::try_from(name).map_err(|error| invalid(error.to_string()))?;
    Ia5String::try_from(name).map_err(|error| invalid(error.to_string()))
}
