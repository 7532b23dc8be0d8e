//! A seeded, randomly generated population of agents, entitlements and custom policies, with a
//! request mix over it. Shared by the equivalence test and the benchmark.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sigil_core::{AgentName, AgentStatus, Email, Entitlement, SpiffeId};
use sigil_policy::{AgentRecord, PolicyStore};

/// Actions that entitlements and custom policies use.
pub const ACTIONS: [&str; 5] = ["invoke", "read", "write", "delete", "list"];

/// Services that resources belong to: `tool:<service>/<item>`.
const SERVICES: [&str; 12] = [
    "crm", "erp", "billing", "secrets", "mail", "search", "calendar", "wiki", "hr", "files",
    "tickets", "metrics",
];

/// Sizes of a generated population.
#[derive(Debug, Clone, Copy)]
pub struct WorldSize {
    pub agents: usize,
    pub owners: usize,
    pub entitlements: usize,
    pub global_policies: usize,
    pub agent_policies: usize,
}

/// A generated population: the store and, per agent, its name and entitlements.
pub struct World {
    pub store: PolicyStore,
    pub agents: Vec<(AgentName, Vec<Entitlement>)>,
    pub owners: usize,
}

/// One request of the mix, with owned strings.
#[derive(Debug, Clone)]
pub struct MixRequest {
    pub agent: AgentName,
    pub action: &'static str,
    pub resource: String,
}

fn random_resource(rng: &mut StdRng) -> String {
    match rng.random_range(0..10) {
        0..=6 => format!(
            "tool:{}/{}",
            SERVICES.choose(rng).unwrap_or(&"crm"),
            rng.random_range(0..20)
        ),
        7 | 8 => format!("doc:{}", rng.random_range(0..200)),
        _ => "doc:public".to_owned(),
    }
}

fn random_pattern(rng: &mut StdRng) -> String {
    let service = SERVICES.choose(rng).unwrap_or(&"crm");
    match rng.random_range(0..10) {
        0..=4 => format!("tool:{service}/*"),
        5..=7 => format!("tool:{service}/{}", rng.random_range(0..20)),
        8 => format!("doc:{}", rng.random_range(0..200)),
        _ => "doc:*".to_owned(),
    }
}

fn random_status(rng: &mut StdRng) -> AgentStatus {
    match rng.random_range(0..100) {
        0..=1 => AgentStatus::Suspended,
        2..=3 => AgentStatus::Decommissioned,
        4..=5 => AgentStatus::Registered,
        _ => AgentStatus::Active,
    }
}

fn owner_email(index: usize) -> String {
    format!("owner-{index}@example.org")
}

/// Returns the text of the `index`-th global custom policy: a mix of permits and forbids with
/// `principal in`, unconstrained principals, single actions, action lists, attribute checks, and
/// with or without a required resource prefix.
fn global_policy(index: usize, rng: &mut StdRng, owners: usize) -> String {
    let service = SERVICES.choose(rng).unwrap_or(&"crm");
    let action = ACTIONS.choose(rng).unwrap_or(&"read");
    let owner = owner_email(rng.random_range(0..owners));
    match index % 8 {
        0 => format!(
            "forbid (principal, action == Sigil::Action::\"{action}\", resource)\n\
             when {{ resource.id like \"tool:{service}/1*\" }};"
        ),
        1 => format!(
            "permit (principal in Sigil::Owner::\"{owner}\", action == Sigil::Action::\"{action}\", resource)\n\
             when {{ resource.id like \"doc:*\" }};"
        ),
        2 => format!(
            "permit (principal, action == Sigil::Action::\"{action}\", resource)\n\
             when {{ principal.status == \"active\" && resource.id like \"tool:{service}/3\" }};"
        ),
        3 => format!(
            "forbid (principal, action, resource)\n\
             when {{ resource.id like \"tool:{service}/7*\" }}\n\
             unless {{ principal.owner == \"{owner}\" }};"
        ),
        4 => "permit (principal, action in [Sigil::Action::\"read\", Sigil::Action::\"list\"], \
              resource == Sigil::Resource::\"doc:public\");"
            .to_owned(),
        5 => format!(
            "permit (principal is Sigil::Agent, action == Sigil::Action::\"{action}\", resource)\n\
             when {{ principal.spiffe_id like \"*/agent-1*\" && resource.id like \"tool:{service}/*\" }};"
        ),
        // The last two require no resource prefix, so every request for their action evaluates
        // them.
        6 => format!(
            "forbid (principal, action == Sigil::Action::\"{action}\", resource)\n\
             when {{ principal.owner == \"{owner}\" }};"
        ),
        _ => format!(
            "permit (principal, action == Sigil::Action::\"{action}\", resource)\n\
             when {{ principal.status == \"registered\" && resource.id like \"*/0\" }};"
        ),
    }
}

