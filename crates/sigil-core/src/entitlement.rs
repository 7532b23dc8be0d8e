//! Entitlements: an action on a resource pattern, written `ACTION:RESOURCE`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Maximum length in bytes of a whole entitlement.
const MAX_LEN: usize = 512;

/// An action on a resource pattern, such as `invoke` on `tool:crm/*`.
///
/// The text before the first `:` is the action (letters, digits, `.`, `-`, `_`); the rest is the
/// resource pattern, where a trailing `*` matches any suffix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entitlement {
    action: String,
    resource: String,
}

impl Entitlement {
    /// Parses `ACTION:RESOURCE`.
    pub fn parse(value: &str) -> Result<Self, CoreError> {
        let invalid = |reason| CoreError::InvalidEntitlement {
            value: value.chars().take(120).collect(),
            reason,
        };

        if value.len() > MAX_LEN {
            return Err(invalid("an entitlement is at most 512 bytes"));
        }
        let Some((action, resource)) = value.split_once(':') else {
            return Err(invalid(
                "expected ACTION:RESOURCE, for example `invoke:tool:crm/*`",
            ));
        };
        if action.is_empty() || !action.bytes().all(is_action_byte) {
            return Err(invalid(
                "the action may contain only letters, digits, `.`, `-` and `_`",
            ));
        }
        if resource.is_empty() {
            return Err(invalid("the resource is empty"));
        }
        if resource
            .chars()
            .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(invalid(
                "the resource cannot contain spaces or control characters",
            ));
        }
        if resource.trim_end_matches('*').contains('*') {
            return Err(invalid("`*` is allowed only at the end of the resource"));
        }
        Ok(Self {
            action: action.to_owned(),
            resource: resource.to_owned(),
        })
    }

    /// Returns the action.
    pub fn action(&self) -> &str {
        &self.action
    }

    /// Returns the resource pattern.
    pub fn resource(&self) -> &str {
        &self.resource
    }

    /// Returns true when this entitlement covers `action` on `resource`.
    pub fn allows(&self, action: &str, resource: &str) -> bool {
        if self.action != action {
            return false;
        }
        match self.resource.strip_suffix('*') {
            Some(prefix) => resource.starts_with(prefix),
            None => self.resource == resource,
        }
    }
}

fn is_action_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

impl fmt::Display for Entitlement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.action, self.resource)
    }
}

impl FromStr for Entitlement {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for Entitlement {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Entitlement {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::parse(&value).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_match() {
        let e = Entitlement::parse("invoke:tool:crm/*").unwrap();
        assert_eq!(e.action(), "invoke");
        assert_eq!(e.resource(), "tool:crm/*");
        assert!(e.allows("invoke", "tool:crm/contacts"));
        assert!(!e.allows("invoke", "tool:erp/x"));
        assert!(!e.allows("read", "tool:crm/contacts"));
        let exact = Entitlement::parse("read:doc:1").unwrap();
        assert!(exact.allows("read", "doc:1"));
        assert!(!exact.allows("read", "doc:10"));
    }

    #[test]
    fn malformed_entitlements_rejected() {
        for bad in [
            "invoke",
            ":x",
            "invoke:",
            "in voke:x",
            "read:a b",
            "read:a*b",
            "read:*x",
        ] {
            assert!(Entitlement::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
