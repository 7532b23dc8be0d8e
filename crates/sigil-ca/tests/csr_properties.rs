//! Property tests: `check_csr` never panics on hostile input, and a mutated CSR is either
//! rejected or yields the original key.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use std::sync::OnceLock;

use common::{TestKey, csr_der};
use proptest::prelude::*;
use sigil_ca::check_csr;

/// Returns one valid DER CSR per supported key type, created once.
fn valid_csrs() -> &'static [Vec<u8>] {
    static CSRS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CSRS.get_or_init(|| {
        TestKey::ALL
            .iter()
            .map(|key| csr_der(&key.generate()))
            .collect()
    })
}

/// Byte flips to apply: (position as a fraction of the length, XOR mask).
fn flips() -> impl Strategy<Value = Vec<(f64, u8)>> {
    prop::collection::vec((0.0..1.0f64, 1..=255u8), 1..8)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(input in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = check_csr(&input);
    }

    #[test]
    fn arbitrary_pem_never_panics(body in "[A-Za-z0-9+/=\n]{0,600}") {
        let pem = format!(
            "-----BEGIN CERTIFICATE REQUEST-----\n{body}\n-----END CERTIFICATE REQUEST-----\n"
        );

        let _ = check_csr(pem.as_bytes());
    }

    #[test]
    fn mutated_csr_is_rejected_or_keeps_its_key(
        which in 0..TestKey::ALL.len(),
        flips in flips(),
    ) {
        let original = &valid_csrs()[which];
        let expected = check_csr(original).unwrap();
        let mut mutated = original.clone();
        let last = mutated.len() - 1;
        for (fraction, mask) in flips {
            let position = ((mutated.len() as f64) * fraction) as usize;
            mutated[position.min(last)] ^= mask;
        }

        if let Ok(key) = check_csr(&mutated) {
            prop_assert_eq!(key.spki_der(), expected.spki_der());
            prop_assert_eq!(key.key_type(), expected.key_type());
        }
    }

    #[test]
    fn truncated_csr_is_rejected(which in 0..TestKey::ALL.len(), cut in 0.0..1.0f64) {
        let original = &valid_csrs()[which];
        let len = ((original.len() as f64) * cut) as usize;

        prop_assert!(check_csr(&original[..len]).is_err());
    }
}
