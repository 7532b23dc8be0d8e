//! Classifying a CSR's public key, and naming the types Sigil rejects.

use std::fmt;

use x509_parser::der_parser::asn1_rs::{Any, Tag};
use x509_parser::objects::{oid_registry, oid2sn};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_DSA, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384,
    OID_PKCS1_RSAENCRYPTION, OID_PKCS1_RSASSAPSS, OID_SIG_ED448, OID_SIG_ED25519, Oid,
};
use x509_parser::prelude::FromDer;
use x509_parser::public_key::RSAPublicKey;
use x509_parser::x509::SubjectPublicKeyInfo;

use crate::CaError;

/// Smallest RSA modulus Sigil accepts, in bits.
pub const MIN_RSA_BITS: u32 = 2048;

/// Largest RSA modulus Sigil accepts, in bits, the limit of aws-lc-rs's PKCS#1 verifiers.
pub const MAX_RSA_BITS: u32 = 8192;

/// A public key type that Sigil issues certificates for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// ECDSA on NIST P-256 (secp256r1).
    P256,
    /// ECDSA on NIST P-384 (secp384r1).
    P384,
    /// EdDSA on Curve25519 (RFC 8410).
    Ed25519,
    /// RSA with a modulus of `bits` bits, from 2048 to 8192.
    Rsa {
        /// Length of the modulus in bits.
        bits: u32,
    },
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::P256 => f.write_str("ECDSA P-256"),
            KeyType::P384 => f.write_str("ECDSA P-384"),
            KeyType::Ed25519 => f.write_str("Ed25519"),
            KeyType::Rsa { bits } => write!(f, "RSA-{bits}"),
        }
    }
}

fn unsupported(key_type: impl Into<String>) -> CaError {
    CaError::UnsupportedKeyType {
        key_type: key_type.into(),
    }
}

/// Returns the type of the key in `spki`, or an error that names the rejected type.
pub(super) fn classify(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyType, CaError> {
    let algorithm = &spki.algorithm.algorithm;

    if *algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY {
        ec_key_type(spki.algorithm.parameters.as_ref())
    } else if *algorithm == OID_PKCS1_RSAENCRYPTION {
        rsa_key_type(&spki.subject_public_key.data)
    } else if *algorithm == OID_SIG_ED25519 {
        Ok(KeyType::Ed25519)
    } else {
        Err(unsupported(other_algorithm_name(algorithm)))
    }
}

/// Returns the type of an id-ecPublicKey key from its namedCurve parameter (RFC 5480).
fn ec_key_type(parameters: Option<&Any<'_>>) -> Result<KeyType, CaError> {
    let curve = match parameters {
        Some(parameters) if parameters.tag() == Tag::Oid => parameters.as_oid().ok(),
        Some(parameters) if parameters.tag() == Tag::Sequence => {
            return Err(unsupported("EC with explicit curve parameters"));
        }
        _ => None,
    };
    let Some(curve) = curve else {
        return Err(unsupported("EC without a named curve"));
    };

    if curve == OID_EC_P256 {
        Ok(KeyType::P256)
    } else if curve == OID_NIST_EC_P384 {
        Ok(KeyType::P384)
    } else {
        Err(unsupported(curve_name(&curve)))
    }
}

fn curve_name(curve: &Oid<'_>) -> String {
    let known = match curve.to_id_string().as_str() {
        "1.2.840.10045.3.1.1" => Some("EC prime192v1 (P-192)"),
        "1.3.132.0.33" => Some("EC secp224r1 (P-224)"),
        "1.3.132.0.10" => Some("EC secp256k1"),
        "1.3.132.0.35" => Some("EC secp521r1 (P-521)"),
        _ => None,
    };

    match known {
        Some(name) => name.to_owned(),
        None => format!("EC on curve {}", describe_oid(curve)),
    }
}

/// Returns the type of an rsaEncryption key, accepting moduli of 2048 to 8192 bits.
fn rsa_key_type(public_key: &[u8]) -> Result<KeyType, CaError> {
    let invalid = |reason| CaError::InvalidPublicKey {
        key_type: "RSA".to_owned(),
        reason,
    };

    let (_, key) = RSAPublicKey::from_der(public_key)
        .map_err(|_| invalid("the RSAPublicKey structure is not valid DER"))?;
    let bits = modulus_bits(key.modulus)
        .ok_or_else(|| invalid("the modulus is zero, negative or too long"))?;

    if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        return Err(unsupported(format!("RSA-{bits}")));
    }

    Ok(KeyType::Rsa { bits })
}

