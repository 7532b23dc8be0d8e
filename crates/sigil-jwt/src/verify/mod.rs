//! Sigil's strict JWT-SVID verifier.
//!
//! The verifier parses the compact JWS itself and accepts only what Sigil mints: an ES256
//! signature by a key from the JWKS, selected by `kid`, over a header and payload that are JSON
//! objects with unique member names. The signature algorithm always comes from the key. The
//! header `alg` must match it, and `none` and HMAC are rejected before any key is looked up.

mod claims;
mod compact;
mod header;

use std::collections::HashMap;
use std::fmt;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ParsedPublicKey};
use serde_json::{Map, Value};
use sigil_core::{SpiffeId, TrustDomain};
use time::{Duration, OffsetDateTime};

use crate::jwk::P256_COORDINATE_LEN;
use crate::signing_key::ES256_SIGNATURE_LEN;
use crate::{Jwk, Jwks, JwtError, base64url};

/// How far the verifier's clock may lag or lead the issuer's: a token is accepted until
/// `exp + 30 s`, and `nbf` and `iat` may lie up to 30 s in the future.
pub const CLOCK_SKEW_LEEWAY: Duration = Duration::seconds(30);

/// The maximum length in bytes of a token the verifier parses. Sigil's tokens are about 600
/// bytes, so 8 KiB leaves room for long audiences and issuers while bounding the work an
/// attacker can cause.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// Maximum length of a key ID that an error message repeats.
const MAX_SHOWN_KID_LEN: usize = 128;

/// The claims of a verified JWT-SVID.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedClaims {
    /// The `sub` claim: a workload SPIFFE ID in the verifier's trust domain.
    pub subject: SpiffeId,
    /// Every value of the `aud` claim. At least one of them was expected.
    pub audience: Vec<String>,
    /// The `iss` claim, if present.
    pub issuer: Option<String>,
    /// The `exp` claim.
    pub expires_at: OffsetDateTime,
    /// The `iat` claim.
    pub issued_at: OffsetDateTime,
    /// The `jti` claim.
    pub jti: String,
    /// The `owner` claim that Sigil adds: the accountable owner's e-mail address, if present.
    pub owner: Option<String>,
    /// The whole payload, for claims this type does not name.
    pub raw: Map<String, Value>,
}

/// The signature algorithms the verifier supports, each fixed by the key type in the JWKS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyAlgorithm {
    /// ECDSA P-256 with SHA-256, signatures as fixed-length `r || s`.
    Es256,
}

impl KeyAlgorithm {
    fn name(self) -> &'static str {
        match self {
            Self::Es256 => "ES256",
        }
    }

    fn signature_len(self) -> usize {
        match self {
            Self::Es256 => ES256_SIGNATURE_LEN,
        }
    }
}

struct VerificationKey {
    algorithm: KeyAlgorithm,
    public_key: ParsedPublicKey,
}

/// Verifies JWT-SVIDs against a JWKS for one trust domain.
pub struct Verifier {
    trust_domain: TrustDomain,
    keys: HashMap<String, VerificationKey>,
}

impl Verifier {
    /// Builds a verifier that accepts tokens signed by the keys of `jwks` for subjects in
    /// `trust_domain`.
    ///
    /// Fails when the JWKS is empty, when an entry is not an EC P-256 key with `alg` `ES256`,
    /// `use` `sig`, a non-empty `kid` and a point on the curve, or when two entries share a
    /// `kid`. Every entry is checked, so a bad entry is never skipped silently.
    pub fn new(trust_domain: TrustDomain, jwks: &Jwks) -> Result<Self, JwtError> {
        if jwks.keys.is_empty() {
            return Err(JwtError::EmptyJwks);
        }

        let mut keys = HashMap::with_capacity(jwks.keys.len());
        for (index, jwk) in jwks.keys.iter().enumerate() {
            let key = verification_key(jwk)
                .map_err(|reason| JwtError::UnsupportedJwk { index, reason })?;
            if keys.insert(jwk.kid.clone(), key).is_some() {
                return Err(JwtError::DuplicateKeyId {
                    kid: jwk.kid.clone(),
                });
            }
        }

        Ok(Self { trust_domain, keys })
    }

