//! Request extractors: JSON bodies with Sigil's error format, and caller identities from the
//! client certificate.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use sigil_ca::verify::LeafSvid;
use sigil_core::{AgentName, Principal};

use crate::error::ApiError;
use crate::state::AppState;
use crate::tls::PeerCertificates;

/// A JSON request body; every way it can be wrong maps to a Sigil error response.
pub(crate) struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<ObjectOnly<T>>::from_request(req, state).await {
            Ok(Json(ObjectOnly(value))) => Ok(Self(value)),
            Err(rejection) => Err(json_error(&rejection)),
        }
    }
}

/// A request body that must be a JSON object.
///
/// serde_json lets a derived struct be read from an array of its field values in order, so
/// `["a@example.org", "Name"]` would pass as `{"email": …, "name": …}`. Every request body of
/// the API is an object, so anything else is rejected.
struct ObjectOnly<T>(T);

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for ObjectOnly<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ObjectVisitor(std::marker::PhantomData))
    }
}

struct ObjectVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: serde::Deserialize<'de>> serde::de::Visitor<'de> for ObjectVisitor<T> {
    type Value = ObjectOnly<T>;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(ObjectOnly)
    }
}

fn json_error(rejection: &JsonRejection) -> ApiError {
    let detail: String = rejection.body_text().chars().take(300).collect();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be JSON: send `Content-Type: application/json`",
        ),
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(
            "malformed_json",
            format!("the request body is not valid JSON: {detail}"),
        ),
        JsonRejection::JsonDataError(_) => ApiError::bad_request(
            "invalid_request",
            format!("the request body has invalid fields: {detail}"),
        ),
        JsonRejection::BytesRejection(_) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!(
                    "the request body is larger than the limit of {} bytes",
                    crate::routes::BODY_LIMIT
                ),
            )
        }
        _ => ApiError::bad_request(
            "invalid_request",
            format!("the request body could not be read: {detail}"),
        ),
    }
}

/// A path parameter; a malformed one (such as invalid UTF-8) maps to a Sigil error response.
pub(crate) struct ApiPath<T>(pub T);

impl<T, S> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::bad_request(
                "invalid_path",
                format!(
                    "the request path is invalid: {}",
                    rejection.body_text().chars().take(200).collect::<String>()
                ),
            )),
        }
    }
}

/// The SVID of the caller's verified client certificate.
fn caller_svid(parts: &Parts, _state: &AppState) -> Result<LeafSvid, ApiError> {
    let Some(peer) = parts.extensions.get::<PeerCertificates>() else {
        return Err(ApiError::unauthorized(
            "client_certificate_required",
            "this route needs a client certificate (an X.509-SVID issued by this authority)",
        ));
    };
    peer.svid.as_ref().clone().map_err(|err| {
        ApiError::forbidden(
            "invalid_svid",
            format!("the client certificate is not a valid SVID: {err}"),
        )
    })
}

/// Rejects a certificate this authority did not record, or recorded as revoked.
async fn check_registry(state: &AppState, svid: &LeafSvid) -> Result<(), ApiError> {
    let Some(credential) = state.store.credential(&svid.serial_hex).await? else {
        return Err(ApiError::forbidden(
            "unknown_certificate",
            format!(
                "the client certificate (serial {}) was not issued by this authority",
                svid.serial_hex
            ),
        ));
    };
    if credential.revoked_at_ms.is_some() {
        return Err(ApiError::forbidden(
            "certificate_revoked",
            format!(
                "the client certificate (serial {}) is revoked",
                svid.serial_hex
            ),
        ));
    }
    Ok(())
}

/// Like [`check_registry`], once per connection and revocation epoch: the registry is asked again
/// only after this process revoked something, so a revocation applies to the next request.
async fn check_issued_and_live(
    state: &AppState,
    parts: &Parts,
    svid: &LeafSvid,
) -> Result<(), ApiError> {
    use std::sync::atomic::Ordering;

    let epoch = state.revocation_epoch.load(Ordering::Acquire);
    let peer = parts.extensions.get::<PeerCertificates>();
    if peer.is_some_and(|p| p.confirmed_at_epoch.load(Ordering::Acquire) == epoch) {
        return Ok(());
    }
    check_registry(state, svid).await?;
    if let Some(peer) = peer {
        peer.confirmed_at_epoch.store(epoch, Ordering::Release);
    }
    Ok(())
}

/// An admin caller, `spiffe://<td>/admin/<name>`.
pub(crate) struct AdminCaller {
    pub svid: LeafSvid,
}

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let svid = caller_svid(parts, state)?;
        match Principal::from_id(&svid.spiffe_id, &state.trust_domain) {
            Some(Principal::Admin(_)) => {}
            _ => {
                return Err(ApiError::forbidden(
                    "admin_required",
                    format!(
                        "`{}` is not an admin identity; admin routes need spiffe://{}/admin/<name>",
                        svid.spiffe_id, state.trust_domain
                    ),
                ));
            }
        }
        check_issued_and_live(state, parts, &svid).await?;
        Ok(Self { svid })
    }
}

/// A caller of the decision API: an admin or a gateway, `spiffe://<td>/gateway/<name>`.
pub(crate) struct DecisionCaller {
    pub spiffe_id: String,
}

