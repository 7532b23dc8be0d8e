//! Calls from the gateway to the authority, over mutual TLS with the gateway's current SVID.
//!
//! The `sigil-client` crate is not used here because its client has a whole-request timeout,
//! which would cut the long-lived revocation stream. This client sets a timeout per call
//! instead, and none on the stream, whose silence the sync task bounds itself.

use std::sync::Arc;
use std::time::Duration;

use rustls::ClientConfig;
use rustls::RootCertStore;
use rustls::crypto::aws_lc_rs;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::de::DeserializeOwned;
use sigil_agent::mtls::{CurrentSvid, MaterialWatch};
use sigil_jwt::Jwks;
use sigil_proto::{GatewayDenialBatch, GatewayState};

use crate::GatewayError;

/// How long one ordinary call may take, connection included.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long opening a connection may take, for the stream too.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A client of the authority's gateway routes.
#[derive(Debug, Clone)]
pub struct AuthorityClient {
    http: reqwest::Client,
    base_url: String,
}

impl AuthorityClient {
    /// Builds a client for `base_url` that trusts only `bundle_pem` and presents the newest SVID
    /// of `material` at each handshake.
    pub fn new(
        base_url: &str,
        bundle_pem: &str,
        material: MaterialWatch,
    ) -> Result<Self, GatewayError> {
        if !base_url.starts_with("https://") {
            return Err(GatewayError::Config(format!(
                "--server must start with https://, not `{}`",
                base_url.chars().take(80).collect::<String>()
            )));
        }
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()) {
            let cert = cert.map_err(|err| GatewayError::Tls(format!("trust bundle: {err}")))?;
            roots
                .add(cert)
                .map_err(|err| GatewayError::Tls(format!("trust bundle: {err}")))?;
        }
        if roots.is_empty() {
            return Err(GatewayError::Tls(
                "the trust bundle contains no certificate".into(),
            ));
        }
        let tls = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|err| GatewayError::Tls(err.to_string()))?
            .with_root_certificates(roots)
            .with_client_cert_resolver(Arc::new(CurrentSvid::new(material)));
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(CONNECT_TIMEOUT)
            // Pooled connections carry the SVID of their handshake; retiring them after a while
            // makes later calls present the renewed certificate.
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|err| GatewayError::Tls(format!("HTTP client: {err}")))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// `GET /v1/gateway/state`.
    pub async fn state(&self) -> Result<GatewayState, GatewayError> {
        self.get_json("/v1/gateway/state").await
    }

    /// `GET /.well-known/jwks.json`.
    pub async fn jwks(&self) -> Result<Jwks, GatewayError> {
        self.get_json("/.well-known/jwks.json").await
    }

    /// `POST /v1/gateway/denials`.
    ///
    /// A batch the authority rejects as invalid (a 4xx other than 408 and 429) would be rejected
    /// again on every retry. It is returned as [`DenialReport::Rejected`] for the caller to drop,
    /// and every other failure is an error worth retrying.
    pub async fn report_denials(
        &self,
        batch: &GatewayDenialBatch,
    ) -> Result<DenialReport, GatewayError> {
        let url = self.url("/v1/gateway/denials");
        let response = self
            .http
            .post(&url)
            .timeout(CALL_TIMEOUT)
            .json(batch)
            .send()
            .await
            .map_err(|err| transport(&url, &err))?;
        let status = response.status();
        let permanent = status.is_client_error()
            && status != reqwest::StatusCode::REQUEST_TIMEOUT
            && status != reqwest::StatusCode::TOO_MANY_REQUESTS;
        match check_status(&url, response).await {
            Ok(_) => Ok(DenialReport::Recorded),
            Err(GatewayError::Authority { detail, .. }) if permanent => {
                Ok(DenialReport::Rejected(detail))
            }
            Err(err) => Err(err),
        }
    }

    /// Opens `GET /v1/revocations`, resuming after event `since`.
    pub async fn revocations(&self, since: u64) -> Result<reqwest::Response, GatewayError> {
        let url = self.url("/v1/revocations");
        let response = self
            .http
            .get(&url)
            .header("accept", "text/event-stream")
            .header("last-event-id", since.to_string())
            .send()
            .await
            .map_err(|err| transport(&url, &err))?;
        check_status(&url, response).await
    }

    /// Returns the full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, GatewayError> {
        let url = self.url(path);
        let response = self
            .http
            .get(&url)
            .timeout(CALL_TIMEOUT)
            .send()
            .await
            .map_err(|err| transport(&url, &err))?;
        let response = check_status(&url, response).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|err| transport(&url, &err))?;
        serde_json::from_slice(&bytes).map_err(|err| GatewayError::Authority {
            url,
            detail: format!("unexpected response body: {err}"),
        })
    }
}

fn transport(url: &str, err: &reqwest::Error) -> GatewayError {
    // reqwest's Display is terse; the source chain carries the TLS or socket cause.
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    GatewayError::Authority {
        url: url.to_owned(),
        detail,
    }
}

async fn check_status(
    url: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, GatewayError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    let detail = match serde_json::from_str::<sigil_proto::ErrorBody>(&text) {
        Ok(body) => format!(
            "{} (HTTP {status}, {})",
            body.error.message, body.error.code
        ),
        Err(_) => format!("HTTP {status}"),
    };
    Err(GatewayError::Authority {
        url: url.to_owned(),
        detail,
    })
}

/// The outcome of reporting a batch of denials to the authority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenialReport {
    /// Every denial of the batch is in the audit log.
    Recorded,
    /// The authority rejected the batch as invalid, with this reason; retrying cannot help.
    Rejected(String),
}
