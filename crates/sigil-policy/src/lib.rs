//! Sigil's authorization engine: entitlements compiled to Cedar policies, indexed per principal.
//!
//! This crate is a pure library without HTTP or SQL. The server fills a [`PolicyStore`] with
//! agents and custom policies, builds an immutable [`Snapshot`] and hands it to the [`Engine`],
//! which decides [`Request`]s and returns [`Decision`]s.
//!
//! # Schema
//!
//! Sigil generates its Cedar schema (see [`Schema::schema_text`]) in the `Sigil` namespace:
//!
//! - `Sigil::Agent`, id = agent name, attributes `owner` (e-mail), `status` (`registered`,
//!   `active`, `suspended` or `decommissioned`) and `spiffe_id`, member of its owner;
//! - `Sigil::Owner`, id = e-mail, so custom policies can write `principal in Sigil::Owner::"…"`;
//! - `Sigil::Resource`, id = the resource string, with the same string in attribute `id`;
//! - one `Sigil::Action` per action name, each applying to agents and resources.
//!
//! Cedar's validator only accepts actions that the schema declares. Sigil therefore generates the
//! schema from the set of known actions instead of declaring one generic action. The known actions
//! are those of all entitlements, those declared with [`PolicyStore::declare_action`], and those
//! that accepted custom policies name. This way the validator still rejects a custom policy with a
//! misspelled action, and removing the last entitlement of an action never invalidates a custom
//! policy that names it. [`PolicyStore::restore_custom_policy`] reloads stored policies whose
//! actions no entitlement names any more. The schema changes only between snapshots, and every
//! snapshot validates its custom policies against its own schema.
//!
//! # Entitlements
//!
//! An entitlement `ACTION:RESOURCE` of an agent compiles to one `permit` policy with id
//! `entitlement/<agent>/<ACTION:RESOURCE>` (see [`entitlement_policy_text`]). An exact resource
//! becomes `resource == Sigil::Resource::"…"`; a trailing `*` becomes
//! `resource.id like "<prefix>*"` with every other `*` escaped. Baseline and granted
//! entitlements compile the same way.
//!
//! # Built-in rule
//!
//! A suspended or decommissioned agent is denied every request. [`Snapshot::authorize`] checks
//! the status before it calls Cedar, so no custom policy can re-allow such an agent, and the
//! decision names the built-in policy [`INACTIVE_AGENT_POLICY_ID`]. The same rule is also a
//! Cedar `forbid` policy in the exported flat policy set ([`Snapshot::policy_set`]), so plain
//! Cedar reaches the same decision from an export. The engine does not evaluate that `forbid`,
//! because the status check has already decided every request it could apply to.
//!
//! # Indexing
//!
//! Cedar evaluates every policy of the set it is given, so the engine evaluates per request only
//! the policies that can match it (see [`Snapshot`]):
//!
//! - by principal: the agent's own policies (entitlements and custom policies scoped
//!   `principal == Sigil::Agent::"…"`), plus custom policies that can apply to any agent;
//! - by action: a policy scoped `action == …` or `action in [...]` is kept only for those actions;
//! - by resource prefix: a policy that requires a resource prefix (an entitlement pattern, or a
//!   `when` clause with `resource.id like "tool:crm/*"`) is kept only for resources under it.
//!
//! All of these sets are built with the snapshot, never per request. A decision evaluates at most
//! two Cedar policy sets (the agent's and the global one) and combines their responses the way
//! Cedar combines policies: any satisfied `forbid` denies, otherwise any satisfied `permit`
//! allows. A randomized test checks that the decisions and determining policies equal those of
//! plain Cedar on the flat policy set.
//!
//! # Entities
//!
//! A request needs two entities: the agent, pre-built with the snapshot, and the resource, built
//! per request with its `id` attribute. Owners have no entity of their own in requests: the agent
//! entity names its owner as parent, which is all that `principal in Sigil::Owner::"…"` reads.

#![forbid(unsafe_code)]

mod authorize;
mod compile;
mod custom;
mod decision;
mod engine;
mod error;
mod hash;
mod policy_test;
mod resource_index;
mod schema;
mod snapshot;
mod source;
mod store;

pub use compile::{
    ENTITLEMENT_POLICY_PREFIX, INACTIVE_AGENT_POLICY, INACTIVE_AGENT_POLICY_ID,
    compile_entitlement, entitlement_policy_id, entitlement_policy_text,
    parse_entitlement_policy_id,
};
pub use custom::{AcceptedPolicy, CustomPolicy};
pub use decision::{Decision, PrincipalRef, Request, Verdict};
pub use engine::Engine;
pub use error::{PolicyError, SourceDiagnostic};
pub use policy_test::{CaseResult, run_policy_tests};
pub use schema::{
    ACTION_TYPE, AGENT_TYPE, ContextAttributeType, NAMESPACE, OWNER_TYPE, RESOURCE_TYPE, Schema,
};
pub use snapshot::Snapshot;
pub use store::{AgentRecord, PolicyStore};
