//! Bearer JWT-SVIDs: verification with sigil-jwt's strict verifier against the authority's
//! JWKS, refreshed when a token names an unknown key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use sigil_core::TrustDomain;
use sigil_jwt::{Jwks, JwtError, VerifiedClaims, Verifier};
use time::OffsetDateTime;

use crate::GatewayError;
use crate::authority::AuthorityClient;
use crate::denial::{Denial, DenyKind};

/// The minimum time between two JWKS fetches, so that tokens with made-up key IDs cannot make
/// the gateway hammer the authority.
pub const JWKS_REFRESH_INTERVAL: Duration = Duration::from_secs(10);

/// Verifies Bearer tokens for one audience.
pub struct JwtAuth {
    audience: String,
    trust_domain: TrustDomain,
    verifier: ArcSwapOption<Verifier>,
    source: Option<Arc<AuthorityClient>>,
    /// The runtime that drives `source`'s pooled connections, captured at creation; fetches run
    /// there, whichever gateway worker asks.
    runtime: Option<tokio::runtime::Handle>,
    /// When the JWKS was last fetched; also serialises fetches.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl std::fmt::Debug for JwtAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuth")
            .field("audience", &self.audience)
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl JwtAuth {
    /// Creates a verifier for `audience` that fetches the JWKS from `source` when needed.
    pub fn new(
        audience: String,
        trust_domain: TrustDomain,
        source: Option<Arc<AuthorityClient>>,
    ) -> Self {
        Self {
            audience,
            trust_domain,
            verifier: ArcSwapOption::empty(),
            source,
            runtime: tokio::runtime::Handle::try_current().ok(),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// The audience tokens must name.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Replaces the key set.
    pub fn set_jwks(&self, jwks: &Jwks) -> Result<(), JwtError> {
        let verifier = Verifier::new(self.trust_domain.clone(), jwks)?;
        self.verifier.store(Some(Arc::new(verifier)));
        Ok(())
    }

    /// Verifies `token`, fetching the JWKS once if the token names a key not yet known.
    pub async fn verify(&self, token: &str) -> Result<VerifiedClaims, Denial> {
        let first = self.try_verify(token);
        let needs_keys = matches!(&first, Err(None | Some(JwtError::UnknownKeyId { .. })));
        if !needs_keys {
            return first.map_err(|err| self.denial(err));
        }
        if self.refresh().await {
            return self.try_verify(token).map_err(|err| self.denial(err));
        }
        first.map_err(|err| self.denial(err))
    }

    /// Verifies with the current key set; `Err(None)` when there is none yet.
    fn try_verify(&self, token: &str) -> Result<VerifiedClaims, Option<JwtError>> {
        let verifier = self.verifier.load_full().ok_or(None)?;
        verifier
            .verify(token, &[self.audience.as_str()], OffsetDateTime::now_utc())
            .map_err(Some)
    }

    /// Fetches the JWKS unless it was fetched less than [`JWKS_REFRESH_INTERVAL`] ago; returns
    /// whether a new key set was installed.
    async fn refresh(&self) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        let mut last_fetch = self.last_fetch.lock().await;
        if last_fetch.is_some_and(|at| at.elapsed() < JWKS_REFRESH_INTERVAL) {
            return false;
        }
        *last_fetch = Some(Instant::now());
        match self.fetch(source.clone()).await {
            Ok(jwks) => match self.set_jwks(&jwks) {
                Ok(()) => {
                    tracing::info!(keys = jwks.keys.len(), "JWKS refreshed");
                    true
                }
                Err(err) => {
                    tracing::error!(error = %err, "the authority's JWKS is unusable; keeping the previous keys");
                    false
                }
            },
            Err(err) => {
                tracing::warn!(error = %err, "JWKS refresh failed; keeping the previous keys");
                false
            }
        }
    }

    /// Fetches the JWKS on the runtime captured at creation, or on the caller's without one.
    async fn fetch(&self, source: Arc<AuthorityClient>) -> Result<Jwks, GatewayError> {
        let fetch = async move { source.jwks().await };
        match &self.runtime {
            Some(runtime) => runtime
                .spawn(fetch)
                .await
                .map_err(|err| GatewayError::Authority {
                    url: "/.well-known/jwks.json".into(),
                    detail: format!("the fetch task failed: {err}"),
                })?,
            None => fetch.await,
        }
    }

    fn denial(&self, err: Option<JwtError>) -> Denial {
        let message = match err {
            None => "the Bearer token cannot be checked yet: the authority's keys are not loaded"
                .to_owned(),
            // The verifier's messages name the broken rule and never repeat the token.
            Some(err) => format!(
                "the Bearer token is not a valid JWT-SVID for audience `{}`: {err}",
                self.audience
            ),
        };
        Denial::new(DenyKind::BadToken, message)
    }
}
