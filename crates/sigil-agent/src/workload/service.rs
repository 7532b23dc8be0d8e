//! The `SpiffeWorkloadAPI` gRPC service.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use super::X509Material;
use super::pb::spiffe_workload_api_server::SpiffeWorkloadApi;
use super::pb::{
    JwtBundlesRequest, JwtBundlesResponse, Jwtsvid, JwtsvidRequest, JwtsvidResponse,
    ValidateJwtsvidRequest, ValidateJwtsvidResponse, X509BundlesRequest, X509BundlesResponse,
    X509svid, X509svidRequest, X509svidResponse,
};

/// Metadata header every Workload API call must carry with the value `true`.
const SECURITY_HEADER: &str = "workload.spiffe.io";

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// A JWKS document and the trust domain it belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtBundle {
    /// `spiffe://<trust domain>`, the key of the Workload API's bundle map.
    pub trust_domain_id: String,
    /// The JWKS JSON as served by the authority.
    pub jwks: Vec<u8>,
}

/// The newest JWT bundle, `None` until the first fetch.
pub type JwtBundleWatch = watch::Receiver<Option<Arc<JwtBundle>>>;

/// Where JWT-SVIDs and JWT bundles come from.
#[tonic::async_trait]
pub trait JwtBackend: Send + Sync + 'static {
    /// Returns a JWT-SVID for `audience`.
    async fn fetch(&self, audience: &str) -> Result<(String, String), Status>;

    /// Returns the current JWKS document, keyed by trust domain ID, as it changes.
    fn bundles(&self) -> JwtBundleWatch;

    /// Validates a JWT-SVID for `audience`; returns its SPIFFE ID and claims.
    async fn validate(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<(String, prost_types::Struct), Status>;
}

/// The Workload API of one agent identity.
pub struct WorkloadService {
    x509: watch::Receiver<Option<Arc<X509Material>>>,
    jwt: Arc<dyn JwtBackend>,
}

impl WorkloadService {
    pub fn new(x509: watch::Receiver<Option<Arc<X509Material>>>, jwt: Arc<dyn JwtBackend>) -> Self {
        Self { x509, jwt }
    }
}

/// Rejects a call without `workload.spiffe.io: true`, as the Workload API specification requires.
fn check_header<T>(request: &Request<T>) -> Result<(), Status> {
    let present = request
        .metadata()
        .get(SECURITY_HEADER)
        .is_some_and(|value| value.as_bytes() == b"true");
    if present {
        Ok(())
    } else {
        Err(Status::invalid_argument(
            "security header missing from request: send the metadata `workload.spiffe.io: true`",
        ))
    }
}

fn x509_svid_response(material: &X509Material) -> X509svidResponse {
    X509svidResponse {
        svids: vec![X509svid {
            spiffe_id: material.spiffe_id.clone(),
            x509_svid: material.chain_der.clone(),
            x509_svid_key: material.key_pkcs8_der.to_vec(),
            bundle: material.bundle_der.clone(),
            hint: String::new(),
        }],
        crl: Vec::new(),
        federated_bundles: HashMap::new(),
    }
}

fn x509_bundles_response(material: &X509Material) -> X509BundlesResponse {
    X509BundlesResponse {
        crl: Vec::new(),
        bundles: HashMap::from([(
            material.trust_domain_id.clone(),
            material.bundle_der.clone(),
        )]),
    }
}

#[tonic::async_trait]
impl SpiffeWorkloadApi for WorkloadService {
    type FetchX509SVIDStream = ResponseStream<X509svidResponse>;
    type FetchX509BundlesStream = ResponseStream<X509BundlesResponse>;
    type FetchJWTBundlesStream = ResponseStream<JwtBundlesResponse>;

