//! Chain verification with rustls-webpki.

use rustls_pki_types::SignatureVerificationAlgorithm;
use rustls_pki_types::{CertificateDer, UnixTime};
use sigil_core::TrustDomain;
use time::OffsetDateTime;
use webpki::{EndEntityCert, KeyUsage, anchor_from_trusted_cert, aws_lc_rs};

use super::{LeafSvid, svid_from_leaf};
use crate::CaError;
use crate::error::rfc3339;
use crate::validity::to_certificate_time;

/// Signature algorithms accepted in a chain, all from aws-lc-rs.
///
/// The list is explicit, rather than webpki's `ALL_VERIFICATION_ALGS`, because that list also
/// takes in ring's algorithms whenever another crate in the build enables webpki's `ring`
/// feature.
static VERIFICATION_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    aws_lc_rs::ECDSA_P256_SHA256,
    aws_lc_rs::ECDSA_P256_SHA384,
    aws_lc_rs::ECDSA_P384_SHA256,
    aws_lc_rs::ECDSA_P384_SHA384,
    aws_lc_rs::ED25519,
    aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
];

/// Verifies that `chain` (the leaf first, then intermediates) leads to one of `roots` and is
/// valid at `now` for TLS client authentication.
///
/// rustls-webpki checks the signatures with aws-lc-rs, the validity periods, the CA flags and
/// path length constraints, the clientAuth extended key usage and critical extensions. It
/// checks no revocation and no SPIFFE shape rules: [`verify_svid`] adds the latter.
pub fn verify_chain(
    chain: &[CertificateDer<'_>],
    roots: &[CertificateDer<'_>],
    now: OffsetDateTime,
) -> Result<(), CaError> {
    verify_chain_for_usage(chain, roots, now, ChainUsage::ClientAuth)
}

/// The extended key usage a chain is verified for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainUsage {
    /// The peer is a TLS client (`id-kp-clientAuth`).
    ClientAuth,
    /// The peer is a TLS server (`id-kp-serverAuth`); no host name is checked.
    ServerAuth,
}

/// Like [`verify_chain`], for the given extended key usage.
pub fn verify_chain_for_usage(
    chain: &[CertificateDer<'_>],
    roots: &[CertificateDer<'_>],
    now: OffsetDateTime,
    usage: ChainUsage,
) -> Result<(), CaError> {
    let (leaf, intermediates) = chain.split_first().ok_or(CaError::EmptyChain)?;

    let anchors = roots
        .iter()
        .map(|root| anchor_from_trusted_cert(root))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| CaError::InvalidTrustAnchor { source })?;
    let leaf = EndEntityCert::try_from(leaf).map_err(chain_error)?;
    let time = unix_time(now)?;

    leaf.verify_for_usage(
        VERIFICATION_ALGORITHMS,
        &anchors,
        intermediates,
        time,
        match usage {
            ChainUsage::ClientAuth => KeyUsage::client_auth(),
            ChainUsage::ServerAuth => KeyUsage::server_auth(),
        },
        None,
        None,
    )
    .map_err(chain_error)?;

    Ok(())
}

/// Verifies `chain` with [`verify_chain`], then checks its leaf with [`svid_from_leaf`] and
/// returns the leaf's facts.
pub fn verify_svid(
    chain: &[CertificateDer<'_>],
    roots: &[CertificateDer<'_>],
    trust_domain: &TrustDomain,
    now: OffsetDateTime,
) -> Result<LeafSvid, CaError> {
    verify_chain(chain, roots, now)?;

    let leaf = chain.first().ok_or(CaError::EmptyChain)?;
    svid_from_leaf(leaf, trust_domain)
}

fn unix_time(now: OffsetDateTime) -> Result<UnixTime, CaError> {
    let seconds = to_certificate_time(now)?.unix_timestamp();
    let seconds = u64::try_from(seconds).map_err(|_| CaError::InvalidTime { time: now })?;

    Ok(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        seconds,
    )))
}

fn chain_error(source: webpki::Error) -> CaError {
    CaError::ChainInvalid {
        reason: chain_error_reason(&source),
        source,
    }
}

fn chain_error_reason(error: &webpki::Error) -> String {
    match error {
        webpki::Error::CertExpired { not_after, .. } => {
            format!("a certificate expired at {}", unix_time_text(not_after))
        }
        webpki::Error::CertNotValidYet { not_before, .. } => {
            format!(
                "a certificate is not valid before {}",
                unix_time_text(not_before)
            )
        }
        webpki::Error::UnknownIssuer => {
            "no chain leads to a trusted root; the certificate was issued by another CA".to_owned()
        }
        webpki::Error::InvalidSignatureForPublicKey => {
            "a signature in the chain does not verify; it may come from another CA with the \
             same name"
                .to_owned()
        }
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the leaf lacks the clientAuth extended key usage".to_owned()
        }
        other => other.to_string(),
    }
}

fn unix_time_text(time: &UnixTime) -> String {
    let seconds = i64::try_from(time.as_secs()).unwrap_or(i64::MAX);

    match OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(time) => rfc3339(&time),
        Err(_) => format!("{seconds} seconds after 1970"),
    }
}
