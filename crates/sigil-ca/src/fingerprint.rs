//! SHA-256 fingerprints, the form in which Sigil names certificates and public keys.

use sha2::{Digest, Sha256};

/// Returns the lowercase hexadecimal SHA-256 digest of `bytes` (64 characters).
///
/// Sigil fingerprints a certificate over its DER encoding and a public key over its DER
/// SubjectPublicKeyInfo.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_of_empty_input() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn sha256_hex_of_abc() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
