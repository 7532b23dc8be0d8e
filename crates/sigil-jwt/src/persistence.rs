//! The JSON document that stores a key set, private keys included.
//!
//! Layout, version 1:
//!
//! ```json
//! {
//!   "version": 1,
//!   "current": {"private_key_pem": "-----BEGIN PRIVATE KEY-----\n…", "created_at": "2026-01-01T00:00:00Z"},
//!   "retired": [{"private_key_pem": "…", "created_at": "…", "retired_at": "…"}]
//! }
//! ```
//!
//! Times are RFC 3339. The document contains private keys, so the caller stores it in a file only
//! the authority can read (mode 0600).

use std::collections::HashSet;

use serde::{Deserialize, Deserializer, Serialize};
use time::{OffsetDateTime, UtcOffset};
use zeroize::Zeroizing;

use crate::{JwtError, KeySet, SigningKey};

/// The only document version this crate reads and writes.
const VERSION: u32 = 1;

#[derive(Serialize)]
struct StoredKeySetRef<'a> {
    version: u32,
    current: StoredKeyRef<'a>,
    retired: Vec<StoredKeyRef<'a>>,
}

#[derive(Serialize)]
struct StoredKeyRef<'a> {
    private_key_pem: &'a str,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    retired_at: Option<OffsetDateTime>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKeySet {
    version: u32,
    current: StoredKey,
    retired: Vec<StoredKey>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    private_key_pem: SecretString,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    retired_at: Option<OffsetDateTime>,
}

impl<'a> StoredKeyRef<'a> {
    fn new(key: &SigningKey, pem: &'a str) -> Self {
        Self {
            private_key_pem: pem,
            created_at: key.created_at().to_offset(UtcOffset::UTC),
            retired_at: key.retired_at().map(|at| at.to_offset(UtcOffset::UTC)),
        }
    }
}

/// A string that is zeroized on drop from the moment it is deserialized.
struct SecretString(Zeroizing<String>);

impl<'de> Deserialize<'de> for SecretString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(|value| Self(Zeroizing::new(value)))
    }
}

impl KeySet {
    /// Serializes the key set, private keys included, as a version 1 JSON document.
    ///
    /// Times are written in UTC. Fails only when a time cannot be written as RFC 3339, which
    /// happens for years after 9999.
    pub fn to_json(&self) -> Result<Zeroizing<String>, JwtError> {
        let current_pem = self.current.to_pkcs8_pem();
        let retired_pems: Vec<Zeroizing<String>> =
            self.retired.iter().map(SigningKey::to_pkcs8_pem).collect();
        let document = StoredKeySetRef {
            version: VERSION,
            current: StoredKeyRef::new(&self.current, &current_pem),
            retired: self
                .retired
                .iter()
                .zip(&retired_pems)
                .map(|(key, pem)| StoredKeyRef::new(key, pem))
                .collect(),
        };

        // Sized so that the buffer does not reallocate and leave copies of the keys behind: each
        // PEM grows by its escaped newlines, and the rest of each entry is under 200 bytes.
        let capacity = std::iter::once(&current_pem)
            .chain(&retired_pems)
            .map(|pem| 2 * pem.len() + 200)
            .sum::<usize>()
            + 64;
        let mut buffer = Zeroizing::new(Vec::with_capacity(capacity));
        serde_json::to_writer(&mut *buffer, &document).map_err(|_| JwtError::InvalidKeySet {
            reason: "a key time cannot be written as RFC 3339".to_owned(),
        })?;

        // serde_json writes only UTF-8, so the conversion moves the buffer without copying it.
        let text = String::from_utf8(std::mem::take(&mut *buffer)).map_err(|_| {
            JwtError::InvalidKeySet {
                reason: "the serialized key set is not UTF-8".to_owned(),
            }
        })?;
        Ok(Zeroizing::new(text))
    }

    /// Reads a key set written by [`KeySet::to_json`].
    ///
    /// Fails when the document is not version 1, when the current key is retired or a retired
    /// key has no `retired_at`, or when two keys share a key ID. Error messages never quote the
    /// document.
    pub fn from_json(json: &str) -> Result<Self, JwtError> {
        let stored: StoredKeySet = serde_json::from_str(json).map_err(|error| {
            // serde_json messages may quote the offending value, which can be a private key, so
            // only the position and category are reported.
            JwtError::InvalidKeySet {
                reason: format!(
                    "not a key set document ({:?} error at line {}, column {})",
                    error.classify(),
                    error.line(),
                    error.column()
                ),
            }
        })?;

        if stored.version != VERSION {
            return Err(JwtError::InvalidKeySet {
                reason: format!(
                    "unsupported version {}; this build reads version {VERSION}",
                    stored.version
                ),
            });
        }
        if stored.current.retired_at.is_some() {
            return Err(JwtError::InvalidKeySet {
                reason: "the current key has a `retired_at` time".to_owned(),
            });
        }
        if stored.retired.iter().any(|key| key.retired_at.is_none()) {
            return Err(JwtError::InvalidKeySet {
                reason: "a retired key has no `retired_at` time".to_owned(),
            });
        }

        let current = read_key(&stored.current)?;
        let retired = stored
            .retired
            .iter()
            .map(read_key)
            .collect::<Result<Vec<_>, _>>()?;

        let key_set = Self { current, retired };
        let mut kids = HashSet::new();
        if let Some(duplicate) = key_set.keys().find(|key| !kids.insert(key.kid())) {
            return Err(JwtError::DuplicateKeyId {
                kid: duplicate.kid().to_owned(),
            });
        }
        Ok(key_set)
    }
}

