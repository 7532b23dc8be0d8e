//! ECDSA P-256 key pairs that Sigil creates: CA keys and the keys of certificates it issues
//! together with their key.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use rcgen::{PKCS_ECDSA_P256_SHA256, PublicKeyData, SignatureAlgorithm, SigningKey};
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use zeroize::Zeroizing;

use crate::{CaError, fingerprint, pem};

/// An ECDSA P-256 key pair that signs with SHA-256 and keeps its PKCS#8 encoding in memory
/// that is zeroized on drop.
pub(crate) struct P256SigningKey {
    key_pair: EcdsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
    rng: SystemRandom,
}

impl P256SigningKey {
    /// Generates a new key pair.
    pub(crate) fn generate() -> Result<Self, CaError> {
        let rng = SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
            .map_err(|error| CaError::KeyGeneration {
                reason: error.to_string(),
            })?;

        Self::from_pkcs8_der(document.as_ref()).map_err(|error| CaError::KeyGeneration {
            reason: error.to_string(),
        })
    }

    /// Reads a PKCS#8 `PRIVATE KEY` PEM block.
    pub(crate) fn from_pkcs8_pem(key_pem: &str) -> Result<Self, CaError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|error| {
            CaError::InvalidCaKey {
                reason: format!("no PKCS#8 `PRIVATE KEY` PEM block could be read ({error})"),
            }
        })?;
        let der = Zeroizing::new(der);

        Self::from_pkcs8_der(der.secret_pkcs8_der())
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, CaError> {
        let key_pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, der).map_err(|error| {
                CaError::InvalidCaKey {
                    reason: format!("not an ECDSA P-256 PKCS#8 key ({error})"),
                }
            })?;

        Ok(Self {
            key_pair,
            pkcs8: Zeroizing::new(der.to_vec()),
            rng: SystemRandom::new(),
        })
    }

    /// Returns the key pair as a PKCS#8 `PRIVATE KEY` PEM block.
    pub(crate) fn pkcs8_pem(&self) -> Zeroizing<String> {
        pem::encode_secret(pem::PRIVATE_KEY, &self.pkcs8)
    }
}

impl PublicKeyData for P256SigningKey {
    fn der_bytes(&self) -> &[u8] {
        self.key_pair.public_key().as_ref()
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

impl SigningKey for P256SigningKey {
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let signature = self
            .key_pair
            .sign(&self.rng, message)
            .map_err(|_| rcgen::Error::RingUnspecified)?;

        Ok(signature.as_ref().to_vec())
    }
}

impl fmt::Debug for P256SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("P256SigningKey")
            .field(
                "public_key_fingerprint",
                &fingerprint::sha256_hex(&self.subject_public_key_info()),
            )
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

    use super::*;

    #[test]
    fn signature_verifies_with_public_key() {
        let key = P256SigningKey::generate().unwrap();

        let signature = key.sign(b"message").unwrap();

        let public_key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.der_bytes());
        public_key.verify(b"message", &signature).unwrap();
    }

    #[test]
    fn pkcs8_pem_round_trips() {
        let key = P256SigningKey::generate().unwrap();

        let pem = key.pkcs8_pem();
        let reloaded = P256SigningKey::from_pkcs8_pem(&pem).unwrap();

        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(reloaded.der_bytes(), key.der_bytes());
    }

    #[test]
    fn from_pkcs8_pem_rejects_other_input() {
        for input in [
            "",
            "not a key",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ] {
            let error = P256SigningKey::from_pkcs8_pem(input).unwrap_err();

            assert!(matches!(error, CaError::InvalidCaKey { .. }), "{error}");
        }
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = P256SigningKey::generate().unwrap();
        let pem = key.pkcs8_pem();
        let base64_body: String = pem.lines().nth(1).unwrap().to_owned();

        let debug = format!("{key:?}");

        assert!(debug.contains("public_key_fingerprint"));
        assert!(!debug.contains(&base64_body));
        assert!(!debug.contains(&hex::encode(&key.pkcs8[..])));
    }
}
