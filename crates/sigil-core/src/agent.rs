//! Agent names and the agent lifecycle.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;
use crate::spiffe_id::{SpiffeId, TrustDomain, check_segment};

/// Maximum length in bytes of an agent, admin or gateway name.
///
/// The whole SPIFFE ID must stay within 2048 bytes; 255 leaves room for any trust domain.
pub const MAX_NAME_LEN: usize = 255;

/// The name of an agent, admin or gateway: exactly one SPIFFE path segment.
///
/// Invariant: non-empty, at most 255 bytes, only `[A-Za-z0-9._-]`, never `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AgentName(String);

impl AgentName {
    /// Parses a name, rejecting anything that is not a single valid path segment.
    pub fn new(value: &str) -> Result<Self, CoreError> {
        if value.len() > MAX_NAME_LEN {
            return Err(CoreError::InvalidName {
                value: format!("{}…", &value[..value.floor_char_boundary(40)]),
                reason: "names are at most 255 bytes",
            });
        }
        if value.contains('/') {
            return Err(CoreError::InvalidName {
                value: value.to_owned(),
                reason: "a name is a single path segment and cannot contain `/`",
            });
        }
        check_segment(value).map_err(|reason| CoreError::InvalidName {
            value: value.to_owned(),
            reason,
        })?;
        Ok(Self(value.to_owned()))
    }

    /// Returns the name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the agent's SPIFFE ID, `spiffe://<td>/agent/<name>`.
    pub fn agent_id(&self, trust_domain: &TrustDomain) -> SpiffeId {
        workload_id(trust_domain, "agent", &self.0)
    }

    /// Returns the admin SPIFFE ID, `spiffe://<td>/admin/<name>`.
    pub fn admin_id(&self, trust_domain: &TrustDomain) -> SpiffeId {
        workload_id(trust_domain, "admin", &self.0)
    }

    /// Returns the gateway SPIFFE ID, `spiffe://<td>/gateway/<name>`.
    pub fn gateway_id(&self, trust_domain: &TrustDomain) -> SpiffeId {
        workload_id(trust_domain, "gateway", &self.0)
    }
}

/// Builds an ID from parts that were already validated, so parsing cannot fail.
fn workload_id(trust_domain: &TrustDomain, kind: &str, name: &str) -> SpiffeId {
    let id = format!("{}/{kind}/{name}", trust_domain.id_string());

    // PANIC SAFETY: a valid trust domain (at most 255 bytes), a fixed kind and a valid segment
    // (at most 255 bytes) always form a valid SPIFFE ID well under 2048 bytes.
    #[allow(clippy::expect_used)]
    SpiffeId::parse(&id).expect("validated parts form a valid SPIFFE ID")
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AgentName {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl<'de> Deserialize<'de> for AgentName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::new(&value).map_err(serde::de::Error::custom)
    }
}

/// What kind of identity a SPIFFE ID issued by Sigil names, read from its first path segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Agent(AgentName),
    Admin(AgentName),
    Gateway(AgentName),
}

impl Principal {
    /// Classifies an ID of `trust_domain`; returns `None` for any other shape or trust domain.
    pub fn from_id(id: &SpiffeId, trust_domain: &TrustDomain) -> Option<Self> {
        if !id.is_member_of(trust_domain) {
            return None;
        }
        let mut segments = id.segments();
        let kind = segments.next()?;
        let name = AgentName::new(segments.next()?).ok()?;
        if segments.next().is_some() {
            return None;
        }
        match kind {
            "agent" => Some(Self::Agent(name)),
            "admin" => Some(Self::Admin(name)),
            "gateway" => Some(Self::Gateway(name)),
            _ => None,
        }
    }
}

/// The lifecycle of an agent.
///
/// ```text
/// registered --attest--> active <--suspend/resume--> suspended
///      \                   |                            |
///       +------------------+------ decommission --------+--> decommissioned (final)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AgentStatus {
    /// Registered, no credential issued yet.
    Registered,
    /// Holds or may obtain credentials.
    Active,
    /// Temporarily refused every credential and every decision.
    Suspended,
    /// Retired for good; every credential is revoked.
    Decommissioned,
}

