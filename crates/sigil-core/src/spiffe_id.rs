//! SPIFFE IDs and trust domains, parsed strictly.
//!
//! The rules follow the SPIFFE ID specification: `spiffe://` followed by a trust domain of
//! lowercase letters, digits, `.`, `-` and `_`, then zero or more path segments of letters,
//! digits, `.`, `-` and `_`. Sigil never normalises an ID. Anything a URI may carry but a SPIFFE
//! ID may not (userinfo, a port, a query, a fragment, percent-encoding, empty, `.` or `..`
//! segments, a trailing slash) is rejected, so two IDs are equal only when their bytes are.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::CoreError;

/// Scheme prefix of every SPIFFE ID.
const SCHEME: &str = "spiffe://";

/// Maximum length in bytes of a whole SPIFFE ID.
pub const MAX_SPIFFE_ID_LEN: usize = 2048;

/// Maximum length in bytes of a trust domain name.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// A trust domain name such as `example.org`: lowercase, at most 255 bytes, no port or userinfo.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(String);

impl TrustDomain {
    /// Parses a bare trust domain name (without the `spiffe://` scheme).
    pub fn new(name: &str) -> Result<Self, CoreError> {
        let invalid = |reason| CoreError::InvalidTrustDomain {
            value: name.to_owned(),
            reason,
        };

        if name.is_empty() {
            return Err(invalid("the trust domain is empty"));
        }
        if name.len() > MAX_TRUST_DOMAIN_LEN {
            return Err(invalid("the trust domain is longer than 255 bytes"));
        }
        if name.contains('@') {
            return Err(invalid("a trust domain cannot contain userinfo (`@`)"));
        }
        if name.contains(':') {
            return Err(invalid("a trust domain cannot contain a port or a colon"));
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(invalid("a trust domain must be lowercase"));
        }
        if !name.bytes().all(is_trust_domain_byte) {
            return Err(invalid(
                "a trust domain may contain only lowercase letters, digits, `.`, `-` and `_`",
            ));
        }
        if name.split('.').any(str::is_empty) {
            return Err(invalid(
                "a trust domain cannot start or end with `.` or contain `..`",
            ));
        }
        if name.parse::<std::net::Ipv4Addr>().is_ok() {
            return Err(invalid(
                "a trust domain is a name, not an IP address: use a DNS-style name such as `example.org`",
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// Returns the trust domain name.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Returns the SPIFFE ID of the trust domain itself, `spiffe://<name>`.
    pub fn id_string(&self) -> String {
        format!("{SCHEME}{}", self.0)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for TrustDomain {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A workload identity: `spiffe://<trust domain>/<path>`.
///
/// Invariant: the string is a valid SPIFFE ID with a non-empty path, at most 2048 bytes, and
/// `path_start` indexes the first `/` of its path.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    id: String,
    path_start: usize,
}

impl SpiffeId {
    /// Parses a SPIFFE ID that names a workload, so its path must not be empty.
    pub fn parse(value: &str) -> Result<Self, CoreError> {
        let invalid = |reason| CoreError::InvalidSpiffeId {
            value: truncate_for_message(value),
            reason,
        };

        if value.len() > MAX_SPIFFE_ID_LEN {
            return Err(invalid("a SPIFFE ID is at most 2048 bytes"));
        }
        let Some(rest) = value.strip_prefix(SCHEME) else {
            return Err(invalid("the scheme must be `spiffe://`"));
        };

        let (authority, path) = match rest.find('/') {
            Some(slash) => rest.split_at(slash),
            None => (rest, ""),
        };
        check_authority(authority).map_err(invalid)?;
        if path.is_empty() {
            return Err(invalid(
                "the ID has no path, so it names a trust domain, not a workload",
            ));
        }
        check_path(path).map_err(invalid)?;

        Ok(Self {
            id: value.to_owned(),
            path_start: SCHEME.len() + authority.len(),
        })
    }

    /// Builds `spiffe://<trust domain>/<segments joined by />`, validating every segment.
    pub fn from_segments(trust_domain: &TrustDomain, segments: &[&str]) -> Result<Self, CoreError> {
        let mut id = trust_domain.id_string();
        for segment in segments {
            check_segment(segment).map_err(|reason| CoreError::InvalidSpiffeId {
                value: truncate_for_message(segment),
                reason,
            })?;
            id.push('/');
            id.push_str(segment);
        }
        Self::parse(&id)
    }

    /// Returns the trust domain part of the ID.
    pub fn trust_domain_name(&self) -> &str {
        &self.id[SCHEME.len()..self.path_start]
    }

    /// Returns true when the ID belongs to `trust_domain`.
    pub fn is_member_of(&self, trust_domain: &TrustDomain) -> bool {
        self.trust_domain_name() == trust_domain.as_str()
    }

    /// Returns the path, starting with `/`.
    pub fn path(&self) -> &str {
        &self.id[self.path_start..]
    }

    /// Returns the path segments, without the leading `/`.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.path()[1..].split('/')
    }

    /// Returns the whole ID as a string.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpiffeId({})", self.id)
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

impl FromStr for SpiffeId {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for SpiffeId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.id)
    }
}

impl<'de> Deserialize<'de> for SpiffeId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Self::parse(&value).map_err(serde::de::Error::custom)
    }
}

/// Checks the trust domain part of an ID, where a URI would carry its authority.
fn check_authority(authority: &str) -> Result<(), &'static str> {
    if authority.is_empty() {
        return Err("the trust domain is empty");
    }
    if authority.contains('@') {
        return Err("a SPIFFE ID cannot contain userinfo (`@`)");
    }
    if authority.starts_with('[') {
        return Err("the trust domain cannot be an IP literal");
    }
    if authority.contains(':') {
        return Err("a SPIFFE ID cannot contain a port or a colon in its trust domain");
    }
    if authority.contains(['?', '#']) {
        return Err("a SPIFFE ID cannot contain a query or a fragment");
    }
    if authority.contains('%') {
        return Err("a SPIFFE ID cannot contain percent-encoding");
    }
    if authority.len() > MAX_TRUST_DOMAIN_LEN {
        return Err("the trust domain is longer than 255 bytes");
    }
    if !authority.bytes().all(is_trust_domain_byte) {
        return Err(
            "the trust domain may contain only lowercase letters, digits, `.`, `-` and `_`",
        );
    }
    Ok(())
}

/// Checks a path that starts with `/`: no empty, `.` or `..` segments, only allowed bytes.
fn check_path(path: &str) -> Result<(), &'static str> {
    if path.contains(['?', '#']) {
        return Err("a SPIFFE ID cannot contain a query or a fragment");
    }
    if path.contains('%') {
        return Err("a SPIFFE ID cannot contain percent-encoding");
    }
    for segment in path[1..].split('/') {
        check_segment(segment)?;
    }
    Ok(())
}

