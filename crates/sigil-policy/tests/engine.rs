//! The engine: atomic snapshot swaps, principals by name or SPIFFE ID, unknown inputs.

#![allow(clippy::unwrap_used, reason = "tests fail on unexpected errors")]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use common::{agent, store_with};
use sigil_core::{AgentName, AgentStatus, SpiffeId};
use sigil_policy::{Engine, PolicyError, PolicyStore, PrincipalRef, Request, Verdict};

const OWNER: &str = "alice@example.org";

/// Returns a store whose only policy that allows `bot` to read `doc:x` is the custom policy `id`.
fn store_with_policy(id: &str) -> PolicyStore {
    let mut store = store_with(vec![agent("bot", OWNER, AgentStatus::Active, &[])]);
    store.declare_action("read").unwrap();
    store
        .add_custom_policy(
            id,
            "permit (principal, action == Sigil::Action::\"read\", resource)\n\
             when { resource.id == \"doc:x\" };",
        )
        .unwrap();
    store
}

fn read_request(name: &AgentName) -> Request<'_> {
    Request {
        principal: PrincipalRef::Agent(name),
        action: "read",
        resource: "doc:x",
        context: serde_json::Value::Null,
    }
}

#[test]
fn swap_is_atomic_under_concurrent_readers() {
    const SWAPS: u64 = 600;
    const READERS: usize = 3;

    // Odd versions contain only policy A, even versions only policy B.
    let store_a = store_with_policy("policy-a");
    let store_b = store_with_policy("policy-b");
    let engine = Arc::new(Engine::new(store_a.build_snapshot(1).unwrap()));
    let done = Arc::new(AtomicBool::new(false));

    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let engine = Arc::clone(&engine);
            let done = Arc::clone(&done);
            thread::spawn(move || {
                let name = AgentName::new("bot").unwrap();
                let mut decisions = 0_u64;
                let mut last_version = 0;
                let mut versions_seen = std::collections::BTreeSet::new();
                while !done.load(Ordering::Acquire) || decisions == 0 {
                    let decision = engine.authorize(&read_request(&name));
                    let expected = if decision.version % 2 == 1 {
                        "policy-a"
                    } else {
                        "policy-b"
                    };
                    assert_eq!(decision.decision, Verdict::Allow, "{decision:?}");
                    assert_eq!(decision.policies, [expected], "{decision:?}");
                    assert!(decision.version >= last_version, "version went backwards");
                    last_version = decision.version;
                    versions_seen.insert(decision.version);
                    decisions += 1;
                }
                (decisions, versions_seen.len())
            })
        })
        .collect();

    for version in 2..=SWAPS {
        let store = if version % 2 == 1 { &store_a } else { &store_b };
        let previous = engine
            .replace(store.build_snapshot(version).unwrap())
            .unwrap();
        assert_eq!(previous.version(), version - 1);
    }
    done.store(true, Ordering::Release);

    for reader in readers {
        let (decisions, versions) = reader.join().unwrap();
        assert!(decisions > 0);
        assert!(versions > 0);
    }
    assert_eq!(engine.version(), SWAPS);
}

#[test]
fn stale_snapshot_rejected() {
    let store = store_with_policy("policy-a");
    let engine = Engine::new(store.build_snapshot(5).unwrap());

    for stale in [5, 4, 0] {
        let error = engine
            .replace(store.build_snapshot(stale).unwrap())
            .unwrap_err();
        assert_eq!(
            error,
            PolicyError::StaleSnapshot {
                current: 5,
                offered: stale
            }
        );
    }
    assert_eq!(engine.version(), 5);
    engine.replace(store.build_snapshot(6).unwrap()).unwrap();
    assert_eq!(engine.snapshot().version(), 6);
}

