//! Per-principal slicing decides exactly like plain Cedar evaluating the flat policy set.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "tests fail on unexpected errors"
)]

mod common;

use std::collections::BTreeSet;

use cedar_policy::{Authorizer, Context, Entities, EntityUid};
use common::world::{World, WorldSize};
use sigil_policy::{PrincipalRef, Request, Snapshot, Verdict};

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
    let authorizer = Authorizer::new();
    let mut allows = 0;
    let mut forbids = 0;
    let mut builtin = 0;

    for (index, mix) in world.requests(10_000, 0x5161_0003).iter().enumerate() {
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
        let entities = entities_from_json(&snapshot, mix.agent.as_str(), &mix.resource);
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

        if expected_policies.contains(sigil_policy::INACTIVE_AGENT_POLICY_ID) {
            // The engine decides inactive agents before Cedar, so it reports only the built-in
            // rule, where flat Cedar also lists custom forbids that apply.
            assert_eq!(
                decision.policies,
                [sigil_policy::INACTIVE_AGENT_POLICY_ID],
                "request {index}: {decision:?}"
            );
            assert_eq!(
                decision.diagnostics.len(),
                1,
                "request {index}: {decision:?}"
            );
            builtin += 1;
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
            allows += 1;
        } else if !expected_policies.is_empty() {
            forbids += 1;
        }
    }

    // The mix must exercise every kind of outcome, or the comparison proves little.
    assert!(allows > 1_000, "only {allows} allows");
    assert!(forbids > 50, "only {forbids} denies by a custom forbid");
    assert!(builtin > 50, "only {builtin} denies by the built-in rule");
}
