//! TLS termination: rustls with optional client certificates and a hot-swappable serving
//! certificate.
//!
//! Client certificates are requested at every handshake and verified against the root CA when
//! presented, but not required there: `/v1/agent/attest`, `/v1/bundle` and `/healthz` serve
//! callers without one. Each route that needs a caller identity demands it (see
//! `extract.rs`).

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::aws_lc_rs;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sigil_core::{SpiffeId, TrustDomain};
use time::OffsetDateTime;

use crate::ServerError;
use crate::authority::Authority;

/// The client certificate chain of a connection, leaf first, and its leaf checked against the
/// SPIFFE rules once per connection; stored in request extensions.
#[derive(Debug, Clone)]
pub struct PeerCertificates {
    pub chain: Arc<Vec<CertificateDer<'static>>>,
    /// The leaf's SVID, or why it is not a valid SVID of this trust domain.
    pub svid: Arc<Result<sigil_ca::verify::LeafSvid, String>>,
    /// The revocation epoch at which the registry last confirmed this certificate as issued and
    /// not revoked; `u64::MAX` before the first check.
    pub confirmed_at_epoch: Arc<std::sync::atomic::AtomicU64>,
}

impl PeerCertificates {
    /// Applies the SPIFFE leaf rules to the chain's first certificate.
    pub fn new(chain: Vec<CertificateDer<'static>>, trust_domain: &TrustDomain) -> Self {
        let svid = match chain.first() {
            Some(leaf) => {
                sigil_ca::verify::svid_from_leaf(leaf, trust_domain).map_err(|err| err.to_string())
            }
            None => Err("the client certificate chain is empty".to_owned()),
        };
        Self {
            chain: Arc::new(chain),
            svid: Arc::new(svid),
            confirmed_at_epoch: Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX)),
        }
    }
}

/// The serving certificate, replaced when the signing CA rotates.
#[derive(Debug)]
pub struct ServingCertificate {
    current: ArcSwap<CertifiedKey>,
}

impl ServingCertificate {
    /// Loads a chain and key in PEM.
    pub fn from_pem(chain_pem: &str, key_pem: &str) -> Result<Self, ServerError> {
        Ok(Self {
            current: ArcSwap::from_pointee(certified_key(chain_pem, key_pem)?),
        })
    }

    /// Replaces the certificate used by new handshakes.
    pub fn replace(&self, chain_pem: &str, key_pem: &str) -> Result<(), ServerError> {
        self.current
            .store(Arc::new(certified_key(chain_pem, key_pem)?));
        Ok(())
    }

    /// Returns the end-entity certificate in DER.
    pub fn leaf_der(&self) -> Option<CertificateDer<'static>> {
        self.current.load().cert.first().cloned()
    }
}

impl ResolvesServerCert for ServingCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn certified_key(chain_pem: &str, key_pem: &str) -> Result<CertifiedKey, ServerError> {
    let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| ServerError::Tls(format!("serving certificate: {err}")))?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|err| ServerError::Tls(format!("serving key: {err}")))?;
    let signing_key = aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|err| ServerError::Tls(format!("serving key: {err}")))?;
    Ok(CertifiedKey::new(chain, signing_key))
}

/// Builds the rustls configuration: TLS 1.2 and 1.3, HTTP/2 and HTTP/1.1, optional client
/// certificates verified against `roots`.
pub fn server_config(
    roots: &[CertificateDer<'static>],
    serving: Arc<ServingCertificate>,
) -> Result<ServerConfig, ServerError> {
    let provider = Arc::new(aws_lc_rs::default_provider());

    let mut store = RootCertStore::empty();
    for root in roots {
        store
            .add(root.clone())
            .map_err(|err| ServerError::Tls(format!("trust bundle: {err}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|err| ServerError::Tls(err.to_string()))?;

    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|err| ServerError::Tls(err.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(serving);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The names the serving certificate covers: the loopback names plus `extra`.
pub fn serving_names(extra: &[String]) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = vec!["localhost".to_owned()];
    let mut ips: Vec<IpAddr> = vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()];
    for name in extra {
        match name.parse::<IpAddr>() {
            Ok(ip) if !ips.contains(&ip) => ips.push(ip),
            Ok(_) => {}
            Err(_) if !dns.contains(name) => dns.push(name.clone()),
            Err(_) => {}
        }
    }
    (dns, ips)
}

/// Issues a serving certificate under the current signing CA; returns `(chain PEM, key PEM)`.
pub fn issue_serving_certificate(
    authority: &Authority,
    trust_domain: &TrustDomain,
    extra_names: &[String],
    now: OffsetDateTime,
) -> Result<(String, zeroize::Zeroizing<String>), ServerError> {
    let id = SpiffeId::from_segments(trust_domain, &["sigil", "authority"])
        .map_err(|err| ServerError::Config(err.to_string()))?;
    let (dns, ips) = serving_names(extra_names);
    let lifetime = authority.signing.not_after() - now;
    let (issued, key_pem) =
        sigil_ca::issue::issue_with_new_key(&authority.signing, &id, lifetime, now, &dns, &ips)?;
    Ok((authority.chain_pem(&issued.pem), key_pem))
}
