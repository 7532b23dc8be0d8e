//! The one spelling of a request path that the gateway authorises and forwards.
//!
//! A route is matched against the path string, but the upstream resolves the path again: it
//! decodes percent-encoding and may remove dot segments or merge slashes. If the gateway matched
//! `/v1/contacts/../../admin` as a `/v1/contacts/*` request and forwarded it unchanged, the
//! upstream would serve `/admin`. So the gateway first brings the path to a canonical form and
//! rejects any path whose meaning could differ between the gateway and the upstream:
//!
//! - percent-encoded unreserved characters (`A-Z a-z 0-9 - . _ ~`) are decoded, because RFC 3986
//!   section 6.2.2.2 makes `%65` and `e` equivalent, and the remaining escapes get upper-case hex;
//! - an escaped `/`, `\`, `%` or control character is rejected, because upstreams disagree on
//!   whether it separates segments;
//! - a backslash, a `.` or `..` segment, or an empty segment other than a trailing slash is
//!   rejected.
//!
//! The route is matched against the canonical path, and the canonical path is what the upstream
//! receives.

use std::borrow::Cow;

/// Maximum length of a request path, in bytes.
pub const MAX_PATH_LEN: usize = 8 * 1024;

/// Returns the canonical form of `path`, or a sentence saying why it is rejected.
///
/// Returns a path without escapes borrowed, because it is its own canonical form when it passes
/// the checks.
pub fn canonical_path(path: &str) -> Result<Cow<'_, str>, String> {
    if path.len() > MAX_PATH_LEN {
        return Err(format!(
            "the request path is {} bytes, more than the maximum of {MAX_PATH_LEN}",
            path.len()
        ));
    }
    if !path.starts_with('/') {
        return Err("the request path must start with `/`".into());
    }

    let decoded = decode_unreserved(path)?;
    check_segments(&decoded)?;
    Ok(decoded)
}

/// Decodes percent-encoded unreserved characters and upper-cases the hex of other escapes.
fn decode_unreserved(path: &str) -> Result<Cow<'_, str>, String> {
    let bytes = path.as_bytes();
    if !bytes.contains(&b'%') {
        if bytes
            .iter()
            .any(|byte| *byte == b'\\' || byte.is_ascii_control())
        {
            return Err(forbidden_character());
        }
        return Ok(Cow::Borrowed(path));
    }

    let mut out = String::with_capacity(path.len());
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        if byte != b'%' {
            if byte == b'\\' || byte.is_ascii_control() {
                return Err(forbidden_character());
            }
            // `path` is a `&str`, so copying the bytes between escapes keeps valid UTF-8; copy
            // a whole character at a time.
            let width = utf8_width(byte);
            out.push_str(&path[index..index + width]);
            index += width;
            continue;
        }

        let escape = bytes
            .get(index + 1..index + 3)
            .ok_or_else(incomplete_escape)?;
        let value = hex_value(escape[0])
            .zip(hex_value(escape[1]))
            .map(|(high, low)| high * 16 + low)
            .ok_or_else(incomplete_escape)?;
        match value {
            b'/' | b'\\' | b'%' => {
                return Err("the request path must not contain an escaped `/`, `\\` or `%`".into());
            }
            value if value.is_ascii_control() => {
                return Err(
                    "the request path must not contain an escaped control character".into(),
                );
            }
            value if is_unreserved(value) => out.push(char::from(value)),
            value => out.push_str(&format!("%{value:02X}")),
        }
        index += 3;
    }
    Ok(Cow::Owned(out))
}

fn forbidden_character() -> String {
    "the request path must not contain a backslash or a control character".into()
}

/// Rejects dot segments and empty segments; a single trailing slash is allowed.
fn check_segments(path: &str) -> Result<(), String> {
    let inner = path.strip_prefix('/').unwrap_or(path);
    let inner = inner.strip_suffix('/').unwrap_or(inner);
    if inner.is_empty() {
        return if path.len() <= 1 {
            Ok(())
        } else {
            Err("the request path must not contain an empty segment (`//`)".into())
        };
    }
    for segment in inner.split('/') {
        match segment {
            "" => return Err("the request path must not contain an empty segment (`//`)".into()),
            "." | ".." => {
                return Err("the request path must not contain a `.` or `..` segment".into());
            }
            _ => {}
        }
    }
    Ok(())
}

fn incomplete_escape() -> String {
    "the request path has a `%` that is not followed by two hex digits".into()
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|value| u8::try_from(value).ok())
}

fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// Returns the length of the UTF-8 character that starts with `first`.
fn utf8_width(first: u8) -> usize {
    match first {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_unchanged() {
        for path in [
            "/",
            "/v1/contacts",
            "/v1/contacts/",
            "/a/b.c/~d_e-f",
            "/caf\u{e9}",
        ] {
            assert_eq!(canonical_path(path).unwrap(), path, "{path}");
        }
    }

    #[test]
    fn unreserved_escapes_decoded() {
        assert_eq!(
            canonical_path("/v1/contacts/%65xport").unwrap(),
            "/v1/contacts/export"
        );
        assert_eq!(canonical_path("/%7Euser").unwrap(), "/~user");
        assert_eq!(canonical_path("/a%20b").unwrap(), "/a%20b");
        assert_eq!(canonical_path("/a%3fb").unwrap(), "/a%3Fb");
    }

    #[test]
    fn traversal_forms_rejected() {
        for path in [
            "/v1/contacts/../../admin/secret",
            "/v1/contacts/%2e%2e/%2e%2e/admin/secret",
            "/v1/contacts/%2E%2E/admin",
            "/v1/contacts/./export",
            "/v1/contacts/.%2e/admin",
            "/v1/contacts//export",
            "//admin",
            "/..",
            "/.",
            "/a/..",
            "/a\\..\\admin",
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a%25b",
            "/a%00b",
            "/a%",
            "/a%4",
            "/a%zz",
            "*",
            "admin",
        ] {
            assert!(canonical_path(path).is_err(), "{path} must be rejected");
        }
    }

    #[test]
    fn long_path_rejected() {
        let path = format!("/{}", "a".repeat(MAX_PATH_LEN));
        assert!(canonical_path(&path).is_err());
    }

    proptest::proptest! {
        /// Whatever the input, an accepted path is its own canonical form and has no segment
        /// an upstream could resolve differently.
        #[test]
        fn accepted_paths_are_canonical(path in "/[a-zA-Z0-9%./\\\\~_-]{0,40}") {
            if let Ok(canonical) = canonical_path(&path) {
                proptest::prop_assert_eq!(canonical_path(&canonical), Ok(canonical.clone()));
                proptest::prop_assert_eq!(path.contains('%'), matches!(canonical, Cow::Owned(_)));
                let inner = canonical.trim_start_matches('/').trim_end_matches('/');
                for segment in inner.split('/').filter(|_| !inner.is_empty()) {
                    proptest::prop_assert!(segment != "." && segment != ".." && !segment.is_empty());
                }
                proptest::prop_assert!(!canonical.contains('\\'));
            }
        }
    }
}
