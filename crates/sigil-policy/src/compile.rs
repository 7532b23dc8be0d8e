//! Compilation of entitlements and of the built-in rule into Cedar policies.

use cedar_policy::{Policy, PolicyId};
use sigil_core::{AgentName, Entitlement};

use crate::error::PolicyError;

/// Id prefix of policies compiled from entitlements: `entitlement/<agent>/<ACTION:RESOURCE>`.
pub const ENTITLEMENT_POLICY_PREFIX: &str = "entitlement/";

/// Id of the built-in `forbid` policy that denies suspended and decommissioned agents.
pub const INACTIVE_AGENT_POLICY_ID: &str = "builtin/deny-inactive-agent";

/// Cedar text of the built-in rule, as exported policy sets show it.
///
/// The engine enforces the same rule before it calls Cedar, so this policy only determines a
/// decision when a caller evaluates an exported policy set with plain Cedar.
pub const INACTIVE_AGENT_POLICY: &str = "forbid (principal, action, resource)\n\
     when { principal.status == \"suspended\" || principal.status == \"decommissioned\" };";

/// Returns the id of the policy compiled from `entitlement` of `agent`.
///
/// Agent names cannot contain `/`, so the first `/` after the prefix separates the agent name
/// from the entitlement and [`parse_entitlement_policy_id`] can recover both.
pub fn entitlement_policy_id(agent: &AgentName, entitlement: &Entitlement) -> String {
    format!("{ENTITLEMENT_POLICY_PREFIX}{agent}/{entitlement}")
}

/// Recovers the agent and the entitlement from the id of a compiled entitlement policy.
///
/// Returns `None` for built-in and custom policy ids.
pub fn parse_entitlement_policy_id(id: &str) -> Option<(AgentName, Entitlement)> {
    let rest = id.strip_prefix(ENTITLEMENT_POLICY_PREFIX)?;
    let (agent, entitlement) = rest.split_once('/')?;
    Some((
        AgentName::new(agent).ok()?,
        Entitlement::parse(entitlement).ok()?,
    ))
}

/// Returns the Cedar text of the policy that grants `entitlement` to `agent`.
///
/// An exact resource compiles to a scope-only policy (`resource == Sigil::Resource::"…"`), which
/// Cedar checks without reading attributes. A resource ending in `*` compiles to a `like` pattern
/// on `resource.id` where only that last `*` is a wildcard: every other `*` is escaped.
pub fn entitlement_policy_text(agent: &AgentName, entitlement: &Entitlement) -> String {
    let principal = cedar_string_literal(agent.as_str());
    let action = cedar_string_literal(entitlement.action());
    match entitlement.resource().strip_suffix('*') {
        Some(prefix) => format!(
            "permit (principal == Sigil::Agent::{principal}, \
             action == Sigil::Action::{action}, resource)\n\
             when {{ resource.id like {} }};",
            cedar_like_pattern(prefix)
        ),
        None => format!(
            "permit (principal == Sigil::Agent::{principal}, \
             action == Sigil::Action::{action}, \
             resource == Sigil::Resource::{});",
            cedar_string_literal(entitlement.resource())
        ),
    }
}

/// Returns the prefix that a resource must have to match `entitlement`: the resource pattern
/// without its wildcard, or the whole resource when it has none.
pub(crate) fn entitlement_guard(entitlement: &Entitlement) -> &str {
    let resource = entitlement.resource();
    resource.strip_suffix('*').unwrap_or(resource)
}

/// Compiles `entitlement` of `agent` into a Cedar policy with its entitlement policy id.
pub fn compile_entitlement(
    agent: &AgentName,
    entitlement: &Entitlement,
) -> Result<Policy, PolicyError> {
    let id = entitlement_policy_id(agent, entitlement);
    let text = entitlement_policy_text(agent, entitlement);
    Policy::parse(Some(PolicyId::new(&id)), &text).map_err(|error| PolicyError::Internal {
        subject: format!("entitlement policy `{id}`"),
        message: error.to_string(),
    })
}

