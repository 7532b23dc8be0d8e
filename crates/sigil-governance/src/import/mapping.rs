//! Mapping files: which agent each inventory user belongs to.
//!
//! A mapping file is a JSON object from the user or agent name in the inventory to a registered
//! agent name, such as `{"svc-crm-prod": "crm-bot"}`. A name without an entry maps to the agent
//! of the same name.

use std::collections::BTreeMap;

use crate::GovernanceError;

/// Most entries accepted in one mapping.
pub const MAX_MAPPING_ENTRIES: usize = 100_000;

/// Inventory names to agent names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mapping(BTreeMap<String, String>);

impl Mapping {
    /// Builds a mapping, checking every entry.
    pub fn new(entries: BTreeMap<String, String>) -> Result<Self, GovernanceError> {
        if entries.len() > MAX_MAPPING_ENTRIES {
            return Err(GovernanceError::InvalidMapping(format!(
                "more than {MAX_MAPPING_ENTRIES} entries"
            )));
        }
        for (from, to) in &entries {
            super::check_text("mapping key", from).map_err(GovernanceError::InvalidMapping)?;
            sigil_core::AgentName::new(to).map_err(|err| {
                GovernanceError::InvalidMapping(format!(
                    "the entry for `{}`: {err}",
                    from.chars().take(60).collect::<String>()
                ))
            })?;
        }
        Ok(Self(entries))
    }

    /// Returns the agent name `user` maps to.
    pub fn agent_for<'a>(&'a self, user: &'a str) -> &'a str {
        self.0.get(user).map_or(user, String::as_str)
    }
}

/// Parses a mapping file.
pub fn parse_mapping(input: &[u8]) -> Result<Mapping, GovernanceError> {
    let entries: BTreeMap<String, String> = serde_json::from_slice(input).map_err(|_| {
        GovernanceError::InvalidMapping(
            "expected one JSON object of strings, such as {\"svc-crm\": \"crm-bot\"}".into(),
        )
    })?;
    Mapping::new(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_and_defaults_to_same_name() {
        let mapping = parse_mapping(br#"{"svc-crm": "crm-bot"}"#).unwrap();
        assert_eq!(mapping.agent_for("svc-crm"), "crm-bot");
        assert_eq!(mapping.agent_for("billing"), "billing");
    }

    #[test]
    fn rejects_bad_agent_names() {
        assert!(parse_mapping(br#"{"svc": "a/b"}"#).is_err());
        assert!(parse_mapping(b"[1]").is_err());
    }
}
