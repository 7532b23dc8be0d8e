//! Checks of the claims of a JWT-SVID whose signature has been verified.

use serde_json::{Map, Value};
use sigil_core::{SpiffeId, TrustDomain};
use time::OffsetDateTime;

use crate::JwtError;
use crate::verify::{CLOCK_SKEW_LEEWAY, VerifiedClaims};

/// The JSON type every time claim must have.
const NUMERIC_DATE: &str = "an integer NumericDate (seconds since 1970) between the years -9999 \
                            and 9999";

/// Checks the claims against the verifier's trust domain, the expected audiences and `now`.
pub(crate) fn check_claims(
    payload: Map<String, Value>,
    trust_domain: &TrustDomain,
    expected_audiences: &[&str],
    now: OffsetDateTime,
) -> Result<VerifiedClaims, JwtError> {
    let expires_at = required_time(&payload, "exp")?;
    let not_before = optional_time(&payload, "nbf")?;
    let issued_at = required_time(&payload, "iat")?;

    // RFC 7519, section 4.1.4: the token must not be accepted on or after `exp`.
    if now >= expires_at.saturating_add(CLOCK_SKEW_LEEWAY) {
        return Err(JwtError::Expired {
            expired_at: expires_at,
        });
    }
    let latest_start = now.saturating_add(CLOCK_SKEW_LEEWAY);
    if let Some(not_before) = not_before
        && not_before > latest_start
    {
        return Err(JwtError::NotYetValid {
            claim: "nbf",
            valid_from: not_before,
        });
    }
    if issued_at > latest_start {
        return Err(JwtError::NotYetValid {
            claim: "iat",
            valid_from: issued_at,
        });
    }

    let audience = audience(&payload)?;
    if !audience
        .iter()
        .any(|aud| expected_audiences.contains(&aud.as_str()))
    {
        return Err(JwtError::AudienceMismatch);
    }

    let subject = subject(&payload, trust_domain)?;
    let issuer = optional_string(&payload, "iss")?.map(str::to_owned);
    let owner = optional_string(&payload, "owner")?.map(str::to_owned);
    let jti = match optional_string(&payload, "jti")? {
        None => return Err(JwtError::MissingClaim { claim: "jti" }),
        Some("") => {
            return Err(JwtError::InvalidClaimType {
                claim: "jti",
                expected: "a non-empty string",
            });
        }
        Some(jti) => jti.to_owned(),
    };

    Ok(VerifiedClaims {
        subject,
        audience,
        issuer,
        expires_at,
        issued_at,
        jti,
        owner,
        raw: payload,
    })
}

fn required_time(
    payload: &Map<String, Value>,
    claim: &'static str,
) -> Result<OffsetDateTime, JwtError> {
    optional_time(payload, claim)?.ok_or(JwtError::MissingClaim { claim })
}

/// Reads a NumericDate claim. Only JSON integers are accepted: RFC 7519 allows fractions, but a
/// float, a numeric string or `null` in a time claim is a sign of a confused or forged issuer.
fn optional_time(
    payload: &Map<String, Value>,
    claim: &'static str,
) -> Result<Option<OffsetDateTime>, JwtError> {
    let invalid = JwtError::InvalidClaimType {
        claim,
        expected: NUMERIC_DATE,
    };
    match payload.get(claim) {
        None => Ok(None),
        Some(Value::Number(number)) => {
            let seconds = number.as_i64().ok_or(invalid)?;
            OffsetDateTime::from_unix_timestamp(seconds)
                .map(Some)
                .map_err(|_| JwtError::InvalidClaimType {
                    claim,
                    expected: NUMERIC_DATE,
                })
        }
        Some(_) => Err(invalid),
    }
}

/// Reads `aud`, a string or an array of strings (RFC 7519, section 4.1.3).
fn audience(payload: &Map<String, Value>) -> Result<Vec<String>, JwtError> {
    let invalid = || JwtError::InvalidClaimType {
        claim: "aud",
        expected: "a string or an array of strings",
    };
    match payload.get("aud") {
        None => Err(JwtError::MissingClaim { claim: "aud" }),
        Some(Value::String(aud)) => Ok(vec![aud.clone()]),
        Some(Value::Array(values)) => values
            .iter()
            .map(|value| value.as_str().map(str::to_owned).ok_or_else(invalid))
            .collect(),
        Some(_) => Err(invalid()),
    }
}

/// Reads `sub` as a workload SPIFFE ID in `trust_domain`.
fn subject(payload: &Map<String, Value>, trust_domain: &TrustDomain) -> Result<SpiffeId, JwtError> {
    let sub = optional_string(payload, "sub")?.ok_or(JwtError::MissingClaim { claim: "sub" })?;
    let subject = SpiffeId::parse(sub).map_err(JwtError::InvalidSubject)?;
    if !subject.is_member_of(trust_domain) {
        return Err(JwtError::ForeignTrustDomain {
            subject_trust_domain: subject.trust_domain_name().to_owned(),
            expected: trust_domain.as_str().to_owned(),
        });
    }
    Ok(subject)
}

fn optional_string<'p>(
    payload: &'p Map<String, Value>,
    claim: &'static str,
) -> Result<Option<&'p str>, JwtError> {
    match payload.get(claim) {
        None => Ok(None),
        Some(Value::String(value)) => Ok(Some(value)),
        Some(_) => Err(JwtError::InvalidClaimType {
            claim,
            expected: "a string",
        }),
    }
}
