//! Compiled entitlements allow exactly the requests their `ACTION:RESOURCE` covers.

#![allow(clippy::unwrap_used, reason = "tests fail on unexpected errors")]

mod common;

use common::{agent, decide, store_with};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use sigil_core::{AgentStatus, Entitlement};
use sigil_policy::{Verdict, entitlement_policy_id};

const OWNER: &str = "alice@example.org";

#[test]
fn wildcard_allows_matching_prefix() {
    let store = store_with(vec![agent(
        "crm-bot",
        OWNER,
        AgentStatus::Active,
        &["invoke:tool:crm/*"],
    )]);
    let snapshot = store.build_snapshot(1).unwrap();

    for resource in ["tool:crm/contacts", "tool:crm/", "tool:crm/a/b/c"] {
        let decision = decide(&snapshot, "crm-bot", "invoke", resource);
        assert_eq!(
            decision.decision,
            Verdict::Allow,
            "{resource}: {decision:?}"
        );
        assert_eq!(
            decision.policies,
            ["entitlement/crm-bot/invoke:tool:crm/*"],
            "{resource}"
        );
    }
    for resource in [
        "tool:crm",
        "tool:crmx/contacts",
        "tool:erp/x",
        "TOOL:crm/x",
        "",
    ] {
        let decision = decide(&snapshot, "crm-bot", "invoke", resource);
        assert_eq!(decision.decision, Verdict::Deny, "{resource}: {decision:?}");
        assert!(decision.policies.is_empty(), "{resource}: {decision:?}");
    }
}

#[test]
fn exact_resource_allows_only_itself() {
    let store = store_with(vec![agent(
        "reader",
        OWNER,
        AgentStatus::Active,
        &["read:doc:1"],
    )]);
    let snapshot = store.build_snapshot(1).unwrap();

    assert!(decide(&snapshot, "reader", "read", "doc:1").is_allowed());
    for resource in ["doc:10", "doc:", "doc:1 ", "doc:*"] {
        assert!(
            !decide(&snapshot, "reader", "read", resource).is_allowed(),
            "{resource}"
        );
    }
}

#[test]
fn other_actions_denied() {
    let store = store_with(vec![agent(
        "crm-bot",
        OWNER,
        AgentStatus::Active,
        &["invoke:tool:crm/*", "write:doc:1"],
    )]);
    let snapshot = store.build_snapshot(1).unwrap();

    assert!(!decide(&snapshot, "crm-bot", "read", "tool:crm/contacts").is_allowed());
    assert!(!decide(&snapshot, "crm-bot", "invoke", "doc:1").is_allowed());
    assert!(decide(&snapshot, "crm-bot", "write", "doc:1").is_allowed());
}

#[test]
fn entitlements_do_not_leak_between_agents() {
    let store = store_with(vec![
        agent("a", OWNER, AgentStatus::Active, &["invoke:tool:crm/*"]),
        agent("b", OWNER, AgentStatus::Active, &[]),
    ]);
    let snapshot = store.build_snapshot(1).unwrap();

    assert!(decide(&snapshot, "a", "invoke", "tool:crm/x").is_allowed());
    assert!(!decide(&snapshot, "b", "invoke", "tool:crm/x").is_allowed());
}

#[test]
fn registered_agent_uses_entitlements() {
    let store = store_with(vec![agent(
        "fresh",
        OWNER,
        AgentStatus::Registered,
        &["read:doc:*"],
    )]);
    let snapshot = store.build_snapshot(1).unwrap();

    assert!(decide(&snapshot, "fresh", "read", "doc:7").is_allowed());
}

