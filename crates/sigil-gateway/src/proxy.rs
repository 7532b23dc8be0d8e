//! One request through the gateway: authenticate, decide, forward or refuse.

use std::borrow::Cow;
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use sigil_ca::LeafSvid;
use sigil_core::SpiffeId;
use time::OffsetDateTime;

use crate::denial::{Denial, DenyKind, error_body};
use crate::jwt::JwtAuth;
use crate::link::UpstreamLink;
use crate::report::DenialReporter;
use crate::request_path::canonical_path;
use crate::routes::{Route, Routes};
use crate::upstream::{ForwardedIdentity, ProxyBody, Upstream};
use crate::view::{AgentEntry, Caller, View};

/// The result of the client-certificate check of one connection.
#[derive(Debug, Clone)]
pub enum ConnectionIdentity {
    /// The client sent no certificate; requests must carry a Bearer token.
    Anonymous,
    /// The certificate passed the chain and SPIFFE checks.
    Certificate(LeafSvid),
    /// The certificate failed them; every request on the connection is refused with this.
    Rejected(Denial),
}

/// Everything a request needs, shared by all connections.
#[derive(Debug)]
pub struct Gateway {
    pub view: Arc<View>,
    pub routes: Arc<Routes>,
    pub jwt: Arc<JwtAuth>,
    pub upstream: Upstream,
    pub reporter: DenialReporter,
}

/// Maximum size of a request's header fields, in bytes, over HTTP/1.1 and HTTP/2.
///
/// hyper's limits bound what it reads (its HTTP/1.1 read buffer and the HTTP/2 header list), but
/// one read can carry an HTTP/1.1 header section past its buffer limit. [`Gateway::handle`]
/// therefore counts the fields again and responds 431 above this size. 64 KiB is more than
/// common servers accept (nginx reads at most four 8 KiB buffers by default).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

/// A request that passed every check, and what forwarding it needs.
struct Checked<'a> {
    agent: Arc<AgentEntry>,
    route: &'a Route,
    /// The canonical path, when it differs from the request's.
    rewrite: Option<String>,
    /// True for a Bearer token, which is removed before forwarding.
    bearer: bool,
}

/// The caller's verified identity and the credential kind it used.
enum Authenticated<'a> {
    /// The connection's client certificate, checked at the handshake.
    Certificate(&'a LeafSvid),
    /// The subject of a Bearer JWT-SVID, which is removed before forwarding.
    Bearer(SpiffeId),
}

impl Authenticated<'_> {
    fn caller(&self) -> Caller<'_> {
        match self {
            Self::Certificate(leaf) => Caller {
                spiffe_id: &leaf.spiffe_id,
                serial_hex: Some(&leaf.serial_hex),
            },
            Self::Bearer(subject) => Caller {
                spiffe_id: subject,
                serial_hex: None,
            },
        }
    }
}

