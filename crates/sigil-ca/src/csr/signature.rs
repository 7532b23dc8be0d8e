//! Verifying a CSR's self-signature with aws-lc-rs.

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA384_ASN1, ECDSA_P384_SHA256_ASN1, ECDSA_P384_SHA384_ASN1,
    ED25519, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_2048_8192_SHA384, RSA_PKCS1_2048_8192_SHA512,
    UnparsedPublicKey, VerificationAlgorithm,
};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::oid_registry::{
    OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ED25519, Oid,
};

use super::key_type::describe_oid;
use super::{CsrPublicKey, KeyType};
use crate::CaError;

/// The signature schemes Sigil verifies on a CSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    EcdsaSha256,
    EcdsaSha384,
    Ed25519,
    RsaPkcs1Sha256,
    RsaPkcs1Sha384,
    RsaPkcs1Sha512,
}

/// Checks that the CSR is signed by the private key of `key`, its own public key.
///
/// The parameters of the signature AlgorithmIdentifier are not checked: none of the accepted
/// schemes uses them, and they lie outside the signed data.
pub(super) fn verify_self_signature(
    request: &X509CertificationRequest<'_>,
    key: &CsrPublicKey,
) -> Result<(), CaError> {
    let algorithm_oid = &request.signature_algorithm.algorithm;
    let scheme = scheme(algorithm_oid)?;
    let algorithm = verification_algorithm(scheme, key.key_type()).ok_or_else(|| {
        CaError::SignatureAlgorithmMismatch {
            algorithm: describe_oid(algorithm_oid),
            key_type: key.key_type(),
        }
    })?;

    let signature = &request.signature_value;
    if signature.unused_bits != 0 {
        return Err(CaError::MalformedCsr {
            reason: "the signature BIT STRING has unused bits".to_owned(),
        });
    }

    let signed_data = request.certification_request_info.raw;
    UnparsedPublicKey::new(algorithm, key.public_key_bytes())
        .verify(signed_data, &signature.data)
        .map_err(|_| CaError::CsrSignatureInvalid)
}

fn scheme(oid: &Oid<'_>) -> Result<Scheme, CaError> {
    let schemes = [
        (OID_SIG_ECDSA_WITH_SHA256, Scheme::EcdsaSha256),
        (OID_SIG_ECDSA_WITH_SHA384, Scheme::EcdsaSha384),
        (OID_SIG_ED25519, Scheme::Ed25519),
        (OID_PKCS1_SHA256WITHRSA, Scheme::RsaPkcs1Sha256),
        (OID_PKCS1_SHA384WITHRSA, Scheme::RsaPkcs1Sha384),
        (OID_PKCS1_SHA512WITHRSA, Scheme::RsaPkcs1Sha512),
    ];

    schemes
        .into_iter()
        .find_map(|(scheme_oid, scheme)| (*oid == scheme_oid).then_some(scheme))
        .ok_or_else(|| CaError::UnsupportedSignatureAlgorithm {
            algorithm: describe_oid(oid),
        })
}

/// Returns the aws-lc-rs algorithm for `scheme` with a key of `key_type`, or `None` when the
/// scheme does not apply to that key type.
fn verification_algorithm(
    scheme: Scheme,
    key_type: KeyType,
) -> Option<&'static dyn VerificationAlgorithm> {
    let algorithm: &'static dyn VerificationAlgorithm = match (scheme, key_type) {
        (Scheme::EcdsaSha256, KeyType::P256) => &ECDSA_P256_SHA256_ASN1,
        (Scheme::EcdsaSha384, KeyType::P256) => &ECDSA_P256_SHA384_ASN1,
        (Scheme::EcdsaSha256, KeyType::P384) => &ECDSA_P384_SHA256_ASN1,
        (Scheme::EcdsaSha384, KeyType::P384) => &ECDSA_P384_SHA384_ASN1,
        (Scheme::Ed25519, KeyType::Ed25519) => &ED25519,
        (Scheme::RsaPkcs1Sha256, KeyType::Rsa { .. }) => &RSA_PKCS1_2048_8192_SHA256,
        (Scheme::RsaPkcs1Sha384, KeyType::Rsa { .. }) => &RSA_PKCS1_2048_8192_SHA384,
        (Scheme::RsaPkcs1Sha512, KeyType::Rsa { .. }) => &RSA_PKCS1_2048_8192_SHA512,
        _ => return None,
    };

    Some(algorithm)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_cover_their_key_types() {
        let rsa = KeyType::Rsa { bits: 2048 };
        let pairs = [
            (Scheme::EcdsaSha256, KeyType::P256),
            (Scheme::EcdsaSha384, KeyType::P256),
            (Scheme::EcdsaSha256, KeyType::P384),
            (Scheme::EcdsaSha384, KeyType::P384),
            (Scheme::Ed25519, KeyType::Ed25519),
            (Scheme::RsaPkcs1Sha256, rsa),
            (Scheme::RsaPkcs1Sha384, rsa),
            (Scheme::RsaPkcs1Sha512, rsa),
        ];

        for (scheme, key_type) in pairs {
            assert!(
                verification_algorithm(scheme, key_type).is_some(),
                "{scheme:?} {key_type}"
            );
        }
    }

    #[test]
    fn schemes_do_not_cross_key_types() {
        assert!(verification_algorithm(Scheme::EcdsaSha256, KeyType::Ed25519).is_none());
        assert!(verification_algorithm(Scheme::Ed25519, KeyType::P256).is_none());
        assert!(verification_algorithm(Scheme::RsaPkcs1Sha256, KeyType::P384).is_none());
        assert!(verification_algorithm(Scheme::EcdsaSha384, KeyType::Rsa { bits: 4096 }).is_none());
    }
}
