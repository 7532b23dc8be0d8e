//! `sigil gateway`: a reverse proxy that lets only authorised agents reach a tool.
//!
//! For each request the gateway
//!
//! 1. authenticates the caller by its X.509-SVID (mutual TLS, checked against the trust bundle
//!    with `sigil-ca`'s SPIFFE rules) or by a JWT-SVID in `Authorization: Bearer` for the
//!    gateway's audience (checked with `sigil-jwt`'s strict verifier);
//! 2. refuses revoked certificates and agents that are not active;
//! 3. maps the method and path to an action and resource with the routes file, and decides
//!    with the `sigil-policy` engine built from the authority's policy set;
//! 4. forwards allowed requests to the upstream with `X-Sigil-Agent` and `X-Sigil-Owner`,
//!    streaming both bodies.
//!
//! The view behind these decisions follows the authority's revocation stream (see [`sync`]).
//! When the stream has been silent for longer than the staleness bound, every request is
//! refused with 503: the gateway fails closed. Refusals are reported to the authority in
//! batches (see [`report`]).
//!
//! The gateway's own identity is a `spiffe://<td>/gateway/<name>` SVID, obtained and renewed by
//! the `sigil-agent` library, which also serves it as the gateway's TLS certificate.

#![forbid(unsafe_code)]

pub mod authority;
mod denial;
pub mod driven;
mod error;
pub mod jwt;
pub mod link;
pub mod proxy;
pub mod report;
pub mod request_path;
pub mod routes;
mod run;
pub mod server;
pub mod sse;
pub mod sync;
pub mod tls;
pub mod upstream;
mod verdicts;
pub mod view;
pub mod workers;

pub use denial::{Denial, DenyKind};
pub use error::GatewayError;
pub use run::{DEFAULT_STALENESS, GatewayOptions, run_gateway};