impl Gateway {
    /// Handles one request from a connection whose certificate status is `identity`.
    ///
    /// `link` is the connection's own upstream connection (see [`crate::link`]); without one,
    /// the request goes through the shared pool.
    pub async fn handle(
        &self,
        mut request: Request<Incoming>,
        identity: &ConnectionIdentity,
        link: Option<&UpstreamLink>,
    ) -> Response<ProxyBody> {
        // The clone shares the request's storage: no allocation for the standard methods.
        let method = request.method().clone();
        let method = method.as_str();
        if header_fields_len(request.headers()) > MAX_HEADER_BYTES {
            let denial = Denial::new(
                DenyKind::HeadersTooLarge,
                format!(
                    "the request's header fields are larger than {} KiB; send fewer or smaller \
                     headers",
                    MAX_HEADER_BYTES / 1024
                ),
            );
            return self.refuse(denial, method, reported_target(request.uri()), None);
        }
        let checked = match self.check(&request, method, identity).await {
            Ok(checked) => checked,
            Err(refusal) => return refusal,
        };

        if let Some(canonical) = checked.rewrite {
            match with_path(request.uri(), &canonical) {
                Ok(rewritten) => *request.uri_mut() = rewritten,
                Err(err) => {
                    tracing::error!(error = %err, "cannot rebuild the request URI with the canonical path");
                    return json_error(
                        StatusCode::BAD_REQUEST,
                        DenyKind::InvalidPath.code(),
                        "the request path cannot be forwarded",
                    );
                }
            }
        }

        let (agent, route) = (&checked.agent, checked.route);
        let forwarded = ForwardedIdentity {
            agent: agent.agent_header.as_ref(),
            owner: agent.owner_header.as_ref(),
            strip_authorization: checked.bearer,
        };
        match self.upstream.forward(request, &forwarded, link).await {
            Ok(response) => {
                tracing::debug!(agent = %agent.name, %method, action = %route.action, resource = %route.resource, status = %response.status(), "request forwarded");
                response
            }
            Err(err) => {
                tracing::warn!(agent = %agent.name, %method, action = %route.action, resource = %route.resource, error = %err, "upstream request failed");
                json_error(
                    StatusCode::BAD_GATEWAY,
                    "upstream_unavailable",
                    "the upstream service could not be reached or did not send a valid response",
                )
            }
        }
    }

    /// Authenticates the caller, canonicalises the path, finds the route and decides, without
    /// copying the request's path. A failed check returns the refusal to send.
    async fn check<'a>(
        &'a self,
        request: &Request<Incoming>,
        method: &str,
        identity: &ConnectionIdentity,
    ) -> Result<Checked<'a>, Response<ProxyBody>> {
        let path = request.uri().path();
        let target = reported_target(request.uri());
        // Routes are matched against the canonical path, and only that path is forwarded (see
        // `request_path`).
        let canonical = canonical_path(path);
        let route = canonical
            .as_deref()
            .ok()
            .and_then(|canonical| self.routes.find(method, canonical));

        let authenticated = self
            .authenticate(request, identity)
            .await
            .map_err(|denial| self.refuse(denial, method, target, route))?;
        let canonical = canonical.map_err(|reason| {
            let denial = Denial::new(
                DenyKind::InvalidPath,
                format!(
                    "{reason}; send the path without dot segments, empty segments or escaped \
                     separators"
                ),
            )
            .for_principal(authenticated.caller().spiffe_id.as_str());
            self.refuse(denial, method, target, None)
        })?;
        let (agent, route) = self
            .view
            .decide(&authenticated.caller(), route)
            .map_err(|denial| self.refuse(denial, method, target, route))?;

        Ok(Checked {
            agent,
            route,
            // Only a path with escapes can differ from its canonical form.
            rewrite: match canonical {
                Cow::Owned(canonical) if canonical != path => Some(canonical),
                _ => None,
            },
            bearer: matches!(authenticated, Authenticated::Bearer(_)),
        })
    }

    async fn authenticate<'a>(
        &self,
        request: &Request<Incoming>,
        identity: &'a ConnectionIdentity,
    ) -> Result<Authenticated<'a>, Denial> {
        match identity {
            ConnectionIdentity::Rejected(denial) => Err(denial.clone()),
            ConnectionIdentity::Certificate(leaf) => {
                // The chain was checked at the handshake; a long connection can outlive the
                // certificate, so its end is checked again for every request.
                if leaf.not_after <= OffsetDateTime::now_utc() {
                    return Err(Denial::new(
                        DenyKind::BadCertificate,
                        "the client certificate has expired; reconnect with the renewed SVID",
                    )
                    .for_principal(leaf.spiffe_id.as_str()));
                }
                Ok(Authenticated::Certificate(leaf))
            }
            ConnectionIdentity::Anonymous => {
                let token = bearer_token(request.headers().get(header::AUTHORIZATION))?;
                let claims = self.jwt.verify(token).await?;
                Ok(Authenticated::Bearer(claims.subject))
            }
        }
    }

    /// Logs and reports a denial of a request to `path` (the request target), and builds its
    /// error response.
    fn refuse(
        &self,
        denial: Denial,
        method: &str,
        path: &str,
        route: Option<&crate::routes::Route>,
    ) -> Response<ProxyBody> {
        let kind = denial.kind;
        tracing::info!(
            principal = denial.principal.as_deref(),
            method,
            path,
            reason = kind.reason(),
            status = kind.status().as_u16(),
            "request denied"
        );
        self.reporter.report(sigil_proto::GatewayDenial {
            at_ms: now_ms(),
            principal: denial.principal.clone(),
            method: method.to_owned(),
            path: path.chars().take(MAX_REPORTED_PATH_LEN).collect(),
            action: route.map(|route| route.action.clone()),
            resource: route.map(|route| route.resource.clone()),
            reason: kind.reason().to_owned(),
            status: kind.status().as_u16(),
        });
        let response = json_error(kind.status(), kind.code(), &denial.message);
        if method == "HEAD" {
            // A response to HEAD has no content; HTTP/2 clients reset a stream that sends some.
            let (parts, _) = response.into_parts();
            let empty = Full::new(bytes::Bytes::new())
                .map_err(|never| match never {})
                .boxed();
            return Response::from_parts(parts, empty);
        }
        response
    }
}

