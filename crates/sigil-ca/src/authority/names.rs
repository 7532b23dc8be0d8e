//! Subject names of Sigil's CA certificates.

use rcgen::{DistinguishedName, DnType};
use sigil_core::TrustDomain;

/// Organization of every certificate Sigil issues.
pub(crate) const ORGANIZATION: &str = "Sigil";

/// Upper bound on a common name in characters (ub-common-name, RFC 5280 appendix A).
const MAX_COMMON_NAME_LEN: usize = 64;

/// Returns `O=Sigil, CN=Sigil root CA <trust domain>`.
pub(crate) fn root_name(trust_domain: &TrustDomain) -> DistinguishedName {
    sigil_name(&common_name("Sigil root CA ", trust_domain, ""))
}

/// Returns `O=Sigil, CN=Sigil signing CA <trust domain> <suffix>`.
///
/// The suffix distinguishes successive signing CAs of one trust domain.
pub(crate) fn signing_name(trust_domain: &TrustDomain, suffix: &str) -> DistinguishedName {
    sigil_name(&common_name(
        "Sigil signing CA ",
        trust_domain,
        &format!(" {suffix}"),
    ))
}

fn sigil_name(common_name: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::OrganizationName, ORGANIZATION);
    name.push(DnType::CommonName, common_name);
    name
}

/// Joins the parts, shortening the trust domain so that the name fits in 64 characters.
fn common_name(prefix: &str, trust_domain: &TrustDomain, suffix: &str) -> String {
    let room = MAX_COMMON_NAME_LEN.saturating_sub(prefix.len() + suffix.len());
    let domain = trust_domain.as_str();
    // Trust domain names are ASCII, so any byte index is a character boundary.
    let shortened = domain.get(..room).unwrap_or(domain);

    format!("{prefix}{shortened}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_name_keeps_short_trust_domain() {
        let trust_domain = TrustDomain::new("example.org").unwrap();

        assert_eq!(
            common_name("Sigil signing CA ", &trust_domain, " 1a2b3c4d"),
            "Sigil signing CA example.org 1a2b3c4d"
        );
    }

    #[test]
    fn common_name_shortens_long_trust_domain() {
        let trust_domain = TrustDomain::new(&"a".repeat(200)).unwrap();

        let name = common_name("Sigil signing CA ", &trust_domain, " 1a2b3c4d");

        assert_eq!(name.len(), MAX_COMMON_NAME_LEN);
        assert!(name.ends_with(" 1a2b3c4d"));
    }
}
