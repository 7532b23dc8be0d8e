//! The gateway's view of the authority: agents, policies and revocations, kept current by the
//! revocation stream.
//!
//! The view has two layers:
//!
//! - the **policy layer**, built from one `GET /v1/gateway/state` response: a decision-engine
//!   snapshot and the agents' owners and statuses. It is rebuilt off the request path and
//!   swapped in atomically, so a request sees either the whole old layer or the whole new one;
//! - the **live layer**, changed by each stream event in place: revoked serials and agent
//!   statuses that override the policy layer. It takes effect on the next request, without
//!   waiting for a rebuild.
//!
//! When a new policy layer is installed, live changes it already includes (by sequence number)
//! are dropped, and later ones are kept on top of it.

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::HeaderValue;
use sigil_core::{AgentName, AgentStatus, Email, Entitlement, SpiffeId};
use sigil_policy::{AgentRecord, PolicyStore, PrincipalRef, Request, Snapshot};
use sigil_proto::{GatewayState, RevocationEvent};

use crate::GatewayError;
use crate::denial::{Denial, DenyKind};
use crate::routes::Route;
use crate::verdicts::VerdictMemo;

/// An agent as the gateway forwards it: its SPIFFE ID and owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEntry {
    pub name: String,
    pub spiffe_id: String,
    pub owner: String,
    /// The status in the policy layer; a stream event may have changed it since.
    pub status: String,
    /// `spiffe_id` and `owner` as header values, prepared once per policy layer. A value that
    /// cannot be a header value is `None` and is left out.
    pub agent_header: Option<HeaderValue>,
    pub owner_header: Option<HeaderValue>,
}

/// The authenticated caller of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller<'a> {
    pub spiffe_id: &'a SpiffeId,
    /// Serial hex of the client certificate; `None` for a Bearer JWT-SVID.
    pub serial_hex: Option<&'a str>,
}

/// The action the stream handler takes after applying an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Followup {
    /// Nothing: the event is applied.
    None,
    /// Reload `/v1/gateway/state`: the policy set is newer, the authority asked for a resync,
    /// or an agent became active again and the engine snapshot still has its old status.
    ReloadState,
}

/// The policy layer.
struct PolicyLayer {
    seq: u64,
    policy_version: u64,
    snapshot: Snapshot,
    /// Agents by SPIFFE ID.
    agents: HashMap<String, Arc<AgentEntry>>,
    /// Serials revoked as of `seq`, copied into the live layer when the layer is installed.
    revoked: HashSet<String>,
    /// Verdicts of `snapshot`, so that a repeated request skips the Cedar evaluation.
    verdicts: VerdictMemo,
}

/// The live layer.
#[derive(Default)]
struct LiveLayer {
    /// The newest sequence number applied.
    seq: u64,
    revoked: HashSet<String>,
    /// Statuses set by `agent-status` events, by SPIFFE ID, with the event's sequence number.
    statuses: HashMap<String, (String, u64)>,
    /// Serials revoked by events since the policy layer was built, with their sequence numbers.
    recent_revocations: Vec<(u64, Vec<String>)>,
}

/// The gateway's decision state.
pub struct View {
    policy: ArcSwap<Option<PolicyLayer>>,
    live: RwLock<LiveLayer>,
    /// Milliseconds after `epoch` of the last event or heartbeat; 0 until the first contact.
    last_contact_ms: AtomicU64,
    epoch: Instant,
    staleness: Duration,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View")
            .field("seq", &self.seq())
            .field("policy_version", &self.policy_version())
            .field("staleness", &self.staleness)
            .finish_non_exhaustive()
    }
}

impl View {
    /// Creates an empty view, which is stale until the first state is installed.
    pub fn new(staleness: Duration) -> Self {
        Self {
            policy: ArcSwap::from_pointee(None),
            live: RwLock::new(LiveLayer::default()),
            last_contact_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            staleness,
        }
    }

    /// Returns the newest sequence number the view includes, from which the stream resumes.
    pub fn seq(&self) -> u64 {
        let live = self.live.read().map(|live| live.seq).unwrap_or(0);
        let layer = self
            .policy
            .load()
            .as_ref()
            .as_ref()
            .map_or(0, |layer| layer.seq);
        live.max(layer)
    }

    /// The policy-set version of the installed policy layer, or `None` before the first load.
    pub fn policy_version(&self) -> Option<u64> {
        self.policy
            .load()
            .as_ref()
            .as_ref()
            .map(|layer| layer.policy_version)
    }

    /// Records that the authority was heard from just now.
    pub fn touch(&self) {
        let elapsed = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_contact_ms
            .store(elapsed.max(1), Ordering::Release);
    }