impl World {
    /// Generates a population from `seed`.
    pub fn generate(size: WorldSize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut store = PolicyStore::new();

        let mut agents: Vec<(AgentName, Vec<Entitlement>)> = (0..size.agents)
            .map(|index| {
                let name = AgentName::new(&format!("agent-{index:05}")).unwrap();
                (name, Vec::new())
            })
            .collect();
        let mut added = 0;
        while added < size.entitlements {
            let agent = rng.random_range(0..agents.len());
            let action = ACTIONS.choose(&mut rng).unwrap();
            let pattern = random_pattern(&mut rng);
            let entitlement = Entitlement::parse(&format!("{action}:{pattern}")).unwrap();
            let list = &mut agents[agent].1;
            if !list.contains(&entitlement) {
                list.push(entitlement);
                added += 1;
            }
        }

        for action in ACTIONS {
            store.declare_action(action).unwrap();
        }
        for (index, (name, entitlements)) in agents.iter().enumerate() {
            let owner = owner_email(index % size.owners);
            store
                .upsert_agent(AgentRecord {
                    name: name.clone(),
                    owner: Email::new(&owner).unwrap(),
                    status: random_status(&mut rng),
                    spiffe_id: SpiffeId::parse(&format!("spiffe://example.org/agent/{name}"))
                        .unwrap(),
                    entitlements: entitlements.clone(),
                })
                .unwrap();
        }

        for index in 0..size.global_policies {
            let text = global_policy(index, &mut rng, size.owners);
            store
                .add_custom_policy(&format!("global-{index}"), &text)
                .unwrap();
        }
        for index in 0..size.agent_policies {
            let agent = &agents[rng.random_range(0..agents.len())].0;
            let service = SERVICES.choose(&mut rng).unwrap();
            let effect = if index % 2 == 0 { "permit" } else { "forbid" };
            let text = format!(
                "{effect} (principal == Sigil::Agent::\"{agent}\", action, resource)\n\
                 when {{ resource.id like \"tool:{service}/*\" }};"
            );
            store
                .add_custom_policy(&format!("agent-policy-{index}"), &text)
                .unwrap();
        }

        Self {
            store,
            agents,
            owners: size.owners,
        }
    }

    /// Generates `count` requests. Half target one entitlement of an agent that has any, with a
    /// concrete resource that the pattern matches, so most of them are allowed. The other half
    /// pick any agent, a random action and a random resource.
    pub fn requests(&self, count: usize, seed: u64) -> Vec<MixRequest> {
        let mut rng = StdRng::seed_from_u64(seed);
        let entitled: Vec<&(AgentName, Vec<Entitlement>)> = self
            .agents
            .iter()
            .filter(|(_, entitlements)| !entitlements.is_empty())
            .collect();
        (0..count)
            .map(|_| {
                if rng.random_bool(0.5)
                    && let Some((agent, entitlements)) = entitled.choose(&mut rng)
                    && let Some(entitlement) = entitlements.choose(&mut rng)
                {
                    let action = ACTIONS
                        .iter()
                        .find(|action| **action == entitlement.action())
                        .unwrap();
                    let resource = match entitlement.resource().strip_suffix('*') {
                        Some(prefix) => format!("{prefix}{}", rng.random_range(0..30)),
                        None => entitlement.resource().to_owned(),
                    };
                    return MixRequest {
                        agent: agent.clone(),
                        action,
                        resource,
                    };
                }
                let (agent, _) = &self.agents[rng.random_range(0..self.agents.len())];
                MixRequest {
                    agent: agent.clone(),
                    action: ACTIONS.choose(&mut rng).unwrap(),
                    resource: random_resource(&mut rng),
                }
            })
            .collect()
    }
}
