//! The one error type of the crate.

use sigil_core::CoreError;
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::csr::KeyType;

/// Errors of the certificate authority.
///
/// Each message names the offending value and, where the caller can act, what to do next, so
/// that it can be shown to an API client or an operator unchanged.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CaError {
    /// The CSR input is longer than [`crate::csr::MAX_CSR_LEN`].
    #[error("CSR is {len} bytes, more than the maximum of {max}: send a single PKCS#10 CSR")]
    CsrTooLarge { len: usize, max: usize },

    /// The CSR is not a well-formed PEM or DER PKCS#10 request.
    #[error(
        "malformed CSR: {reason}; send one PEM `CERTIFICATE REQUEST` block or a DER PKCS#10 CSR"
    )]
    MalformedCsr { reason: String },

    /// The CSR's public key is of a type Sigil does not issue certificates for.
    #[error(
        "unsupported key type {key_type}: use ECDSA P-256, P-384, Ed25519 or RSA of 2048 to \
         8192 bits"
    )]
    UnsupportedKeyType { key_type: String },

    /// The CSR's public key has a supported type but an invalid or non-canonical encoding.
    #[error("invalid {key_type} public key in CSR: {reason}")]
    InvalidPublicKey {
        key_type: String,
        reason: &'static str,
    },

    /// The CSR is signed with an algorithm Sigil does not verify.
    #[error(
        "unsupported CSR signature algorithm {algorithm}: sign the CSR with ECDSA (SHA-256 or \
         SHA-384), Ed25519, or RSA PKCS#1 v1.5 (SHA-256, SHA-384 or SHA-512)"
    )]
    UnsupportedSignatureAlgorithm { algorithm: String },

    /// The CSR's signature algorithm belongs to a different key type than its public key.
    #[error(
        "CSR signature algorithm {algorithm} does not match its {key_type} key: sign the CSR \
         with an algorithm for that key type"
    )]
    SignatureAlgorithmMismatch {
        algorithm: String,
        key_type: KeyType,
    },

    /// The CSR's signature does not verify with the CSR's own public key.
    #[error(
        "CSR self-signature check failed: the signature does not verify with the CSR's public \
         key; create the CSR again, signed with its own private key"
    )]
    CsrSignatureInvalid,

    /// A certificate lifetime that is zero, negative or beyond the representable dates.
    #[error(
        "invalid certificate lifetime {lifetime}: use a positive lifetime of at most a few years"
    )]
    InvalidLifetime { lifetime: Duration },

    /// A time that cannot be written into a certificate or used for verification.
    #[error("invalid time {}: use a UTC time from 1970 on", rfc3339(.time))]
    InvalidTime { time: OffsetDateTime },

    /// The issuing CA is already expired at the requested issuance time.
    #[error(
        "the issuing CA expired at {} (now {}): rotate the CA before issuing",
        rfc3339(.not_after),
        rfc3339(.now)
    )]
    IssuerExpired {
        not_after: OffsetDateTime,
        now: OffsetDateTime,
    },

    /// A DNS name requested for a certificate SAN is not a valid DNS name.
    #[error("invalid DNS name `{name}` for a subject alternative name: {reason}")]
    InvalidDnsName { name: String, reason: String },

    /// rcgen failed to build or sign a certificate or CRL.
    #[error("failed to {operation}: {source}")]
    Rcgen {
        operation: &'static str,
        #[source]
        source: rcgen::Error,
    },

    /// aws-lc-rs failed to generate a key pair.
    #[error("failed to generate an ECDSA P-256 key pair: {reason}")]
    KeyGeneration { reason: String },

    /// A CA certificate that cannot serve as a Sigil CA.
    #[error("invalid CA certificate: {reason}")]
    InvalidCaCertificate { reason: String },

    /// A CA private key that cannot be read.
    #[error("invalid CA private key: {reason}; use the PKCS#8 ECDSA P-256 `PRIVATE KEY` PEM")]
    InvalidCaKey { reason: String },

    /// The CA private key does not belong to the CA certificate.
    #[error(
        "CA private key does not match the public key of CA certificate {fingerprint}: load the \
         key that was created with that certificate"
    )]
    CaKeyMismatch { fingerprint: String },

    /// A serial number to revoke that is not Sigil serial hex.
    #[error(
        "invalid serial number `{value}` to revoke: expected 1 to 20 bytes as lowercase \
         hexadecimal with an even number of digits"
    )]
    InvalidSerial { value: String },

    /// A CRL whose nextUpdate is not after its thisUpdate.
    #[error(
        "invalid CRL window: nextUpdate {} must be later than thisUpdate {}",
        rfc3339(.next_update),
        rfc3339(.this_update)
    )]
    InvalidCrlWindow {
        this_update: OffsetDateTime,
        next_update: OffsetDateTime,
    },

    /// A certificate that is not valid DER X.509.
    #[error("malformed certificate: {reason}")]
    MalformedCertificate { reason: String },

    /// An SVID with no URI SAN, or with more than one.
    #[error("an SVID must have exactly one URI SAN, found {}{}", .uris.len(), list_uris(.uris))]
    UriSanCount { uris: Vec<String> },

    /// The URI SAN of an SVID is not a SPIFFE ID with a path.
    #[error("URI SAN `{uri}` is not a valid SPIFFE ID: {source}")]
    InvalidSpiffeId {
        uri: String,
        #[source]
        source: CoreError,
    },

    /// The SPIFFE ID of an SVID belongs to another trust domain.
    #[error("SPIFFE ID `{spiffe_id}` is not in trust domain `{trust_domain}`")]
    ForeignTrustDomain {
        spiffe_id: String,
        trust_domain: String,
    },

    /// An SVID whose basicConstraints mark it as a CA.
    #[error(
        "certificate is a CA (basicConstraints CA=true), but an SVID must be an end-entity certificate"
    )]
    LeafIsCa,

    /// An SVID without the key usage extension.
    #[error(
        "certificate has no key usage extension, but an SVID must have key usage digitalSignature"
    )]
    MissingKeyUsage,

    /// An SVID whose key usage lacks digitalSignature.
    #[error("certificate key usage lacks digitalSignature, which an SVID must have")]
    MissingDigitalSignature,

    /// An SVID whose key usage allows signing certificates or CRLs.
    #[error("certificate key usage includes {usage}, which an SVID must not have")]
    ForbiddenKeyUsage { usage: &'static str },

    /// A certificate chain with no certificate in it.
    #[error("certificate chain is empty: send the leaf certificate first, then its intermediates")]
    EmptyChain,

    /// A root certificate that webpki cannot use as a trust anchor.
    #[error("invalid trust anchor: {source}")]
    InvalidTrustAnchor {
        #[source]
        source: webpki::Error,
    },

    /// The chain does not verify to any of the roots.
    #[error("certificate chain verification failed: {reason}")]
    ChainInvalid {
        reason: String,
        #[source]
        source: webpki::Error,
    },
}

