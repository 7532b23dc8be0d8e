//! The daemon beside each agent: it bootstraps an identity with a one-time join token, keeps
//! the X.509-SVID fresh over mutual TLS with a new key every time, and writes `svid.pem`,
//! `svid.key` and `bundle.pem` atomically for the agent to read.
//!
//! The private key is generated on this host and never leaves it: the authority only ever sees
//! a CSR.

#![forbid(unsafe_code)]

pub mod daemon;
mod error;
pub mod files;
pub mod identity;
pub mod mtls;
pub mod workload;

pub use error::AgentError;
pub use identity::{Outcome, RunOptions, obtain_svid};
