//! TLS termination and client-certificate checks.
//!
//! The handshake requests a client certificate but does not require one, so that callers with a
//! Bearer JWT-SVID can connect too. The handshake checks only that the client holds the key of
//! the certificate it sent (rustls verifies the CertificateVerify signature). The chain and the
//! SPIFFE rules are checked right after the handshake by [`verify_client_chain`], before any
//! request is read, so that a rejected client gets an HTTP 401 with a JSON reason instead of a
//! bare TLS alert. No request from an unverified certificate is ever forwarded.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};
use sigil_agent::mtls::{CurrentSvid, MaterialWatch, split_der_certificates};
use sigil_ca::LeafSvid;
use sigil_core::TrustDomain;
use time::OffsetDateTime;

use crate::GatewayError;
use crate::denial::{Denial, DenyKind};

/// Builds the gateway's TLS server configuration: the current SVID as the serving certificate,
/// client certificates requested but optional, HTTP/2 and HTTP/1.1 offered by ALPN.
pub fn server_config(material: MaterialWatch) -> Result<ServerConfig, GatewayError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let verifier = Arc::new(DeferredClientVerifier {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| GatewayError::Tls(err.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(CurrentSvid::new(material)));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// Checks a client's certificate chain against the bundle with Sigil's SVID rules.
///
/// `sigil_ca::verify_svid` runs rustls-webpki for the signatures, validity periods and the
/// clientAuth usage, then the SPIFFE leaf rules: exactly one URI SAN, a SPIFFE ID in
/// `trust_domain`, not a CA, digitalSignature, neither keyCertSign nor cRLSign.
pub fn verify_client_chain(
    chain: &[CertificateDer<'static>],
    bundle_der: &[u8],
    trust_domain: &TrustDomain,
    now: OffsetDateTime,
) -> Result<LeafSvid, Denial> {
    let roots = split_der_certificates(bundle_der).map_err(|err| {
        tracing::error!(error = %err, "the trust bundle does not parse; rejecting client certificates");
        Denial::new(DenyKind::BadCertificate, "the gateway's trust bundle is unusable")
    })?;
    sigil_ca::verify_svid(chain, &roots, trust_domain, now).map_err(|err| {
        Denial::new(
            DenyKind::BadCertificate,
            format!("the client certificate is not a valid SVID of `{trust_domain}`: {err}"),
        )
    })
}

/// A client-certificate verifier that accepts every chain at the handshake and leaves the
/// chain checks to [`verify_client_chain`].
///
/// It still verifies the handshake signatures, so a client can only present a certificate
/// whose private key it holds.
#[derive(Debug)]
struct DeferredClientVerifier {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for DeferredClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