impl AgentStatus {
    /// Returns the lowercase name used in storage and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Decommissioned => "decommissioned",
        }
    }

    /// Returns true when the agent may obtain credentials (attest or renew).
    pub fn may_obtain_credentials(self) -> bool {
        matches!(self, Self::Registered | Self::Active)
    }

    /// Checks that the first attestation may move the agent to `active`.
    pub fn attest(self) -> Result<Self, CoreError> {
        match self {
            Self::Registered | Self::Active => Ok(Self::Active),
            other => Err(other.transition_error(Self::Active)),
        }
    }

    /// Checks a suspension.
    pub fn suspend(self) -> Result<Self, CoreError> {
        match self {
            Self::Registered | Self::Active => Ok(Self::Suspended),
            other => Err(other.transition_error(Self::Suspended)),
        }
    }

    /// Checks a resumption. A resumed agent that never attested becomes `active` and may attest.
    pub fn resume(self) -> Result<Self, CoreError> {
        match self {
            Self::Suspended => Ok(Self::Active),
            other => Err(other.transition_error(Self::Active)),
        }
    }

    /// Checks a decommission, which is allowed from every status but itself.
    pub fn decommission(self) -> Result<Self, CoreError> {
        match self {
            Self::Decommissioned => Err(self.transition_error(Self::Decommissioned)),
            _ => Ok(Self::Decommissioned),
        }
    }

    fn transition_error(self, to: Self) -> CoreError {
        CoreError::InvalidTransition {
            from: self.as_str(),
            to: to.as_str(),
        }
    }
}

impl fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentStatus {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "registered" => Ok(Self::Registered),
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "decommissioned" => Ok(Self::Decommissioned),
            other => Err(CoreError::UnknownStatus(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_single_segments() {
        for good in ["crm-bot", "a", "A.b_c-9", "..."] {
            assert!(AgentName::new(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "a%2fb", "a:b"] {
            assert!(AgentName::new(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(AgentName::new(&"a".repeat(255)).is_ok());
        assert!(AgentName::new(&"a".repeat(256)).is_err());
    }

    #[test]
    fn ids_are_built_from_names() {
        let td = TrustDomain::new("example.org").unwrap();
        let name = AgentName::new("crm-bot").unwrap();
        assert_eq!(
            name.agent_id(&td).as_str(),
            "spiffe://example.org/agent/crm-bot"
        );
        assert_eq!(
            name.admin_id(&td).as_str(),
            "spiffe://example.org/admin/crm-bot"
        );
        assert_eq!(
            name.gateway_id(&td).as_str(),
            "spiffe://example.org/gateway/crm-bot"
        );
    }

    #[test]
    fn principal_classification() {
        let td = TrustDomain::new("example.org").unwrap();
        let id = |s: &str| SpiffeId::parse(s).unwrap();
        assert_eq!(
            Principal::from_id(&id("spiffe://example.org/admin/root"), &td),
            Some(Principal::Admin(AgentName::new("root").unwrap()))
        );
        assert_eq!(
            Principal::from_id(&id("spiffe://other.org/admin/root"), &td),
            None
        );
        assert_eq!(
            Principal::from_id(&id("spiffe://example.org/admin/root/x"), &td),
            None
        );
        assert_eq!(
            Principal::from_id(&id("spiffe://example.org/admin"), &td),
            None
        );
        assert_eq!(
            Principal::from_id(&id("spiffe://example.org/user/root"), &td),
            None
        );
    }

    #[test]
    fn lifecycle_transitions() {
        use AgentStatus::*;
        assert_eq!(Registered.attest().unwrap(), Active);
        assert_eq!(Active.suspend().unwrap(), Suspended);
        assert_eq!(Suspended.resume().unwrap(), Active);
        assert_eq!(Suspended.decommission().unwrap(), Decommissioned);
        assert!(Suspended.attest().is_err());
        assert!(Active.resume().is_err());
        assert!(Decommissioned.resume().is_err());
        assert!(Decommissioned.suspend().is_err());
        assert!(Decommissioned.decommission().is_err());
        assert!(Decommissioned.attest().is_err());
    }

    #[test]
    fn status_round_trips() {
        for status in [
            AgentStatus::Registered,
            AgentStatus::Active,
            AgentStatus::Suspended,
            AgentStatus::Decommissioned,
        ] {
            assert_eq!(status.as_str().parse::<AgentStatus>().unwrap(), status);
        }
        assert!("retired".parse::<AgentStatus>().is_err());
    }
}