    /// Returns how long ago the authority was last heard from, or `None` if never.
    pub fn since_contact(&self) -> Option<Duration> {
        let last = self.last_contact_ms.load(Ordering::Acquire);
        if last == 0 {
            return None;
        }
        Some(
            self.epoch
                .elapsed()
                .saturating_sub(Duration::from_millis(last)),
        )
    }

    /// Returns true when no state is loaded or the last contact is older than the bound.
    pub fn is_stale(&self) -> bool {
        if self.policy.load().is_none() {
            return true;
        }
        self.since_contact().is_none_or(|age| age > self.staleness)
    }

    /// Builds a policy layer from `state` and installs it, keeping live changes newer than it.
    pub fn install(&self, state: GatewayState) -> Result<(), GatewayError> {
        let layer = build_layer(state)?;
        let (seq, version, agents) = (layer.seq, layer.policy_version, layer.agents.len());

        // The live layer is locked across the swap so that no event is applied between them.
        let mut live = self
            .live
            .write()
            .map_err(|_| GatewayError::State("the live layer lock is poisoned".into()))?;
        live.recent_revocations
            .retain(|(event_seq, _)| *event_seq > seq);
        live.statuses.retain(|_, (_, event_seq)| *event_seq > seq);
        let mut revoked = layer.revoked.clone();
        for (_, serials) in &live.recent_revocations {
            revoked.extend(serials.iter().cloned());
        }
        live.revoked = revoked;
        live.seq = live.seq.max(seq);
        self.policy.store(Arc::new(Some(layer)));
        drop(live);

        tracing::info!(
            seq,
            policy_version = version,
            agents,
            "gateway state installed"
        );
        Ok(())
    }

    /// Applies one stream event and returns the action that must follow.
    pub fn apply(&self, event: &RevocationEvent) -> Followup {
        self.touch();
        let Ok(mut live) = self.live.write() else {
            tracing::error!("the live layer lock is poisoned; reloading the state");
            return Followup::ReloadState;
        };
        live.seq = live.seq.max(event.seq());
        match event {
            RevocationEvent::Revoke {
                seq,
                serials,
                agent,
                ..
            } => {
                live.revoked
                    .extend(serials.iter().map(|s| s.to_ascii_lowercase()));
                live.recent_revocations.push((
                    *seq,
                    serials.iter().map(|s| s.to_ascii_lowercase()).collect(),
                ));
                tracing::info!(
                    seq,
                    agent = agent.as_deref(),
                    count = serials.len(),
                    "serials revoked"
                );
                Followup::None
            }
            RevocationEvent::AgentStatus {
                seq,
                agent,
                spiffe_id,
                status,
                ..
            } => {
                live.statuses
                    .insert(spiffe_id.clone(), (status.clone(), *seq));
                tracing::info!(seq, agent, status, "agent status changed");
                if status == AgentStatus::Active.as_str() {
                    Followup::ReloadState
                } else {
                    Followup::None
                }
            }
            RevocationEvent::Policy {
                seq,
                policy_version,
                ..
            } => {
                let current = self.policy_version();
                if current.is_none_or(|current| *policy_version > current) {
                    tracing::info!(seq, policy_version, "newer policy set announced");
                    Followup::ReloadState
                } else {
                    Followup::None
                }
            }
            RevocationEvent::Heartbeat { .. } => Followup::None,
            RevocationEvent::Resync { seq, .. } => {
                tracing::warn!(seq, "the authority asked for a resync");
                Followup::ReloadState
            }
        }
    }

