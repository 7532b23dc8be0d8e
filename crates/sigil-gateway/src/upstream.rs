//! The upstream tool: its connections and the header rules of forwarding.
//!
//! An HTTP/1.1 client connection forwards over its own upstream connection (see
//! [`crate::link`]); HTTP/2 streams share a pool of keep-alive connections.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{PathAndQuery, Uri};
use http::{Request, Response, Version};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::crypto::aws_lc_rs;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use sigil_agent::mtls::{CurrentSvid, MaterialWatch};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::GatewayError;
use crate::link::{ConnectionDriver, UpstreamLink};

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
/// `transfer-encoding` is hop-by-hop too: hyper frames the body again for each side.
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// How long a pooled upstream connection may stay idle before it is closed.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The maximum number of idle upstream connections a worker's pool keeps.
const POOL_MAX_IDLE: usize = 64;

/// How long opening an upstream connection may take, TLS included.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The connections to one upstream base URL.
#[derive(Clone)]
pub struct Upstream {
    /// The pool that HTTP/2 streams share.
    client: Client<HttpsConnector<HttpConnector>, Incoming>,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The base URL's path without its trailing `/`; empty for the root.
    base_path: String,
    /// `host:port` of the upstream, with the scheme's default port when the URL has none.
    address: String,
    /// The `host` header of every forwarded request: the base URL's authority.
    host: HeaderValue,
    /// The TLS client and server name of an `https://` upstream, for connections of their own.
    tls: Option<(TlsConnector, ServerName<'static>)>,
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

        let https = scheme == http::uri::Scheme::HTTPS;
        let address = match authority.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None => format!("{}:{}", authority.host(), if https { 443 } else { 80 }),
        };
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|err| GatewayError::Config(format!("--upstream `{base_url}`: {err}")))?;

        let tls = upstream_tls(ca_pem, material)?;
        let own_tls = if https {
            let name = authority
                .host()
                .trim_start_matches('[')
                .trim_end_matches(']');
            let name = ServerName::try_from(name.to_owned())
                .map_err(|err| GatewayError::Config(format!("--upstream `{base_url}`: {err}")))?;
            Some((TlsConnector::from(Arc::new(tls.clone())), name))
        } else {
            None
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_max_idle_per_host(POOL_MAX_IDLE)
            .build(connector);

        Ok(Self {
            client,
            scheme,
            authority,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            address,
            host,
            tls: own_tls,
        })
    }

    /// Forwards `request` with the caller's identity headers and streams the response back.
    ///
    /// An HTTP/1.1 request goes over `link`, the client connection's own upstream connection;
    /// an HTTP/2 request, or one without a link, goes through the shared pool.
    pub async fn forward(
        &self,
        mut request: Request<Incoming>,
        identity: &ForwardedIdentity<'_>,
        link: Option<&UpstreamLink>,
    ) -> Result<Response<ProxyBody>, GatewayError> {
        let link = link.filter(|_| request.version() <= Version::HTTP_11);
        *request.uri_mut() = match link {
            Some(_) => self.origin_form(request.uri())?,
            None => self.absolute_form(request.uri())?,
        };
        *request.version_mut() = Version::HTTP_11;

        let headers = request.headers_mut();
        strip(headers, true);
        headers.insert(header::HOST, self.host.clone());
        if identity.strip_authorization {
            headers.remove(header::AUTHORIZATION);
        }
        insert_identity(headers, identity);

        let response = match link {
            Some(link) => self.send_linked(request, link).await?,
            None => self
                .client
                .request(request)
                .await
                .map_err(|err| GatewayError::Upstream(error_chain(&err)))?,
        };
        if response.status() == http::StatusCode::SWITCHING_PROTOCOLS {
            // The gateway removes `upgrade` from every request, so it never requests a switch.
            return Err(GatewayError::Upstream(
                "the upstream switched protocols without being asked to".into(),
            ));
        }
        let (mut parts, body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        Ok(Response::from_parts(parts, body.boxed()))
    }

    /// Sends `request` over the link's connection, opening one when there is none.
    ///
    /// A kept connection may have been closed by the upstream while idle. When it refuses the
    /// request before taking any of it, the request goes once more over a new connection, as
    /// pooled clients do.
    async fn send_linked(
        &self,
        mut request: Request<Incoming>,
        link: &UpstreamLink,
    ) -> Result<Response<Incoming>, GatewayError> {
        let mut reusable = link.take_sender();
        loop {
            let reused = reusable.is_some();
            let mut sender = match reusable.take() {
                Some(sender) => sender,
                None => self.connect(link).await?,
            };
            if let Err(err) = sender.ready().await {
                if reused {
                    tracing::debug!(error = %err, "kept upstream connection closed; opening another");
                    continue;
                }
                return Err(GatewayError::Upstream(error_chain(&err)));
            }

            let pending = sender.try_send_request(request);
            link.put_back(sender);
            match pending.await {
                Ok(response) => return Ok(response),
                Err(mut err) => match err.take_message() {
                    Some(returned) if reused => {
                        tracing::debug!(error = %err.error(), "kept upstream connection refused the request; opening another");
                        request = returned;
                    }
                    _ => return Err(GatewayError::Upstream(error_chain(err.error()))),
                },
            }
        }
    }

    /// Opens a connection to the upstream for `link` and returns its request half.
    async fn connect(&self, link: &UpstreamLink) -> Result<SendRequest<Incoming>, GatewayError> {
        let opened = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let tcp = TcpStream::connect(self.address.as_str())
                .await
                .map_err(|err| format!("connecting to {} failed: {err}", self.address))?;
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "cannot set TCP_NODELAY on the upstream connection");
            }
            match &self.tls {
                None => handshake(tcp).await,
                Some((connector, name)) => {
                    let tls = connector.connect(name.clone(), tcp).await.map_err(|err| {
                        format!("the TLS handshake with {} failed: {err}", self.address)
                    })?;
                    handshake(tls).await
                }
            }
        })
        .await;

        let (sender, driver) = match opened {
            Ok(Ok(opened)) => opened,
            Ok(Err(detail)) => return Err(GatewayError::Upstream(detail)),
            Err(_) => {
                return Err(GatewayError::Upstream(format!(
                    "connecting to {} timed out after {} s",
                    self.address,
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        };
        tracing::debug!(upstream = %self.address, "upstream connection opened");
        link.install(driver);
        Ok(sender)
    }
}

/// Starts HTTP/1.1 on an open upstream connection.
async fn handshake<T>(io: T) -> Result<(SendRequest<Incoming>, ConnectionDriver), String>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(io))
        .await
        .map_err(|err| error_chain(&err))?;
    let driver: ConnectionDriver = Box::pin(async move {
        match connection.await {
            Ok(()) => tracing::debug!("upstream connection closed"),
            Err(err) => tracing::debug!(error = %err, "upstream connection ended with an error"),
        }
    });
    Ok((sender, driver))
}

