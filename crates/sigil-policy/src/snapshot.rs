//! Immutable snapshots: the policies of one version, indexed per agent, action and resource.

use std::collections::{BTreeMap, HashMap};

use cedar_policy::{
    Authorizer, Entities, Entity, EntityUid, Policy, PolicySet, RestrictedExpression,
};
use sigil_core::{AgentName, AgentStatus, Entitlement};

use crate::compile::{entitlement_guard, inactive_agent_policy, policy_id_str};
use crate::custom::{ActionScope, PrincipalScope, action_scope, principal_scope, validate};
use crate::error::PolicyError;
use crate::hash::FnvBuildHasher;
use crate::resource_index::{ResourceIndexedSet, resource_guard};
use crate::schema::{Schema, TypeNames};
use crate::store::{PolicyStore, StoredAgent};

/// The policies, schema and agents of one version, indexed for fast decisions.
///
/// Cedar evaluates every policy of the set it receives, so a snapshot pre-builds small policy
/// sets and a decision evaluates at most two of them:
///
/// - the *agent slice* for the (agent, action) pair: the agent's entitlement policies for that
///   action, plus custom policies scoped `principal == Sigil::Agent::"<agent>"`;
/// - the *global set* for the action: custom policies that can apply to any agent
///   (`principal`, `principal in …`, `principal is …`) and whose action scope admits the action.
///
/// Both are further split by the resource prefix their policies require (see the
/// `resource_index` module), so a request for `tool:crm/contacts` skips a policy that needs
/// `doc:`. Every policy left out has a scope or a required prefix that cannot match the request,
/// so it cannot be satisfied and the decision equals the decision of the flat set. Evaluation
/// errors can differ in one case: a skipped policy whose `when` clause fails before it reaches
/// its resource check reports that error only when plain Cedar evaluates the flat set.
#[derive(Debug)]
pub struct Snapshot {
    pub(crate) version: u64,
    pub(crate) schema: Schema,
    pub(crate) types: TypeNames,
    pub(crate) authorizer: Authorizer,
    pub(crate) actions: Vec<ActionSlot>,
    pub(crate) action_index: HashMap<String, usize, FnvBuildHasher>,
    pub(crate) agents: Vec<AgentSlot>,
    pub(crate) agent_index: HashMap<String, usize, FnvBuildHasher>,
    pub(crate) spiffe_index: HashMap<String, usize, FnvBuildHasher>,
    flat: PolicySet,
}

/// A declared action with its uid and its global policy set.
#[derive(Debug)]
pub(crate) struct ActionSlot {
    pub(crate) uid: EntityUid,
    pub(crate) global: ResourceIndexedSet,
}

/// A registered agent with its pre-built entity and its slices, one per action it has policies for.
#[derive(Debug)]
pub(crate) struct AgentSlot {
    pub(crate) name: AgentName,
    pub(crate) status: AgentStatus,
    pub(crate) uid: EntityUid,
    /// The agent entity alone, with its transitive closure already computed. A request clones it
    /// (one small map of shared pointers) and adds the resource, which is cheaper than building
    /// the store from both entities.
    pub(crate) entities: Entities,
    /// Sorted by action index.
    pub(crate) slices: Vec<AgentSlice>,
}

/// The policies of one agent for one action.
#[derive(Debug)]
pub(crate) struct AgentSlice {
    pub(crate) action: usize,
    pub(crate) set: ResourceIndexedSet,
    /// Policy id and entitlement of each entitlement policy in `set`.
    pub(crate) entitlements: Vec<(String, Entitlement)>,
}

impl AgentSlot {
    /// Returns true for a suspended or decommissioned agent, which the built-in rule denies.
    pub(crate) fn is_inactive(&self) -> bool {
        matches!(
            self.status,
            AgentStatus::Suspended | AgentStatus::Decommissioned
        )
    }

    /// Returns the agent's slice for the action with index `action`, if it has policies for it.
    pub(crate) fn slice(&self, action: usize) -> Option<&AgentSlice> {
        self.slices
            .binary_search_by_key(&action, |slice| slice.action)
            .ok()
            .and_then(|position| self.slices.get(position))
    }
}

