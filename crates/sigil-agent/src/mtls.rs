//! Mutual TLS between agents, from the identity the Workload API serves.
//!
//! [`server_config`] and [`client_config`] build rustls configurations whose certificate follows
//! every rotation (they read the newest SVID at each handshake) and that accept a peer only if
//! its certificate chains to the trust bundle, satisfies the SPIFFE leaf rules (one URI SAN, not
//! a CA, digitalSignature) and names a SPIFFE ID on the allow-list. Host names play no part:
//! SPIFFE peers are identified by their SPIFFE ID alone.

use std::collections::BTreeSet;
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, aws_lc_rs};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use sigil_ca::verify::{ChainUsage, svid_from_leaf, verify_chain_for_usage};
use sigil_core::{SpiffeId, TrustDomain};
use tokio::sync::watch;

use crate::AgentError;
use crate::workload::X509Material;

/// The newest X.509 material, as the daemon publishes it.
pub type MaterialWatch = watch::Receiver<Option<Arc<X509Material>>>;

/// SPIFFE IDs a peer may present.
#[derive(Debug, Clone)]
pub struct AllowList {
    trust_domain: TrustDomain,
    ids: BTreeSet<SpiffeId>,
}

impl AllowList {
    /// Allows exactly `ids`, which must all belong to `trust_domain`.
    pub fn new(
        trust_domain: TrustDomain,
        ids: impl IntoIterator<Item = SpiffeId>,
    ) -> Result<Self, AgentError> {
        let ids: BTreeSet<SpiffeId> = ids.into_iter().collect();
        if let Some(foreign) = ids.iter().find(|id| !id.is_member_of(&trust_domain)) {
            return Err(AgentError::Crypto(format!(
                "allow-list entry `{foreign}` is outside the trust domain `{trust_domain}`"
            )));
        }
        Ok(Self { trust_domain, ids })
    }

    /// Applies the SPIFFE leaf rules to `leaf` and checks its ID against the list.
    fn check(&self, leaf: &CertificateDer<'_>) -> Result<SpiffeId, rustls::Error> {
        let svid = svid_from_leaf(leaf, &self.trust_domain).map_err(|err| {
            rustls::Error::General(format!("peer certificate is not a valid SVID: {err}"))
        })?;
        if !self.ids.contains(&svid.spiffe_id) {
            return Err(rustls::Error::General(format!(
                "peer `{}` is not on the allow-list",
                svid.spiffe_id
            )));
        }
        Ok(svid.spiffe_id)
    }
}

/// Builds a server configuration that requires a client SVID on `allow`.
pub fn server_config(
    material: MaterialWatch,
    allow: AllowList,
) -> Result<ServerConfig, AgentError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let verifier = Arc::new(SpiffeVerifier::new(
        material.clone(),
        allow,
        provider.clone(),
    ));
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(CurrentSvid(material)));
    Ok(config)
}

/// Builds a client configuration that presents the current SVID and accepts a server SVID on
/// `allow`.
pub fn client_config(
    material: MaterialWatch,
    allow: AllowList,
) -> Result<ClientConfig, AgentError> {
    let provider = Arc::new(aws_lc_rs::default_provider());
    let verifier = Arc::new(SpiffeVerifier::new(
        material.clone(),
        allow,
        provider.clone(),
    ));
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_cert_resolver(Arc::new(CurrentSvid(material)));
    Ok(config)
}

fn tls_error(err: rustls::Error) -> AgentError {
    AgentError::Crypto(format!("TLS configuration: {err}"))
}

/// Serves the newest SVID at each handshake, so rotations need no new configuration.
///
/// It is both a server and a client certificate resolver; `sigil gateway` uses it for its own
/// serving certificate and for its calls to the authority.
#[derive(Debug)]
pub struct CurrentSvid(MaterialWatch);

impl CurrentSvid {
    /// Follows `material`; the resolver has no certificate until the first SVID is published.
    pub fn new(material: MaterialWatch) -> Self {
        Self(material)
    }

    fn certified_key(&self) -> Option<Arc<CertifiedKey>> {
        let material = self.0.borrow().clone()?;
        let chain = split_der_certificates(&material.chain_der).ok()?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(material.key_pkcs8_der.to_vec()));
        let signing_key = aws_lc_rs::sign::any_supported_type(&key).ok()?;
        Some(Arc::new(CertifiedKey::new(chain, signing_key)))
    }
}

impl ResolvesServerCert for CurrentSvid {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.certified_key()
    }
}

impl ResolvesClientCert for CurrentSvid {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.certified_key()
    }

    fn has_certs(&self) -> bool {
        self.0.borrow().is_some()
    }
}

/// Verifies a peer's chain against the current bundle, then its SPIFFE ID against the list.
#[derive(Debug)]
struct SpiffeVerifier {
    material: MaterialWatch,
    allow: AllowList,
    algorithms: WebPkiSupportedAlgorithms,
}

impl SpiffeVerifier {
    fn new(material: MaterialWatch, allow: AllowList, provider: Arc<CryptoProvider>) -> Self {
        Self {
            material,
            allow,
            algorithms: provider.signature_verification_algorithms,
        }
    }

