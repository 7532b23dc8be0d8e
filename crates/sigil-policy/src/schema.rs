//! The Cedar schema that Sigil generates from the declared actions and context attributes.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use cedar_policy::{EntityTypeName, EntityUid, Validator};

use crate::error::PolicyError;

/// Cedar namespace of every Sigil entity type and action.
pub const NAMESPACE: &str = "Sigil";
/// Entity type of agents. The entity id is the agent name.
pub const AGENT_TYPE: &str = "Sigil::Agent";
/// Entity type of owners, the parents of their agents. The entity id is the owner's e-mail.
pub const OWNER_TYPE: &str = "Sigil::Owner";
/// Entity type of resources. The entity id is the resource string, such as `tool:crm/contacts`.
pub const RESOURCE_TYPE: &str = "Sigil::Resource";
/// Entity type of actions. The entity id is the entitlement action, such as `invoke`.
pub const ACTION_TYPE: &str = "Sigil::Action";

/// Type of a declared context attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ContextAttributeType {
    /// Cedar `String`.
    String,
    /// Cedar `Long`, a signed 64-bit integer.
    Long,
    /// Cedar `Bool`.
    Bool,
}

impl ContextAttributeType {
    /// Returns the Cedar schema name of the type.
    pub fn cedar_name(self) -> &'static str {
        match self {
            Self::String => "String",
            Self::Long => "Long",
            Self::Bool => "Bool",
        }
    }
}

/// A generated Cedar schema together with the validator built from it.
///
/// Agents, owners and resources are fixed entity types. Actions are the only part that changes:
/// each declared action becomes one `Sigil::Action` entity that applies to agents and resources.
#[derive(Debug, Clone)]
pub struct Schema {
    text: String,
    actions: BTreeSet<String>,
    context_attributes: BTreeMap<String, ContextAttributeType>,
    validator: Validator,
}

impl Schema {
    /// Generates and parses the schema for `actions` and the optional `context_attributes`.
    pub fn new(
        actions: BTreeSet<String>,
        context_attributes: BTreeMap<String, ContextAttributeType>,
    ) -> Result<Self, PolicyError> {
        for action in &actions {
            check_action(action)?;
        }
        for name in context_attributes.keys() {
            check_context_attribute(name)?;
        }

        let text = render_schema(&actions, &context_attributes);
        let (schema, _warnings) =
            cedar_policy::Schema::from_cedarschema_str(&text).map_err(|error| {
                PolicyError::Internal {
                    subject: "the schema".to_owned(),
                    message: error.to_string(),
                }
            })?;

        Ok(Self {
            text,
            actions,
            context_attributes,
            validator: Validator::new(schema),
        })
    }

    /// Returns the schema in Cedar's schema syntax.
    pub fn schema_text(&self) -> &str {
        &self.text
    }

    /// Returns the declared actions, sorted.
    pub fn actions(&self) -> &BTreeSet<String> {
        &self.actions
    }

    /// Returns the declared context attributes, all optional in requests.
    pub fn context_attributes(&self) -> &BTreeMap<String, ContextAttributeType> {
        &self.context_attributes
    }

    /// Returns the parsed Cedar schema.
    pub fn cedar_schema(&self) -> &cedar_policy::Schema {
        self.validator.schema()
    }

    /// Returns Cedar's validator for this schema.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }
}

/// Writes the schema text. Names are quoted, so any action that passes `check_action` is safe.
fn render_schema(
    actions: &BTreeSet<String>,
    context_attributes: &BTreeMap<String, ContextAttributeType>,
) -> String {
    let mut text = String::new();
    text.push_str("namespace Sigil {\n");
    text.push_str("  entity Owner;\n");
    text.push_str("  entity Agent in [Owner] = {\n");
    text.push_str("    \"owner\": String,\n");
    text.push_str("    \"status\": String,\n");
    text.push_str("    \"spiffe_id\": String,\n");
    text.push_str("  };\n");
    text.push_str("  entity Resource = {\n");
    text.push_str("    \"id\": String,\n");
    text.push_str("  };\n");

    if !actions.is_empty() {
        let names: Vec<String> = actions
            .iter()
            .map(|action| format!("\"{action}\""))
            .collect();
        // Writing to a String cannot fail.
        let _ = writeln!(text, "  action {} appliesTo {{", names.join(", "));
        text.push_str("    principal: [Agent],\n");
        text.push_str("    resource: [Resource],\n");
        text.push_str("    context: {\n");
        for (name, attribute_type) in context_attributes {
            let _ = writeln!(text, "      \"{name}\"?: {},", attribute_type.cedar_name());
        }
        text.push_str("    },\n");
        text.push_str("  };\n");
    }
    text.push_str("}\n");
    text
}

