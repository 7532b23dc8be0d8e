//! Splitting and decoding the JWS Compact Serialization (RFC 7515, section 7.1).

use serde_json::{Map, Value};

use crate::strict_json::{self, StrictJsonError};
use crate::{JwtError, MAX_TOKEN_LEN, base64url};

/// A compact JWS split into its parts, with the header decoded.
///
/// The payload stays encoded until the signature has been checked.
pub(crate) struct CompactJws<'a> {
    /// `BASE64URL(header) || '.' || BASE64URL(payload)`, the bytes the signature covers.
    pub(crate) signing_input: &'a str,
    pub(crate) header: Map<String, Value>,
    pub(crate) encoded_payload: &'a str,
    pub(crate) encoded_signature: &'a str,
}

impl<'a> CompactJws<'a> {
    /// Checks the size and shape of a token and decodes its header.
    pub(crate) fn parse(token: &'a str) -> Result<Self, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::TokenTooLarge {
                len: token.len(),
                max: MAX_TOKEN_LEN,
            });
        }

        let mut parts = token.splitn(4, '.');
        let (Some(encoded_header), Some(encoded_payload), Some(encoded_signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::Malformed {
                reason: "a compact JWS has exactly three parts separated by `.`",
            });
        };
        let signing_input = &token[..encoded_header.len() + 1 + encoded_payload.len()];

        let header = decode_object(encoded_header, Part::Header)?;

        Ok(Self {
            signing_input,
            header,
            encoded_payload,
            encoded_signature,
        })
    }

    /// Decodes the signature bytes.
    pub(crate) fn signature(&self) -> Result<Vec<u8>, JwtError> {
        base64url::decode(self.encoded_signature).ok_or(JwtError::Malformed {
            reason: "the signature is not unpadded base64url",
        })
    }

    /// Decodes the payload. Call only after the signature has been verified.
    pub(crate) fn payload(&self) -> Result<Map<String, Value>, JwtError> {
        decode_object(self.encoded_payload, Part::Payload)
    }
}

/// The two JSON parts of a compact JWS.
#[derive(Clone, Copy)]
enum Part {
    Header,
    Payload,
}

/// Decodes one base64url part holding a JSON object with unique member names.
fn decode_object(encoded: &str, part: Part) -> Result<Map<String, Value>, JwtError> {
    let (name, not_base64, not_json, not_object) = match part {
        Part::Header => (
            "header",
            "the header is not unpadded base64url",
            "the header is not valid UTF-8 JSON",
            "the header is not a JSON object",
        ),
        Part::Payload => (
            "payload",
            "the payload is not unpadded base64url",
            "the payload is not valid UTF-8 JSON",
            "the payload is not a JSON object",
        ),
    };

    let bytes = base64url::decode(encoded).ok_or(JwtError::Malformed { reason: not_base64 })?;
    strict_json::parse_object(&bytes).map_err(|error| match error {
        StrictJsonError::Syntax => JwtError::Malformed { reason: not_json },
        StrictJsonError::NotAnObject => JwtError::Malformed { reason: not_object },
        StrictJsonError::DuplicateMember => JwtError::DuplicateMember { part: name },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(json: &str) -> String {
        base64url::encode(json.as_bytes())
    }

    #[test]
    fn three_parts_split() {
        let token = format!("{}.{}.c2ln", encode(r#"{"alg":"ES256"}"#), encode("{}"));

        let jws = CompactJws::parse(&token).unwrap();

        assert_eq!(jws.header["alg"], "ES256");
        assert_eq!(jws.signing_input, &token[..token.len() - 5]);
        assert_eq!(jws.signature().unwrap(), b"sig");
        assert!(jws.payload().unwrap().is_empty());
    }

    #[test]
    fn wrong_part_count_rejected() {
        let header = encode("{}");
        for token in [
            String::new(),
            header.clone(),
            format!("{header}.{header}"),
            format!("{header}.{header}.x.y"),
            format!("{header}.{header}.."),
        ] {
            let err = CompactJws::parse(&token).err().unwrap();
            assert!(matches!(err, JwtError::Malformed { .. }), "{token}: {err}");
        }
    }

    #[test]
    fn oversized_token_rejected_before_parsing() {
        let token = "a".repeat(MAX_TOKEN_LEN + 1);

        let err = CompactJws::parse(&token).err().unwrap();

        assert!(matches!(err, JwtError::TokenTooLarge { .. }), "{err}");
    }

    #[test]
    fn header_must_be_json_object() {
        for header in ["[]", "\"x\"", "{", ""] {
            let token = format!("{}.{}.", encode(header), encode("{}"));
            let err = CompactJws::parse(&token).err().unwrap();
            assert!(matches!(err, JwtError::Malformed { .. }), "{header}: {err}");
        }
    }

    #[test]
    fn padded_header_rejected() {
        // `{}` encodes to `e30` and needs one padding character in standard base64.
        let token = format!("e30=.{}.", encode("{}"));

        let err = CompactJws::parse(&token).err().unwrap();

        assert!(matches!(err, JwtError::Malformed { .. }), "{err}");
    }
}
