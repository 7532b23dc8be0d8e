//! The Sigil authority: an HTTPS API over rustls that attests agents, issues and renews their
//! X.509-SVIDs, serves the trust bundle and CRL, and runs the admin API.
//!
//! Request flow: [`tls`] accepts a connection and records the client certificate chain, if
//! any, in the request's extensions; [`extract`] turns that chain into an admin or agent caller
//! per route; the handlers in [`routes`] validate input, call the CA and the store, and return
//! JSON; [`middleware`] audits every rejection and records metrics.

#![forbid(unsafe_code)]

mod audit_queue;
pub mod authority;
pub mod clock;
mod crl;
mod error;
mod extract;
pub mod governance;
pub mod init;
pub mod jwt_keys;
pub mod layout;
mod metrics;
mod middleware;
mod policy;
mod revocations;
pub(crate) mod routes;
pub mod serve;
mod state;
pub mod tls;
pub mod webhook;

pub use error::ServerError;
pub use serve::{ServeOptions, serve};