/// Returns the bit length of a DER INTEGER's content bytes, or `None` when the value is zero,
/// negative, or beyond `u32` bits.
fn modulus_bits(integer_content: &[u8]) -> Option<u32> {
    let first = *integer_content.first()?;
    if first & 0x80 != 0 {
        return None;
    }

    let start = integer_content.iter().position(|&byte| byte != 0)?;
    let magnitude = &integer_content[start..];
    let leading_zero_bits = magnitude.first()?.leading_zeros();
    let total_bits = u32::try_from(magnitude.len()).ok()?.checked_mul(8)?;

    Some(total_bits - leading_zero_bits)
}

fn other_algorithm_name(algorithm: &Oid<'_>) -> String {
    let known = if *algorithm == OID_SIG_ED448 {
        Some("Ed448")
    } else if *algorithm == OID_KEY_TYPE_DSA {
        Some("DSA")
    } else if *algorithm == OID_PKCS1_RSASSAPSS {
        Some("RSASSA-PSS")
    } else {
        match algorithm.to_id_string().as_str() {
            "1.3.101.110" => Some("X25519"),
            "1.3.101.111" => Some("X448"),
            "2.16.840.1.101.3.4.3.17" => Some("ML-DSA-44"),
            "2.16.840.1.101.3.4.3.18" => Some("ML-DSA-65"),
            "2.16.840.1.101.3.4.3.19" => Some("ML-DSA-87"),
            _ => None,
        }
    };

    match known {
        Some(name) => name.to_owned(),
        None => format!("with algorithm {}", describe_oid(algorithm)),
    }
}

/// Returns the dotted form of `oid`, followed by its short name when x509-parser's OID registry has one.
pub(super) fn describe_oid(oid: &Oid<'_>) -> String {
    match oid2sn(oid, oid_registry()) {
        Ok(short_name) => format!("{oid} ({short_name})"),
        Err(_) => oid.to_id_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_display() {
        assert_eq!(KeyType::P256.to_string(), "ECDSA P-256");
        assert_eq!(KeyType::P384.to_string(), "ECDSA P-384");
        assert_eq!(KeyType::Ed25519.to_string(), "Ed25519");
        assert_eq!(KeyType::Rsa { bits: 2048 }.to_string(), "RSA-2048");
    }

    #[test]
    fn modulus_bits_counts_significant_bits() {
        assert_eq!(modulus_bits(&[0x00, 0x80, 0x00]), Some(16));
        assert_eq!(modulus_bits(&[0x01, 0x00]), Some(9));
        assert_eq!(modulus_bits(&[0x7f]), Some(7));
    }

    #[test]
    fn modulus_bits_rejects_zero_and_negative() {
        assert_eq!(modulus_bits(&[]), None);
        assert_eq!(modulus_bits(&[0x00]), None);
        assert_eq!(modulus_bits(&[0x80, 0x00]), None);
    }

    #[test]
    fn describe_oid_adds_short_name() {
        let oid = Oid::from(&[1, 2, 840, 113549, 1, 1, 5]).unwrap();

        assert_eq!(
            describe_oid(&oid),
            "1.2.840.113549.1.1.5 (sha1WithRSAEncryption)"
        );
    }

    #[test]
    fn describe_oid_of_unknown_oid() {
        let oid = Oid::from(&[1, 2, 3, 4]).unwrap();

        assert_eq!(describe_oid(&oid), "1.2.3.4");
    }
}