impl FromRequestParts<AppState> for DecisionCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let spiffe_id = admin_or_gateway(
            parts,
            state,
            "decision_caller_required",
            "call the decision API",
        )
        .await?;
        Ok(Self { spiffe_id })
    }
}

/// A caller of the enforcement routes (`/v1/revocations`, `/v1/gateway/state`): an admin or a
/// gateway.
pub(crate) struct EnforcementCaller {
    pub spiffe_id: String,
}

impl FromRequestParts<AppState> for EnforcementCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let spiffe_id = admin_or_gateway(
            parts,
            state,
            "gateway_or_admin_required",
            "read revocations or gateway state",
        )
        .await?;
        Ok(Self { spiffe_id })
    }
}

/// Returns the SPIFFE ID of a caller that is an admin or a gateway and presents a certificate
/// this authority issued and has not revoked; anyone else gets 403 `code`, saying it may not
/// `operation`.
async fn admin_or_gateway(
    parts: &mut Parts,
    state: &AppState,
    code: &'static str,
    operation: &str,
) -> Result<String, ApiError> {
    let svid = caller_svid(parts, state)?;
    match Principal::from_id(&svid.spiffe_id, &state.trust_domain) {
        Some(Principal::Admin(_) | Principal::Gateway(_)) => {}
        _ => {
            return Err(ApiError::forbidden(
                code,
                format!(
                    "`{}` may not {operation}; only admins and gateways \
                     (spiffe://{}/gateway/<name>) may",
                    svid.spiffe_id, state.trust_domain
                ),
            ));
        }
    }
    check_issued_and_live(state, parts, &svid).await?;
    Ok(svid.spiffe_id.to_string())
}

/// A gateway caller, `spiffe://<td>/gateway/<name>`, presenting a certificate this authority
/// issued and has not revoked.
pub(crate) struct GatewayCaller {
    pub spiffe_id: String,
}

impl FromRequestParts<AppState> for GatewayCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let svid = caller_svid(parts, state)?;
        let Some(Principal::Gateway(_)) = Principal::from_id(&svid.spiffe_id, &state.trust_domain)
        else {
            return Err(ApiError::forbidden(
                "gateway_required",
                format!(
                    "`{}` is not a gateway identity; this route needs spiffe://{}/gateway/<name>",
                    svid.spiffe_id, state.trust_domain
                ),
            ));
        };
        check_issued_and_live(state, parts, &svid).await?;
        Ok(Self {
            spiffe_id: svid.spiffe_id.to_string(),
        })
    }
}

/// A caller that renews its own SVID: an agent or a gateway.
pub(crate) enum WorkloadCaller {
    Agent(AgentCaller),
    Gateway { name: AgentName, svid: LeafSvid },
}

impl FromRequestParts<AppState> for WorkloadCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let svid = caller_svid(parts, state)?;
        match Principal::from_id(&svid.spiffe_id, &state.trust_domain) {
            Some(Principal::Gateway(name)) => {
                check_issued_and_live(state, parts, &svid).await?;
                Ok(Self::Gateway { name, svid })
            }
            _ => Ok(Self::Agent(
                AgentCaller::from_request_parts(parts, state).await?,
            )),
        }
    }
}

/// An agent caller, `spiffe://<td>/agent/<name>`, presenting a certificate this authority issued
/// and has not revoked.
pub(crate) struct AgentCaller {
    pub name: AgentName,
    pub svid: LeafSvid,
}

impl FromRequestParts<AppState> for AgentCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let svid = caller_svid(parts, state)?;
        let Some(Principal::Agent(name)) = Principal::from_id(&svid.spiffe_id, &state.trust_domain)
        else {
            return Err(ApiError::forbidden(
                "agent_required",
                format!("`{}` is not an agent identity", svid.spiffe_id),
            ));
        };
        check_issued_and_live(state, parts, &svid).await?;
        Ok(Self { name, svid })
    }
}

/// The caller's SPIFFE ID for audit events, or `anonymous`.
pub(crate) fn actor(parts_extensions: &axum::http::Extensions, _state: &AppState) -> String {
    parts_extensions
        .get::<PeerCertificates>()
        .and_then(|peer| {
            peer.svid
                .as_ref()
                .as_ref()
                .ok()
                .map(|svid| svid.spiffe_id.to_string())
        })
        .unwrap_or_else(|| "anonymous".to_owned())
}

/// An optional JSON body: an empty body gives `T::default()`, anything else must be valid JSON.
pub(crate) struct OptionalJson<T>(pub T);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let has_body = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .is_none_or(|len| len.as_bytes() != b"0");
        let has_type = req.headers().contains_key(axum::http::header::CONTENT_TYPE);
        if !has_body || !has_type {
            let bytes = axum::body::Bytes::from_request(req, state)
                .await
                .map_err(|_| {
                    ApiError::bad_request("invalid_request", "the request body could not be read")
                })?;
            if bytes.is_empty() {
                return Ok(Self(T::default()));
            }
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the request body must be JSON: send `Content-Type: application/json`",
            ));
        }
        let ApiJson(value) = ApiJson::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}