    async fn fetch_x509svid(
        &self,
        request: Request<X509svidRequest>,
    ) -> Result<Response<Self::FetchX509SVIDStream>, Status> {
        check_header(&request)?;
        let stream = WatchStream::new(self.x509.clone())
            .filter_map(|material| material.map(|m| Ok(x509_svid_response(&m))));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_x509_bundles(
        &self,
        request: Request<X509BundlesRequest>,
    ) -> Result<Response<Self::FetchX509BundlesStream>, Status> {
        check_header(&request)?;
        let stream = WatchStream::new(self.x509.clone())
            .filter_map(|material| material.map(|m| Ok(x509_bundles_response(&m))));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn fetch_jwtsvid(
        &self,
        request: Request<JwtsvidRequest>,
    ) -> Result<Response<JwtsvidResponse>, Status> {
        check_header(&request)?;
        let request = request.into_inner();

        let audience = match request.audience.as_slice() {
            [] => {
                return Err(Status::invalid_argument(
                    "audience is required: request at least one",
                ));
            }
            [one] => one.clone(),
            _ => {
                return Err(Status::invalid_argument(
                    "Sigil issues JWT-SVIDs with exactly one audience: request one audience per token",
                ));
            }
        };
        let served = self.x509.borrow().as_ref().map(|m| m.spiffe_id.clone());
        if let Some(served) = served
            && !request.spiffe_id.is_empty()
            && request.spiffe_id != served
        {
            return Err(Status::permission_denied(format!(
                "this Workload API serves `{served}`, not `{}`",
                request.spiffe_id
            )));
        }

        let (spiffe_id, token) = self.jwt.fetch(&audience).await?;
        Ok(Response::new(JwtsvidResponse {
            svids: vec![Jwtsvid {
                spiffe_id,
                svid: token,
                hint: String::new(),
            }],
        }))
    }

    async fn fetch_jwt_bundles(
        &self,
        request: Request<JwtBundlesRequest>,
    ) -> Result<Response<Self::FetchJWTBundlesStream>, Status> {
        check_header(&request)?;
        let stream = WatchStream::new(self.jwt.bundles()).filter_map(|bundle| {
            bundle.map(|b| {
                Ok(JwtBundlesResponse {
                    bundles: HashMap::from([(b.trust_domain_id.clone(), b.jwks.clone())]),
                })
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn validate_jwtsvid(
        &self,
        request: Request<ValidateJwtsvidRequest>,
    ) -> Result<Response<ValidateJwtsvidResponse>, Status> {
        check_header(&request)?;
        let request = request.into_inner();
        if request.audience.is_empty() {
            return Err(Status::invalid_argument("audience is required"));
        }
        if request.svid.is_empty() {
            return Err(Status::invalid_argument("svid is required"));
        }

        let (spiffe_id, claims) = self.jwt.validate(&request.svid, &request.audience).await?;
        Ok(Response::new(ValidateJwtsvidResponse {
            spiffe_id,
            claims: Some(claims),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A backend for tests that only reach the header check.
    struct NoJwt;

    #[tonic::async_trait]
    impl JwtBackend for NoJwt {
        async fn fetch(&self, _audience: &str) -> Result<(String, String), Status> {
            Err(Status::unimplemented("not used"))
        }

        fn bundles(&self) -> JwtBundleWatch {
            watch::channel(None).1
        }

        async fn validate(
            &self,
            _token: &str,
            _audience: &str,
        ) -> Result<(String, prost_types::Struct), Status> {
            Err(Status::unimplemented("not used"))
        }
    }

    fn service() -> WorkloadService {
        WorkloadService::new(watch::channel(None).1, Arc::new(NoJwt))
    }

    fn assert_header_rejected(status: Status) {
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains("workload.spiffe.io"),
            "{}",
            status.message()
        );
    }

    #[tokio::test]
    async fn calls_without_header_rejected() {
        let service = service();
        assert_header_rejected(
            service
                .fetch_x509svid(Request::new(X509svidRequest {}))
                .await
                .err()
                .unwrap(),
        );
        assert_header_rejected(
            service
                .fetch_x509_bundles(Request::new(X509BundlesRequest {}))
                .await
                .err()
                .unwrap(),
        );
        assert_header_rejected(
            service
                .fetch_jwt_bundles(Request::new(JwtBundlesRequest {}))
                .await
                .err()
                .unwrap(),
        );
        let jwt = JwtsvidRequest {
            audience: vec!["a".into()],
            spiffe_id: String::new(),
        };
        assert_header_rejected(
            service
                .fetch_jwtsvid(Request::new(jwt))
                .await
                .err()
                .unwrap(),
        );
        let validate = ValidateJwtsvidRequest {
            audience: "a".into(),
            svid: "x".into(),
        };
        assert_header_rejected(
            service
                .validate_jwtsvid(Request::new(validate))
                .await
                .err()
                .unwrap(),
        );
    }

    #[tokio::test]
    async fn header_must_be_true() {
        let mut request = Request::new(X509svidRequest {});
        request
            .metadata_mut()
            .insert(SECURITY_HEADER, "false".parse().unwrap());
        assert_header_rejected(service().fetch_x509svid(request).await.err().unwrap());
    }

    #[tokio::test]
    async fn jwt_request_needs_one_audience() {
        let mut none = Request::new(JwtsvidRequest {
            audience: vec![],
            spiffe_id: String::new(),
        });
        none.metadata_mut()
            .insert(SECURITY_HEADER, "true".parse().unwrap());
        let status = service().fetch_jwtsvid(none).await.err().unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);

        let mut two = Request::new(JwtsvidRequest {
            audience: vec!["a".into(), "b".into()],
            spiffe_id: String::new(),
        });
        two.metadata_mut()
            .insert(SECURITY_HEADER, "true".parse().unwrap());
        let status = service().fetch_jwtsvid(two).await.err().unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
}