fn read_key(stored: &StoredKey) -> Result<SigningKey, JwtError> {
    SigningKey::from_pkcs8_pem(
        &stored.private_key_pem.0,
        stored.created_at,
        stored.retired_at,
    )
}

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn rotated_set() -> KeySet {
        let mut set = KeySet::new(SigningKey::generate(T0).unwrap()).unwrap();
        let t1 = T0 + Duration::days(1);
        set.rotate(SigningKey::generate(t1).unwrap(), t1).unwrap();
        set
    }

    #[test]
    fn json_round_trip_keeps_keys_and_times() {
        let set = rotated_set();

        let read = KeySet::from_json(&set.to_json().unwrap()).unwrap();

        assert_eq!(read.jwks(), set.jwks());
        assert_eq!(read.current().created_at(), set.current().created_at());
        assert_eq!(read.current().retired_at(), None);
        assert_eq!(read.retired()[0].created_at(), T0);
        assert_eq!(
            read.retired()[0].retired_at(),
            set.retired()[0].retired_at()
        );
    }

    #[test]
    fn json_layout() {
        let set = rotated_set();

        let json: serde_json::Value = serde_json::from_str(&set.to_json().unwrap()).unwrap();

        assert_eq!(json["version"], 1);
        assert!(
            json["current"]["private_key_pem"]
                .as_str()
                .unwrap()
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        assert_eq!(json["current"]["created_at"], "2026-01-02T00:00:00Z");
        assert!(json["current"].get("retired_at").is_none());
        assert_eq!(json["retired"][0]["retired_at"], "2026-01-02T00:00:00Z");
    }

    #[test]
    fn wrong_version_rejected() {
        let set = rotated_set();
        let mut json: serde_json::Value = serde_json::from_str(&set.to_json().unwrap()).unwrap();
        json["version"] = 2.into();

        let err = KeySet::from_json(&json.to_string()).unwrap_err();

        assert!(err.to_string().contains("version 2"), "{err}");
    }

    #[test]
    fn retired_current_key_rejected() {
        let set = rotated_set();
        let mut json: serde_json::Value = serde_json::from_str(&set.to_json().unwrap()).unwrap();
        json["current"]["retired_at"] = "2026-01-03T00:00:00Z".into();

        let err = KeySet::from_json(&json.to_string()).unwrap_err();

        assert!(matches!(err, JwtError::InvalidKeySet { .. }), "{err}");
    }

    #[test]
    fn retired_key_without_time_rejected() {
        let set = rotated_set();
        let mut json: serde_json::Value = serde_json::from_str(&set.to_json().unwrap()).unwrap();
        json["retired"][0]
            .as_object_mut()
            .unwrap()
            .remove("retired_at");

        let err = KeySet::from_json(&json.to_string()).unwrap_err();

        assert!(matches!(err, JwtError::InvalidKeySet { .. }), "{err}");
    }

    #[test]
    fn duplicate_key_rejected() {
        let set = rotated_set();
        let mut json: serde_json::Value = serde_json::from_str(&set.to_json().unwrap()).unwrap();
        let mut copy = json["current"].clone();
        copy["retired_at"] = "2026-01-03T00:00:00Z".into();
        json["retired"].as_array_mut().unwrap().push(copy);

        let err = KeySet::from_json(&json.to_string()).unwrap_err();

        assert!(matches!(err, JwtError::DuplicateKeyId { .. }), "{err}");
    }

    #[test]
    fn parse_error_does_not_quote_the_key() {
        let set = rotated_set();
        let mut json: serde_json::Value = serde_json::from_str(&set.to_json().unwrap()).unwrap();
        let pem = json["current"]["private_key_pem"]
            .as_str()
            .unwrap()
            .to_owned();
        // A PEM where a time belongs makes serde_json quote the string in its own message.
        json["current"]["created_at"] = pem.clone().into();

        let err = KeySet::from_json(&json.to_string()).unwrap_err();

        let body_line = pem.lines().nth(1).unwrap();
        assert!(!err.to_string().contains(body_line), "{err}");
        assert!(!format!("{err:?}").contains(body_line), "{err:?}");
    }
}