impl CaError {
    /// Returns a function that wraps an rcgen error raised while trying to do `operation`.
    pub(crate) fn rcgen(operation: &'static str) -> impl FnOnce(rcgen::Error) -> CaError {
        move |source| CaError::Rcgen { operation, source }
    }
}

/// Formats a time as RFC 3339, falling back to the `time` crate's own format for a time that
/// RFC 3339 cannot express.
pub(crate) fn rfc3339(time: &OffsetDateTime) -> String {
    time.format(&Rfc3339).unwrap_or_else(|_| time.to_string())
}

fn list_uris(uris: &[String]) -> String {
    if uris.is_empty() {
        return String::new();
    }

    let quoted: Vec<String> = uris.iter().map(|uri| format!("`{uri}`")).collect();
    format!(" ({})", quoted.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_is_send_sync_static() {
        fn assert_send_sync<T: Send + Sync + 'static>() {}

        assert_send_sync::<CaError>();
    }

    #[test]
    fn uri_san_count_lists_the_uris() {
        let error = CaError::UriSanCount {
            uris: vec!["spiffe://a/b".to_owned(), "https://c".to_owned()],
        };

        assert_eq!(
            error.to_string(),
            "an SVID must have exactly one URI SAN, found 2 (`spiffe://a/b`, `https://c`)"
        );
    }

    #[test]
    fn uri_san_count_of_zero() {
        let error = CaError::UriSanCount { uris: Vec::new() };

        assert_eq!(
            error.to_string(),
            "an SVID must have exactly one URI SAN, found 0"
        );
    }

    #[test]
    fn times_are_shown_as_rfc3339() {
        let error = CaError::InvalidTime {
            time: OffsetDateTime::UNIX_EPOCH - Duration::seconds(1),
        };

        assert_eq!(
            error.to_string(),
            "invalid time 1969-12-31T23:59:59Z: use a UTC time from 1970 on"
        );
    }
}
