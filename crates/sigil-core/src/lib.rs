//! Domain types and rules of Sigil, free of HTTP, SQL and cryptography.
//!
//! Every type here enforces its invariants in its constructor: a [`SpiffeId`] is always well
//! formed, an [`AgentName`] is always one valid SPIFFE path segment, and an [`AgentStatus`] only
//! moves along the allowed lifecycle. The outer crates parse untrusted input into these types once
//! and then rely on them.

#![forbid(unsafe_code)]

pub mod agent;
pub mod audit;
pub mod entitlement;
mod error;
pub mod lifetime;
pub mod owner;
pub mod spiffe_id;

pub use agent::{AgentName, AgentStatus, Principal};
pub use audit::{AuditChainError, AuditRecord, ChainedAuditRecord, GENESIS_HASH, verify_chain};
pub use entitlement::Entitlement;
pub use error::CoreError;
pub use lifetime::SvidLifetime;
pub use owner::{Email, OwnerStatus};
pub use spiffe_id::{SpiffeId, TrustDomain};
