//! Signatures of webhook deliveries.
//!
//! Each delivery carries two headers:
//!
//! - `X-Sigil-Timestamp`: Unix seconds when the delivery was signed;
//! - `X-Sigil-Signature`: `sha256=` and the lowercase hex HMAC-SHA256, keyed with the shared
//!   secret, of the timestamp, a `.`, and the exact request body bytes.
//!
//! Covering the timestamp lets a receiver reject replays of old deliveries; [`verify`] does so
//! outside a tolerance window.

use hmac::{Hmac, KeyInit, Mac};
use sha2_hmac::Sha256;

use crate::GovernanceError;

/// Header with the signing time.
pub const TIMESTAMP_HEADER: &str = "X-Sigil-Timestamp";
/// Header with the signature.
pub const SIGNATURE_HEADER: &str = "X-Sigil-Signature";

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable_key_length(),
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

#[allow(
    clippy::panic,
    reason = "PANIC SAFETY: HMAC takes keys of every length; new_from_slice never fails"
)]
fn unreachable_key_length() -> ! {
    panic!("HMAC rejected a key length")
}

/// Returns the `X-Sigil-Signature` value for `body` signed at `timestamp` (Unix seconds).
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    format!("sha256={}", hex::encode(digest))
}

/// Checks a delivery: the signature must match, in constant time, and the timestamp must be
/// within `tolerance_secs` of `now_secs`.
pub fn verify(
    secret: &[u8],
    signature: &str,
    timestamp: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), GovernanceError> {
    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| GovernanceError::InvalidSignature("the timestamp is not Unix seconds"))?;
    if (now_secs - timestamp).abs() > tolerance_secs {
        return Err(GovernanceError::InvalidSignature(
            "the timestamp is outside the tolerance window",
        ));
    }
    let hex_digest = signature
        .trim()
        .strip_prefix("sha256=")
        .ok_or(GovernanceError::InvalidSignature("expected `sha256=<hex>`"))?;
    let digest = hex::decode(hex_digest)
        .map_err(|_| GovernanceError::InvalidSignature("the digest is not hex"))?;
    mac(secret, timestamp, body)
        .verify_slice(&digest)
        .map_err(|_| GovernanceError::InvalidSignature("the signature does not match"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify() {
        let body = br#"{"event":"finding.opened"}"#;
        let signature = sign(b"shared-secret", 1_700_000_000, body);
        assert!(signature.starts_with("sha256="));
        assert_eq!(signature.len(), 7 + 64);
        assert_eq!(
            verify(
                b"shared-secret",
                &signature,
                "1700000000",
                body,
                1_700_000_100,
                300
            ),
            Ok(())
        );
    }

    #[test]
    fn rejects_tampering_and_replay() {
        let body = b"{}";
        let signature = sign(b"k", 1_700_000_000, body);
        assert!(verify(b"k", &signature, "1700000000", b"{ }", 1_700_000_000, 300).is_err());
        assert!(verify(b"other", &signature, "1700000000", body, 1_700_000_000, 300).is_err());
        assert!(verify(b"k", &signature, "1700000001", body, 1_700_000_000, 300).is_err());
        assert!(verify(b"k", &signature, "1700000000", body, 1_700_001_000, 300).is_err());
        assert!(verify(b"k", "md5=00", "1700000000", body, 1_700_000_000, 300).is_err());
    }

    #[test]
    fn known_vector() {
        // Computed independently with: printf '1.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            sign(b"key", 1, b"{}"),
            "sha256=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }
}
