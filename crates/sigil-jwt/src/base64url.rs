//! Base64url without padding (RFC 7515, section 2), decoded strictly.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Encodes bytes as base64url without padding.
pub(crate) fn encode(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Appends the base64url encoding of `bytes` to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(bytes, out);
}

/// Decodes base64url without padding.
///
/// The `base64` engine rejects padding, whitespace, characters outside the URL-safe alphabet and
/// non-zero trailing bits, so every byte string has exactly one accepted encoding.
pub(crate) fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"\xff\xfe\xfd\xfc"] {
            assert_eq!(decode(&encode(bytes)).unwrap(), bytes);
        }
    }

    #[test]
    fn padding_rejected() {
        assert!(decode("Zg==").is_none());
        assert!(decode("Zg").is_some());
    }

    #[test]
    fn standard_alphabet_rejected() {
        assert_eq!(encode(b"\xfb\xff"), "-_8");
        assert!(decode("+/8").is_none());
    }

    #[test]
    fn non_zero_trailing_bits_rejected() {
        // "Zg" encodes 0x66; "Zh" has the same first 8 bits but sets a trailing bit.
        assert!(decode("Zh").is_none());
    }

    #[test]
    fn whitespace_rejected() {
        assert!(decode("Zm9v ").is_none());
        assert!(decode("Zm\n9v").is_none());
    }
}
