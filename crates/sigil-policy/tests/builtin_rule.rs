//! The built-in rule: suspended and decommissioned agents are denied everything.

#![allow(clippy::unwrap_used, reason = "tests fail on unexpected errors")]

mod common;

use cedar_policy::{Authorizer, Context, Entities, Request};
use common::{agent, decide, store_with};
use sigil_core::AgentStatus;
use sigil_policy::{INACTIVE_AGENT_POLICY_ID, PolicyStore, Verdict};

const OWNER: &str = "alice@example.org";
const PERMIT_ALL: &str = "permit (principal, action, resource);";

fn store_with_statuses() -> PolicyStore {
    let mut store = store_with(vec![
        agent("active", OWNER, AgentStatus::Active, &["invoke:tool:*"]),
        agent(
            "suspended",
            OWNER,
            AgentStatus::Suspended,
            &["invoke:tool:*"],
        ),
        agent(
            "retired",
            OWNER,
            AgentStatus::Decommissioned,
            &["invoke:tool:*"],
        ),
    ]);
    store.add_custom_policy("permit-all", PERMIT_ALL).unwrap();
    store
}

#[test]
fn inactive_agents_denied_despite_permit_all() {
    let snapshot = store_with_statuses().build_snapshot(1).unwrap();

    for name in ["suspended", "retired"] {
        for (action, resource) in [
            ("invoke", "tool:crm/x"),
            ("invoke", "anything"),
            ("read", "x"),
        ] {
            let decision = decide(&snapshot, name, action, resource);
            assert_eq!(decision.decision, Verdict::Deny, "{name}: {decision:?}");
            assert_eq!(decision.policies, [INACTIVE_AGENT_POLICY_ID], "{name}");
            assert!(decision.entitlements.is_empty(), "{name}");
        }
    }

    let decision = decide(&snapshot, "active", "invoke", "tool:crm/x");
    assert!(decision.is_allowed());
    let mut expected = vec![
        "entitlement/active/invoke:tool:*".to_owned(),
        "permit-all".to_owned(),
    ];
    expected.sort();
    assert_eq!(decision.policies, expected);
}

#[test]
fn status_change_takes_effect_in_next_snapshot() {
    let mut store = store_with_statuses();
    assert!(
        decide(
            &store.build_snapshot(1).unwrap(),
            "active",
            "invoke",
            "tool:x"
        )
        .is_allowed()
    );

    store
        .upsert_agent(agent(
            "active",
            OWNER,
            AgentStatus::Suspended,
            &["invoke:tool:*"],
        ))
        .unwrap();
    let decision = decide(
        &store.build_snapshot(2).unwrap(),
        "active",
        "invoke",
        "tool:x",
    );
    assert_eq!(decision.policies, [INACTIVE_AGENT_POLICY_ID]);
}

#[test]
fn exported_set_contains_forbid() {
    let snapshot = store_with_statuses().build_snapshot(1).unwrap();
    let text = snapshot.policy_text();
    assert!(
        text.contains(&format!("// {INACTIVE_AGENT_POLICY_ID}\nforbid")),
        "{text}"
    );

    let set = snapshot.policy_set();
    let builtin = set
        .policies()
        .find(|policy| AsRef::<str>::as_ref(policy.id()) == INACTIVE_AGENT_POLICY_ID)
        .unwrap();
    assert_eq!(builtin.effect(), cedar_policy::Effect::Forbid);
}

#[test]
fn plain_cedar_on_export_also_denies() {
    let snapshot = store_with_statuses().build_snapshot(1).unwrap();
    let authorizer = Authorizer::new();

    for (name, expected) in [
        ("active", cedar_policy::Decision::Allow),
        ("suspended", cedar_policy::Decision::Deny),
        ("retired", cedar_policy::Decision::Deny),
    ] {
        let agent_entity = snapshot.agent_entity(name).unwrap().clone();
        let resource = snapshot.resource_entity("tool:crm/x").unwrap();
        let request = Request::new(
            agent_entity.uid(),
            r#"Sigil::Action::"invoke""#.parse().unwrap(),
            resource.uid(),
            Context::empty(),
            Some(snapshot.schema().cedar_schema()),
        )
        .unwrap();
        let entities = Entities::from_entities(
            [agent_entity, resource],
            Some(snapshot.schema().cedar_schema()),
        )
        .unwrap();

        let response = authorizer.is_authorized(&request, snapshot.policy_set(), &entities);
        assert_eq!(response.decision(), expected, "{name}");
        if expected == cedar_policy::Decision::Deny {
            let reasons: Vec<&str> = response
                .diagnostics()
                .reason()
                .map(AsRef::<str>::as_ref)
                .collect();
            assert_eq!(reasons, [INACTIVE_AGENT_POLICY_ID], "{name}");
        }
    }
}