    /// Decides whether `caller` may use `route`, and returns the agent to forward as with the
    /// route it was allowed on.
    ///
    /// The checks run in order and the first failure denies: a fresh view, a known agent, an
    /// unrevoked certificate, an active agent, a matching route, then the policy set.
    pub fn decide<'r>(
        &self,
        caller: &Caller<'_>,
        route: Option<&'r Route>,
    ) -> Result<(Arc<AgentEntry>, &'r Route), Denial> {
        let principal = caller.spiffe_id.as_str();
        if self.is_stale() {
            return Err(self.stale_denial().for_principal(principal));
        }
        let guard = self.policy.load();
        let Some(layer) = guard.as_ref().as_ref() else {
            return Err(self.stale_denial().for_principal(principal));
        };
        let Some(agent) = layer.agents.get(principal) else {
            return Err(Denial::new(
                DenyKind::UnknownAgent,
                format!("`{principal}` is not a registered agent"),
            )
            .for_principal(principal));
        };

        {
            let live = self.live.read().map_err(|_| {
                Denial::new(
                    DenyKind::Stale,
                    "the gateway's revocation state is unavailable",
                )
            })?;
            if let Some(serial) = caller.serial_hex
                && live.revoked.contains(serial)
            {
                return Err(Denial::new(
                    DenyKind::Revoked,
                    format!("the client certificate (serial {serial}) is revoked"),
                )
                .for_principal(principal));
            }
            let status = live
                .statuses
                .get(principal)
                .map_or(agent.status.as_str(), |(status, _)| status.as_str());
            if status != AgentStatus::Active.as_str() {
                return Err(Denial::new(
                    DenyKind::InactiveAgent,
                    format!(
                        "agent `{}` is {status}; only active agents may call this service",
                        agent.name
                    ),
                )
                .for_principal(principal));
            }
        }

        let Some(route) = route else {
            return Err(Denial::new(
                DenyKind::NoRoute,
                "no route in the gateway's routes file matches this method and path",
            )
            .for_principal(principal));
        };
        let allowed = layer.verdicts.get_or_decide(principal, route.index(), || {
            let decision = layer.snapshot.authorize(&Request {
                principal: PrincipalRef::SpiffeId(caller.spiffe_id),
                action: &route.action,
                resource: &route.resource,
                context: serde_json::Value::Null,
            });
            decision.is_allowed()
        });
        if !allowed {
            return Err(Denial::new(
                DenyKind::Policy,
                format!(
                    "agent `{}` may not `{}` on `{}` (policy set version {})",
                    agent.name, route.action, route.resource, layer.policy_version
                ),
            )
            .for_principal(principal));
        }

        Ok((agent.clone(), route))
    }

    /// Builds the 503 denial of a stale view, with its age.
    pub fn stale_denial(&self) -> Denial {
        let message = match self.since_contact() {
            None => {
                "the gateway has not yet loaded its state from the authority; try again shortly"
                    .to_owned()
            }
            Some(age) => format!(
                "the gateway has not heard from the authority for {} ms (limit {} ms), so it cannot \
                 tell whether the caller was revoked; try again shortly",
                age.as_millis(),
                self.staleness.as_millis()
            ),
        };
        Denial::new(DenyKind::Stale, message)
    }
}

/// Builds a policy layer from the authority's state.
///
/// An agent or policy that does not parse is skipped with an error log rather than failing the
/// whole load: one corrupt entry must not stop the gateway from enforcing everything else, and
/// a skipped agent is denied as unknown.
fn build_layer(state: GatewayState) -> Result<PolicyLayer, GatewayError> {
    let mut store = PolicyStore::new();
    let mut agents = HashMap::with_capacity(state.agents.len());
    for agent in state.agents {
        match agent_record(
            &agent.name,
            &agent.owner,
            &agent.status,
            &agent.spiffe_id,
            &agent.entitlements,
        ) {
            Ok(record) => {
                if let Err(err) = store.upsert_agent(record) {
                    tracing::error!(agent = %agent.name, error = %err, "agent entitlements do not compile; agent skipped");
                    continue;
                }
            }
            Err(err) => {
                tracing::error!(agent = %agent.name, error = %err, "invalid agent in gateway state; agent skipped");
                continue;
            }
        }
        agents.insert(
            agent.spiffe_id.clone(),
            Arc::new(AgentEntry {
                agent_header: HeaderValue::from_str(&agent.spiffe_id).ok(),
                owner_header: HeaderValue::from_str(&agent.owner).ok(),
                name: agent.name,
                spiffe_id: agent.spiffe_id,
                owner: agent.owner,
                status: agent.status,
            }),
        );
    }
    for policy in &state.policies {
        if let Err(err) = store.restore_custom_policy(&policy.id, &policy.text) {
            tracing::error!(policy = %policy.id, error = %err, "custom policy does not validate; skipped");
        }
    }
    let snapshot = store
        .build_snapshot(state.policy_version)
        .map_err(|err| GatewayError::State(err.to_string()))?;
    Ok(PolicyLayer {
        seq: state.seq,
        policy_version: state.policy_version,
        snapshot,
        agents,
        revoked: state
            .revoked_serials
            .iter()
            .map(|serial| serial.to_ascii_lowercase())
            .collect(),
        verdicts: VerdictMemo::default(),
    })
}