    fn verify_peer(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
        server: bool,
    ) -> Result<(), rustls::Error> {
        let material = self.material.borrow().clone().ok_or_else(|| {
            rustls::Error::General("no trust bundle yet: the SVID has not been obtained".into())
        })?;
        let roots = split_der_certificates(&material.bundle_der)
            .map_err(|err| rustls::Error::General(format!("trust bundle: {err}")))?;

        let mut chain = vec![end_entity.clone()];
        chain.extend(intermediates.iter().cloned());
        let usage = if server {
            ChainUsage::ServerAuth
        } else {
            ChainUsage::ClientAuth
        };
        let now = time::OffsetDateTime::from_unix_timestamp(
            i64::try_from(now.as_secs()).unwrap_or(i64::MAX),
        )
        .map_err(|err| rustls::Error::General(format!("invalid time: {err}")))?;
        verify_chain_for_usage(&chain, &roots, now, usage).map_err(|err| {
            rustls::Error::General(format!("peer certificate chain rejected: {err}"))
        })?;
        let id = self.allow.check(end_entity)?;
        tracing::debug!(peer = %id, "peer SVID accepted");
        Ok(())
    }
}

impl ServerCertVerifier for SpiffeVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.verify_peer(end_entity, intermediates, now, true)?;
        Ok(ServerCertVerified::assertion())
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

impl ClientCertVerifier for SpiffeVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verify_peer(end_entity, intermediates, now, false)?;
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

/// Splits concatenated DER certificates, as the Workload API carries them.
pub fn split_der_certificates(der: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut certificates = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let (tail, _) = x509_parser::parse_x509_certificate(rest)
            .map_err(|err| format!("malformed DER certificate: {err}"))?;
        let length = rest.len() - tail.len();
        certificates.push(CertificateDer::from(rest[..length].to_vec()));
        rest = tail;
    }
    Ok(certificates)
}

/// Follows a Workload API (Sigil's or any other SPIFFE implementation's) and keeps the newest
/// X.509 material in the returned watch, for [`server_config`] and [`client_config`].
///
/// `endpoint` is a Workload API address such as `unix:/run/sigil/agent.sock`. The first SVID is
/// awaited before this returns; a background task then applies every rotation until the stream
/// ends, logging why it ended.
pub async fn watch_workload_api(endpoint: &str) -> Result<MaterialWatch, AgentError> {
    use tokio_stream::StreamExt;

    let client = spiffe::WorkloadApiClient::connect_to(endpoint)
        .await
        .map_err(|err| {
            AgentError::Crypto(format!(
                "cannot connect to the Workload API at {endpoint}: {err}"
            ))
        })?;
    let mut stream = client
        .stream_x509_contexts()
        .await
        .map_err(|err| AgentError::Crypto(format!("Workload API stream failed: {err}")))?;

    let first = match stream.next().await {
        Some(Ok(context)) => material_from_context(&context)?,
        Some(Err(err)) => {
            return Err(AgentError::Crypto(format!(
                "Workload API stream failed: {err}"
            )));
        }
        None => {
            return Err(AgentError::Crypto(
                "the Workload API closed the stream before sending an SVID".into(),
            ));
        }
    };
    let (sender, receiver) = watch::channel(Some(Arc::new(first)));

    tokio::spawn(async move {
        while let Some(update) = stream.next().await {
            match update
                .map_err(|err| err.to_string())
                .and_then(|c| material_from_context(&c).map_err(|e| e.to_string()))
            {
                Ok(material) => {
                    tracing::debug!(spiffe_id = %material.spiffe_id, "Workload API pushed a new SVID");
                    sender.send_replace(Some(Arc::new(material)));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "ignoring an unusable Workload API update")
                }
            }
        }
        tracing::warn!("the Workload API stream ended; TLS keeps using the last SVID");
    });
    Ok(receiver)
}

fn material_from_context(context: &spiffe::X509Context) -> Result<X509Material, AgentError> {
    let svid = context
        .default_svid()
        .ok_or_else(|| AgentError::Crypto("the Workload API sent no SVID".into()))?;
    let trust_domain = svid.spiffe_id().trust_domain();
    let bundle = context.bundle_set().get(trust_domain).ok_or_else(|| {
        AgentError::Crypto(format!(
            "the Workload API sent no bundle for {trust_domain}"
        ))
    })?;

    Ok(X509Material {
        spiffe_id: svid.spiffe_id().to_string(),
        trust_domain_id: format!("spiffe://{}", svid.spiffe_id().trust_domain_name()),
        chain_der: svid
            .cert_chain()
            .iter()
            .flat_map(|c| c.as_ref().to_vec())
            .collect(),
        key_pkcs8_der: zeroize::Zeroizing::new(svid.private_key().as_ref().to_vec()),
        bundle_der: bundle
            .authorities()
            .iter()
            .flat_map(|c| c.as_ref().to_vec())
            .collect(),
    })
}
