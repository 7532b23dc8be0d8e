//! HTTPS client for Sigil's API, with an optional client certificate.
//!
//! The server is verified against Sigil's trust bundle only (never the system roots), and the
//! client presents its X.509-SVID when one is given. Errors from the API keep the server's
//! `code` and `message`.

#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use rustls::crypto::aws_lc_rs;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sigil_proto::ErrorBody;
use thiserror::Error;

/// How long one request may take, connection included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors of talking to the authority.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The bundle, certificate or key could not be loaded.
    #[error("{0}")]
    Config(String),

    /// The request could not be sent or the response not read.
    #[error("cannot reach the authority at {url}: {detail}")]
    Transport { url: String, detail: String },

    /// The authority answered with an error.
    #[error("{message} (HTTP {status}, {code})")]
    Api {
        status: u16,
        code: String,
        message: String,
    },

    /// The response body was not what the API documents.
    #[error("unexpected response from {url}: {detail}")]
    Decode { url: String, detail: String },
}

impl ClientError {
    /// Returns the HTTP status of an API error.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Returns the error code of an API error.
    pub fn code(&self) -> Option<&str> {
        match self {
            Self::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A client certificate chain (leaf first) and its private key, in PEM.
pub struct Identity<'a> {
    pub chain_pem: &'a str,
    pub key_pem: &'a str,
}

/// A client of one authority.
#[derive(Clone, Debug)]
pub struct SigilClient {
    http: reqwest::Client,
    base_url: String,
}

impl SigilClient {
    /// Builds a client for `base_url` (such as `https://127.0.0.1:8443`) that trusts only
    /// `bundle_pem` and presents `identity` when given.
    pub fn new(
        base_url: &str,
        bundle_pem: &str,
        identity: Option<Identity<'_>>,
    ) -> Result<Self, ClientError> {
        if !base_url.starts_with("https://") {
            return Err(ClientError::Config(format!(
                "the authority URL must start with https://, not `{}`: Sigil never sends tokens \
                 or keys over plain HTTP",
                base_url.chars().take(80).collect::<String>()
            )));
        }
        let tls = tls_config(bundle_pem, identity)?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|err| ClientError::Config(format!("HTTP client: {err}")))?;
        Ok(Self {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
        })
    }

    /// Returns the base URL.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sends `GET path` and decodes the JSON response.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let url = self.url(path);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|err| transport(&url, &err))?;
        decode(&url, response).await
    }

    /// Sends `GET path` and returns the raw body.
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let url = self.url(path);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|err| transport(&url, &err))?;
        let response = check_status(&url, response).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|err| transport(&url, &err))?;
        Ok(bytes.to_vec())
    }

    /// Sends `POST path` with a JSON body and decodes the JSON response.
    pub async fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let response = self
            .http
            .post(&url)
            .json(body)
            .send()
            .await
            .map_err(|err| transport(&url, &err))?;
        decode(&url, response).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}

fn tls_config(
    bundle_pem: &str,
    identity: Option<Identity<'_>>,
) -> Result<ClientConfig, ClientError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()) {
        let cert = cert.map_err(|err| ClientError::Config(format!("trust bundle: {err}")))?;
        roots
            .add(cert)
            .map_err(|err| ClientError::Config(format!("trust bundle: {err}")))?;
    }
    if roots.is_empty() {
        return Err(ClientError::Config(
            "the trust bundle contains no certificate".into(),
        ));
    }

    let builder = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| ClientError::Config(err.to_string()))?
        .with_root_certificates(roots);

    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            let chain = CertificateDer::pem_slice_iter(identity.chain_pem.as_bytes())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|err| ClientError::Config(format!("client certificate: {err}")))?;
            if chain.is_empty() {
                return Err(ClientError::Config(
                    "the client certificate file contains no certificate".into(),
                ));
            }
            let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
                .map_err(|err| ClientError::Config(format!("client key: {err}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|err| ClientError::Config(format!("client certificate: {err}")))?
        }
    };
    Ok(config)
}

fn transport(url: &str, err: &reqwest::Error) -> ClientError {
    // reqwest's Display is terse; the source chain carries the TLS or socket cause.
    let mut detail = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    ClientError::Transport {
        url: url.to_owned(),
        detail,
    }
}

async fn check_status(
    url: &str,
    response: reqwest::Response,
) -> Result<reqwest::Response, ClientError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().await.unwrap_or_default();
    Err(api_error(url, status, &text))
}

fn api_error(url: &str, status: StatusCode, text: &str) -> ClientError {
    match serde_json::from_str::<ErrorBody>(text) {
        Ok(body) => ClientError::Api {
            status: status.as_u16(),
            code: body.error.code,
            message: body.error.message,
        },
        Err(_) => ClientError::Api {
            status: status.as_u16(),
            code: "http_error".into(),
            message: format!("{url} answered {status}"),
        },
    }
}

async fn decode<T: DeserializeOwned>(
    url: &str,
    response: reqwest::Response,
) -> Result<T, ClientError> {
    let response = check_status(url, response).await?;
    let bytes = response.bytes().await.map_err(|err| transport(url, &err))?;
    serde_json::from_slice(&bytes).map_err(|err| ClientError::Decode {
        url: url.to_owned(),
        detail: err.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_rejected() {
        let err = SigilClient::new("http://127.0.0.1:8443", "", None).unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
    }
}
