//! Sigil's CA certificates: the self-signed root of a trust domain and the signing CA below it
//! that issues SVIDs and CRLs.

mod load;
mod names;

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, IsCa, Issuer, KeyIdMethod, KeyUsagePurpose, PublicKeyData,
    SerialNumber,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sigil_core::TrustDomain;
use time::{Duration, OffsetDateTime};
use zeroize::Zeroizing;

use self::load::CaFacts;
use crate::signing_key::P256SigningKey;
use crate::validity::Validity;
use crate::{CaError, fingerprint, pem, serial, x509};

/// How far a CA certificate's notBefore lies before its creation time, so that relying parties
/// whose clocks run behind accept it at once.
pub const CA_BACKDATE: Duration = Duration::minutes(5);

/// Hex digits of the serial number that end a signing CA's common name.
const SIGNING_NAME_SUFFIX_LEN: usize = 8;

/// A CA certificate together with its ECDSA P-256 private key.
///
/// The key is held in memory that is zeroized on drop and never shown by `Debug`.
pub struct CaCertificate {
    cert_der: CertificateDer<'static>,
    cert_pem: String,
    issuer: Issuer<'static, P256SigningKey>,
    common_name: String,
    subject_key_id: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial_hex: String,
    fingerprint: String,
}

impl CaCertificate {
    /// Creates the self-signed root CA of `trust_domain` with a new key.
    ///
    /// The root has subject `O=Sigil, CN=Sigil root CA <trust domain>`, critical
    /// basicConstraints CA=true without a path length limit, critical key usage keyCertSign and
    /// cRLSign, and a subject key identifier. It has no name constraints, because webpki
    /// rejects URI name constraints. Its validity runs from `now - CA_BACKDATE` to
    /// `now + lifetime`.
    pub fn create_root(
        trust_domain: &TrustDomain,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Self, CaError> {
        let validity = Validity::backdated(now, CA_BACKDATE, lifetime, None)?;
        let key = P256SigningKey::generate()?;
        let serial = serial::random_serial();

        let mut params = ca_params(validity, &serial);
        params.distinguished_name = names::root_name(trust_domain);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];

        let certificate = params
            .self_signed(&key)
            .map_err(CaError::rcgen("sign the root CA certificate"))?;

        Self::assemble(certificate.into(), key)
    }

    /// Creates a signing CA of `trust_domain` with a new key, signed by `root`.
    ///
    /// The signing CA has subject `O=Sigil, CN=Sigil signing CA <trust domain> <first 8 hex
    /// digits of its serial>`, critical basicConstraints CA=true with pathLenConstraint 0,
    /// critical key usage digitalSignature, keyCertSign and cRLSign, and subject and authority
    /// key identifiers. Its notAfter is `now + lifetime` but never later than the root's.
    pub fn create_intermediate(
        root: &CaCertificate,
        trust_domain: &TrustDomain,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Self, CaError> {
        let validity = Validity::backdated(now, CA_BACKDATE, lifetime, Some(root.not_after))?;
        let key = P256SigningKey::generate()?;
        let serial = serial::random_serial();
        let serial_hex = serial::to_hex(&serial);
        let suffix = serial_hex
            .get(..SIGNING_NAME_SUFFIX_LEN)
            .unwrap_or(&serial_hex);

        let mut params = ca_params(validity, &serial);
        params.distinguished_name = names::signing_name(trust_domain, suffix);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
        ];
        params.use_authority_key_identifier_extension = true;

        let certificate = params
            .signed_by(&key, &root.issuer)
            .map_err(CaError::rcgen("sign the signing CA certificate"))?;

        Self::assemble(certificate.into(), key)
    }

    /// Loads a CA certificate and its PKCS#8 private key from PEM.
    ///
    /// The certificate must be a CA with key usage keyCertSign and cRLSign and a subject key
    /// identifier, and the key must be the ECDSA P-256 key of its public key.
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Self, CaError> {
        let cert_der = CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|error| {
            CaError::InvalidCaCertificate {
                reason: format!("no `CERTIFICATE` PEM block could be read ({error})"),
            }
        })?;
        let key = P256SigningKey::from_pkcs8_pem(key_pem)?;

