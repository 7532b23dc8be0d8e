//! Obtaining an X.509-SVID: attestation with a join token, or renewal with the current SVID.

use rcgen::{CertificateParams, KeyPair};
use sigil_client::{Identity, SigilClient};
use sigil_proto::{AttestRequest, RenewRequest, SvidResponse};
use time::OffsetDateTime;
use x509_parser::pem::Pem;

use crate::AgentError;
use crate::files::OutputDir;

/// What one run needs.
#[derive(Clone)]
pub struct RunOptions {
    pub server: String,
    pub bundle_pem: String,
    pub join_token: Option<String>,
    pub out: OutputDir,
}

/// Shows whether a join token is set, never the token itself.
impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("server", &self.server)
            .field("bundle_pem_len", &self.bundle_pem.len())
            .field(
                "join_token",
                &self.join_token.as_ref().map(|_| "<redacted>"),
            )
            .field("out", &self.out)
            .finish()
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// First SVID obtained with the join token.
    Attested {
        spiffe_id: String,
        serial: String,
        expires_at: OffsetDateTime,
    },
    /// SVID renewed over mutual TLS with the previous one.
    Renewed {
        spiffe_id: String,
        serial: String,
        expires_at: OffsetDateTime,
    },
}

impl Outcome {
    /// Returns the expiry of the SVID now on disk.
    pub fn expires_at(&self) -> OffsetDateTime {
        match self {
            Self::Attested { expires_at, .. } | Self::Renewed { expires_at, .. } => *expires_at,
        }
    }
}

/// Renews the SVID on disk if it is still valid, or attests with the join token otherwise, then
/// writes the new files.
///
/// Each new SVID gets a new key. The key is first saved as `pending.key` and reused until a
/// request succeeds: when a renewal was committed but its response was lost, the retry then
/// presents the same public key, and the authority returns the same successor instead of
/// treating the retry as a second holder of the identity.
pub async fn obtain_svid(options: &RunOptions) -> Result<Outcome, AgentError> {
    let current = options.out.read_identity()?;
    let usable = match &current {
        Some((chain, _)) => {
            expiry(chain).is_ok_and(|not_after| not_after > OffsetDateTime::now_utc())
        }
        None => false,
    };
    if usable && options.join_token.is_some() {
        tracing::warn!(
            out = %options.out.root().display(),
            "ignoring the join token: a valid SVID is on disk, so the agent renews with it; \
             remove svid.pem and svid.key to attest again"
        );
    }
    if !usable && options.join_token.is_none() {
        return Err(AgentError::NeedsJoinToken(
            options.out.root().display().to_string(),
        ));
    }

    let key_pem = options.out.pending_key()?;
    let key = KeyPair::from_pem(&key_pem)
        .map_err(|err| AgentError::Crypto(format!("cannot load pending.key: {err}")))?;
    let csr = CertificateParams::new(Vec::<String>::new())
        .and_then(|params| params.serialize_request(&key))
        .and_then(|csr| csr.pem())
        .map_err(|err| AgentError::Crypto(format!("CSR generation failed: {err}")))?;

    let (response, renewed) = match (usable, &current, &options.join_token) {
        (true, Some((chain, current_key)), _) => {
            let identity = Identity {
                chain_pem: chain,
                key_pem: current_key,
            };
            let client = SigilClient::new(&options.server, &options.bundle_pem, Some(identity))?;
            let response: SvidResponse = client
                .post_json("/v1/agent/renew", &RenewRequest { csr })
                .await?;
            (response, true)
        }
        (_, _, Some(token)) => {
            let client = SigilClient::new(&options.server, &options.bundle_pem, None)?;
            let request = AttestRequest {
                join_token: token.trim().to_owned(),
                csr,
            };
            let response: SvidResponse = client.post_json("/v1/agent/attest", &request).await?;
            (response, false)
        }
        _ => {
            return Err(AgentError::NeedsJoinToken(
                options.out.root().display().to_string(),
            ));
        }
    };

    options
        .out
        .write_identity(&response.svid, &key_pem, &response.bundle)?;
    options.out.clear_pending_key()?;
    let expires_at = expiry(&response.svid)?;
    let (spiffe_id, serial) = (response.spiffe_id, response.serial);
    Ok(if renewed {
        Outcome::Renewed {
            spiffe_id,
            serial,
            expires_at,
        }
    } else {
        Outcome::Attested {
            spiffe_id,
            serial,
            expires_at,
        }
    })
}

/// Returns the NotAfter of the first certificate in a PEM chain.
pub fn expiry(chain_pem: &str) -> Result<OffsetDateTime, AgentError> {
    validity(chain_pem).map(|(_, not_after)| not_after)
}

/// Returns the SPIFFE ID (the URI SAN) of the first certificate in a PEM chain.
pub fn spiffe_id_of(chain_pem: &str) -> Result<String, AgentError> {
    let invalid = |detail: String| AgentError::Crypto(format!("cannot read the SVID: {detail}"));
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes())
        .map_err(|err| invalid(err.to_string()))?;
    let cert = Pem::parse_x509(&pem).map_err(|err| invalid(err.to_string()))?;
    let san = cert
        .subject_alternative_name()
        .map_err(|err| invalid(err.to_string()))?
        .ok_or_else(|| invalid("no subject alternative name".into()))?;
    san.value
        .general_names
        .iter()
        .find_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => Some((*uri).to_owned()),
            _ => None,
        })
        .ok_or_else(|| invalid("no URI SAN".into()))
}

/// Returns the NotBefore and NotAfter of the first certificate in a PEM chain.
pub fn validity(chain_pem: &str) -> Result<(OffsetDateTime, OffsetDateTime), AgentError> {
    let invalid = |detail: String| AgentError::Crypto(format!("cannot read the SVID: {detail}"));
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes())
        .map_err(|err| invalid(err.to_string()))?;
    let cert = Pem::parse_x509(&pem).map_err(|err| invalid(err.to_string()))?;
    Ok((
        cert.validity().not_before.to_datetime(),
        cert.validity().not_after.to_datetime(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_join_token() {
        let options = RunOptions {
            server: "https://127.0.0.1:8443".into(),
            bundle_pem: String::new(),
            join_token: Some("sigil_jt_secret-value".into()),
            out: OutputDir::new("/tmp/out"),
        };
        let shown = format!("{options:?}");
        assert!(!shown.contains("secret-value"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }
}
