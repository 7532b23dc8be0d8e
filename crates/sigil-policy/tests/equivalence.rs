//! Per-principal slicing decides exactly like plain Cedar evaluating the flat policy set.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail on unexpected errors"
)]

mod common;

use std::collections::BTreeSet;

use cedar_policy::{Authorizer, Context, Entities, EntityUid};
use common::world::{MixRequest, World, WorldSize};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sigil_core::{AgentName, AgentStatus};
use sigil_policy::{INACTIVE_AGENT_POLICY_ID, PrincipalRef, Request, Snapshot, Verdict};

/// Builds the request's two entities from JSON, independently of the engine's own builders.
fn entities_from_json(snapshot: &Snapshot, agent: &str, resource: &str) -> Entities {
    let entity = snapshot.agent_entity(agent).unwrap();
    let attribute = |name: &str| match entity.attr(name) {
        Some(Ok(cedar_policy::EvalResult::String(value))) => value,
        other => panic!("agent `{agent}` attribute `{name}`: {other:?}"),
    };
    let json = serde_json::json!([
        {
            "uid": {"type": "Sigil::Agent", "id": agent},
            "attrs": {
                "owner": attribute("owner"),
                "status": attribute("status"),
                "spiffe_id": attribute("spiffe_id"),
            },
            "parents": [{"type": "Sigil::Owner", "id": attribute("owner")}],
        },
        {
            "uid": {"type": "Sigil::Resource", "id": resource},
            "attrs": {"id": resource},
            "parents": [],
        },
    ]);
    Entities::from_json_value(json, Some(snapshot.schema().cedar_schema())).unwrap()
}

fn uid(type_name: &str, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.parse().unwrap(), cedar_policy::EntityId::new(id))
}

/// How the compared decisions ended, to check that a test exercised every kind of outcome.
#[derive(Debug, Default)]
struct Outcomes {
    allows: usize,
    forbids: usize,
    builtin: usize,
}

/// Decides each request with the engine and with plain Cedar on the flat policy set, and asserts
/// that the verdicts and determining policies agree.
fn assert_same_as_flat(snapshot: &Snapshot, requests: &[MixRequest]) -> Outcomes {
    let authorizer = Authorizer::new();
    let mut outcomes = Outcomes::default();

    for (index, mix) in requests.iter().enumerate() {
        let decision = snapshot.authorize(&Request {
            principal: PrincipalRef::Agent(&mix.agent),
            action: mix.action,
            resource: &mix.resource,
            context: serde_json::Value::Null,
        });

        let request = cedar_policy::Request::new(
            uid("Sigil::Agent", mix.agent.as_str()),
            uid("Sigil::Action", mix.action),
            uid("Sigil::Resource", &mix.resource),
            Context::empty(),
            Some(snapshot.schema().cedar_schema()),
        )
        .unwrap();
        let entities = entities_from_json(snapshot, mix.agent.as_str(), &mix.resource);
        let response = authorizer.is_authorized(&request, snapshot.policy_set(), &entities);

        let expected_verdict = match response.decision() {
            cedar_policy::Decision::Allow => Verdict::Allow,
            cedar_policy::Decision::Deny => Verdict::Deny,
        };
        let expected_policies: BTreeSet<&str> = response
            .diagnostics()
            .reason()
            .map(AsRef::<str>::as_ref)
            .collect();
        let actual_policies: BTreeSet<&str> =
            decision.policies.iter().map(String::as_str).collect();

        assert_eq!(
            decision.decision, expected_verdict,
            "request {index} {mix:?}: engine {decision:?}, flat Cedar {response:?}"
        );
        assert_eq!(
            response.diagnostics().errors().count(),
            0,
            "request {index} {mix:?}: {response:?}"
        );

        if expected_policies.contains(INACTIVE_AGENT_POLICY_ID) {
            // The engine decides inactive agents before Cedar, so it reports only the built-in
            // rule, where flat Cedar also lists custom forbids that apply.
            assert_eq!(
                decision.policies,
                [INACTIVE_AGENT_POLICY_ID],
                "request {index}: {decision:?}"
            );
            assert_eq!(
                decision.diagnostics.len(),
                1,
                "request {index}: {decision:?}"
            );
            outcomes.builtin += 1;
            continue;
        }
        assert_eq!(
            actual_policies, expected_policies,
            "request {index} {mix:?}: engine {decision:?}"
        );
        assert!(
            decision.diagnostics.is_empty(),
            "request {index}: {decision:?}"
        );

        if decision.is_allowed() {
            outcomes.allows += 1;
        } else if !expected_policies.is_empty() {
            outcomes.forbids += 1;
        }
    }
    outcomes
}

