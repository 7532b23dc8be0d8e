//! Governance rules of Sigil, free of I/O so that they can be tested and benchmarked alone.
//!
//! - [`kind`]: the finding kinds and their default severities.
//! - [`rules`]: what the scanner concludes from facts about one agent, one external credential
//!   or one entitlement, at a time the caller supplies.
//! - [`reconcile`]: turns a scan's detections and the stored findings into the changes to apply:
//!   open, refresh, resolve, and leave accepted findings alone.
//! - [`import`]: parsers of external credential inventories (the AWS IAM credential report and a
//!   generic JSON schema). They read metadata only and reject columns that look like secrets.
//! - [`webhook`]: the HMAC-SHA256 signature of webhook deliveries.

#![forbid(unsafe_code)]

mod error;
pub mod import;
pub mod kind;
pub mod reconcile;
pub mod rules;
pub mod webhook;

pub use error::GovernanceError;
pub use kind::{FindingKind, Severity};
pub use reconcile::{Existing, Plan, plan};
pub use rules::{AgentFacts, Detection, EntitlementFacts, ExternalFacts, Settings};
