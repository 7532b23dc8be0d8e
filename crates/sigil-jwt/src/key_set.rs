//! The issuer's signing keys: one current key and the retired keys that are still published.

use time::{Duration, OffsetDateTime};

use crate::verify::CLOCK_SKEW_LEEWAY;
use crate::{Jwks, JwtError, SigningKey};

/// The current signing key plus the retired keys that verifiers may still need.
///
/// A retired key no longer signs, but it stays in the JWKS until every token it signed has
/// expired, so that rotating the key does not break tokens already handed out.
///
/// NOTE: a new key signs from the moment it is rotated in. A verifier that cached the JWKS before
/// the rotation rejects the new tokens with [`JwtError::UnknownKeyId`] until it refreshes.
#[derive(Debug, Clone)]
pub struct KeySet {
    pub(crate) current: SigningKey,
    /// Retired keys, oldest retirement first.
    pub(crate) retired: Vec<SigningKey>,
}

impl KeySet {
    /// Creates a key set whose only key is `current`.
    ///
    /// Fails when `current` is already retired.
    pub fn new(current: SigningKey) -> Result<Self, JwtError> {
        if current.retired_at().is_some() {
            return Err(JwtError::InvalidRotation {
                reason: "the current key of a key set cannot be retired",
            });
        }
        Ok(Self {
            current,
            retired: Vec::new(),
        })
    }

    /// Returns the key that signs new tokens.
    pub fn current(&self) -> &SigningKey {
        &self.current
    }

    /// Returns the retired keys that are still published, oldest retirement first.
    pub fn retired(&self) -> &[SigningKey] {
        &self.retired
    }

    /// Makes `new` the current key and retires the old current key at `now`.
    ///
    /// Fails, changing nothing, when `new` is already retired or has the key ID of a key in the
    /// set.
    pub fn rotate(&mut self, new: SigningKey, now: OffsetDateTime) -> Result<(), JwtError> {
        if new.retired_at().is_some() {
            return Err(JwtError::InvalidRotation {
                reason: "a retired key cannot become the current key",
            });
        }
        if self.keys().any(|key| key.kid() == new.kid()) {
            return Err(JwtError::DuplicateKeyId {
                kid: new.kid().to_owned(),
            });
        }

        let mut old = std::mem::replace(&mut self.current, new);
        old.retire(now);
        self.retired.push(old);
        Ok(())
    }

    /// Drops the retired keys that can no longer have signed a token a verifier accepts, and
    /// returns their key IDs.
    ///
    /// A key retired at `t` signed its last token before `t`, and that token expires by
    /// `t + max_token_lifetime`. Verifiers accept it up to [`CLOCK_SKEW_LEEWAY`] after that,
    /// so the key is dropped once `now` is past `t + max_token_lifetime + CLOCK_SKEW_LEEWAY`.
    /// A negative `max_token_lifetime` counts as zero.
    pub fn prune(&mut self, now: OffsetDateTime, max_token_lifetime: Duration) -> Vec<String> {
        let keep_for = max_token_lifetime
            .max(Duration::ZERO)
            .saturating_add(CLOCK_SKEW_LEEWAY);

        let mut pruned = Vec::new();
        self.retired.retain(|key| {
            let still_needed = key
                .retired_at()
                .is_none_or(|retired_at| now <= retired_at.saturating_add(keep_for));
            if !still_needed {
                pruned.push(key.kid().to_owned());
            }
            still_needed
        });
        pruned
    }

    /// Returns the JWKS to publish: the current key first, then the retired keys still kept.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self.keys().map(SigningKey::public_jwk).collect(),
        }
    }

    /// Iterates over the current key, then the retired keys.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        std::iter::once(&self.current).chain(&self.retired)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    #[test]
    fn new_rejects_retired_key() {
        let mut key = SigningKey::generate(T0).unwrap();
        key.retire(T0);

        let err = KeySet::new(key).unwrap_err();

        assert!(matches!(err, JwtError::InvalidRotation { .. }), "{err}");
    }

    #[test]
    fn rotate_retires_old_key_at_now() {
        let first = SigningKey::generate(T0).unwrap();
        let first_kid = first.kid().to_owned();
        let mut set = KeySet::new(first).unwrap();
        let rotated_at = T0 + Duration::days(1);

        set.rotate(SigningKey::generate(rotated_at).unwrap(), rotated_at)
            .unwrap();

        assert_ne!(set.current().kid(), first_kid);
        assert_eq!(set.current().retired_at(), None);
        assert_eq!(set.retired().len(), 1);
        assert_eq!(set.retired()[0].kid(), first_kid);
        assert_eq!(set.retired()[0].retired_at(), Some(rotated_at));
    }

    #[test]
    fn rotate_rejects_known_kid() {
        let first = SigningKey::generate(T0).unwrap();
        let copy = SigningKey::from_pkcs8_pem(&first.to_pkcs8_pem(), T0, None).unwrap();
        let mut set = KeySet::new(first).unwrap();

        let err = set.rotate(copy, T0).unwrap_err();

        assert!(matches!(err, JwtError::DuplicateKeyId { .. }), "{err}");
        assert!(set.retired().is_empty());
    }

    #[test]
    fn rotate_rejects_retired_key() {
        let mut set = KeySet::new(SigningKey::generate(T0).unwrap()).unwrap();
        let mut retired = SigningKey::generate(T0).unwrap();
        retired.retire(T0);

        let err = set.rotate(retired, T0).unwrap_err();

        assert!(matches!(err, JwtError::InvalidRotation { .. }), "{err}");
        assert!(set.retired().is_empty());
    }

    #[test]
    fn prune_keeps_key_until_lifetime_and_leeway_pass() {
        let mut set = KeySet::new(SigningKey::generate(T0).unwrap()).unwrap();
        set.rotate(SigningKey::generate(T0).unwrap(), T0).unwrap();
        let lifetime = Duration::minutes(5);
        let last_accepted = T0 + lifetime + CLOCK_SKEW_LEEWAY;

        assert!(set.prune(last_accepted, lifetime).is_empty());
        assert_eq!(set.retired().len(), 1);

        let retired_kid = set.retired()[0].kid().to_owned();
        let pruned = set.prune(last_accepted + Duration::seconds(1), lifetime);

        assert_eq!(pruned, [retired_kid]);
        assert!(set.retired().is_empty());
    }

    #[test]
    fn prune_never_drops_current_key() {
        let mut set = KeySet::new(SigningKey::generate(T0).unwrap()).unwrap();
        let current_kid = set.current().kid().to_owned();

        let pruned = set.prune(T0 + Duration::days(3650), Duration::ZERO);

        assert!(pruned.is_empty());
        assert_eq!(set.current().kid(), current_kid);
    }

    #[test]
    fn jwks_lists_current_then_retired() {
        let mut set = KeySet::new(SigningKey::generate(T0).unwrap()).unwrap();
        let first_kid = set.current().kid().to_owned();
        set.rotate(SigningKey::generate(T0).unwrap(), T0).unwrap();

        let kids: Vec<String> = set.jwks().keys.into_iter().map(|jwk| jwk.kid).collect();

        assert_eq!(kids, [set.current().kid().to_owned(), first_kid]);
    }
}
