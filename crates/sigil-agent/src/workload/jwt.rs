//! JWT-SVIDs for the Workload API: minted by the authority over mutual TLS, cached per
//! audience, and validated locally against the authority's JWKS.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sigil_client::{Identity, SigilClient};
use sigil_core::TrustDomain;
use sigil_jwt::{Jwks, Verifier};
use sigil_proto::{JwtRequest, JwtResponse};
use time::OffsetDateTime;
use tokio::sync::watch;
use tonic::Status;

use super::service::{JwtBackend, JwtBundle, JwtBundleWatch};
use crate::AgentError;
use crate::files::OutputDir;
use crate::identity::spiffe_id_of;

/// How often the JWKS is fetched again; a token signed by an unknown key also triggers a fetch.
const JWKS_REFRESH: Duration = Duration::from_secs(60);

/// A cached token and the time after which a new one is fetched (its half-life).
struct Cached {
    spiffe_id: String,
    token: String,
    refresh_after: OffsetDateTime,
}

/// The daemon's JWT backend.
pub struct JwtSource {
    server: String,
    bundle_pem: String,
    out: OutputDir,
    cache: Mutex<HashMap<String, Cached>>,
    bundles: watch::Sender<Option<Arc<JwtBundle>>>,
    verifier: Mutex<Option<Arc<Verifier>>>,
}

impl JwtSource {
    pub fn new(server: &str, bundle_pem: &str, out: OutputDir) -> Result<Self, AgentError> {
        Ok(Self {
            server: server.to_owned(),
            bundle_pem: bundle_pem.to_owned(),
            out,
            cache: Mutex::new(HashMap::new()),
            bundles: watch::channel(None).0,
            verifier: Mutex::new(None),
        })
    }

    /// Fetches the JWKS once the first SVID is on disk, then every minute, until `shutdown`
    /// completes.
    pub async fn keep_bundles_fresh(
        self: Arc<Self>,
        mut material: watch::Receiver<Option<Arc<super::X509Material>>>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        tokio::select! {
            _ = material.wait_for(Option::is_some) => {}
            () = &mut shutdown => return,
        }
        let mut failures = 0u32;
        loop {
            match self.refresh_jwks().await {
                Ok(()) if failures > 0 => {
                    tracing::info!(failures, "JWKS fetched again");
                    failures = 0;
                }
                Ok(()) => {}
                Err(err) => {
                    failures += 1;
                    if failures == 1 {
                        tracing::warn!(error = %err, "cannot fetch the JWKS; keeping the previous one");
                    } else {
                        tracing::debug!(error = %err, failures, "JWKS fetch still failing");
                    }
                }
            }
            tokio::select! {
                () = tokio::time::sleep(JWKS_REFRESH) => {}
                () = &mut shutdown => return,
            }
        }
    }

    /// Fetches `/.well-known/jwks.json` and replaces the verifier and the published bundle.
    async fn refresh_jwks(&self) -> Result<(), AgentError> {
        let trust_domain = self.trust_domain()?;
        let client = SigilClient::new(&self.server, &self.bundle_pem, None)?;
        let bytes = client.get_bytes("/.well-known/jwks.json").await?;
        let jwks: Jwks = serde_json::from_slice(&bytes)
            .map_err(|err| AgentError::Crypto(format!("the authority's JWKS is invalid: {err}")))?;
        let verifier = Verifier::new(trust_domain.clone(), &jwks)
            .map_err(|err| AgentError::Crypto(format!("the authority's JWKS is invalid: {err}")))?;

        if let Ok(mut slot) = self.verifier.lock() {
            *slot = Some(Arc::new(verifier));
        }
        let entry = Arc::new(JwtBundle {
            trust_domain_id: trust_domain.id_string(),
            jwks: bytes,
        });
        self.bundles.send_if_modified(|current| {
            let changed = current.as_ref().is_none_or(|c| c.jwks != entry.jwks);
            if changed {
                *current = Some(entry.clone());
            }
            changed
        });
        Ok(())
    }

