//! Feeds arbitrary bytes to the SVID leaf checker. A panic is a finding, and so is an accepted
//! leaf whose SPIFFE ID lies outside the trust domain it was checked against.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sigil_core::TrustDomain;

fn trust_domain() -> &'static TrustDomain {
    static TRUST_DOMAIN: OnceLock<TrustDomain> = OnceLock::new();
    TRUST_DOMAIN.get_or_init(|| TrustDomain::new("example.org").expect("valid trust domain"))
}

fuzz_target!(|input: &[u8]| {
    if let Ok(svid) = sigil_ca::verify::svid_from_leaf(input, trust_domain()) {
        assert!(svid.spiffe_id.is_member_of(trust_domain()));
    }
});
