//! Feeds arbitrary bytes to the CSR checker. A panic is a finding, and so is an accepted key
//! whose fingerprint is not the SHA-256 of its SPKI.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    if let Ok(key) = sigil_ca::csr::check_csr(input) {
        assert_eq!(
            key.fingerprint(),
            sigil_ca::fingerprint::sha256_hex(key.spki_der())
        );
    }
});