#[test]
fn literal_metacharacters_match_literally() {
    // `a**` is the literal prefix `a*` followed by the wildcard.
    let store = store_with(vec![agent(
        "bot",
        OWNER,
        AgentStatus::Active,
        &[
            "read:x:a**",
            r#"read:q:"quoted"\path"#,
            r#"read:w:back\slash*"#,
        ],
    )]);
    let snapshot = store.build_snapshot(1).unwrap();

    assert!(decide(&snapshot, "bot", "read", "x:a*").is_allowed());
    assert!(decide(&snapshot, "bot", "read", "x:a*bc").is_allowed());
    assert!(!decide(&snapshot, "bot", "read", "x:abc").is_allowed());
    assert!(!decide(&snapshot, "bot", "read", "x:a").is_allowed());

    assert!(decide(&snapshot, "bot", "read", r#"q:"quoted"\path"#).is_allowed());
    assert!(!decide(&snapshot, "bot", "read", r#"q:"quoted"path"#).is_allowed());

    assert!(decide(&snapshot, "bot", "read", r#"w:back\slash/1"#).is_allowed());
    assert!(!decide(&snapshot, "bot", "read", "w:backslash/1").is_allowed());
}

#[test]
fn allow_reports_used_entitlement() {
    let store = store_with(vec![agent(
        "crm-bot",
        OWNER,
        AgentStatus::Active,
        &[
            "invoke:tool:crm/*",
            "invoke:tool:crm/contacts",
            "read:doc:1",
        ],
    )]);
    let snapshot = store.build_snapshot(1).unwrap();

    let decision = decide(&snapshot, "crm-bot", "invoke", "tool:crm/contacts");
    assert!(decision.is_allowed());
    assert_eq!(decision.agent.as_ref().unwrap().as_str(), "crm-bot");
    let mut used: Vec<String> = decision
        .entitlements
        .iter()
        .map(ToString::to_string)
        .collect();
    used.sort();
    assert_eq!(used, ["invoke:tool:crm/*", "invoke:tool:crm/contacts"]);

    let decision = decide(&snapshot, "crm-bot", "invoke", "tool:crm/leads");
    assert_eq!(decision.entitlements.len(), 1);
    assert_eq!(decision.entitlements[0].to_string(), "invoke:tool:crm/*");

    let decision = decide(&snapshot, "crm-bot", "invoke", "tool:erp/x");
    assert!(decision.entitlements.is_empty());
}

#[test]
fn duplicate_entitlements_compile_once() {
    let store = store_with(vec![agent(
        "bot",
        OWNER,
        AgentStatus::Active,
        &["read:doc:1", "read:doc:1"],
    )]);
    let snapshot = store.build_snapshot(1).unwrap();

    let decision = decide(&snapshot, "bot", "read", "doc:1");
    assert_eq!(decision.policies, ["entitlement/bot/read:doc:1"]);
}

/// Characters that stress Cedar's string and pattern escapes.
const ALPHABET: [&str; 9] = ["a", "b", "/", ":", "*", "\\", "\"", "é", "\u{1F600}"];

fn random_text(rng: &mut StdRng, max_len: usize) -> String {
    let len = rng.random_range(0..=max_len);
    (0..len)
        .map(|_| *ALPHABET.choose(rng).unwrap())
        .collect::<String>()
}

#[test]
fn compiled_policy_matches_entitlement_allows() {
    let mut rng = StdRng::seed_from_u64(0x5161_1001);

    for round in 0..40 {
        // A resource pattern: text without `*` except a run at the end.
        let prefix: String = random_text(&mut rng, 6).replace('*', "");
        let stars = "*".repeat(rng.random_range(0..3));
        let resource = format!("x{prefix}{stars}");
        let value = format!("read:{resource}");
        let entitlement = Entitlement::parse(&value).unwrap();

        let store = store_with(vec![agent("bot", OWNER, AgentStatus::Active, &[&value])]);
        let snapshot = store.build_snapshot(1).unwrap();

        let mut candidates = vec![
            resource.clone(),
            format!("x{prefix}"),
            format!("x{prefix}*"),
        ];
        for _ in 0..50 {
            let suffix = random_text(&mut rng, 4);
            candidates.push(format!("x{prefix}{suffix}"));
            candidates.push(format!("x{}", random_text(&mut rng, 8)));
        }

        for candidate in candidates {
            let expected = entitlement.allows("read", &candidate);
            let decision = decide(&snapshot, "bot", "read", &candidate);
            assert_eq!(
                decision.is_allowed(),
                expected,
                "round {round}: entitlement {value:?}, resource {candidate:?}: {decision:?}"
            );
        }
    }
}

#[test]
fn policy_id_names_agent_and_entitlement() {
    let record = agent(
        "crm-bot",
        OWNER,
        AgentStatus::Active,
        &["invoke:tool:crm/*"],
    );
    let id = entitlement_policy_id(&record.name, &record.entitlements[0]);
    assert_eq!(id, "entitlement/crm-bot/invoke:tool:crm/*");
}
