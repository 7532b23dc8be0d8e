//! Minting JWT-SVIDs with the current key of a key set.

use std::fmt;

use serde::Serialize;
use sigil_core::{Email, SpiffeId};
use time::{Duration, OffsetDateTime};

use crate::signing_key::ES256_SIGNATURE_LEN;
use crate::{JwtError, KeySet, MAX_TOKEN_LEN, base64url};

/// The maximum lifetime of a JWT-SVID.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::hours(1);

/// Number of random bytes in a `jti` claim (128 bits).
const JTI_LEN: usize = 16;

/// The claims of a JWT-SVID to mint, and the minting time.
#[derive(Debug, Clone, Copy)]
pub struct MintRequest<'a> {
    /// The `iss` claim, normally the authority's public URL. Must not be empty.
    pub issuer: &'a str,
    /// The workload the token identifies, the `sub` claim.
    pub subject: &'a SpiffeId,
    /// The one service the token is for, the `aud` claim.
    pub audience: &'a str,
    /// The accountable owner's e-mail address, the `owner` claim.
    pub owner: &'a Email,
    /// How long the token is valid, from 1 second to [`MAX_TOKEN_LIFETIME`].
    pub lifetime: Duration,
    /// The `iat` and `nbf` claims. Sub-second parts are dropped.
    pub now: OffsetDateTime,
}

/// A signed JWT-SVID and the facts the issuer records about it.
#[derive(Clone, PartialEq, Eq)]
pub struct MintedToken {
    /// The compact JWS. It is a bearer credential, so `Debug` does not show it.
    pub token: String,
    /// The `jti` claim: 128 random bits in base64url.
    pub jti: String,
    /// The `exp` claim.
    pub expires_at: OffsetDateTime,
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field(
                "token",
                &format_args!("<redacted, {} bytes>", self.token.len()),
            )
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The claims of a JWT-SVID, in the order they are serialized.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: i64,
    iat: i64,
    nbf: i64,
    jti: &'a str,
    owner: &'a str,
}

impl KeySet {
    /// Mints a JWT-SVID signed with the current key.
    ///
    /// The header is `{"alg":"ES256","kid":<kid>,"typ":"JWT"}`. The claims are `iss`, `sub`,
    /// `aud` (one string), `exp`, `iat`, `nbf` (equal to `iat`), `jti` and `owner`.
    ///
    /// Fails when the issuer or audience is empty or contains control characters, when the
    /// lifetime is not between 1 second and 1 hour, or when the token would be longer than
    /// [`MAX_TOKEN_LEN`], the limit that [`crate::Verifier`] enforces.
    pub fn mint(&self, request: &MintRequest<'_>) -> Result<MintedToken, JwtError> {
        check_text(request.issuer).map_err(|reason| JwtError::InvalidIssuer { reason })?;
        check_text(request.audience).map_err(|reason| JwtError::InvalidAudience { reason })?;
        if request.lifetime < Duration::SECOND || request.lifetime > MAX_TOKEN_LIFETIME {
            return Err(JwtError::InvalidLifetime {
                seconds: request.lifetime.whole_seconds(),
            });
        }

        let issued_at = request.now.unix_timestamp();
        let expires_at = issued_at + request.lifetime.whole_seconds();
        let expires_at_time = OffsetDateTime::from_unix_timestamp(expires_at).map_err(|_| {
            JwtError::TimeOutOfRange {
                reason: "the token would expire after the year 9999",
            }
        })?;

        let key = &self.current;
        let mut jti_bytes = [0; JTI_LEN];
        key.fill_random(&mut jti_bytes)?;
        let jti = base64url::encode(&jti_bytes);

        let claims = Claims {
            iss: request.issuer,
            sub: request.subject.as_str(),
            aud: request.audience,
            exp: expires_at,
            iat: issued_at,
            nbf: issued_at,
            jti: &jti,
            owner: request.owner.as_str(),
        };
        let payload = serde_json::to_vec(&claims).map_err(|_| JwtError::Signing)?;

        let header = key.encoded_header();
        let token_len =
            header.len() + 1 + encoded_len(payload.len()) + 1 + encoded_len(ES256_SIGNATURE_LEN);
        if token_len > MAX_TOKEN_LEN {
            return Err(JwtError::TokenTooLarge {
                len: token_len,
                max: MAX_TOKEN_LEN,
            });
        }

        let mut token = String::with_capacity(token_len);
        token.push_str(header);
        token.push('.');
        base64url::encode_into(&payload, &mut token);
        let signature = key.sign(token.as_bytes())?;
        token.push('.');
        base64url::encode_into(&signature, &mut token);

        Ok(MintedToken {
            token,
            jti,
            expires_at: expires_at_time,
        })
    }
}

/// Checks a claim value that the caller chose: not empty, no control characters.
fn check_text(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("the value is empty");
    }
    if value.chars().any(char::is_control) {
        return Err("the value contains control characters");
    }
    Ok(())
}

