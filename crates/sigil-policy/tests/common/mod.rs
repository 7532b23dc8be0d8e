//! Helpers shared by the integration tests.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test on invalid fixtures"
)]
#![allow(
    dead_code,
    reason = "each test binary uses a different subset of the helpers"
)]

pub mod world;

use sigil_core::{AgentName, AgentStatus, Email, Entitlement, SpiffeId};
use sigil_policy::{AgentRecord, Decision, PolicyStore, PrincipalRef, Request, Snapshot};

/// Returns the record of agent `name` owned by `owner`, with `entitlements` as `ACTION:RESOURCE`.
pub fn agent(name: &str, owner: &str, status: AgentStatus, entitlements: &[&str]) -> AgentRecord {
    AgentRecord {
        name: AgentName::new(name).unwrap(),
        owner: Email::new(owner).unwrap(),
        status,
        spiffe_id: SpiffeId::parse(&format!("spiffe://example.org/agent/{name}")).unwrap(),
        entitlements: entitlements
            .iter()
            .map(|value| Entitlement::parse(value).unwrap())
            .collect(),
    }
}

/// Returns a store with the given agents.
pub fn store_with(agents: Vec<AgentRecord>) -> PolicyStore {
    let mut store = PolicyStore::new();
    for record in agents {
        store.upsert_agent(record).unwrap();
    }
    store
}

/// Decides `action` on `resource` for agent `name` with an empty context.
pub fn decide(snapshot: &Snapshot, name: &str, action: &str, resource: &str) -> Decision {
    let name = AgentName::new(name).unwrap();
    snapshot.authorize(&Request {
        principal: PrincipalRef::Agent(&name),
        action,
        resource,
        context: serde_json::Value::Null,
    })
}
