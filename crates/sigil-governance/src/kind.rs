//! Finding kinds and severities.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::GovernanceError;

/// What a finding is about. The wire and storage name is the kebab-case form, such as
/// `owner-departed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    /// The agent's owner has departed and the agent was not transferred.
    OwnerDeparted,
    /// An agent that may obtain credentials has not used any for the inactivity period.
    AgentInactive,
    /// A decommissioned agent still has a live credential, or one was used after the
    /// decommission.
    CredentialAfterDecommission,
    /// The agent holds entitlements beyond its baseline.
    PrivilegeDrift,
    /// An entitlement has not been used for the unused-entitlement period.
    UnusedEntitlement,
    /// An active external credential has not been rotated for the rotation period.
    StaticCredential,
    /// An agent holds more live credentials than the sprawl limit.
    CredentialSprawl,
    /// An active external credential has not been used for the unused-credential period.
    UnusedCredential,
    /// One certificate was renewed twice with different keys: two holders of one identity.
    IdentityFork,
    /// A review item passed its due date without being certified.
    ReviewOverdue,
    /// An active external credential maps to no registered agent.
    UnmappedCredential,
}

impl FindingKind {
    /// Every kind, in the order the documentation lists them.
    pub const ALL: [Self; 11] = [
        Self::OwnerDeparted,
        Self::AgentInactive,
        Self::CredentialAfterDecommission,
        Self::PrivilegeDrift,
        Self::UnusedEntitlement,
        Self::StaticCredential,
        Self::CredentialSprawl,
        Self::UnusedCredential,
        Self::IdentityFork,
        Self::ReviewOverdue,
        Self::UnmappedCredential,
    ];

    /// Returns the kebab-case name used in storage, on the wire and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OwnerDeparted => "owner-departed",
            Self::AgentInactive => "agent-inactive",
            Self::CredentialAfterDecommission => "credential-after-decommission",
            Self::PrivilegeDrift => "privilege-drift",
            Self::UnusedEntitlement => "unused-entitlement",
            Self::StaticCredential => "static-credential",
            Self::CredentialSprawl => "credential-sprawl",
            Self::UnusedCredential => "unused-credential",
            Self::IdentityFork => "identity-fork",
            Self::ReviewOverdue => "review-overdue",
            Self::UnmappedCredential => "unmapped-credential",
        }
    }

    /// Returns the severity a new finding of this kind gets.
    pub fn severity(self) -> Severity {
        match self {
            Self::IdentityFork | Self::CredentialAfterDecommission => Severity::Critical,
            Self::OwnerDeparted | Self::ReviewOverdue | Self::UnmappedCredential => Severity::High,
            Self::PrivilegeDrift | Self::StaticCredential | Self::CredentialSprawl => {
                Severity::Medium
            }
            Self::AgentInactive | Self::UnusedEntitlement | Self::UnusedCredential => Severity::Low,
        }
    }

    /// Returns true for kinds that the scanner detects from the registry. An identity fork is
    /// detected at renewal time instead; the scanner only resolves it.
    pub fn scanned(self) -> bool {
        self != Self::IdentityFork
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for FindingKind {
    type Err = GovernanceError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == value)
            .ok_or_else(|| GovernanceError::UnknownKind(value.chars().take(60).collect()))
    }
}

/// How urgent a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// Returns the lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
            Self::Critical => "critical",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for kind in FindingKind::ALL {
            assert_eq!(kind.as_str().parse::<FindingKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }

    #[test]
    fn unknown_kind_is_rejected() {
        assert_eq!(
            "orphan".parse::<FindingKind>(),
            Err(GovernanceError::UnknownKind("orphan".into()))
        );
    }
}