/// Checks one path segment; also used for agent, admin and gateway names.
pub(crate) fn check_segment(segment: &str) -> Result<(), &'static str> {
    if segment.is_empty() {
        return Err("path segments cannot be empty (no `//` and no trailing `/`)");
    }
    if segment == "." || segment == ".." {
        return Err("path segments cannot be `.` or `..`");
    }
    if !segment.bytes().all(is_path_byte) {
        return Err("path segments may contain only letters, digits, `.`, `-` and `_`");
    }
    Ok(())
}

fn is_trust_domain_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'-' | b'_')
}

fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
}

/// Shortens a rejected value so that an error message stays readable.
fn truncate_for_message(value: &str) -> String {
    const MAX: usize = 160;
    if value.len() <= MAX {
        return value.to_owned();
    }
    let mut end = MAX;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes)", &value[..end], value.len())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn valid_ids_parse() {
        for id in [
            "spiffe://example.org/agent/crm-bot",
            "spiffe://example.org/a",
            "spiffe://a-b_c.d/A.b-C_9/x",
        ] {
            let parsed = SpiffeId::parse(id).unwrap();
            assert_eq!(parsed.as_str(), id);
        }
    }

    #[test]
    fn parts_are_split() {
        let id = SpiffeId::parse("spiffe://example.org/agent/crm-bot").unwrap();
        assert_eq!(id.trust_domain_name(), "example.org");
        assert_eq!(id.path(), "/agent/crm-bot");
        assert_eq!(id.segments().collect::<Vec<_>>(), ["agent", "crm-bot"]);
        assert!(id.is_member_of(&TrustDomain::new("example.org").unwrap()));
        assert!(!id.is_member_of(&TrustDomain::new("example.com").unwrap()));
    }

    #[test]
    fn dot_and_empty_segments_rejected() {
        for id in [
            "spiffe://example.org/a/../admin",
            "spiffe://example.org/./a",
            "spiffe://example.org//a",
            "spiffe://example.org/a/",
            "spiffe://example.org/..",
            "spiffe://example.org/",
        ] {
            let err = SpiffeId::parse(id).unwrap_err();
            assert!(
                matches!(err, CoreError::InvalidSpiffeId { .. }),
                "{id}: {err}"
            );
        }
    }

    #[test]
    fn percent_encoding_rejected() {
        let err = SpiffeId::parse("spiffe://example.org/%61dmin").unwrap_err();
        assert!(err.to_string().contains("percent-encoding"), "{err}");
        assert!(SpiffeId::parse("spiffe://ex%61mple.org/admin").is_err());
    }

    #[test]
    fn uri_parts_rejected() {
        for id in [
            "spiffe://u@example.org/a",
            "spiffe://example.org:8443/a",
            "spiffe://example.org:/a",
            "spiffe://example.org/a?x=1",
            "spiffe://example.org/a#frag",
            "spiffe://[::1]/a",
            "spiffe:///a",
            "https://example.org/a",
            "SPIFFE://example.org/a",
            "spiffe:example.org/a",
            "spiffe://Example.org/a",
            "spiffe://example.org",
            "",
        ] {
            assert!(SpiffeId::parse(id).is_err(), "{id} was accepted");
        }
    }

    #[test]
    fn overlong_id_rejected() {
        let long = format!("spiffe://example.org/{}", "a".repeat(2048));
        let err = SpiffeId::parse(&long).unwrap_err();
        assert!(err.to_string().contains("2048"), "{err}");
        assert!(
            err.to_string().len() < 400,
            "message echoes the whole value"
        );
    }

    #[test]
    fn trust_domain_rules() {
        assert!(TrustDomain::new("example.org").is_ok());
        assert!(TrustDomain::new("sigil.local").is_ok());
        for bad in [
            "",
            "Example.org",
            "example.org:8443",
            "u@example.org",
            "exa mple",
            "a/b",
        ] {
            assert!(TrustDomain::new(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(TrustDomain::new(&"a".repeat(255)).is_ok());
        assert!(TrustDomain::new(&"a".repeat(256)).is_err());
    }

    #[test]
    fn from_segments_validates_each_segment() {
        let td = TrustDomain::new("example.org").unwrap();
        assert_eq!(
            SpiffeId::from_segments(&td, &["agent", "bot"])
                .unwrap()
                .as_str(),
            "spiffe://example.org/agent/bot"
        );
        assert!(SpiffeId::from_segments(&td, &["agent", ".."]).is_err());
        assert!(SpiffeId::from_segments(&td, &["agent", "a/b"]).is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(input in ".{0,300}") {
            let _ = SpiffeId::parse(&input);
        }

        #[test]
        fn accepted_ids_round_trip(input in "spiffe://[a-z0-9._-]{1,20}(/[A-Za-z0-9._-]{1,10}){1,4}") {
            if let Ok(id) = SpiffeId::parse(&input) {
                prop_assert_eq!(id.as_str(), input.as_str());
                let reparsed = SpiffeId::parse(&id.to_string()).unwrap();
                prop_assert_eq!(reparsed, id.clone());
                prop_assert!(id.segments().all(|s| s != "." && s != ".." && !s.is_empty()));
            }
        }
    }
}
