//! The X.509 material the Workload API serves, converted once per rotation.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use zeroize::Zeroizing;

use crate::AgentError;

/// An X.509-SVID, its key and the trust bundle in the DER forms the Workload API sends.
pub struct X509Material {
    /// The SPIFFE ID of the SVID.
    pub spiffe_id: String,
    /// The trust domain's ID, `spiffe://<trust domain>`, which keys the bundle map.
    pub trust_domain_id: String,
    /// The chain, leaf first, as concatenated DER certificates.
    pub chain_der: Vec<u8>,
    /// The private key as PKCS#8 DER.
    pub key_pkcs8_der: Zeroizing<Vec<u8>>,
    /// The trust bundle as concatenated DER certificates.
    pub bundle_der: Vec<u8>,
}

impl std::fmt::Debug for X509Material {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("X509Material")
            .field("spiffe_id", &self.spiffe_id)
            .field("chain_len", &self.chain_der.len())
            .field("bundle_len", &self.bundle_der.len())
            .finish_non_exhaustive()
    }
}

impl X509Material {
    /// Converts the PEM files the daemon writes into Workload API material.
    pub fn from_pem(
        spiffe_id: &str,
        chain_pem: &str,
        key_pem: &str,
        bundle_pem: &str,
    ) -> Result<Self, AgentError> {
        let invalid =
            |what: &str, err: String| AgentError::Crypto(format!("cannot read the {what}: {err}"));

        let chain_der = concat_certificates(chain_pem).map_err(|err| invalid("SVID chain", err))?;
        let bundle_der =
            concat_certificates(bundle_pem).map_err(|err| invalid("trust bundle", err))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|err| invalid("SVID key", err.to_string()))?;
        let PrivateKeyDer::Pkcs8(pkcs8) = key else {
            return Err(invalid("SVID key", "expected a PKCS#8 key".into()));
        };
        let trust_domain_id = trust_domain_id(spiffe_id)
            .ok_or_else(|| invalid("SVID", format!("`{spiffe_id}` is not a SPIFFE ID")))?;

        Ok(Self {
            spiffe_id: spiffe_id.to_owned(),
            trust_domain_id,
            chain_der,
            key_pkcs8_der: Zeroizing::new(pkcs8.secret_pkcs8_der().to_vec()),
            bundle_der,
        })
    }
}

fn concat_certificates(pem: &str) -> Result<Vec<u8>, String> {
    let mut der = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        der.extend_from_slice(&cert.map_err(|err| err.to_string())?);
    }
    if der.is_empty() {
        return Err("no certificate found".into());
    }
    Ok(der)
}

/// Returns `spiffe://<trust domain>` for a SPIFFE ID.
fn trust_domain_id(spiffe_id: &str) -> Option<String> {
    let rest = spiffe_id.strip_prefix("spiffe://")?;
    let domain = rest.split('/').next().filter(|d| !d.is_empty())?;
    Some(format!("spiffe://{domain}"))
}