impl Snapshot {
    /// Builds and indexes a snapshot of `store`.
    ///
    /// Custom policies are validated again against the snapshot's schema, so every policy of a
    /// snapshot is known to be valid for it.
    pub(crate) fn build(store: &PolicyStore, version: u64) -> Result<Self, PolicyError> {
        let schema = store.schema()?;
        let types = TypeNames::new()?;

        let action_names: Vec<&String> = schema.actions().iter().collect();
        let action_index: HashMap<String, usize, FnvBuildHasher> = action_names
            .iter()
            .enumerate()
            .map(|(index, name)| ((*name).clone(), index))
            .collect();

        let custom = CustomIndex::build(store, &schema, &types, &action_index)?;
        let mut flat = vec![inactive_agent_policy()?];
        flat.extend(custom.flat);
        let mut agent_custom = custom.by_agent;

        let actions = action_names
            .iter()
            .zip(custom.global)
            .map(|(name, policies)| {
                let subject = format!("the global set of action `{name}`");
                Ok(ActionSlot {
                    uid: types.action_uid(name),
                    global: ResourceIndexedSet::build(policies, &subject)?,
                })
            })
            .collect::<Result<Vec<_>, PolicyError>>()?;

        let mut agents = Vec::with_capacity(store.agent_count());
        let mut agent_index =
            HashMap::with_capacity_and_hasher(store.agent_count(), FnvBuildHasher::default());
        let mut spiffe_index =
            HashMap::with_capacity_and_hasher(store.agent_count(), FnvBuildHasher::default());
        for stored in store.stored_agents() {
            flat.extend(stored.policies.iter().map(|(_, policy)| policy.clone()));
            let custom = agent_custom.remove(stored.record.name.as_str());
            let slot = agent_slot(stored, custom, &action_index, &types)?;
            agent_index.insert(stored.record.name.as_str().to_owned(), agents.len());
            spiffe_index.insert(stored.record.spiffe_id.as_str().to_owned(), agents.len());
            agents.push(slot);
        }

        Ok(Self {
            version,
            schema,
            types,
            authorizer: Authorizer::new(),
            actions,
            action_index,
            agents,
            agent_index,
            spiffe_index,
            flat: policy_set(flat, "the flat policy set")?,
        })
    }

    /// Returns the version.
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Returns the schema that every policy of the snapshot validates against.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Returns every policy in one set: the built-in rule, all entitlement policies and all custom
    /// policies. Evaluating it with plain Cedar gives the engine's decisions for registered agents
    /// and declared actions.
    pub fn policy_set(&self) -> &PolicySet {
        &self.flat
    }

    /// Returns the flat policy set as Cedar text, for export, with each policy id in a comment.
    pub fn policy_text(&self) -> String {
        let mut text = String::new();
        for policy in self.flat.policies() {
            text.push_str(&format!("// {}\n{policy}\n\n", policy_id_str(policy.id())));
        }
        text
    }

    /// Returns the number of registered agents.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// Returns the ids of the Cedar policies that a request of `agent` for `action` on `resource`
    /// evaluates, sorted. The list is empty for a suspended or decommissioned agent, because the
    /// built-in rule denies it before Cedar runs.
    ///
    /// Returns `None` when the agent is not registered or the action is not declared.
    pub fn policies_for(&self, agent: &str, action: &str, resource: &str) -> Option<Vec<String>> {
        let agent = self.agents.get(*self.agent_index.get(agent)?)?;
        let action_position = *self.action_index.get(action)?;
        let action = self.actions.get(action_position)?;
        if agent.is_inactive() {
            return Some(Vec::new());
        }

        let mut ids: Vec<String> = action
            .global
            .set_for(resource)
            .policies()
            .map(|policy| policy_id_str(policy.id()).to_owned())
            .collect();
        if let Some(slice) = agent.slice(action_position) {
            ids.extend(
                slice
                    .set
                    .set_for(resource)
                    .policies()
                    .map(|policy| policy_id_str(policy.id()).to_owned()),
            );
        }
        ids.sort();
        Some(ids)
    }

    /// Returns the agent's entity: `Sigil::Agent::"<name>"` with its attributes and owner parent.
    pub fn agent_entity(&self, agent: &str) -> Option<&Entity> {
        let slot = self.agents.get(*self.agent_index.get(agent)?)?;
        slot.entities.get(&slot.uid)
    }

    /// Builds the `Sigil::Resource` entity of a resource string, with its `id` attribute.
    pub fn resource_entity(&self, resource: &str) -> Result<Entity, String> {
        let attributes = [(
            "id".to_owned(),
            RestrictedExpression::new_string(resource.to_owned()),
        )];
        Entity::new_with_tags(self.types.resource_uid(resource), attributes, [], [])
            .map_err(|error| format!("invalid resource `{resource}`: {error}"))
    }
}

/// A policy with the resource prefix it requires, if it has one.
type Guarded = (Policy, Option<String>);

/// The custom policies of a store, sorted into the sets they belong to.
struct CustomIndex {
    /// Every custom policy, for the flat set.
    flat: Vec<Policy>,
    /// Per action index: the policies that can apply to any agent.
    global: Vec<Vec<Guarded>>,
    /// Per agent name and action index: the policies scoped to that agent.
    by_agent: HashMap<String, BTreeMap<usize, Vec<Guarded>>>,
}