fn agent_record(
    name: &str,
    owner: &str,
    status: &str,
    spiffe_id: &str,
    entitlements: &[String],
) -> Result<AgentRecord, String> {
    Ok(AgentRecord {
        name: AgentName::new(name).map_err(|err| format!("name: {err}"))?,
        owner: Email::new(owner).map_err(|err| format!("owner: {err}"))?,
        status: AgentStatus::from_str(status).map_err(|err| format!("status: {err}"))?,
        spiffe_id: SpiffeId::parse(spiffe_id).map_err(|err| format!("SPIFFE ID: {err}"))?,
        entitlements: entitlements
            .iter()
            .map(|e| Entitlement::parse(e).map_err(|err| format!("entitlement: {err}")))
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use sigil_proto::GatewayAgent;

    use super::*;

    const AGENT: &str = "spiffe://example.org/agent/bot";

    fn state(seq: u64, policy_version: u64, status: &str, revoked: &[&str]) -> GatewayState {
        GatewayState {
            seq,
            policy_version,
            agents: vec![GatewayAgent {
                name: "bot".into(),
                spiffe_id: AGENT.into(),
                owner: "alice@example.org".into(),
                status: status.into(),
                entitlements: vec!["read:tool:x".into()],
            }],
            policies: vec![],
            revoked_serials: revoked.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    static AGENT_ID: std::sync::LazyLock<SpiffeId> =
        std::sync::LazyLock::new(|| SpiffeId::parse(AGENT).unwrap());

    fn caller(serial: &'static str) -> Caller<'static> {
        Caller {
            spiffe_id: &AGENT_ID,
            serial_hex: Some(serial),
        }
    }

    fn route() -> Route {
        crate::routes::Routes::parse(
            "[[route]]\npath = \"/*\"\naction = \"read\"\nresource = \"tool:x\"",
        )
        .unwrap()
        .find("GET", "/")
        .unwrap()
        .clone()
    }

    fn fresh(state: GatewayState) -> View {
        let view = View::new(Duration::from_secs(10));
        view.install(state).unwrap();
        view.touch();
        view
    }

    #[test]
    fn empty_view_is_stale() {
        let view = View::new(Duration::from_secs(10));
        assert!(view.is_stale());
        let denial = view.decide(&caller("aa"), Some(&route())).unwrap_err();
        assert_eq!(denial.kind, DenyKind::Stale);
    }

    #[test]
    fn revoked_serial_from_state_denied() {
        let view = fresh(state(1, 1, "active", &["AA"]));
        let denial = view.decide(&caller("aa"), Some(&route())).unwrap_err();
        assert_eq!(denial.kind, DenyKind::Revoked);
        assert!(view.decide(&caller("bb"), Some(&route())).is_ok());
    }

    #[test]
    fn newer_live_changes_survive_reload() {
        let view = fresh(state(1, 1, "active", &[]));
        view.apply(&RevocationEvent::Revoke {
            seq: 3,
            at_ms: 0,
            serials: vec!["cc".into()],
            agent: None,
        });
        view.apply(&RevocationEvent::AgentStatus {
            seq: 4,
            at_ms: 0,
            agent: "bot".into(),
            spiffe_id: AGENT.into(),
            status: "suspended".into(),
        });

        // A state as of seq 2 predates both events, so both must still apply.
        view.install(state(2, 2, "active", &[])).unwrap();
        assert_eq!(
            view.decide(&caller("cc"), Some(&route())).unwrap_err().kind,
            DenyKind::Revoked
        );
        assert_eq!(
            view.decide(&caller("dd"), Some(&route())).unwrap_err().kind,
            DenyKind::InactiveAgent
        );

        // A state as of seq 4 includes them: the status it reports wins.
        view.install(state(4, 3, "active", &["cc"])).unwrap();
        assert!(view.decide(&caller("dd"), Some(&route())).is_ok());
        assert_eq!(view.seq(), 4);
    }

    #[test]
    fn followups_of_events() {
        let view = fresh(state(1, 5, "active", &[]));
        let policy = |policy_version| RevocationEvent::Policy {
            seq: 2,
            at_ms: 0,
            policy_version,
        };
        assert_eq!(view.apply(&policy(5)), Followup::None);
        assert_eq!(view.apply(&policy(6)), Followup::ReloadState);
        assert_eq!(
            view.apply(&RevocationEvent::Resync { seq: 9, at_ms: 0 }),
            Followup::ReloadState
        );
        assert_eq!(
            view.apply(&RevocationEvent::Heartbeat { seq: 9, at_ms: 0 }),
            Followup::None
        );
        assert_eq!(view.seq(), 9);
    }

    #[test]
    fn invalid_agent_skipped_not_fatal() {
        let mut bad = state(1, 1, "active", &[]);
        let mut broken = bad.agents[0].clone();
        broken.name = "../admin".into();
        broken.spiffe_id = "spiffe://example.org/agent/../admin".into();
        bad.agents.push(broken);
        let view = fresh(bad);
        assert!(view.decide(&caller("aa"), Some(&route())).is_ok());
    }
}