/// Length of the unpadded base64url encoding of `len` bytes.
fn encoded_len(len: usize) -> usize {
    (len * 4).div_ceil(3)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};
    use time::macros::datetime;

    use super::*;
    use crate::SigningKey;

    const NOW: OffsetDateTime = datetime!(2026-05-01 12:00:00.750 UTC);

    fn key_set() -> KeySet {
        KeySet::new(SigningKey::generate(NOW).unwrap()).unwrap()
    }

    fn subject() -> SpiffeId {
        SpiffeId::parse("spiffe://example.org/agent/crm-bot").unwrap()
    }

    fn owner() -> Email {
        Email::new("alice@example.org").unwrap()
    }

    fn decode_part(part: &str) -> Value {
        serde_json::from_slice(&base64url::decode(part).unwrap()).unwrap()
    }

    #[test]
    fn token_has_expected_header_and_claims() {
        let set = key_set();
        let (subject, owner) = (subject(), owner());
        let request = MintRequest {
            issuer: "https://sigil.example.org",
            subject: &subject,
            audience: "https://crm.example.org",
            owner: &owner,
            lifetime: Duration::minutes(5),
            now: NOW,
        };

        let minted = set.mint(&request).unwrap();

        let parts: Vec<&str> = minted.token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(
            decode_part(parts[0]),
            json!({"alg": "ES256", "kid": set.current().kid(), "typ": "JWT"})
        );
        let iat = NOW.unix_timestamp();
        assert_eq!(
            decode_part(parts[1]),
            json!({
                "iss": "https://sigil.example.org",
                "sub": "spiffe://example.org/agent/crm-bot",
                "aud": "https://crm.example.org",
                "exp": iat + 300,
                "iat": iat,
                "nbf": iat,
                "jti": minted.jti,
                "owner": "alice@example.org",
            })
        );
        assert_eq!(base64url::decode(parts[2]).unwrap().len(), 64);
        assert_eq!(minted.expires_at.unix_timestamp(), iat + 300);
        assert_eq!(minted.token.len(), minted.token.capacity());
    }

    #[test]
    fn jti_is_128_random_bits() {
        let set = key_set();
        let (subject, owner) = (subject(), owner());
        let request = MintRequest {
            issuer: "https://sigil.example.org",
            subject: &subject,
            audience: "crm",
            owner: &owner,
            lifetime: Duration::minutes(5),
            now: NOW,
        };

        let first = set.mint(&request).unwrap();
        let second = set.mint(&request).unwrap();

        assert_eq!(base64url::decode(&first.jti).unwrap().len(), 16);
        assert_ne!(first.jti, second.jti);
    }

    #[test]
    fn bad_audience_rejected() {
        let set = key_set();
        let (subject, owner) = (subject(), owner());
        for audience in ["", "crm\n", "crm\u{0}", "c\u{7f}rm", "crm\u{85}"] {
            let request = MintRequest {
                issuer: "https://sigil.example.org",
                subject: &subject,
                audience,
                owner: &owner,
                lifetime: Duration::minutes(5),
                now: NOW,
            };

            let err = set.mint(&request).unwrap_err();

            assert!(
                matches!(err, JwtError::InvalidAudience { .. }),
                "{audience:?}: {err}"
            );
        }
    }

    #[test]
    fn bad_issuer_rejected() {
        let set = key_set();
        let (subject, owner) = (subject(), owner());
        for issuer in ["", "https://sigil\t.example.org"] {
            let request = MintRequest {
                issuer,
                subject: &subject,
                audience: "crm",
                owner: &owner,
                lifetime: Duration::minutes(5),
                now: NOW,
            };

            let err = set.mint(&request).unwrap_err();

            assert!(
                matches!(err, JwtError::InvalidIssuer { .. }),
                "{issuer:?}: {err}"
            );
        }
    }

    #[test]
    fn lifetime_limits() {
        let set = key_set();
        let (subject, owner) = (subject(), owner());
        let request = |lifetime| MintRequest {
            issuer: "https://sigil.example.org",
            subject: &subject,
            audience: "crm",
            owner: &owner,
            lifetime,
            now: NOW,
        };

        for lifetime in [
            Duration::ZERO,
            Duration::milliseconds(999),
            Duration::seconds(-5),
            Duration::hours(1) + Duration::SECOND,
            Duration::days(1),
        ] {
            let err = set.mint(&request(lifetime)).unwrap_err();
            assert!(
                matches!(err, JwtError::InvalidLifetime { .. }),
                "{lifetime}: {err}"
            );
        }
        assert!(set.mint(&request(Duration::SECOND)).is_ok());
        assert!(set.mint(&request(Duration::hours(1))).is_ok());
    }

    #[test]
    fn oversized_token_rejected() {
        let set = key_set();
        let (subject, owner) = (subject(), owner());
        let audience = "a".repeat(MAX_TOKEN_LEN);
        let request = MintRequest {
            issuer: "https://sigil.example.org",
            subject: &subject,
            audience: &audience,
            owner: &owner,
            lifetime: Duration::minutes(5),
            now: NOW,
        };

        let err = set.mint(&request).unwrap_err();

        assert!(matches!(err, JwtError::TokenTooLarge { .. }), "{err}");
    }

    #[test]
    fn debug_redacts_token() {
        let set = key_set();
        let (subject, owner) = (subject(), owner());
        let request = MintRequest {
            issuer: "https://sigil.example.org",
            subject: &subject,
            audience: "crm",
            owner: &owner,
            lifetime: Duration::minutes(5),
            now: NOW,
        };
        let minted = set.mint(&request).unwrap();

        let debug = format!("{minted:?}");

        assert!(debug.contains("redacted"), "{debug}");
        for part in minted.token.split('.') {
            assert!(!debug.contains(part), "{debug}");
        }
    }
}