#[test]
fn principal_by_spiffe_id() {
    let store = store_with(vec![agent(
        "crm-bot",
        OWNER,
        AgentStatus::Active,
        &["invoke:tool:crm/*"],
    )]);
    let engine = Engine::new(store.build_snapshot(1).unwrap());

    let id = SpiffeId::parse("spiffe://example.org/agent/crm-bot").unwrap();
    let decision = engine.authorize(&Request {
        principal: PrincipalRef::SpiffeId(&id),
        action: "invoke",
        resource: "tool:crm/contacts",
        context: serde_json::Value::Null,
    });
    assert!(decision.is_allowed(), "{decision:?}");
    assert_eq!(decision.agent.unwrap().as_str(), "crm-bot");

    for other in [
        "spiffe://example.org/admin/crm-bot",
        "spiffe://other.org/agent/crm-bot",
    ] {
        let id = SpiffeId::parse(other).unwrap();
        let decision = engine.authorize(&Request {
            principal: PrincipalRef::SpiffeId(&id),
            action: "invoke",
            resource: "tool:crm/contacts",
            context: serde_json::Value::Null,
        });
        assert!(!decision.is_allowed(), "{other}");
        assert!(decision.agent.is_none(), "{other}");
        assert!(
            decision.diagnostics[0].contains("not a registered agent"),
            "{decision:?}"
        );
    }
}

#[test]
fn unknown_agent_and_action_denied() {
    let mut store = store_with(vec![agent("bot", OWNER, AgentStatus::Active, &["read:*"])]);
    store
        .add_custom_policy("permit-all", "permit (principal, action, resource);")
        .unwrap();
    let snapshot = store.build_snapshot(1).unwrap();

    let ghost = AgentName::new("ghost").unwrap();
    let decision = snapshot.authorize(&Request {
        principal: PrincipalRef::Agent(&ghost),
        action: "read",
        resource: "doc:1",
        context: serde_json::Value::Null,
    });
    assert_eq!(decision.decision, Verdict::Deny);
    assert!(decision.policies.is_empty());
    assert!(decision.diagnostics[0].contains("`ghost`"), "{decision:?}");

    let decision = common::decide(&snapshot, "bot", "launch", "rocket:1");
    assert_eq!(decision.decision, Verdict::Deny);
    assert!(decision.diagnostics[0].contains("`launch`"), "{decision:?}");
}

#[test]
fn policies_for_lists_only_matching_sets() {
    let mut store = store_with(vec![
        agent(
            "a",
            OWNER,
            AgentStatus::Active,
            &["read:doc:*", "read:tool:x", "write:doc:1"],
        ),
        agent("b", OWNER, AgentStatus::Active, &["read:doc:2"]),
    ]);
    store
        .add_custom_policy(
            "open-doc",
            "permit (principal, action == Sigil::Action::\"read\", resource == Sigil::Resource::\"doc:open\");",
        )
        .unwrap();
    store
        .add_custom_policy(
            "b-all",
            "permit (principal == Sigil::Agent::\"b\", action, resource);",
        )
        .unwrap();
    store
        .add_custom_policy(
            "no-tools",
            "forbid (principal, action, resource) when { resource.id like \"tool:*\" };",
        )
        .unwrap();
    let snapshot = store.build_snapshot(1).unwrap();

    assert_eq!(
        snapshot.policies_for("a", "read", "doc:open").unwrap(),
        ["entitlement/a/read:doc:*", "open-doc"]
    );
    // Keys end at a separator, so `doc:open` is indexed under `doc:` and `doc:7` evaluates it.
    assert_eq!(
        snapshot.policies_for("a", "read", "doc:7").unwrap(),
        ["entitlement/a/read:doc:*", "open-doc"]
    );
    assert_eq!(
        snapshot.policies_for("a", "read", "tool:x").unwrap(),
        ["entitlement/a/read:tool:x", "no-tools"]
    );
    assert!(
        snapshot
            .policies_for("a", "read", "wiki:1")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        snapshot.policies_for("a", "write", "doc:1").unwrap(),
        ["entitlement/a/write:doc:1"]
    );
    assert_eq!(
        snapshot.policies_for("b", "write", "wiki:1").unwrap(),
        ["b-all"]
    );
    assert_eq!(
        snapshot.policies_for("b", "read", "doc:2").unwrap(),
        ["b-all", "entitlement/b/read:doc:2", "open-doc"]
    );
    assert!(snapshot.policies_for("c", "read", "doc:1").is_none());
    assert!(snapshot.policies_for("a", "launch", "doc:1").is_none());

    let decision = common::decide(&snapshot, "a", "read", "tool:x");
    assert_eq!(decision.policies, ["no-tools"]);
}