/// Parses the built-in `forbid` policy.
pub(crate) fn inactive_agent_policy() -> Result<Policy, PolicyError> {
    Policy::parse(
        Some(PolicyId::new(INACTIVE_AGENT_POLICY_ID)),
        INACTIVE_AGENT_POLICY,
    )
    .map_err(|error| PolicyError::Internal {
        subject: format!("built-in policy `{INACTIVE_AGENT_POLICY_ID}`"),
        message: error.to_string(),
    })
}

/// Returns a policy id as written, without the escapes of its `Display` form.
pub(crate) fn policy_id_str(id: &PolicyId) -> &str {
    AsRef::<str>::as_ref(id)
}

/// Quotes `value` as a Cedar string literal.
fn cedar_string_literal(value: &str) -> String {
    let mut literal = String::with_capacity(value.len() + 2);
    literal.push('"');
    push_escaped(&mut literal, value, false);
    literal.push('"');
    literal
}

/// Quotes `prefix` followed by one wildcard as a Cedar `like` pattern.
fn cedar_like_pattern(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 3);
    pattern.push('"');
    push_escaped(&mut pattern, prefix, true);
    pattern.push_str("*\"");
    pattern
}

/// Appends `value` with Cedar string escapes, and with `\*` for each `*` inside a pattern.
///
/// Entitlement resources contain no whitespace or control characters, but the escapes cover them
/// anyway so that the output is a valid literal for any input.
fn push_escaped(out: &mut String, value: &str, in_pattern: bool) {
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '*' if in_pattern => out.push_str("\\*"),
            c if c.is_control() => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(name: &str) -> AgentName {
        AgentName::new(name).unwrap()
    }

    fn entitlement(value: &str) -> Entitlement {
        Entitlement::parse(value).unwrap()
    }

    #[test]
    fn wildcard_compiles_to_like() {
        let text = entitlement_policy_text(&agent("crm-bot"), &entitlement("invoke:tool:crm/*"));
        assert_eq!(
            text,
            "permit (principal == Sigil::Agent::\"crm-bot\", action == Sigil::Action::\"invoke\", resource)\n\
             when { resource.id like \"tool:crm/*\" };"
        );
    }

    #[test]
    fn exact_resource_compiles_to_scope() {
        let text = entitlement_policy_text(&agent("bot"), &entitlement("read:doc:1"));
        assert_eq!(
            text,
            "permit (principal == Sigil::Agent::\"bot\", action == Sigil::Action::\"read\", \
             resource == Sigil::Resource::\"doc:1\");"
        );
    }

    #[test]
    fn metacharacters_escaped() {
        let text = entitlement_policy_text(&agent("bot"), &entitlement(r#"read:a"b\c**"#));
        assert!(text.contains(r#"like "a\"b\\c\**""#), "{text}");

        let text = entitlement_policy_text(&agent("bot"), &entitlement(r#"read:a"b\c"#));
        assert!(text.contains(r#"Sigil::Resource::"a\"b\\c""#), "{text}");
    }

    #[test]
    fn generated_policies_parse() {
        for value in [
            "invoke:tool:crm/*",
            "read:doc:1",
            "read:*",
            r#"read:x"y\z**"#,
            "read:ünï/cödé*",
        ] {
            let policy = compile_entitlement(&agent("bot"), &entitlement(value)).unwrap();
            assert_eq!(
                policy_id_str(policy.id()),
                format!("entitlement/bot/{value}")
            );
        }
        inactive_agent_policy().unwrap();
    }

    #[test]
    fn policy_id_round_trips() {
        let name = agent("crm-bot");
        let granted = entitlement("invoke:tool:crm/a/b*");
        let id = entitlement_policy_id(&name, &granted);
        assert_eq!(parse_entitlement_policy_id(&id), Some((name, granted)));
        assert_eq!(parse_entitlement_policy_id(INACTIVE_AGENT_POLICY_ID), None);
        assert_eq!(parse_entitlement_policy_id("audit-reads"), None);
        assert_eq!(parse_entitlement_policy_id("entitlement/bot"), None);
    }
}
