//! The mutable set of agents, actions and custom policies that snapshots are built from.

use std::collections::{BTreeMap, BTreeSet};

use cedar_policy::Policy;
use sigil_core::{AgentName, AgentStatus, Email, Entitlement, SpiffeId};

use crate::compile::compile_entitlement;
use crate::custom::{
    AcceptedPolicy, CustomPolicy, parse_custom_policy, referenced_actions, validate,
};
use crate::error::PolicyError;
use crate::schema::{ContextAttributeType, Schema, TypeNames, check_action};
use crate::snapshot::Snapshot;

/// The registry data of an agent that decisions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRecord {
    /// The agent's name, the id of its `Sigil::Agent` entity.
    pub name: AgentName,
    /// The accountable owner, the parent of the agent's entity.
    pub owner: Email,
    /// The lifecycle status. Suspended and decommissioned agents are denied everything.
    pub status: AgentStatus,
    /// The agent's SPIFFE ID, by which requests may name it.
    pub spiffe_id: SpiffeId,
    /// Baseline and granted entitlements together. Both compile the same way; duplicates are
    /// compiled once.
    pub entitlements: Vec<Entitlement>,
}

/// An agent with its compiled entitlement policies.
#[derive(Debug, Clone)]
pub(crate) struct StoredAgent {
    pub(crate) record: AgentRecord,
    pub(crate) policies: Vec<(Entitlement, Policy)>,
}

/// A custom policy with the actions it mentions, which stay declared while it exists.
#[derive(Debug, Clone)]
pub(crate) struct StoredCustomPolicy {
    pub(crate) policy: CustomPolicy,
    pub(crate) actions: Vec<String>,
}

/// The authoring side of the engine: agents, declared actions, context attributes and custom
/// policies, from which [`PolicyStore::build_snapshot`] builds immutable snapshots.
///
/// Entitlements are compiled when an agent is added, so building a snapshot only assembles and
/// indexes policy sets. The declared actions are the union of the actions declared explicitly,
/// the actions of all entitlements and the actions that accepted custom policies mention, so
/// removing an entitlement never invalidates a custom policy.
#[derive(Debug, Clone, Default)]
pub struct PolicyStore {
    agents: BTreeMap<AgentName, StoredAgent>,
    declared_actions: BTreeSet<String>,
    context_attributes: BTreeMap<String, ContextAttributeType>,
    custom: BTreeMap<String, StoredCustomPolicy>,
}

