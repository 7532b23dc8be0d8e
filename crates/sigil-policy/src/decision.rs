//! Requests and decisions.

use std::fmt;

use serde::{Deserialize, Serialize};
use sigil_core::{AgentName, Entitlement, SpiffeId};

/// The principal of a request: an agent, named directly or by its SPIFFE ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalRef<'a> {
    /// An agent name, such as `crm-bot`.
    Agent(&'a AgentName),
    /// An agent's SPIFFE ID, such as `spiffe://example.org/agent/crm-bot`.
    SpiffeId(&'a SpiffeId),
}

impl<'a> From<&'a AgentName> for PrincipalRef<'a> {
    fn from(name: &'a AgentName) -> Self {
        Self::Agent(name)
    }
}

impl<'a> From<&'a SpiffeId> for PrincipalRef<'a> {
    fn from(id: &'a SpiffeId) -> Self {
        Self::SpiffeId(id)
    }
}

impl fmt::Display for PrincipalRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Agent(name) => write!(f, "{name}"),
            Self::SpiffeId(id) => write!(f, "{id}"),
        }
    }
}

/// An authorization request: may `principal` perform `action` on `resource`?
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    /// The requesting agent.
    pub principal: PrincipalRef<'a>,
    /// The entitlement action, such as `invoke`.
    pub action: &'a str,
    /// The resource, such as `tool:crm/contacts`.
    pub resource: &'a str,
    /// A JSON object of request attributes, or `null`. Only attributes declared in the schema
    /// reach Cedar; the others are ignored with a diagnostic.
    pub context: serde_json::Value,
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// At least one permit policy applies and no forbid policy applies.
    Allow,
    /// A forbid policy or a built-in rule applies, or no permit policy applies.
    Deny,
}

impl Verdict {
    /// Returns `allow` or `deny`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny => "deny",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Allow or deny.
    pub decision: Verdict,
    /// Ids of the determining policies, sorted: the satisfied permits of an allow, or the
    /// satisfied forbids of a deny. Empty for a deny because no permit applied. For a suspended
    /// or decommissioned agent it is only the built-in policy, because the engine decides such
    /// requests without evaluating custom forbids.
    pub policies: Vec<String>,
    /// Reasons the request could not be evaluated normally (unknown agent, undeclared action,
    /// invalid context), and Cedar's policy evaluation errors. Empty in the common case.
    pub diagnostics: Vec<String>,
    /// The agent the principal resolved to, if it is registered.
    pub agent: Option<AgentName>,
    /// The agent's entitlements whose policies allowed the request, for last-used tracking.
    /// Empty for a deny and for an allow that only custom policies determined.
    pub entitlements: Vec<Entitlement>,
    /// Version of the snapshot that made the decision.
    pub version: u64,
}

impl Decision {
    /// Returns true for [`Verdict::Allow`].
    pub fn is_allowed(&self) -> bool {
        self.decision == Verdict::Allow
    }
}