    /// Verifies `token` and returns its claims.
    ///
    /// The token must be a compact JWS of at most [`MAX_TOKEN_LEN`] bytes whose header names a
    /// key of the JWKS in `kid` and that key's algorithm in `alg`, with no `crit` and a `typ` of
    /// `JWT`, `JOSE` or none. Only after the signature verifies is the payload read. Its integer
    /// `exp` and `iat` claims (and `nbf`, if present) must make the token valid at `now` within
    /// [`CLOCK_SKEW_LEEWAY`]. Its `aud` must contain one of `expected_audiences`, and its `sub`
    /// must be a workload SPIFFE ID in the verifier's trust domain. It needs a string `jti`, and
    /// `iss` and `owner` are optional but must be strings when present.
    ///
    /// An empty `expected_audiences`, or an empty string in it, is a caller error and fails with
    /// [`JwtError::NoExpectedAudience`] before the token is read.
    pub fn verify(
        &self,
        token: &str,
        expected_audiences: &[&str],
        now: OffsetDateTime,
    ) -> Result<VerifiedClaims, JwtError> {
        if expected_audiences.is_empty() || expected_audiences.contains(&"") {
            return Err(JwtError::NoExpectedAudience);
        }

        let jws = compact::CompactJws::parse(token)?;
        let header = header::check_header(&jws.header)?;

        let key = self
            .keys
            .get(header.kid)
            .ok_or_else(|| JwtError::UnknownKeyId {
                kid: printable_kid(header.kid),
            })?;
        if header.alg != key.algorithm.name() {
            return Err(JwtError::AlgorithmMismatch {
                expected: key.algorithm.name(),
            });
        }

        let signature = jws.signature()?;
        if signature.len() != key.algorithm.signature_len() {
            return Err(JwtError::BadSignature);
        }
        key.public_key
            .verify_sig(jws.signing_input.as_bytes(), &signature)
            .map_err(|_| JwtError::BadSignature)?;

        let payload = jws.payload()?;
        claims::check_claims(payload, &self.trust_domain, expected_audiences, now)
    }

    /// Returns the trust domain whose subjects the verifier accepts.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("Verifier")
            .field("trust_domain", &self.trust_domain)
            .field("kids", &kids)
            .finish()
    }
}

/// Checks one JWKS entry and parses its public key.
fn verification_key(jwk: &Jwk) -> Result<VerificationKey, &'static str> {
    if jwk.kty != "EC" {
        return Err("`kty` is not `EC`");
    }
    if jwk.crv != "P-256" {
        return Err("`crv` is not `P-256`");
    }
    if jwk.alg != "ES256" {
        return Err("`alg` is not `ES256`");
    }
    if jwk.key_use != "sig" {
        return Err("`use` is not `sig`");
    }
    if jwk.kid.is_empty() {
        return Err("`kid` is empty");
    }

    let coordinate = |encoded: &str| {
        base64url::decode(encoded).filter(|bytes| bytes.len() == P256_COORDINATE_LEN)
    };
    let (Some(x), Some(y)) = (coordinate(&jwk.x), coordinate(&jwk.y)) else {
        return Err("`x` and `y` must each be 32 bytes of unpadded base64url");
    };
    let mut point = Vec::with_capacity(1 + 2 * P256_COORDINATE_LEN);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);

    let public_key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
        .map_err(|_| "the point is not on the P-256 curve")?;

    Ok(VerificationKey {
        algorithm: KeyAlgorithm::Es256,
        public_key,
    })
}

/// Formats a key ID from an untrusted token for an error message: in backticks when it is short
/// and made of URL-safe characters, otherwise as a placeholder, so that messages stay one line.
fn printable_kid(kid: &str) -> String {
    let printable = kid.len() <= MAX_SHOWN_KID_LEN
        && kid
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.'));
    if printable {
        format!("`{kid}`")
    } else {
        format!("of {} bytes (not shown)", kid.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_kid_shown() {
        assert_eq!(printable_kid("abc-_.9"), "`abc-_.9`");
    }

    #[test]
    fn unprintable_kid_hidden() {
        assert_eq!(printable_kid("a\nb"), "of 3 bytes (not shown)");
        assert_eq!(printable_kid("`x`"), "of 3 bytes (not shown)");
        assert!(printable_kid(&"a".repeat(129)).contains("not shown"));
    }
}