impl Upstream {
    /// Builds the upstream path and query for a request to `uri`: the base URL's path, then
    /// the request's path and query.
    fn target_path(&self, uri: &Uri) -> Result<PathAndQuery, GatewayError> {
        match uri.path_and_query() {
            // Shares the request's storage instead of copying it.
            Some(path_and_query) if self.base_path.is_empty() => Ok(path_and_query.clone()),
            path_and_query => {
                let path_and_query = path_and_query.map_or("/", PathAndQuery::as_str);
                PathAndQuery::try_from(format!("{}{path_and_query}", self.base_path))
                    .map_err(|err| GatewayError::Upstream(format!("invalid upstream URI: {err}")))
            }
        }
    }

    /// Builds the origin-form URI (`/path?query`) sent on a connection of the client's own.
    fn origin_form(&self, uri: &Uri) -> Result<Uri, GatewayError> {
        Ok(Uri::from(self.target_path(uri)?))
    }

    /// Builds the absolute URI that the pooled client needs to pick a connection.
    fn absolute_form(&self, uri: &Uri) -> Result<Uri, GatewayError> {
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(self.target_path(uri)?)
            .build()
            .map_err(|err| GatewayError::Upstream(format!("invalid upstream URI: {err}")))
    }
}

/// The identity the upstream learns from the added headers.
#[derive(Debug, Clone, Copy)]
pub struct ForwardedIdentity<'a> {
    /// The caller's SPIFFE ID, for `X-Sigil-Agent`.
    pub agent: Option<&'a HeaderValue>,
    /// The caller's owner, for `X-Sigil-Owner`.
    pub owner: Option<&'a HeaderValue>,
    /// True when the caller authenticated with a Bearer token meant for the gateway, which the
    /// upstream must not receive.
    pub strip_authorization: bool,
}

/// Removes hop-by-hop headers, including those the `connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    strip(headers, false);
}

/// Removes hop-by-hop headers and, when `reserved` is true, every `x-sigil-*` header.
///
/// One pass over the names finds them; a request without any allocates nothing.
fn strip(headers: &mut HeaderMap, reserved: bool) {
    let mut doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| HOP_BY_HOP.contains(name) || (reserved && is_reserved(name)))
        .cloned()
        .collect();
    if doomed.contains(&header::CONNECTION) {
        doomed.extend(
            headers
                .get_all(header::CONNECTION)
                .iter()
                .filter_map(|value| value.to_str().ok())
                .flat_map(|value| value.split(','))
                .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok()),
        );
    }
    for name in doomed {
        headers.remove(name);
    }
}

/// True for a header the gateway reserves (`x-sigil-*`); `HeaderName`s are lower case.
fn is_reserved(name: &HeaderName) -> bool {
    name.as_str().starts_with(RESERVED_PREFIX)
}

