//! Checking certificate signing requests (PKCS#10, RFC 2986) from untrusted clients.
//!
//! Sigil takes exactly one thing from a CSR: its public key, after proving with the CSR's
//! self-signature that the requester possesses the matching private key. The subject, requested
//! extensions, SANs and CA flag are ignored by design, because the authority decides every
//! field of the certificate it issues.

mod input;
mod key_type;
mod signature;

use std::fmt;

use rcgen::{
    PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519, PKCS_RSA_SHA256, PublicKeyData,
    SignatureAlgorithm,
};
use x509_parser::x509::SubjectPublicKeyInfo;

pub use self::key_type::{KeyType, MAX_RSA_BITS, MIN_RSA_BITS};
use crate::{CaError, fingerprint};

/// Largest CSR input accepted, in bytes. A PEM CSR with an RSA-8192 key is under 4 KiB.
pub const MAX_CSR_LEN: usize = 64 * 1024;

/// Length of an uncompressed P-256 point: 0x04, then X and Y of 32 bytes each.
const P256_POINT_LEN: usize = 65;

/// Length of an uncompressed P-384 point: 0x04, then X and Y of 48 bytes each.
const P384_POINT_LEN: usize = 97;

/// Length of an Ed25519 public key (RFC 8032).
const ED25519_KEY_LEN: usize = 32;

/// Checks a CSR given as PEM (`-----BEGIN CERTIFICATE REQUEST-----`) or DER and returns its
/// public key.
///
/// Accepts ECDSA P-256 and P-384 keys signed with ecdsa-with-SHA256 or SHA384, Ed25519 keys,
/// and RSA keys of 2048 to 8192 bits signed with PKCS#1 v1.5 and SHA-256, SHA-384 or
/// SHA-512. Everything else in the CSR is ignored.
///
/// # Errors
///
/// - [`CaError::MalformedCsr`] or [`CaError::CsrTooLarge`]: the input is not one CSR.
/// - [`CaError::UnsupportedKeyType`]: the key type is rejected, and the error names it.
/// - [`CaError::InvalidPublicKey`]: the key is not in canonical form.
/// - [`CaError::UnsupportedSignatureAlgorithm`] or [`CaError::SignatureAlgorithmMismatch`]:
///   Sigil does not verify that signature algorithm for that key.
/// - [`CaError::CsrSignatureInvalid`]: the self-signature does not verify.
pub fn check_csr(input: &[u8]) -> Result<CsrPublicKey, CaError> {
    let der = input::decode(input)?;
    let request = input::parse(&der)?;

    let key = CsrPublicKey::from_spki(&request.certification_request_info.subject_pki)?;
    signature::verify_self_signature(&request, &key)?;

    Ok(key)
}

/// The public key of a CSR whose self-signature has been verified.
///
/// It implements rcgen's [`PublicKeyData`], so a certificate issued for it carries a
/// SubjectPublicKeyInfo equal byte for byte to the CSR's.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrPublicKey {
    spki_der: Vec<u8>,
    public_key: Vec<u8>,
    key_type: KeyType,
}

impl CsrPublicKey {
    fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<Self, CaError> {
        let key_type = key_type::classify(spki)?;
        let key = Self {
            spki_der: spki.raw.to_vec(),
            public_key: spki.subject_public_key.data.to_vec(),
            key_type,
        };

        key.check_encoding()?;
        Ok(key)
    }

    /// Checks that the key is in the one encoding rcgen writes into a certificate, so that the
    /// issued certificate's SubjectPublicKeyInfo equals the CSR's.
    fn check_encoding(&self) -> Result<(), CaError> {
        let invalid = |reason| CaError::InvalidPublicKey {
            key_type: self.key_type.to_string(),
            reason,
        };

        let expected_len = match self.key_type {
            KeyType::P256 => Some(P256_POINT_LEN),
            KeyType::P384 => Some(P384_POINT_LEN),
            KeyType::Ed25519 => Some(ED25519_KEY_LEN),
            KeyType::Rsa { .. } => None,
        };
        if expected_len.is_some_and(|len| len != self.public_key.len()) {
            return Err(invalid(
                "the key has the wrong length or is a compressed point",
            ));
        }

        let canonical = rcgen_spki(self);
        if canonical != self.spki_der {
            return Err(invalid(
                "the SubjectPublicKeyInfo is not in canonical DER form (RFC 3279, RFC 5480, \
                 RFC 8410)",
            ));
        }

        Ok(())
    }

    /// Returns the whole SubjectPublicKeyInfo in DER.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// Returns the key type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// Returns the lowercase hexadecimal SHA-256 of the SubjectPublicKeyInfo DER.
    pub fn fingerprint(&self) -> String {
        fingerprint::sha256_hex(&self.spki_der)
    }

    /// Returns the contents of the subjectPublicKey BIT STRING, the form aws-lc-rs verifies
    /// with.
    fn public_key_bytes(&self) -> &[u8] {
        &self.public_key
    }
}

/// Returns the SubjectPublicKeyInfo that rcgen builds from the algorithm and key bytes, which
/// is what it writes into a certificate.
fn rcgen_spki(key: &CsrPublicKey) -> Vec<u8> {
    struct Rebuilt<'a>(&'a CsrPublicKey);

    impl PublicKeyData for Rebuilt<'_> {
        fn der_bytes(&self) -> &[u8] {
            self.0.der_bytes()
        }

        fn algorithm(&self) -> &'static SignatureAlgorithm {
            self.0.algorithm()
        }
    }

    Rebuilt(key).subject_public_key_info()
}

impl PublicKeyData for CsrPublicKey {
    /// Returns the CSR's SubjectPublicKeyInfo, which equals rcgen's own encoding of this key.
    fn subject_public_key_info(&self) -> Vec<u8> {
        self.spki_der.clone()
    }

    fn der_bytes(&self) -> &[u8] {
        &self.public_key
    }

    /// Returns the rcgen algorithm whose key OIDs match this key. Only its key identifiers are
    /// used, because rcgen never signs with a CSR key.
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        match self.key_type {
            KeyType::P256 => &PKCS_ECDSA_P256_SHA256,
            KeyType::P384 => &PKCS_ECDSA_P384_SHA384,
            KeyType::Ed25519 => &PKCS_ED25519,
            KeyType::Rsa { .. } => &PKCS_RSA_SHA256,
        }
    }
}

impl fmt::Debug for CsrPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsrPublicKey")
            .field("key_type", &self.key_type)
            .field("fingerprint", &self.fingerprint())
            .finish()
    }
}
