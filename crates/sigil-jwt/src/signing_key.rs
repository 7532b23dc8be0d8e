//! ES256 signing keys: generation, PKCS#8 PEM import and export, key IDs and retirement.

use std::fmt;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::jwk::{self, Jwk};
use crate::{JwtError, base64url};

/// Length in bytes of an ES256 signature: `r || s`, 32 bytes each (RFC 7518, section 3.4).
pub(crate) const ES256_SIGNATURE_LEN: usize = 64;

/// An ES256 (ECDSA P-256 with SHA-256) key that signs JWT-SVIDs.
///
/// The key ID is the RFC 7638 SHA-256 thumbprint of the public key, so it is stable across
/// restarts and needs no storage of its own. The PKCS#8 encoding is kept in memory that is
/// zeroized on drop. A clone has its own copy, zeroized on drop too.
#[derive(Clone)]
pub struct SigningKey {
    key_pair: EcdsaKeyPair,
    pkcs8: Zeroizing<Vec<u8>>,
    rng: SystemRandom,
    public_jwk: Jwk,
    /// Base64url of the JOSE header `{"alg":"ES256","kid":…,"typ":"JWT"}`, identical for every
    /// token this key signs, so it is encoded once.
    encoded_header: String,
    created_at: OffsetDateTime,
    retired_at: Option<OffsetDateTime>,
}

impl SigningKey {
    /// Generates a new P-256 key pair with aws-lc-rs, created at `now`.
    pub fn generate(now: OffsetDateTime) -> Result<Self, JwtError> {
        let rng = SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| JwtError::KeyGeneration)?;

