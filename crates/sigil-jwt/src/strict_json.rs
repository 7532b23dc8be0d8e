//! JSON parsing that rejects duplicate member names.
//!
//! `serde_json` keeps the last of two members with the same name. Another JWT library may keep
//! the first, so a token with `"sub"` twice could mean different subjects to different verifiers.
//! RFC 7515, section 5.2 allows a JWS parser to reject such headers, and Sigil rejects them in
//! the header and the payload, at every nesting depth. Names are compared after unescaping, so
//! `"sub"` and `"s\u0075b"` count as the same name.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// The reason a JSON text was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrictJsonError {
    /// The text is not valid JSON (including invalid UTF-8 and trailing data).
    Syntax,
    /// The text is valid JSON but its top-level value is not an object.
    NotAnObject,
    /// An object repeats a member name.
    DuplicateMember,
}

/// Parses a JSON object, rejecting duplicate member names at any depth.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    let duplicate_found = Cell::new(false);
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);

    let parsed = ValueSeed {
        duplicate_found: &duplicate_found,
    }
    .deserialize(&mut deserializer)
    .and_then(|value| deserializer.end().map(|()| value));

    match parsed {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(StrictJsonError::NotAnObject),
        Err(_) if duplicate_found.get() => Err(StrictJsonError::DuplicateMember),
        Err(_) => Err(StrictJsonError::Syntax),
    }
}

/// Builds a `serde_json::Value` and records in `duplicate_found` why it stopped early.
///
/// A seed is used in place of a plain `Deserialize` impl because the caller must tell a duplicate
/// member apart from a syntax error, and `serde_json::Error` carries only a message for both.
#[derive(Clone, Copy)]
struct ValueSeed<'a> {
    duplicate_found: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, value: bool) -> Result<Value, E> {
        Ok(Value::Bool(value))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Value, E> {
        Ok(Value::Number(value.into()))
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Value, E> {
        // serde_json rejects numbers outside the f64 range, such as `1e400`, so a non-finite
        // value is not expected here.
        Number::from_f64(value)
            .map(Value::Number)
            .ok_or_else(|| E::custom("non-finite number"))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Value, E> {
        Ok(Value::String(value.to_owned()))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Value, E> {
        Ok(Value::String(value))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = seq.next_element_seed(self)? {
            values.push(value);
        }
        Ok(Value::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(name) = access.next_key::<String>()? {
            if map.contains_key(&name) {
                self.duplicate_found.set(true);
                return Err(de::Error::custom("duplicate member name"));
            }
            let value = access.next_value_seed(self)?;
            map.insert(name, value);
        }
        Ok(Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn object_parses_like_serde_json() {
        let text = br#"{"a":1,"b":[true,null,"x",-2,1.5],"c":{"d":{}}}"#;
        let expected: Value = serde_json::from_slice(text).unwrap();

        let parsed = parse_object(text).unwrap();

        assert_eq!(Value::Object(parsed), expected);
    }

    #[test]
    fn top_level_duplicate_rejected() {
        assert_eq!(
            parse_object(br#"{"sub":"a","sub":"b"}"#),
            Err(StrictJsonError::DuplicateMember)
        );
    }

    #[test]
    fn escaped_duplicate_rejected() {
        assert_eq!(
            parse_object(br#"{"sub":"a","s\u0075b":"b"}"#),
            Err(StrictJsonError::DuplicateMember)
        );
    }

    #[test]
    fn nested_duplicate_rejected() {
        assert_eq!(
            parse_object(br#"{"a":[{"x":1,"x":2}]}"#),
            Err(StrictJsonError::DuplicateMember)
        );
    }

    #[test]
    fn same_name_in_sibling_objects_accepted() {
        let parsed = parse_object(br#"{"a":{"x":1},"b":{"x":2}}"#).unwrap();
        assert_eq!(Value::Object(parsed), json!({"a": {"x": 1}, "b": {"x": 2}}));
    }

    #[test]
    fn non_objects_rejected() {
        for text in [&b"[]"[..], b"1", b"\"x\"", b"null", b"true"] {
            assert_eq!(parse_object(text), Err(StrictJsonError::NotAnObject));
        }
    }

    #[test]
    fn invalid_json_rejected() {
        for text in [
            &b""[..],
            b"{",
            b"{} {}",
            b"{}x",
            b"{'a':1}",
            b"{\"a\":1,}",
            b"\xef\xbb\xbf{}",
            b"{\"a\":\"\xff\"}",
            b"{\"a\":1e400}",
        ] {
            assert_eq!(parse_object(text), Err(StrictJsonError::Syntax), "{text:?}");
        }
    }

    #[test]
    fn integers_stay_integers() {
        let parsed = parse_object(br#"{"i":-5,"u":18446744073709551615,"f":1.0}"#).unwrap();
        assert!(parsed["i"].is_i64());
        assert!(parsed["u"].is_u64());
        assert!(parsed["f"].is_f64());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = parse_object(&bytes);
        }
    }
}