impl CustomIndex {
    /// Validates the custom policies against `schema` and sorts them by principal and action.
    fn build(
        store: &PolicyStore,
        schema: &Schema,
        types: &TypeNames,
        action_index: &HashMap<String, usize, FnvBuildHasher>,
    ) -> Result<Self, PolicyError> {
        let mut index = Self {
            flat: Vec::new(),
            global: vec![Vec::new(); action_index.len()],
            by_agent: HashMap::new(),
        };
        for stored in store.stored_custom_policies() {
            let document = &stored.policy;
            validate(document.id(), document.text(), document.policies(), schema)?;
            for policy in document.policies() {
                index.flat.push(policy.clone());
                let guarded = (policy.clone(), resource_guard(policy));
                let actions = admitted_actions(&action_scope(policy, types), action_index);
                match principal_scope(policy, types) {
                    PrincipalScope::Any => {
                        for action in actions {
                            if let Some(set) = index.global.get_mut(action) {
                                set.push(guarded.clone());
                            }
                        }
                    }
                    PrincipalScope::Agent(name) => {
                        let by_action = index.by_agent.entry(name).or_default();
                        for action in actions {
                            by_action.entry(action).or_default().push(guarded.clone());
                        }
                    }
                }
            }
        }
        Ok(index)
    }
}

/// Returns the indices of the declared actions a scope admits.
fn admitted_actions(
    scope: &ActionScope,
    action_index: &HashMap<String, usize, FnvBuildHasher>,
) -> Vec<usize> {
    match scope {
        ActionScope::Any => (0..action_index.len()).collect(),
        ActionScope::Actions(names) => names
            .iter()
            .filter_map(|name| action_index.get(name).copied())
            .collect(),
    }
}

/// The policies of a slice and the (policy id, entitlement) pairs among them.
type SliceParts = (Vec<Guarded>, Vec<(String, Entitlement)>);

/// Builds the slot of one agent: its entity and one slice per action it has policies for.
fn agent_slot(
    stored: &StoredAgent,
    custom: Option<BTreeMap<usize, Vec<Guarded>>>,
    action_index: &HashMap<String, usize, FnvBuildHasher>,
    types: &TypeNames,
) -> Result<AgentSlot, PolicyError> {
    let record = &stored.record;
    let mut by_action: BTreeMap<usize, SliceParts> = BTreeMap::new();
    for (entitlement, policy) in &stored.policies {
        let Some(&action) = action_index.get(entitlement.action()) else {
            continue;
        };
        let (policies, entitlements) = by_action.entry(action).or_default();
        policies.push((
            policy.clone(),
            Some(entitlement_guard(entitlement).to_owned()),
        ));
        entitlements.push((policy_id_str(policy.id()).to_owned(), entitlement.clone()));
    }
    for (action, policies) in custom.into_iter().flatten() {
        by_action.entry(action).or_default().0.extend(policies);
    }

    let subject = format!("the policy slice of agent `{}`", record.name);
    let slices = by_action
        .into_iter()
        .map(|(action, (policies, entitlements))| {
            Ok(AgentSlice {
                action,
                set: ResourceIndexedSet::build(policies, &subject)?,
                entitlements,
            })
        })
        .collect::<Result<Vec<_>, PolicyError>>()?;

    let uid = types.agent_uid(record.name.as_str());
    let attributes = [
        (
            "owner".to_owned(),
            RestrictedExpression::new_string(record.owner.as_str().to_owned()),
        ),
        (
            "status".to_owned(),
            RestrictedExpression::new_string(record.status.as_str().to_owned()),
        ),
        (
            "spiffe_id".to_owned(),
            RestrictedExpression::new_string(record.spiffe_id.as_str().to_owned()),
        ),
    ];
    let parents = [types.owner_uid(record.owner.as_str())];
    let entity = Entity::new_with_tags(uid.clone(), attributes, parents, []).map_err(|error| {
        PolicyError::Internal {
            subject: format!("the entity of agent `{}`", record.name),
            message: error.to_string(),
        }
    })?;

    let entities =
        Entities::from_entities([entity], None).map_err(|error| PolicyError::Internal {
            subject: format!("the entity store of agent `{}`", record.name),
            message: error.to_string(),
        })?;

    Ok(AgentSlot {
        name: record.name.clone(),
        status: record.status,
        uid,
        entities,
        slices,
    })
}

fn policy_set(policies: Vec<Policy>, subject: &str) -> Result<PolicySet, PolicyError> {
    PolicySet::from_policies(policies).map_err(|error| PolicyError::Internal {
        subject: subject.to_owned(),
        message: error.to_string(),
    })
}
