//! The upstream tool: a pooled keep-alive HTTP client and the header rules of forwarding.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, Version};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::crypto::aws_lc_rs;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sigil_agent::mtls::{CurrentSvid, MaterialWatch};

use crate::GatewayError;

/// The body type of every response the gateway sends.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The header the gateway sets to the caller's SPIFFE ID.
pub const AGENT_HEADER: &str = "x-sigil-agent";

/// The header the gateway sets to the caller's owner's e-mail address.
pub const OWNER_HEADER: &str = "x-sigil-owner";

/// The prefix of every header the gateway reserves; clients' copies are removed.
const RESERVED_PREFIX: &str = "x-sigil-";

/// Hop-by-hop headers (RFC 9110 section 7.6.1, plus the legacy `keep-alive` and
/// `proxy-connection`), which apply to one connection and are never forwarded.
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// A pooled client of one upstream base URL.
#[derive(Clone)]
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The base URL's path without its trailing `/`; empty for the root.
    base_path: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("scheme", &self.scheme)
            .field("authority", &self.authority)
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

impl Upstream {
    /// Builds a client for `base_url` (`http://` or `https://`).
    ///
    /// An `https://` upstream is verified against `ca_pem` (the trust bundle unless the operator
    /// names another file), and the gateway presents its own SVID as a client certificate, so
    /// the upstream may require mutual TLS from the gateway too.
    pub fn new(
        base_url: &str,
        ca_pem: &str,
        material: MaterialWatch,
    ) -> Result<Self, GatewayError> {
        let uri: Uri = base_url
            .parse()
            .map_err(|err| GatewayError::Config(format!("--upstream `{base_url}`: {err}")))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| {
            GatewayError::Config(format!(
                "--upstream `{base_url}` must start with http:// or https://"
            ))
        })?;
        if scheme != http::uri::Scheme::HTTP && scheme != http::uri::Scheme::HTTPS {
            return Err(GatewayError::Config(format!(
                "--upstream `{base_url}` must start with http:// or https://"
            )));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| GatewayError::Config(format!("--upstream `{base_url}` has no host")))?;
        if uri.query().is_some() {
            return Err(GatewayError::Config(format!(
                "--upstream `{base_url}` must not have a query"
            )));
        }

        let tls = upstream_tls(ca_pem, material)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new()).build(connector);

        Ok(Self {
            client,
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// Forwards `request` with the caller's identity headers and streams the response back.
    pub async fn forward(
        &self,
        mut request: Request<Incoming>,
        identity: &ForwardedIdentity<'_>,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        *request.uri_mut() = self.target_uri(request.uri())?;
        *request.version_mut() = Version::HTTP_11;

        let headers = request.headers_mut();
        strip_hop_by_hop(headers);
        strip_reserved(headers);
        // The client library sets `host` from the upstream URL.
        headers.remove(header::HOST);
        if identity.strip_authorization {
            headers.remove(header::AUTHORIZATION);
        }
        insert_identity(headers, identity);

        let response = self
            .client
            .request(request)
            .await
            .map_err(|err| GatewayError::Upstream(error_chain(&err)))?;
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body.boxed()))
    }
}

impl Upstream {
    /// The upstream URI for a request to `uri`: the base URL's path, then the request's path
    /// and query.
    fn target_uri(&self, uri: &Uri) -> Result<Uri, GatewayError> {
        let path_and_query = match uri.path_and_query() {
            // Shares the request's storage instead of copying it.
            Some(path_and_query) if self.base_path.is_empty() => path_and_query.clone(),
            path_and_query => {
                let path_and_query = path_and_query.map_or("/", PathAndQuery::as_str);
                PathAndQuery::try_from(format!("{}{path_and_query}", self.base_path))
                    .map_err(|err| GatewayError::Upstream(format!("invalid upstream URI: {err}")))?
            }
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|err| GatewayError::Upstream(format!("invalid upstream URI: {err}")))
    }
}

/// The identity the upstream learns from the added headers.
#[derive(Debug, Clone, Copy)]
pub struct ForwardedIdentity<'a> {
    pub spiffe_id: &'a str,
    pub owner: &'a str,
    /// True when the caller authenticated with a Bearer token meant for the gateway, which the
    /// upstream must not receive.
    pub strip_authorization: bool,
}

/// Removes hop-by-hop headers, including those the `connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    // `transfer-encoding` is hop-by-hop too; hyper re-frames the body for each side.
    headers.remove(header::TRANSFER_ENCODING);
}

/// Removes every `x-sigil-*` header, whatever its case.
pub fn strip_reserved(headers: &mut HeaderMap) {
    let reserved: Vec<HeaderName> = headers
        .keys()
        .filter(|name| name.as_str().starts_with(RESERVED_PREFIX))
        .cloned()
        .collect();
    for name in reserved {
        headers.remove(name);
    }
}

fn insert_identity(headers: &mut HeaderMap, identity: &ForwardedIdentity<'_>) {
    // Both values come from the authority's registry, which allows no control characters in
    // SPIFFE IDs or e-mail addresses; a value that still does not fit a header is left out.
    if let Ok(value) = HeaderValue::from_str(identity.spiffe_id) {
        headers.insert(HeaderName::from_static(AGENT_HEADER), value);
    }
    if let Ok(value) = HeaderValue::from_str(identity.owner) {
        headers.insert(HeaderName::from_static(OWNER_HEADER), value);
    }
}

/// Formats an error with its sources, which carry the socket or TLS cause.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut detail = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        detail.push_str(": ");
        detail.push_str(&cause.to_string());
        source = cause.source();
    }
    detail
}

fn upstream_tls(ca_pem: &str, material: MaterialWatch) -> Result<ClientConfig, GatewayError> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        let cert = cert.map_err(|err| GatewayError::Tls(format!("upstream CA file: {err}")))?;
        roots
            .add(cert)
            .map_err(|err| GatewayError::Tls(format!("upstream CA file: {err}")))?;
    }
    let config = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|err| GatewayError::Tls(err.to_string()))?
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(CurrentSvid::new(material)));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_removed() {
        let mut headers = HeaderMap::new();
        headers.insert("connection", HeaderValue::from_static("close, x-custom"));
        headers.insert("x-custom", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        headers.insert("upgrade", HeaderValue::from_static("websocket"));
        headers.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("accept"));
    }

    #[test]
    fn reserved_headers_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "X-Sigil-Agent",
            HeaderValue::from_static("spiffe://x/agent/evil"),
        );
        headers.append("x-sigil-owner", HeaderValue::from_static("a@x"));
        headers.append("x-sigil-owner", HeaderValue::from_static("b@x"));
        headers.insert("x-sigil-anything", HeaderValue::from_static("1"));
        headers.insert("x-sigilx", HeaderValue::from_static("kept"));
        strip_reserved(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key("x-sigilx"));
    }

    #[test]
    fn invalid_upstream_rejected() {
        let (_sender, material) = tokio::sync::watch::channel(None);
        for url in [
            "ftp://127.0.0.1/",
            "127.0.0.1:80",
            "http://127.0.0.1/?a=b",
            "/path",
        ] {
            let result = Upstream::new(url, "", material.clone());
            assert!(result.is_err(), "{url}");
        }
    }
}