#[test]
fn sliced_decisions_equal_flat_cedar() {
    let world = World::generate(
        WorldSize {
            agents: 1_000,
            owners: 40,
            entitlements: 475,
            global_policies: 20,
            agent_policies: 5,
        },
        0x5161_0002,
    );
    let snapshot = world.store.build_snapshot(1).unwrap();

    let outcomes = assert_same_as_flat(&snapshot, &world.requests(10_000, 0x5161_0003));

    // The mix must exercise every kind of outcome, or the comparison proves little.
    assert!(outcomes.allows > 1_000, "{outcomes:?}");
    assert!(outcomes.forbids > 50, "{outcomes:?}");
    assert!(outcomes.builtin > 50, "{outcomes:?}");
}

/// Custom policies whose required resource prefixes are easy to get wrong: escaped stars,
/// separators in odd places, `||`, `unless`, equality in either order.
const TRICKY_POLICIES: [&str; 10] = [
    r#"permit (principal, action, resource) when { resource.id like "a:b/*" && principal.status == "active" };"#,
    r#"forbid (principal, action, resource) when { principal.status == "active" && resource.id like "a:*x" };"#,
    r#"permit (principal, action, resource) when { resource.id like "a\*:/*" };"#,
    r#"permit (principal, action, resource) when { resource.id like "a:b/c" || resource.id like "b:*" };"#,
    r#"forbid (principal, action, resource) unless { resource.id like "*:*" };"#,
    r#"permit (principal, action, resource == Sigil::Resource::"b:/c");"#,
    r#"permit (principal, action, resource) when { resource == Sigil::Resource::"a:b/d" };"#,
    r#"permit (principal, action, resource) when { "a:/" == resource.id };"#,
    r#"permit (principal == Sigil::Agent::"x", action, resource) when { resource.id like "b:/*" };"#,
    r#"forbid (principal == Sigil::Agent::"y", action, resource) when { resource.id like "a:b/*x*" };"#,
];

#[test]
fn tricky_guards_equal_flat_cedar() {
    let mut store = common::store_with(vec![
        common::agent(
            "x",
            "o@example.org",
            AgentStatus::Active,
            &["read:a:b/*", "read:a:**"],
        ),
        common::agent(
            "y",
            "o@example.org",
            AgentStatus::Active,
            &["read:b:/c", "read:*"],
        ),
        common::agent("z", "o@example.org", AgentStatus::Registered, &["read:b:*"]),
    ]);
    for (index, text) in TRICKY_POLICIES.iter().enumerate() {
        store
            .add_custom_policy(&format!("tricky-{index}"), text)
            .unwrap();
    }
    let snapshot = store.build_snapshot(1).unwrap();

    const ALPHABET: [char; 8] = ['a', 'b', ':', '/', '*', 'c', 'x', 'd'];
    let mut rng = StdRng::seed_from_u64(0x5161_0004);
    let agents = ["x", "y", "z"].map(|name| AgentName::new(name).unwrap());
    let requests: Vec<MixRequest> = (0..20_000)
        .map(|_| {
            let len = rng.random_range(0..8);
            MixRequest {
                agent: agents.choose(&mut rng).unwrap().clone(),
                action: "read",
                resource: (0..len)
                    .map(|_| *ALPHABET.choose(&mut rng).unwrap())
                    .collect(),
            }
        })
        .collect();

    let outcomes = assert_same_as_flat(&snapshot, &requests);

    assert!(outcomes.allows > 1_000, "{outcomes:?}");
    assert!(outcomes.forbids > 1_000, "{outcomes:?}");
}