/// Returns `uri` with its path replaced by `path` and its query kept.
fn with_path(uri: &http::Uri, path: &str) -> Result<http::Uri, http::Error> {
    let path_and_query = match uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_owned(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(path_and_query.parse()?);
    Ok(http::Uri::from_parts(parts)?)
}

/// Returns the size of `headers` as sent over HTTP/1.1: each name and value, with 4 bytes for
/// the `: ` and the line end.
fn header_fields_len(headers: &http::HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

/// Returns the request target to log and report: the path, or the authority of a request
/// without one (the `host:port` of `CONNECT`).
fn reported_target(uri: &http::Uri) -> &str {
    match uri.path() {
        "" => uri.authority().map_or("*", http::uri::Authority::as_str),
        path => path,
    }
}

/// Maximum length of the request path copied into a denial report.
const MAX_REPORTED_PATH_LEN: usize = 1024;

/// Extracts the token of an `Authorization: Bearer` header.
fn bearer_token(value: Option<&HeaderValue>) -> Result<&str, Denial> {
    let Some(value) = value else {
        return Err(Denial::new(
            DenyKind::NoCredential,
            "present an X.509-SVID as the TLS client certificate, or a JWT-SVID in an \
             `Authorization: Bearer` header",
        ));
    };
    let text = value.to_str().map_err(|_| {
        Denial::new(
            DenyKind::BadToken,
            "the Authorization header is not visible ASCII",
        )
    })?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(Denial::new(
            DenyKind::BadToken,
            "the Authorization header must be `Bearer <JWT-SVID>`",
        ));
    }
    Ok(token.trim())
}

/// Builds `{"error": {"code", "message"}}` with `status`.
pub fn json_error(status: StatusCode, code: &str, message: &str) -> Response<ProxyBody> {
    let body = Full::new(error_body(code, message))
        .map_err(|never| match never {})
        .boxed();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_forms() {
        let ok = HeaderValue::from_static("Bearer abc.def.ghi");
        assert_eq!(bearer_token(Some(&ok)).unwrap(), "abc.def.ghi");
        let lower = HeaderValue::from_static("bearer abc");
        assert_eq!(bearer_token(Some(&lower)).unwrap(), "abc");

        assert_eq!(bearer_token(None).unwrap_err().kind, DenyKind::NoCredential);
        for bad in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer   ", "abc"] {
            let value = HeaderValue::from_str(bad).unwrap();
            assert_eq!(
                bearer_token(Some(&value)).unwrap_err().kind,
                DenyKind::BadToken,
                "{bad}"
            );
        }
    }
}
