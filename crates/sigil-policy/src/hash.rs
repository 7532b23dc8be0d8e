//! A fast hash for the maps that every request looks up.

use std::hash::{BuildHasherDefault, Hasher};

/// 64-bit FNV-1a, a fast hash for the short keys looked up on every request.
///
/// It is not keyed, so it would be open to collision flooding if untrusted input chose the keys
/// that a map stores. The maps here store only registry and policy data (agent names, SPIFFE IDs,
/// action names, resource keys); request input only looks keys up.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FnvHasher(u64);

impl Default for FnvHasher {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for FnvHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Builds [`FnvHasher`]s for hash maps.
pub(crate) type FnvBuildHasher = BuildHasherDefault<FnvHasher>;
