//! The decision engine inside the authority: loaded from the registry, rebuilt after every
//! change that affects decisions, and swapped atomically.
//!
//! The engine (`sigil-policy`) answers from an immutable snapshot. Changes go through the
//! [`PolicyStore`] under a mutex, then a new snapshot replaces the old one in one atomic swap,
//! so no decision ever sees half of an update. Allowed decisions are counted in memory per
//! entitlement and written to the registry in batches, not one write per decision.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Mutex;

use sigil_core::{AgentName, AgentStatus, Email, Entitlement, SpiffeId};
use sigil_policy::{AgentRecord, Decision, Engine, PolicyError, PolicyStore, Request};
use sigil_store::Store;

use crate::ServerError;

/// The engine and the authoring state it is rebuilt from.
pub(crate) struct PolicyService {
    engine: Engine,
    authoring: tokio::sync::Mutex<PolicyStore>,
    /// Last use of each `(agent, action, resource)` entitlement since the last flush.
    usage: Mutex<HashMap<(String, String, String), i64>>,
}

impl PolicyService {
    /// Loads every agent, entitlement and custom policy from the registry.
    pub async fn load(store: &Store) -> Result<Self, ServerError> {
        let mut authoring = PolicyStore::new();

        let mut entitlements: HashMap<String, Vec<Entitlement>> = HashMap::new();
        for (agent, action, resource, _) in store.all_entitlements().await? {
            if let Ok(entitlement) = Entitlement::parse(&format!("{action}:{resource}")) {
                entitlements.entry(agent).or_default().push(entitlement);
            }
        }
        for agent in store.agents().await? {
            let held = entitlements.remove(&agent.name).unwrap_or_default();
            authoring
                .upsert_agent(record(&agent, held)?)
                .map_err(policy_error)?;
        }
        for policy in store.policies().await? {
            if let Err(err) = authoring.restore_custom_policy(&policy.id, &policy.text) {
                // Restoring counts the policy's own actions as declared, so a policy stays valid
                // after the last entitlement of its action is revoked; anything else is skipped
                // loudly.
                tracing::error!(policy = %policy.id, error = %err, "stored custom policy no longer validates; skipped");
            }
        }

        let version = u64::try_from(store.policy_version().await?).unwrap_or(0);
        let snapshot = authoring.build_snapshot(version).map_err(policy_error)?;
        tracing::info!(
            agents = authoring.agent_count(),
            version,
            "decision engine loaded"
        );
        Ok(Self {
            engine: Engine::new(snapshot),
            authoring: tokio::sync::Mutex::new(authoring),
            usage: Mutex::new(HashMap::new()),
        })
    }

    /// Decides a request with the current snapshot and remembers which entitlements allowed it.
    pub fn authorize(&self, request: &Request<'_>, now_ms: i64) -> Decision {
        let decision = self.engine.authorize(request);
        if decision.is_allowed()
            && let Some(agent) = &decision.agent
            && let Ok(mut usage) = self.usage.lock()
        {
            for entitlement in &decision.entitlements {
                let key = (
                    agent.to_string(),
                    entitlement.action().to_owned(),
                    entitlement.resource().to_owned(),
                );
                usage.insert(key, now_ms);
            }
        }
        decision
    }

    /// Returns the version of the snapshot decisions use now.
    pub fn version(&self) -> u64 {
        self.engine.version()
    }

    /// Re-reads one agent (status, owner, entitlements) and swaps in a new snapshot.
    pub async fn refresh_agent(&self, store: &Store, name: &str) -> Result<(), ServerError> {
        let agent = store.agent(name).await?;
        let held = store
            .entitlements(name)
            .await?
            .into_iter()
            .filter_map(|e| Entitlement::parse(&format!("{}:{}", e.action, e.resource)).ok())
            .collect();
        let version = u64::try_from(store.policy_version().await?).unwrap_or(0);

        let mut authoring = self.authoring.lock().await;
        authoring
            .upsert_agent(record(&agent, held)?)
            .map_err(policy_error)?;
        self.swap(&authoring, version)
    }

    /// Validates a custom policy, stores it with `persist`, and swaps in a new snapshot. Nothing
    /// changes if validation or `persist` fails.
    pub async fn add_custom<F, Fut>(
        &self,
        id: &str,
        text: &str,
        persist: F,
    ) -> Result<u64, AddPolicyError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<i64, sigil_store::StoreError>>,
    {
        let mut authoring = self.authoring.lock().await;
        authoring
            .add_custom_policy(id, text)
            .map_err(AddPolicyError::Invalid)?;

        let version = match persist().await {
            Ok(version) => u64::try_from(version).unwrap_or(0),
            Err(err) => {
                let _ = authoring.remove_custom_policy(id);
                return Err(AddPolicyError::Store(err));
            }
        };
        self.swap(&authoring, version)
            .map_err(AddPolicyError::Server)?;
        Ok(version)
    }

    /// Removes a custom policy after `persist` removed it from the registry.
    pub async fn remove_custom<F, Fut>(&self, id: &str, persist: F) -> Result<u64, ServerError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<i64, sigil_store::StoreError>>,
    {
        let mut authoring = self.authoring.lock().await;
        let version = u64::try_from(persist().await?).unwrap_or(0);
        if let Err(err) = authoring.remove_custom_policy(id) {
            tracing::warn!(policy = id, error = %err, "removed policy was not loaded in the engine");
        }
        self.swap(&authoring, version)?;
        Ok(version)
    }

    fn swap(&self, authoring: &PolicyStore, version: u64) -> Result<(), ServerError> {
        let snapshot = authoring.build_snapshot(version).map_err(policy_error)?;
        self.engine.replace(snapshot).map_err(policy_error)?;
        tracing::debug!(version, "decision engine snapshot replaced");
        Ok(())
    }

    /// Writes the remembered entitlement uses to the registry.
    pub async fn flush_usage(&self, store: &Store) {
        let uses: Vec<(String, String, String, i64)> = match self.usage.lock() {
            Ok(mut usage) => usage.drain().map(|((a, b, c), at)| (a, b, c, at)).collect(),
            Err(_) => return,
        };
        if let Err(err) = store.record_entitlement_use(&uses).await {
            tracing::error!(error = %err, count = uses.len(), "failed to record entitlement use; dropped");
        }
    }
}

/// Why a custom policy was not added.
pub(crate) enum AddPolicyError {
    Invalid(PolicyError),
    Store(sigil_store::StoreError),
    Server(ServerError),
}

fn record(
    agent: &sigil_store::AgentRow,
    entitlements: Vec<Entitlement>,
) -> Result<AgentRecord, ServerError> {
    let corrupt = |what: &str, err: String| {
        ServerError::Config(format!(
            "stored agent `{}` has an invalid {what}: {err}",
            agent.name
        ))
    };
    Ok(AgentRecord {
        name: AgentName::new(&agent.name).map_err(|e| corrupt("name", e.to_string()))?,
        owner: Email::new(&agent.owner_email).map_err(|e| corrupt("owner", e.to_string()))?,
        status: AgentStatus::from_str(agent.status.as_str())
            .map_err(|e| corrupt("status", e.to_string()))?,
        spiffe_id: SpiffeId::parse(&agent.spiffe_id)
            .map_err(|e| corrupt("SPIFFE ID", e.to_string()))?,
        entitlements,
    })
}

fn policy_error(err: PolicyError) -> ServerError {
    ServerError::Config(format!("decision engine: {err}"))
}
