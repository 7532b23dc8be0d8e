//! Custom policies: validation with positions, add and remove, and how they combine with
//! entitlements.

#![allow(clippy::unwrap_used, reason = "tests fail on unexpected errors")]

mod common;

use common::{agent, decide, store_with};
use sigil_core::AgentStatus;
use sigil_policy::{ContextAttributeType, PolicyError, PolicyStore, Verdict};

const OWNER: &str = "alice@example.org";

fn crm_store() -> PolicyStore {
    store_with(vec![
        agent(
            "crm-bot",
            OWNER,
            AgentStatus::Active,
            &["invoke:tool:crm/*"],
        ),
        agent(
            "mail-bot",
            "bob@example.org",
            AgentStatus::Active,
            &["read:doc:*"],
        ),
    ])
}

#[test]
fn validation_error_has_line_and_column() {
    let mut store = crm_store();
    // `principal.team` is not an attribute of `Sigil::Agent`; it starts on line 3, column 12.
    let text = "permit (principal, action, resource)\n\
                when {\n    true && principal.team == \"sales\"\n};";
    let error = store.add_custom_policy("team-rule", text).unwrap_err();

    let PolicyError::ValidationFailed { id, diagnostics } = &error else {
        panic!("expected a validation error, got {error:?}");
    };
    assert_eq!(id, "team-rule");
    assert_eq!(diagnostics[0].line, Some(3), "{error}");
    assert_eq!(diagnostics[0].column, Some(13), "{error}");
    let message = error.to_string();
    assert!(message.contains("line 3, column 13"), "{message}");
    assert!(message.contains("team"), "{message}");
}