impl PolicyStore {
    /// Creates an empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an agent or replaces the agent with the same name, compiling its entitlements.
    pub fn upsert_agent(&mut self, record: AgentRecord) -> Result<(), PolicyError> {
        let unique: BTreeSet<&Entitlement> = record.entitlements.iter().collect();
        let policies = unique
            .into_iter()
            .map(|entitlement| {
                compile_entitlement(&record.name, entitlement)
                    .map(|policy| (entitlement.clone(), policy))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.agents
            .insert(record.name.clone(), StoredAgent { record, policies });
        Ok(())
    }

    /// Removes an agent; returns its record if it was present.
    pub fn remove_agent(&mut self, name: &AgentName) -> Option<AgentRecord> {
        self.agents.remove(name).map(|stored| stored.record)
    }

    /// Returns the record of an agent.
    pub fn agent(&self, name: &AgentName) -> Option<&AgentRecord> {
        self.agents.get(name).map(|stored| &stored.record)
    }

    /// Returns the number of agents.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// Declares an action that no entitlement uses yet, so that custom policies may name it and
    /// requests for it are evaluated.
    pub fn declare_action(&mut self, action: &str) -> Result<(), PolicyError> {
        check_action(action)?;
        self.declared_actions.insert(action.to_owned());
        Ok(())
    }

    /// Declares an optional context attribute that policies may read as `context.NAME`.
    pub fn declare_context_attribute(
        &mut self,
        name: &str,
        attribute_type: ContextAttributeType,
    ) -> Result<(), PolicyError> {
        if let Some(existing) = self.context_attributes.get(name)
            && *existing != attribute_type
        {
            return Err(PolicyError::ConflictingContextAttribute {
                name: name.to_owned(),
                existing: existing.cedar_name(),
                requested: attribute_type.cedar_name(),
            });
        }
        let mut attributes = self.context_attributes.clone();
        attributes.insert(name.to_owned(), attribute_type);
        // Validates the name before the store changes.
        Schema::new(BTreeSet::new(), attributes.clone())?;
        self.context_attributes = attributes;
        Ok(())
    }

    /// Generates the schema for the current agents, actions and custom policies.
    pub fn schema(&self) -> Result<Schema, PolicyError> {
        Schema::new(self.actions(), self.context_attributes.clone())
    }

    /// Validates `text` against the current schema and adds it as the custom policy document `id`.
    ///
    /// Returns the Cedar ids of the document's policies and the validator's warnings. A syntax or
    /// validation error names the line and column in `text`. An action that is not declared is a
    /// validation error, which catches misspelled action names.
    pub fn add_custom_policy(
        &mut self,
        id: &str,
        text: &str,
    ) -> Result<AcceptedPolicy, PolicyError> {
        self.insert_custom_policy(id, text, false)
    }

    /// Adds a custom policy that was accepted before, for example when a server reloads the
    /// policies it stored.
    ///
    /// Unlike [`PolicyStore::add_custom_policy`], the actions the policy names count as declared.
    /// An accepted policy keeps its actions declared while it exists, but after a restart no
    /// entitlement may name them any more, and the policy must still load. Everything else is
    /// validated as for a new policy.
    pub fn restore_custom_policy(
        &mut self,
        id: &str,
        text: &str,
    ) -> Result<AcceptedPolicy, PolicyError> {
        self.insert_custom_policy(id, text, true)
    }

    fn insert_custom_policy(
        &mut self,
        id: &str,
        text: &str,
        declare_named_actions: bool,
    ) -> Result<AcceptedPolicy, PolicyError> {
        if self.custom.contains_key(id) {
            return Err(PolicyError::DuplicatePolicyId { id: id.to_owned() });
        }
        let policy = parse_custom_policy(id, text)?;

        let types = TypeNames::new()?;
        let named_actions: BTreeSet<String> = policy
            .policies()
            .iter()
            .flat_map(|policy| referenced_actions(policy, &types))
            .collect();
        let mut actions = self.actions();
        if declare_named_actions {
            actions.extend(named_actions.iter().cloned());
        }
        let schema = Schema::new(actions, self.context_attributes.clone())?;
        let warnings = validate(id, text, policy.policies(), &schema)?;

        let accepted = AcceptedPolicy {
            policy_ids: policy.policy_ids(),
            warnings,
        };
        self.custom.insert(
            id.to_owned(),
            StoredCustomPolicy {
                policy,
                actions: named_actions.into_iter().collect(),
            },
        );
        Ok(accepted)
    }

    /// Removes the custom policy document `id`.
    pub fn remove_custom_policy(&mut self, id: &str) -> Result<CustomPolicy, PolicyError> {
        self.custom
            .remove(id)
            .map(|stored| stored.policy)
            .ok_or_else(|| PolicyError::PolicyNotFound { id: id.to_owned() })
    }

    /// Returns the custom policy documents, sorted by id.
    pub fn custom_policies(&self) -> impl Iterator<Item = &CustomPolicy> {
        self.custom.values().map(|stored| &stored.policy)
    }

    /// Builds an immutable, indexed snapshot with the given version.
    pub fn build_snapshot(&self, version: u64) -> Result<Snapshot, PolicyError> {
        Snapshot::build(self, version)
    }

    /// Returns the declared actions: explicit ones, entitlement actions and custom-policy actions.
    pub(crate) fn actions(&self) -> BTreeSet<String> {
        let mut actions = self.declared_actions.clone();
        for stored in self.agents.values() {
            for entitlement in &stored.record.entitlements {
                if !actions.contains(entitlement.action()) {
                    actions.insert(entitlement.action().to_owned());
                }
            }
        }
        for stored in self.custom.values() {
            actions.extend(stored.actions.iter().cloned());
        }
        actions
    }

    pub(crate) fn stored_agents(&self) -> impl Iterator<Item = &StoredAgent> {
        self.agents.values()
    }

    pub(crate) fn stored_custom_policies(&self) -> impl Iterator<Item = &StoredCustomPolicy> {
        self.custom.values()
    }
}
