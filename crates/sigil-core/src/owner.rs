//! Accountable human owners.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// An owner's e-mail address, the owner's key. Stored lowercase.
///
/// Validation is deliberately shallow (one `@`, a non-empty local part, a dotted domain, no
/// whitespace or control characters): Sigil only needs a stable, unambiguous key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Parses and lowercases an e-mail address.
    pub fn new(value: &str) -> Result<Self, CoreError> {
        let invalid = |reason| CoreError::InvalidEmail {
            value: value.chars().take(120).collect(),
            reason,
        };

        if value.len() > 254 {
            return Err(invalid("an e-mail address is at most 254 bytes"));
        }
        if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "an e-mail address cannot contain spaces or control characters",
            ));
        }
        let Some((local, domain)) = value.split_once('@') else {
            return Err(invalid("an e-mail address needs an `@`"));
        };
        if local.is_empty() || domain.contains('@') {
            return Err(invalid(
                "an e-mail address needs exactly one `@` after a local part",
            ));
        }
        let dotted = domain.split('.').count() >= 2 && domain.split('.').all(|l| !l.is_empty());
        if !dotted {
            return Err(invalid(
                "the domain of an e-mail address must be a dotted name",
            ));
        }
        Ok(Self(value.to_lowercase()))
    }

    /// Returns the address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Email {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::new(&value).map_err(serde::de::Error::custom)
    }
}

/// Returns true for zero-width and bidirectional formatting characters, which make two different
/// strings look the same on screen.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{206F}' | '\u{FEFF}')
}

/// Whether an owner can still be accountable for agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OwnerStatus {
    Active,
    Departed,
}

impl OwnerStatus {
    /// Returns the lowercase name used in storage and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Departed => "departed",
        }
    }
}

impl FromStr for OwnerStatus {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "departed" => Ok(Self::Departed),
            other => Err(CoreError::UnknownStatus(other.to_owned())),
        }
    }
}

impl fmt::Display for OwnerStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_validation() {
        assert_eq!(
            Email::new("Alice@Example.org").unwrap().as_str(),
            "alice@example.org"
        );
        for bad in [
            "",
            "alice",
            "@example.org",
            "a@b",
            "a@@b.org",
            "a b@c.org",
            "a@b..org",
        ] {
            assert!(Email::new(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