        Self::from_pkcs8_der(document.as_ref(), now, None)
    }

    /// Reads an ECDSA P-256 key from a PKCS#8 `PRIVATE KEY` PEM block.
    ///
    /// `retired_at` is `None` for a key that still signs.
    pub fn from_pkcs8_pem(
        pem: &str,
        created_at: OffsetDateTime,
        retired_at: Option<OffsetDateTime>,
    ) -> Result<Self, JwtError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| {
            JwtError::InvalidPrivateKey {
                reason: "no PKCS#8 `PRIVATE KEY` PEM block could be read",
            }
        })?;
        // `PrivatePkcs8KeyDer` zeroizes its bytes on drop.
        Self::from_pkcs8_der(der.secret_pkcs8_der(), created_at, retired_at)
    }

    fn from_pkcs8_der(
        der: &[u8],
        created_at: OffsetDateTime,
        retired_at: Option<OffsetDateTime>,
    ) -> Result<Self, JwtError> {
        let key_pair =
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(|_| {
                JwtError::InvalidPrivateKey {
                    reason: "not an ECDSA P-256 PKCS#8 key",
                }
            })?;

        let point = key_pair.public_key().as_ref();
        let invalid_point = || JwtError::InvalidPrivateKey {
            reason: "the public key is not an uncompressed P-256 point",
        };
        let kid = jwk::p256_thumbprint(point).ok_or_else(invalid_point)?;
        let public_jwk = Jwk::from_p256_point(point, kid).ok_or_else(invalid_point)?;
        let encoded_header = encode_header(&public_jwk.kid);

        Ok(Self {
            key_pair,
            pkcs8: Zeroizing::new(der.to_vec()),
            rng: SystemRandom::new(),
            public_jwk,
            encoded_header,
            created_at,
            retired_at,
        })
    }

    /// Returns the private key as a PKCS#8 `PRIVATE KEY` PEM block.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        encode_private_key_pem(&self.pkcs8)
    }

    /// Returns the key ID: the RFC 7638 SHA-256 thumbprint of the public key, in base64url.
    pub fn kid(&self) -> &str {
        &self.public_jwk.kid
    }

    /// Returns the public key as a JWK for the JWKS.
    pub fn public_jwk(&self) -> Jwk {
        self.public_jwk.clone()
    }

    /// Returns when the key was created.
    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }

    /// Returns when the key stopped signing, or `None` while it is the current key.
    pub fn retired_at(&self) -> Option<OffsetDateTime> {
        self.retired_at
    }

    /// Marks the key as retired at `at`. A key that is already retired keeps its first time.
    pub fn retire(&mut self, at: OffsetDateTime) {
        self.retired_at.get_or_insert(at);
    }

    /// Returns the base64url-encoded JOSE header of every token this key signs.
    pub(crate) fn encoded_header(&self) -> &str {
        &self.encoded_header
    }

    /// Signs `message` with ES256 and returns the fixed-length `r || s` signature.
    pub(crate) fn sign(&self, message: &[u8]) -> Result<[u8; ES256_SIGNATURE_LEN], JwtError> {
        let signature = self
            .key_pair
            .sign(&self.rng, message)
            .map_err(|_| JwtError::Signing)?;

        signature.as_ref().try_into().map_err(|_| JwtError::Signing)
    }

    /// Fills `bytes` from the system random number generator.
    pub(crate) fn fill_random(&self, bytes: &mut [u8]) -> Result<(), JwtError> {
        aws_lc_rs::rand::SecureRandom::fill(&self.rng, bytes).map_err(|_| JwtError::Signing)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public_jwk.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Encodes the JOSE header of a JWT-SVID signed by the key `kid`.
fn encode_header(kid: &str) -> String {
    let header = serde_json::json!({ "alg": "ES256", "kid": kid, "typ": "JWT" });
    base64url::encode(header.to_string().as_bytes())
}

/// Encodes PKCS#8 DER as a PEM block with 64-character lines (RFC 7468).
///
/// Both buffers are sized up front, so no reallocation leaves a copy of the key behind.
fn encode_private_key_pem(der: &[u8]) -> Zeroizing<String> {
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----\n";
    const END: &str = "-----END PRIVATE KEY-----\n";
    const LINE_LEN: usize = 64;

    let mut body = Zeroizing::new(vec![0; der.len().div_ceil(3) * 4]);
    // The buffer has exactly the encoded length, so encoding cannot run out of space.
    let written = STANDARD.encode_slice(der, &mut body[..]).unwrap_or(0);
    body.truncate(written);

    let line_count = body.len().div_ceil(LINE_LEN);
    let mut pem = Zeroizing::new(String::with_capacity(
        BEGIN.len() + body.len() + line_count + END.len(),
    ));
    pem.push_str(BEGIN);
    for line in body.chunks(LINE_LEN) {
        // Base64 output is ASCII, so every byte is one char.
        pem.extend(line.iter().map(|&byte| char::from(byte)));
        pem.push('\n');
    }
    pem.push_str(END);
    pem
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, UnparsedPublicKey};
    use time::macros::datetime;

    use super::*;

    const CREATED: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    #[test]
    fn signature_verifies_with_public_key() {
        let key = SigningKey::generate(CREATED).unwrap();

        let signature = key.sign(b"message").unwrap();

        let public_key =
            UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key.key_pair.public_key().as_ref());
        public_key.verify(b"message", &signature).unwrap();
    }

    #[test]
    fn pem_round_trip_keeps_kid() {
        let key = SigningKey::generate(CREATED).unwrap();
        let pem = key.to_pkcs8_pem();

        let read = SigningKey::from_pkcs8_pem(&pem, CREATED, None).unwrap();

        assert_eq!(read.kid(), key.kid());
        assert_eq!(read.public_jwk(), key.public_jwk());
    }

    #[test]
    fn pem_has_standard_layout() {
        let key = SigningKey::generate(CREATED).unwrap();
        let pem = key.to_pkcs8_pem();

        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN PRIVATE KEY-----"));
        assert_eq!(lines.last(), Some(&"-----END PRIVATE KEY-----"));
        assert!(lines.iter().all(|line| line.len() <= 64));
        assert!(pem.ends_with('\n'));
    }

    #[test]
    fn garbage_pem_rejected() {
        let err = SigningKey::from_pkcs8_pem("not a key", CREATED, None).unwrap_err();
        assert!(matches!(err, JwtError::InvalidPrivateKey { .. }), "{err}");
    }

    #[test]
    fn p384_key_rejected() {
        let rng = SystemRandom::new();
        let document = EcdsaKeyPair::generate_pkcs8(
            &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
            &rng,
        )
        .unwrap();
        let pem = encode_private_key_pem(document.as_ref());

        let err = SigningKey::from_pkcs8_pem(&pem, CREATED, None).unwrap_err();

        assert!(matches!(err, JwtError::InvalidPrivateKey { .. }), "{err}");
    }

    #[test]
    fn retire_keeps_first_time() {
        let mut key = SigningKey::generate(CREATED).unwrap();
        assert_eq!(key.retired_at(), None);

        key.retire(datetime!(2026-02-01 00:00 UTC));
        key.retire(datetime!(2026-03-01 00:00 UTC));

        assert_eq!(key.retired_at(), Some(datetime!(2026-02-01 00:00 UTC)));
    }

    #[test]
    fn header_names_kid() {
        let key = SigningKey::generate(CREATED).unwrap();

        let header = base64url::decode(key.encoded_header()).unwrap();
        let header: serde_json::Value = serde_json::from_slice(&header).unwrap();

        assert_eq!(
            header,
            serde_json::json!({"alg": "ES256", "kid": key.kid(), "typ": "JWT"})
        );
    }

    #[test]
    fn debug_shows_no_key_material() {
        let key = SigningKey::generate(CREATED).unwrap();
        let pem = key.to_pkcs8_pem();
        let body: String = pem
            .lines()
            .filter(|line| !line.starts_with("-----"))
            .collect();

        let debug = format!("{key:?}");

        assert!(debug.contains(key.kid()));
        for window in body.as_bytes().windows(12) {
            let window = std::str::from_utf8(window).unwrap();
            assert!(
                !debug.contains(window),
                "Debug output contains key material"
            );
        }
    }
}