        Self::assemble(cert_der, key)
    }

    fn assemble(cert_der: CertificateDer<'static>, key: P256SigningKey) -> Result<Self, CaError> {
        let facts = CaFacts::read(&cert_der)?;
        let fingerprint = fingerprint::sha256_hex(&cert_der);

        if facts.spki_der != key.subject_public_key_info() {
            return Err(CaError::CaKeyMismatch { fingerprint });
        }

        let mut issuer_params = CertificateParams::default();
        issuer_params.distinguished_name = facts.subject;
        issuer_params.key_identifier_method =
            KeyIdMethod::PreSpecified(facts.subject_key_id.clone());
        issuer_params.key_usages = facts.key_usages;
        let issuer = Issuer::new(issuer_params, key);
        check_issuer_name(&issuer, &facts.subject_der)?;

        Ok(Self {
            cert_pem: pem::encode(pem::CERTIFICATE, &cert_der),
            cert_der,
            issuer,
            common_name: facts.common_name,
            subject_key_id: facts.subject_key_id,
            not_before: facts.not_before,
            not_after: facts.not_after,
            serial_hex: facts.serial_hex,
            fingerprint,
        })
    }

    /// Returns the certificate as a PEM `CERTIFICATE` block.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// Returns the certificate in DER.
    pub fn cert_der(&self) -> &CertificateDer<'static> {
        &self.cert_der
    }

    /// Returns the private key as a PKCS#8 `PRIVATE KEY` PEM block, zeroized when dropped.
    pub fn key_pem(&self) -> Zeroizing<String> {
        self.issuer.key().pkcs8_pem()
    }

    /// Returns the start of the validity period.
    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    /// Returns the end of the validity period.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// Returns the serial number in serial hex: lowercase, leading zero bytes removed.
    pub fn serial_hex(&self) -> &str {
        &self.serial_hex
    }

    /// Returns the lowercase hexadecimal SHA-256 of the certificate's DER.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Returns true once half of the validity period has passed at `now`, the point at which
    /// Sigil rotates a CA.
    pub fn is_past_half_life(&self, now: OffsetDateTime) -> bool {
        let half_life = (self.not_after - self.not_before) / 2;

        now >= self.not_before + half_life
    }

    /// Returns the rcgen issuer that signs certificates and CRLs with this CA's key.
    pub(crate) fn issuer(&self) -> &Issuer<'static, P256SigningKey> {
        &self.issuer
    }

    /// Returns the subject key identifier, which certificates and CRLs signed by this CA carry
    /// as their authority key identifier.
    pub(crate) fn subject_key_id(&self) -> &[u8] {
        &self.subject_key_id
    }
}

impl fmt::Debug for CaCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaCertificate")
            .field("common_name", &self.common_name)
            .field("serial_hex", &self.serial_hex)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

fn ca_params(validity: Validity, serial: &[u8]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(SerialNumber::from_slice(serial));
    params
}

/// Signs a throwaway certificate with `issuer` and checks that its issuer name equals the CA's
/// subject byte for byte, since chain building compares the two as bytes.
fn check_issuer_name(
    issuer: &Issuer<'_, P256SigningKey>,
    subject_der: &[u8],
) -> Result<(), CaError> {
    let mut params = CertificateParams::default();
    params.serial_number = Some(SerialNumber::from_slice(&[1]));

    let probe = params
        .signed_by(issuer.key(), issuer)
        .map_err(CaError::rcgen("sign a probe certificate"))?;
    let parsed = x509::parse_certificate(probe.der())?;

    if parsed.issuer().as_raw() != subject_der {
        return Err(CaError::InvalidCaCertificate {
            reason: "rcgen cannot reproduce its subject name byte for byte".to_owned(),
        });
    }

    Ok(())
}