    /// Returns the trust domain of the SVID on disk.
    fn trust_domain(&self) -> Result<TrustDomain, AgentError> {
        let (chain, _) = self.out.read_identity()?.ok_or_else(|| {
            AgentError::Crypto(
                "no SVID on disk yet; it is written after the first attestation".into(),
            )
        })?;
        let id = sigil_core::SpiffeId::parse(&spiffe_id_of(&chain)?)
            .map_err(|err| AgentError::Crypto(err.to_string()))?;
        TrustDomain::new(id.trust_domain_name()).map_err(|err| AgentError::Crypto(err.to_string()))
    }

    fn cached(&self, audience: &str, now: OffsetDateTime) -> Option<(String, String)> {
        let cache = self.cache.lock().ok()?;
        let entry = cache.get(audience)?;
        (now < entry.refresh_after).then(|| (entry.spiffe_id.clone(), entry.token.clone()))
    }

    fn current_verifier(&self) -> Option<Arc<Verifier>> {
        self.verifier.lock().ok()?.clone()
    }
}

#[tonic::async_trait]
impl JwtBackend for JwtSource {
    async fn fetch(&self, audience: &str) -> Result<(String, String), Status> {
        let now = OffsetDateTime::now_utc();
        if let Some(hit) = self.cached(audience, now) {
            return Ok(hit);
        }

        let (chain, key) = self
            .out
            .read_identity()
            .map_err(|err| Status::unavailable(err.to_string()))?
            .ok_or_else(|| {
                Status::unavailable(
                    "no SVID on disk yet; it is written after the first attestation",
                )
            })?;
        let spiffe_id = spiffe_id_of(&chain).map_err(|err| Status::internal(err.to_string()))?;
        let identity = Identity {
            chain_pem: &chain,
            key_pem: &key,
        };
        let client = SigilClient::new(&self.server, &self.bundle_pem, Some(identity))
            .map_err(|err| Status::internal(err.to_string()))?;
        let request = JwtRequest {
            audience: audience.to_owned(),
            ttl: None,
        };
        let response: JwtResponse =
            client
                .post_json("/v1/agent/jwt", &request)
                .await
                .map_err(|err| match err.status() {
                    Some(400) => Status::invalid_argument(err.to_string()),
                    Some(401 | 403) => Status::permission_denied(err.to_string()),
                    _ => Status::unavailable(err.to_string()),
                })?;

        let expires_at = OffsetDateTime::parse(
            &response.expires_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map_err(|err| {
            Status::internal(format!("the authority returned an invalid expiry: {err}"))
        })?;
        let refresh_after = now + (expires_at - now) / 2;
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(
                audience.to_owned(),
                Cached {
                    spiffe_id: spiffe_id.clone(),
                    token: response.token.clone(),
                    refresh_after,
                },
            );
        }
        Ok((spiffe_id, response.token))
    }

    fn bundles(&self) -> JwtBundleWatch {
        self.bundles.subscribe()
    }

    async fn validate(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<(String, prost_types::Struct), Status> {
        if self.current_verifier().is_none() {
            self.refresh_jwks()
                .await
                .map_err(|err| Status::unavailable(err.to_string()))?;
        }
        let verifier = self
            .current_verifier()
            .ok_or_else(|| Status::unavailable("the authority's JWKS is not available yet"))?;

        let claims = match verifier.verify(token, &[audience], OffsetDateTime::now_utc()) {
            Ok(claims) => claims,
            Err(sigil_jwt::JwtError::UnknownKeyId { .. }) => {
                // The authority may have rotated its key since the last fetch.
                self.refresh_jwks()
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                let verifier = self
                    .current_verifier()
                    .ok_or_else(|| Status::unavailable("the authority's JWKS is not available"))?;
                verifier
                    .verify(token, &[audience], OffsetDateTime::now_utc())
                    .map_err(|err| Status::invalid_argument(format!("invalid JWT-SVID: {err}")))?
            }
            Err(err) => return Err(Status::invalid_argument(format!("invalid JWT-SVID: {err}"))),
        };
        Ok((
            claims.subject.to_string(),
            json_object_to_struct(&claims.raw),
        ))
    }
}

fn json_object_to_struct(
    object: &serde_json::Map<String, serde_json::Value>,
) -> prost_types::Struct {
    prost_types::Struct {
        fields: object
            .iter()
            .map(|(k, v)| (k.clone(), json_to_value(v)))
            .collect(),
    }
}

fn json_to_value(value: &serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.iter().map(json_to_value).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(json_object_to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}