fn insert_identity(headers: &mut HeaderMap, identity: &ForwardedIdentity<'_>) {
    // A value that cannot be a header value was left out when the policy layer was built.
    if let Some(agent) = identity.agent {
        headers.insert(HeaderName::from_static(AGENT_HEADER), agent.clone());
    }
    if let Some(owner) = identity.owner {
        headers.insert(HeaderName::from_static(OWNER_HEADER), owner.clone());
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::driven::Driven;

    /// Returns a `Request<Incoming>` for `GET path`, as the gateway's server hands it over, by
    /// sending the request through a hyper server on an in-memory stream.
    async fn incoming_request(path: &str) -> Request<Incoming> {
        let (client_io, server_io) = tokio::io::duplex(4096);
        let (deliver, delivered) = tokio::sync::oneshot::channel();
        let deliver = std::sync::Mutex::new(Some(deliver));
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                if let Some(deliver) = deliver.lock().unwrap().take() {
                    let _ = deliver.send(request);
                }
                async {
                    Ok::<_, std::convert::Infallible>(Response::new(
                        http_body_util::Empty::<Bytes>::new(),
                    ))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(server_io), service)
                .await;
        });
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(client_io))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = Request::get(path)
            .header("host", "client.test")
            .body(http_body_util::Empty::<Bytes>::new())
            .unwrap();
        tokio::spawn(sender.send_request(request));
        delivered.await.unwrap()
    }

    /// Starts an upstream that responds to one request per connection with `200 ok` and keep-alive
    /// framing, then closes the connection once the returned `Notify` is notified, and
    /// counts connections.
    async fn one_answer_upstream() -> (
        String,
        Arc<AtomicUsize>,
        Arc<tokio::sync::Notify>,
        tokio::sync::mpsc::Receiver<()>,
    ) {
        answering_upstream(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await
    }

    /// Starts an upstream like [`one_answer_upstream`], with `answer` as the response.
    async fn answering_upstream(
        answer: &'static [u8],
    ) -> (
        String,
        Arc<AtomicUsize>,
        Arc<tokio::sync::Notify>,
        tokio::sync::mpsc::Receiver<()>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let (closed, closes) = tokio::sync::mpsc::channel(8);
        let close = Arc::new(tokio::sync::Notify::new());
        let close_now = close.clone();
        let counter = connections.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                counter.fetch_add(1, Ordering::SeqCst);
                let mut head = Vec::new();
                let mut buffer = [0_u8; 1024];
                while !head.windows(4).any(|window| window == b"\r\n\r\n") {
                    let read = stream.read(&mut buffer).await.unwrap();
                    assert!(read > 0, "the gateway closed before sending a request");
                    head.extend_from_slice(&buffer[..read]);
                }
                stream.write_all(answer).await.unwrap();
                close_now.notified().await;
                drop(stream);
                let _ = closed.send(()).await;
            }
        });
        (url, connections, close, closes)
    }

    /// Builds a client of the `http://` upstream at `url`, an empty link, and an identity
    /// without headers.
    fn plain_upstream(url: &str) -> (Upstream, Arc<UpstreamLink>, ForwardedIdentity<'static>) {
        let (_sender, material) = tokio::sync::watch::channel(None);
        let upstream = Upstream::new(url, "", material).unwrap();
        let identity = ForwardedIdentity {
            agent: None,
            owner: None,
            strip_authorization: false,
        };
        (upstream, Arc::new(UpstreamLink::default()), identity)
    }

    #[tokio::test]
    async fn unsent_request_retried_on_new_connection() {
        let (url, connections, close, mut closes) = one_answer_upstream().await;
        let (upstream, link, identity) = plain_upstream(&url);

        let exchange = async |link: &UpstreamLink, request| {
            let response = upstream.forward(request, &identity, Some(link)).await?;
            let body = response.into_body().collect().await.unwrap().to_bytes();
            Ok::<_, GatewayError>(body)
        };

        let request = incoming_request("/contacts/1").await;
        let body = Driven::new(exchange(&link, request), link.clone(), None)
            .await
            .expect("no idle deadline")
            .unwrap();
        assert_eq!(&body[..], b"ok");
        close.notify_one();
        closes.recv().await.unwrap();

        // The upstream has closed the kept connection, and the link has not been polled since.
        // Polling the request before the connection, unlike `Driven`, hands the request to the
        // closed connection, which gives it back unsent.
        let request = incoming_request("/contacts/2").await;
        let mut second = std::pin::pin!(exchange(&link, request));
        let body = std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(output) = second.as_mut().poll(cx) {
                return std::task::Poll::Ready(output);
            }
            link.poll_connection(cx);
            std::task::Poll::Pending
        })
        .await
        .unwrap();
        assert_eq!(&body[..], b"ok");
        assert_eq!(connections.load(Ordering::SeqCst), 2);
        close.notify_one();
    }

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
        strip(&mut headers, true);
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

    #[tokio::test]
    async fn switching_protocols_from_upstream_rejected() {
        let (url, _connections, close, _closes) =
            answering_upstream(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n").await;
        let (upstream, link, identity) = plain_upstream(&url);

        let request = incoming_request("/contacts/1").await;
        let forwarded = Driven::new(
            upstream.forward(request, &identity, Some(&link)),
            link.clone(),
            None,
        )
        .await
        .expect("no idle deadline");
        close.notify_one();

        let Err(GatewayError::Upstream(detail)) = forwarded else {
            panic!("a 101 from the upstream must not reach the client");
        };
        assert!(detail.contains("switched protocols"), "{detail}");
    }
}
