//! JSON Web Keys (RFC 7517) for ES256 public keys, and their RFC 7638 thumbprints.

use aws_lc_rs::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use crate::base64url;

/// Length in bytes of one P-256 coordinate.
pub(crate) const P256_COORDINATE_LEN: usize = 32;

/// One public ES256 key as published in a JWKS.
///
/// Sigil publishes only EC P-256 keys, so `kty` is `EC`, `crv` is `P-256`, `alg` is `ES256` and
/// `use` is `sig`. [`crate::Verifier::new`] rejects entries with other values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type, `EC`.
    pub kty: String,
    /// Curve, `P-256`.
    pub crv: String,
    /// Base64url of the 32-byte big-endian x coordinate.
    pub x: String,
    /// Base64url of the 32-byte big-endian y coordinate.
    pub y: String,
    /// Key ID. For keys Sigil generates, the RFC 7638 SHA-256 thumbprint.
    pub kid: String,
    /// Algorithm the key signs with, `ES256`.
    pub alg: String,
    /// Public key use, `sig`.
    #[serde(rename = "use")]
    pub key_use: String,
}

impl Jwk {
    /// Builds the JWK of an uncompressed P-256 point `04 || x || y` with the given key ID.
    pub(crate) fn from_p256_point(point: &[u8], kid: String) -> Option<Self> {
        let (x, y) = split_p256_point(point)?;
        Some(Self {
            kty: "EC".to_owned(),
            crv: "P-256".to_owned(),
            x: base64url::encode(x),
            y: base64url::encode(y),
            kid,
            alg: "ES256".to_owned(),
            key_use: "sig".to_owned(),
        })
    }
}

/// A JWK Set: the document served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Jwks {
    /// The published keys, the current signing key first.
    pub keys: Vec<Jwk>,
}

/// Computes the RFC 7638 SHA-256 thumbprint of an uncompressed P-256 point `04 || x || y`.
///
/// The thumbprint hashes the required members of the EC JWK in lexicographic order with no
/// whitespace: `{"crv":"P-256","kty":"EC","x":"…","y":"…"}`.
pub(crate) fn p256_thumbprint(point: &[u8]) -> Option<String> {
    let (x, y) = split_p256_point(point)?;
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        base64url::encode(x),
        base64url::encode(y)
    );
    Some(sha256_thumbprint(canonical.as_bytes()))
}

/// Hashes the canonical JSON of a JWK with SHA-256 and encodes the digest as base64url.
fn sha256_thumbprint(canonical_json: &[u8]) -> String {
    base64url::encode(digest(&SHA256, canonical_json).as_ref())
}

/// Splits an uncompressed P-256 point `04 || x || y` into its coordinates.
fn split_p256_point(point: &[u8]) -> Option<(&[u8], &[u8])> {
    match point {
        [0x04, coordinates @ ..] if coordinates.len() == 2 * P256_COORDINATE_LEN => {
            Some(coordinates.split_at(P256_COORDINATE_LEN))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The RSA key of RFC 7638, section 3.1, in the canonical form of section 3.3.
    const RFC7638_RSA_CANONICAL: &str = concat!(
        r#"{"e":"AQAB","kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbf"#,
        "AAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93",
        "lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n",
        "91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-k",
        r#"EgU8awapJzKnqDKgw"}"#
    );

    #[test]
    fn thumbprint_matches_rfc7638_vector() {
        assert_eq!(
            sha256_thumbprint(RFC7638_RSA_CANONICAL.as_bytes()),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn point_without_prefix_rejected() {
        assert!(p256_thumbprint(&[0x05; 65]).is_none());
        assert!(p256_thumbprint(&[0x04; 64]).is_none());
        assert!(Jwk::from_p256_point(&[0x04; 97], String::new()).is_none());
    }

    #[test]
    fn jwk_serializes_with_use_member() {
        let mut point = vec![0x04];
        point.extend([1; 32]);
        point.extend([2; 32]);

        let jwk = Jwk::from_p256_point(&point, "kid-1".to_owned()).unwrap();
        let json = serde_json::to_value(&jwk).unwrap();

        assert_eq!(json["use"], "sig");
        assert_eq!(json["x"], base64url::encode(&[1; 32]));
        assert_eq!(json["y"], base64url::encode(&[2; 32]));
        assert!(json.get("key_use").is_none());
    }
}