/// Checks an action name with the rule of `sigil_core::Entitlement`: letters, digits, `.`, `-`
/// and `_`, at least one character.
pub(crate) fn check_action(action: &str) -> Result<(), PolicyError> {
    let valid = !action.is_empty()
        && action
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if valid {
        Ok(())
    } else {
        Err(PolicyError::InvalidAction {
            action: action.to_owned(),
            reason: "an action is non-empty and contains only letters, digits, `.`, `-` and `_`",
        })
    }
}

/// Maximum length in bytes of a context attribute name.
const MAX_CONTEXT_ATTRIBUTE_LEN: usize = 64;

/// Checks that a context attribute name is a Cedar identifier, so policies can write `context.NAME`.
fn check_context_attribute(name: &str) -> Result<(), PolicyError> {
    let invalid = |reason| PolicyError::InvalidContextAttribute {
        name: name.to_owned(),
        reason,
    };

    if name.len() > MAX_CONTEXT_ATTRIBUTE_LEN {
        return Err(invalid("a context attribute name is at most 64 bytes"));
    }
    let mut bytes = name.bytes();
    let starts_well = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !starts_well || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(invalid(
            "a context attribute name starts with a letter or `_` and contains only letters, digits and `_`",
        ));
    }
    Ok(())
}

/// Parsed entity type names and builders for the uids Sigil uses on every request.
#[derive(Debug, Clone)]
pub(crate) struct TypeNames {
    pub(crate) agent: EntityTypeName,
    pub(crate) owner: EntityTypeName,
    pub(crate) resource: EntityTypeName,
    pub(crate) action: EntityTypeName,
}

impl TypeNames {
    /// Parses the fixed type names.
    pub(crate) fn new() -> Result<Self, PolicyError> {
        let parse = |name: &str| {
            name.parse::<EntityTypeName>()
                .map_err(|error| PolicyError::Internal {
                    subject: format!("the entity type name `{name}`"),
                    message: error.to_string(),
                })
        };
        Ok(Self {
            agent: parse(AGENT_TYPE)?,
            owner: parse(OWNER_TYPE)?,
            resource: parse(RESOURCE_TYPE)?,
            action: parse(ACTION_TYPE)?,
        })
    }

    /// Returns `Sigil::Agent::"<name>"`.
    pub(crate) fn agent_uid(&self, name: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.agent.clone(), cedar_policy::EntityId::new(name))
    }

    /// Returns `Sigil::Owner::"<email>"`.
    pub(crate) fn owner_uid(&self, email: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.owner.clone(), cedar_policy::EntityId::new(email))
    }

    /// Returns `Sigil::Resource::"<resource>"`.
    pub(crate) fn resource_uid(&self, resource: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(
            self.resource.clone(),
            cedar_policy::EntityId::new(resource),
        )
    }

    /// Returns `Sigil::Action::"<action>"`.
    pub(crate) fn action_uid(&self, action: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.action.clone(), cedar_policy::EntityId::new(action))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actions(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|name| (*name).to_owned()).collect()
    }

    #[test]
    fn schema_declares_types_and_actions() {
        let schema = Schema::new(actions(&["invoke", "read"]), BTreeMap::new()).unwrap();
        let text = schema.schema_text();
        assert!(text.contains("entity Agent in [Owner]"), "{text}");
        assert!(
            text.contains("action \"invoke\", \"read\" appliesTo"),
            "{text}"
        );

        let declared: Vec<String> = schema
            .cedar_schema()
            .actions()
            .map(ToString::to_string)
            .collect();
        assert_eq!(declared.len(), 2, "declared actions: {declared:?}");
        assert!(declared.contains(&r#"Sigil::Action::"invoke""#.to_owned()));
    }

    #[test]
    fn schema_without_actions_parses() {
        let schema = Schema::new(BTreeSet::new(), BTreeMap::new()).unwrap();
        assert!(!schema.schema_text().contains("action"));
    }

    #[test]
    fn context_attributes_are_optional() {
        let attributes = BTreeMap::from([
            ("ip".to_owned(), ContextAttributeType::String),
            ("mfa".to_owned(), ContextAttributeType::Bool),
        ]);
        let schema = Schema::new(actions(&["invoke"]), attributes).unwrap();
        assert!(schema.schema_text().contains("\"ip\"?: String"));
        assert!(schema.schema_text().contains("\"mfa\"?: Bool"));
    }

    #[test]
    fn invalid_names_rejected() {
        for bad in ["", "in voke", "a:b", "a\"b"] {
            let error = Schema::new(actions(&[bad]), BTreeMap::new()).unwrap_err();
            assert!(
                matches!(error, PolicyError::InvalidAction { .. }),
                "{bad:?}: {error}"
            );
        }
        for bad in ["", "1ip", "a-b", "a.b", "ünicode"] {
            let attributes = BTreeMap::from([(bad.to_owned(), ContextAttributeType::String)]);
            let error = Schema::new(actions(&["invoke"]), attributes).unwrap_err();
            assert!(
                matches!(error, PolicyError::InvalidContextAttribute { .. }),
                "{bad:?}: {error}"
            );
        }
    }
}