#[test]
fn unknown_action_rejected() {
    let mut store = crm_store();
    let text = "permit (principal, action == Sigil::Action::\"invok\", resource);";
    let error = store.add_custom_policy("typo", text).unwrap_err();

    assert!(
        matches!(error, PolicyError::ValidationFailed { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("line 1, column 30"), "{message}");
    assert!(message.contains("invok"), "{message}");
}

#[test]
fn invalid_syntax_rejected_with_position() {
    let mut store = crm_store();
    let text = "permit (principal, action, resource)\nwhen { resource.id like };";
    let error = store.add_custom_policy("broken", text).unwrap_err();

    let PolicyError::InvalidSyntax { diagnostics, .. } = &error else {
        panic!("expected a syntax error, got {error:?}");
    };
    assert_eq!(diagnostics[0].line, Some(2), "{error}");
    assert!(error.to_string().contains("line 2, column "), "{error}");
}

#[test]
fn garbage_and_empty_text_rejected() {
    let mut store = crm_store();

    let error = store
        .add_custom_policy("garbage", "allow everything")
        .unwrap_err();
    assert!(
        matches!(error, PolicyError::InvalidSyntax { .. }),
        "{error:?}"
    );

    let error = store
        .add_custom_policy("empty", "  // nothing here\n")
        .unwrap_err();
    assert!(
        matches!(error, PolicyError::EmptyPolicy { .. }),
        "{error:?}"
    );
}

#[test]
fn unknown_entity_type_rejected() {
    let mut store = crm_store();
    let text = "permit (principal == User::\"alice\", action, resource);";
    let error = store.add_custom_policy("user", text).unwrap_err();
    assert!(
        matches!(error, PolicyError::ValidationFailed { .. }),
        "{error:?}"
    );
}

#[test]
fn template_rejected() {
    let mut store = crm_store();
    let text = "permit (principal == ?principal, action, resource);";
    let error = store.add_custom_policy("template", text).unwrap_err();
    assert!(
        matches!(error, PolicyError::TemplateNotSupported { .. }),
        "{error:?}"
    );
}

#[test]
fn invalid_and_duplicate_ids_rejected() {
    let mut store = crm_store();
    let text = "permit (principal, action, resource) when { resource.id == \"doc:open\" };";

    for bad in ["", "a/b", "a#1", "has space", &"x".repeat(129)] {
        let error = store.add_custom_policy(bad, text).unwrap_err();
        assert!(
            matches!(error, PolicyError::InvalidPolicyId { .. }),
            "{bad:?}: {error:?}"
        );
    }

    store.add_custom_policy("open-doc", text).unwrap();
    let error = store.add_custom_policy("open-doc", text).unwrap_err();
    assert!(
        matches!(error, PolicyError::DuplicatePolicyId { .. }),
        "{error:?}"
    );
}

#[test]
fn forbid_beats_entitlement() {
    let mut store = crm_store();
    let before = store.build_snapshot(1).unwrap();
    assert!(decide(&before, "crm-bot", "invoke", "tool:crm/export").is_allowed());

    store
        .add_custom_policy(
            "no-export",
            "forbid (principal, action, resource) when { resource.id like \"*/export\" };",
        )
        .unwrap();
    let after = store.build_snapshot(2).unwrap();

    let decision = decide(&after, "crm-bot", "invoke", "tool:crm/export");
    assert_eq!(decision.decision, Verdict::Deny);
    assert_eq!(decision.policies, ["no-export"]);
    assert!(decision.entitlements.is_empty());
    assert!(decide(&after, "crm-bot", "invoke", "tool:crm/contacts").is_allowed());
}

#[test]
fn agent_scoped_forbid_applies_to_that_agent_only() {
    let mut store = store_with(vec![
        agent("a", OWNER, AgentStatus::Active, &["read:doc:*"]),
        agent("b", OWNER, AgentStatus::Active, &["read:doc:*"]),
    ]);
    store
        .add_custom_policy(
            "a-no-secret",
            "forbid (principal == Sigil::Agent::\"a\", action, resource)\n\
             when { resource.id == \"doc:secret\" };",
        )
        .unwrap();
    let snapshot = store.build_snapshot(1).unwrap();

    let decision = decide(&snapshot, "a", "read", "doc:secret");
    assert_eq!(decision.policies, ["a-no-secret"]);
    assert!(!decision.is_allowed());
    assert!(decide(&snapshot, "b", "read", "doc:secret").is_allowed());
}

#[test]
fn owner_scoped_permit_uses_agent_parent() {
    let mut store = crm_store();
    store
        .add_custom_policy(
            "alice-reads-wiki",
            "permit (principal in Sigil::Owner::\"alice@example.org\", \
             action == Sigil::Action::\"read\", resource)\n\
             when { resource.id like \"wiki:*\" };",
        )
        .unwrap();
    let snapshot = store.build_snapshot(1).unwrap();

    let decision = decide(&snapshot, "crm-bot", "read", "wiki:onboarding");
    assert!(decision.is_allowed(), "{decision:?}");
    assert_eq!(decision.policies, ["alice-reads-wiki"]);
    assert!(decision.entitlements.is_empty());

    assert!(!decide(&snapshot, "mail-bot", "read", "wiki:onboarding").is_allowed());
}

#[test]
fn remove_custom_policy_restores_decision() {
    let mut store = crm_store();
    store
        .add_custom_policy(
            "no-crm",
            "forbid (principal, action, resource) when { resource.id like \"tool:crm/*\" };",
        )
        .unwrap();
    assert!(
        !decide(
            &store.build_snapshot(1).unwrap(),
            "crm-bot",
            "invoke",
            "tool:crm/x"
        )
        .is_allowed()
    );

    let removed = store.remove_custom_policy("no-crm").unwrap();
    assert_eq!(removed.id(), "no-crm");
    assert!(
        decide(
            &store.build_snapshot(2).unwrap(),
            "crm-bot",
            "invoke",
            "tool:crm/x"
        )
        .is_allowed()
    );

    let error = store.remove_custom_policy("no-crm").unwrap_err();
    assert!(
        matches!(error, PolicyError::PolicyNotFound { .. }),
        "{error:?}"
    );
}

#[test]
fn document_with_several_policies_numbers_them() {
    let mut store = crm_store();
    let text = "permit (principal, action == Sigil::Action::\"read\", resource)\n\
                when { resource.id == \"doc:a\" };\n\
                \n\
                forbid (principal, action, resource)\n\
                when { resource.id == \"doc:b\" };\n";
    let accepted = store.add_custom_policy("pair", text).unwrap();
    assert_eq!(accepted.policy_ids, ["pair#1", "pair#2"]);

    let snapshot = store.build_snapshot(1).unwrap();
    assert_eq!(
        decide(&snapshot, "crm-bot", "read", "doc:a").policies,
        ["pair#1"]
    );
    assert_eq!(
        decide(&snapshot, "mail-bot", "read", "doc:b").policies,
        ["pair#2"]
    );
}

#[test]
fn error_in_second_policy_points_into_document() {
    let mut store = crm_store();
    let text = "permit (principal, action, resource) when { resource.id == \"doc:a\" };\n\
                forbid (principal, action, resource)\n\
                when { principal.level > 3 };\n";
    let error = store.add_custom_policy("pair", text).unwrap_err();
    assert!(error.to_string().contains("line 3, column 8"), "{error}");
}

#[test]
fn custom_policy_keeps_its_action_declared() {
    let mut store = store_with(vec![agent(
        "bot",
        OWNER,
        AgentStatus::Active,
        &["archive:doc:*"],
    )]);
    store
        .add_custom_policy(
            "no-archive-secrets",
            "forbid (principal, action == Sigil::Action::\"archive\", resource)\n\
             when { resource.id like \"doc:secret*\" };",
        )
        .unwrap();

    // Removing the last entitlement with `archive` must not invalidate the custom policy.
    store
        .upsert_agent(agent("bot", OWNER, AgentStatus::Active, &[]))
        .unwrap();
    let snapshot = store.build_snapshot(1).unwrap();
    assert!(snapshot.schema().actions().contains("archive"));
}

#[test]
fn restore_declares_named_actions() {
    // After a restart, no entitlement names `archive` any more, but the stored policy does.
    let text = "forbid (principal, action == Sigil::Action::\"archive\", resource)\n\
                when { resource.id like \"doc:secret*\" };";
    let mut store = crm_store();
    let error = store
        .add_custom_policy("no-archive-secrets", text)
        .unwrap_err();
    assert!(
        matches!(error, PolicyError::ValidationFailed { .. }),
        "{error:?}"
    );

    let accepted = store
        .restore_custom_policy("no-archive-secrets", text)
        .unwrap();
    assert_eq!(accepted.policy_ids, ["no-archive-secrets"]);
    let snapshot = store.build_snapshot(1).unwrap();
    assert!(snapshot.schema().actions().contains("archive"));

    // Restoring still validates everything else.
    let error = store
        .restore_custom_policy(
            "bad",
            "permit (principal, action, resource) when { principal.team == 1 };",
        )
        .unwrap_err();
    assert!(
        matches!(error, PolicyError::ValidationFailed { .. }),
        "{error:?}"
    );
}

#[test]
fn declared_action_accepts_policy() {
    let mut store = crm_store();
    let text = "permit (principal, action == Sigil::Action::\"deploy\", resource);";
    assert!(store.add_custom_policy("deploy-all", text).is_err());

    store.declare_action("deploy").unwrap();
    store.add_custom_policy("deploy-all", text).unwrap();
    let snapshot = store.build_snapshot(1).unwrap();
    assert!(decide(&snapshot, "crm-bot", "deploy", "env:prod").is_allowed());
}

#[test]
fn context_attribute_reaches_policy() {
    let mut store = crm_store();
    store
        .declare_context_attribute("mfa", ContextAttributeType::Bool)
        .unwrap();
    store
        .add_custom_policy(
            "require-mfa",
            "forbid (principal, action, resource)\n\
             unless { context has mfa && context.mfa };",
        )
        .unwrap();
    let snapshot = store.build_snapshot(1).unwrap();
    let name = sigil_core::AgentName::new("crm-bot").unwrap();
    let request = |context: serde_json::Value| sigil_policy::Request {
        principal: sigil_policy::PrincipalRef::Agent(&name),
        action: "invoke",
        resource: "tool:crm/x",
        context,
    };

    let with_mfa = snapshot.authorize(&request(serde_json::json!({"mfa": true})));
    assert!(with_mfa.is_allowed(), "{with_mfa:?}");

    let without = snapshot.authorize(&request(serde_json::Value::Null));
    assert_eq!(without.policies, ["require-mfa"]);

    let extra = snapshot.authorize(&request(serde_json::json!({"mfa": true, "ip": "10.0.0.1"})));
    assert!(extra.is_allowed(), "{extra:?}");
    assert!(
        extra
            .diagnostics
            .iter()
            .any(|d| d.contains("`ip` is not declared")),
        "{extra:?}"
    );

    let wrong_type = snapshot.authorize(&request(serde_json::json!({"mfa": "yes"})));
    assert!(!wrong_type.is_allowed(), "{wrong_type:?}");
    assert!(
        wrong_type
            .diagnostics
            .iter()
            .any(|d| d.starts_with("invalid context")),
        "{wrong_type:?}"
    );

    let not_object = snapshot.authorize(&request(serde_json::json!([1, 2])));
    assert!(!not_object.is_allowed());
    assert_eq!(
        not_object.diagnostics,
        ["invalid context: expected a JSON object or null, got an array"]
    );
}

#[test]
fn conflicting_context_attribute_rejected() {
    let mut store = PolicyStore::new();
    store
        .declare_context_attribute("ip", ContextAttributeType::String)
        .unwrap();
    store
        .declare_context_attribute("ip", ContextAttributeType::String)
        .unwrap();
    let error = store
        .declare_context_attribute("ip", ContextAttributeType::Long)
        .unwrap_err();
    assert!(
        matches!(error, PolicyError::ConflictingContextAttribute { .. }),
        "{error:?}"
    );
}

#[test]
fn warnings_do_not_block_policy() {
    let mut store = crm_store();
    // `principal == Sigil::Owner::…` can never match, because principals are agents.
    let accepted = store.add_custom_policy(
        "impossible",
        "permit (principal == Sigil::Owner::\"alice@example.org\", action, resource);",
    );
    let accepted = accepted.unwrap();
    assert_eq!(accepted.policy_ids, ["impossible"]);
    assert!(
        accepted
            .warnings
            .iter()
            .any(|warning| warning.message.contains("policy is impossible")),
        "{accepted:?}"
    );
    assert_eq!(accepted.warnings[0].line, Some(1));
}
