//! Custom policies: Cedar text written by an administrator, parsed, validated and analysed.

use std::str::FromStr;

use cedar_policy::{
    ActionConstraint, EntityUid, Policy, PolicyId, PolicySet, PrincipalConstraint, ValidationMode,
};

use crate::compile::policy_id_str;
use crate::error::{PolicyError, SourceDiagnostic};
use crate::schema::{Schema, TypeNames};
use crate::source::source_diagnostic;

/// Maximum length in bytes of a custom policy id.
const MAX_ID_LEN: usize = 128;

/// A validated custom policy document: one or more Cedar policies added under one id.
///
/// A document with one policy keeps the id as its Cedar policy id. A document with several
/// policies numbers them `<id>#1`, `<id>#2`, … in source order.
#[derive(Debug, Clone)]
pub struct CustomPolicy {
    id: String,
    text: String,
    policies: Vec<Policy>,
}

impl CustomPolicy {
    /// Returns the id the document was added under.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Returns the Cedar text as submitted.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Returns the parsed policies, with their Sigil policy ids.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Returns the ids of the document's policies, as decisions report them.
    pub fn policy_ids(&self) -> Vec<String> {
        self.policies
            .iter()
            .map(|policy| policy_id_str(policy.id()).to_owned())
            .collect()
    }
}

/// A custom policy that passed validation, with the validator's warnings.
#[derive(Debug, Clone)]
pub struct AcceptedPolicy {
    /// Ids of the policies in the document, as decisions report them.
    pub policy_ids: Vec<String>,
    /// Validator warnings, for example a policy that can never apply. They do not block the policy.
    pub warnings: Vec<SourceDiagnostic>,
}

/// Parses `text` as the custom policy document `id`, without validating it.
pub(crate) fn parse_custom_policy(id: &str, text: &str) -> Result<CustomPolicy, PolicyError> {
    check_custom_policy_id(id)?;

    let parsed = PolicySet::from_str(text).map_err(|errors| PolicyError::InvalidSyntax {
        id: id.to_owned(),
        diagnostics: errors
            .iter()
            .map(|error| source_diagnostic(text, error))
            .collect(),
    })?;
    if parsed.num_of_templates() > 0 {
        return Err(PolicyError::TemplateNotSupported { id: id.to_owned() });
    }

    let policies = renumber(id, &parsed);
    if policies.is_empty() {
        return Err(PolicyError::EmptyPolicy { id: id.to_owned() });
    }

    Ok(CustomPolicy {
        id: id.to_owned(),
        text: text.to_owned(),
        policies,
    })
}

/// Validates `policies` (parsed from `text`) against `schema` and returns the warnings.
pub(crate) fn validate(
    id: &str,
    text: &str,
    policies: &[Policy],
    schema: &Schema,
) -> Result<Vec<SourceDiagnostic>, PolicyError> {
    let set = PolicySet::from_policies(policies.iter().cloned()).map_err(|error| {
        PolicyError::Internal {
            subject: format!("the policy set of custom policy `{id}`"),
            message: error.to_string(),
        }
    })?;

    let result = schema.validator().validate(&set, ValidationMode::Strict);
    if !result.validation_passed() {
        return Err(PolicyError::ValidationFailed {
            id: id.to_owned(),
            diagnostics: result
                .validation_errors()
                .map(|error| source_diagnostic(text, error))
                .collect(),
        });
    }
    Ok(result
        .validation_warnings()
        .map(|warning| source_diagnostic(text, warning))
        .collect())
}

/// Gives the parsed policies their Sigil ids, in source order.
///
/// Cedar names the policies of a parsed text `policy0`, `policy1`, … in source order.
fn renumber(id: &str, parsed: &PolicySet) -> Vec<Policy> {
    let mut numbered: Vec<(usize, &Policy)> = parsed
        .policies()
        .map(|policy| {
            let index = policy
                .id()
                .to_string()
                .strip_prefix("policy")
                .and_then(|number| number.parse().ok())
                .unwrap_or(usize::MAX);
            (index, policy)
        })
        .collect();
    numbered.sort_by_key(|(index, _)| *index);

    let single = numbered.len() == 1;
    numbered
        .into_iter()
        .enumerate()
        .map(|(position, (_, policy))| {
            let new_id = if single {
                id.to_owned()
            } else {
                format!("{id}#{}", position + 1)
            };
            policy.new_id(PolicyId::new(new_id))
        })
        .collect()
}

/// Checks a custom policy id: 1 to 128 bytes of `[A-Za-z0-9._-]`.
///
/// Without `/` and `#`, a custom id can never collide with an entitlement or built-in policy id,
/// nor with the numbered ids of another document.
fn check_custom_policy_id(id: &str) -> Result<(), PolicyError> {
    let invalid = |reason| PolicyError::InvalidPolicyId {
        id: id.chars().take(MAX_ID_LEN + 1).collect(),
        reason,
    };

    if id.is_empty() {
        return Err(invalid("the id is empty"));
    }
    if id.len() > MAX_ID_LEN {
        return Err(invalid("a custom policy id is at most 128 bytes"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(invalid(
            "a custom policy id contains only letters, digits, `.`, `-` and `_`",
        ));
    }
    Ok(())
}

/// The principals a policy's scope can match, for indexing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PrincipalScope {
    /// Only the agent with this name (`principal == Sigil::Agent::"name"`).
    Agent(String),
    /// Any principal, or a set that Sigil does not analyse (`principal in …`, `principal is …`).
    Any,
}

/// The actions a policy's scope can match, for indexing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ActionScope {
    /// Only these actions (`action == …` or `action in [...]`).
    Actions(Vec<String>),
    /// Any action.
    Any,
}

/// Reads the principal scope. Anything but `principal == Sigil::Agent::"…"` is `Any`, which is
/// always safe because an `Any` policy is evaluated for every agent.
pub(crate) fn principal_scope(policy: &Policy, types: &TypeNames) -> PrincipalScope {
    match policy.principal_constraint() {
        PrincipalConstraint::Eq(uid) if uid.type_name() == &types.agent => {
            PrincipalScope::Agent(uid.id().unescaped().to_owned())
        }
        _ => PrincipalScope::Any,
    }
}

/// Reads the action scope.
///
/// The schema declares no action groups, so `action in [A, B]` matches exactly A and B. A uid of
/// another type makes the scope `Any`, which is always safe.
pub(crate) fn action_scope(policy: &Policy, types: &TypeNames) -> ActionScope {
    let action_name = |uid: &EntityUid| {
        (uid.type_name() == &types.action).then(|| uid.id().unescaped().to_owned())
    };
    match policy.action_constraint() {
        ActionConstraint::Eq(uid) => match action_name(&uid) {
            Some(name) => ActionScope::Actions(vec![name]),
            None => ActionScope::Any,
        },
        ActionConstraint::In(uids) => {
            let names: Option<Vec<String>> = uids.iter().map(action_name).collect();
            names.map_or(ActionScope::Any, ActionScope::Actions)
        }
        ActionConstraint::Any => ActionScope::Any,
    }
}

/// Returns the names of every `Sigil::Action` entity the policy mentions, in its scope or body.
pub(crate) fn referenced_actions(policy: &Policy, types: &TypeNames) -> Vec<String> {
    policy
        .entity_literals()
        .into_iter()
        .filter(|uid| uid.type_name() == &types.action)
        .map(|uid| uid.id().unescaped().to_owned())
        .collect()
}
