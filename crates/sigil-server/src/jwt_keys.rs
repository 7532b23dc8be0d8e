//! The JWT-SVID signing keys: loaded from and saved to `<data-dir>/jwt/keys.json`, rotated with
//! overlap.
//!
//! A new key is made every `JWT_KEY_ROTATION`. The retired key stays in the published JWKS until
//! every token it signed has expired (`MAX_JWT_LIFETIME` after its retirement), so verifiers
//! never meet a valid token whose key they cannot find.

use std::time::Duration;

use sigil_jwt::{KeySet, SigningKey};
use time::OffsetDateTime;

use crate::ServerError;
use crate::authority::to_time;
use crate::layout::{DataDir, write_atomic};

/// How long one JWT signing key signs before a new one replaces it.
pub const JWT_KEY_ROTATION: Duration = Duration::from_secs(24 * 60 * 60);

/// Longest lifetime of a JWT-SVID; also how long a retired key stays published.
pub const MAX_JWT_LIFETIME: Duration = Duration::from_secs(60 * 60);

/// Default lifetime of a JWT-SVID.
pub const DEFAULT_JWT_LIFETIME: Duration = Duration::from_secs(5 * 60);

/// Loads the key set, creating and saving a first key when the file does not exist.
pub fn load_or_create(data_dir: &DataDir, now: OffsetDateTime) -> Result<KeySet, ServerError> {
    let path = data_dir.jwt_keys();
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let text = zeroize::Zeroizing::new(text);
            KeySet::from_json(&text)
                .map_err(|err| ServerError::Config(format!("{}: {err}", path.display())))
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let keys = KeySet::new(new_key(now)?).map_err(jwt_error)?;
            save(data_dir, &keys)?;
            tracing::info!(
                kid = keys.current().kid(),
                "created the first JWT signing key"
            );
            Ok(keys)
        }
        Err(err) => Err(ServerError::io(&path, err)),
    }
}

/// Writes the key set with mode 0600.
pub fn save(data_dir: &DataDir, keys: &KeySet) -> Result<(), ServerError> {
    let json = keys
        .to_json()
        .map_err(|err| ServerError::Config(format!("JWT keys: {err}")))?;
    write_atomic(&data_dir.jwt_keys(), json.as_bytes(), true)
}

/// Returns a rotated and pruned copy of `keys` if the current key is due, or `None`.
pub fn rotate_if_due(keys: &KeySet, now: OffsetDateTime) -> Result<Option<KeySet>, ServerError> {
    let due = now - keys.current().created_at() >= to_time(JWT_KEY_ROTATION);

    let mut next = keys.clone();
    let pruned = !next.prune(now, to_time(MAX_JWT_LIFETIME)).is_empty();
    if due {
        next.rotate(new_key(now)?, now).map_err(jwt_error)?;
    }
    Ok((due || pruned).then_some(next))
}

fn jwt_error(err: sigil_jwt::JwtError) -> ServerError {
    ServerError::Config(format!("JWT keys: {err}"))
}

fn new_key(now: OffsetDateTime) -> Result<SigningKey, ServerError> {
    SigningKey::generate(now)
        .map_err(|err| ServerError::Config(format!("cannot create a JWT signing key: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_retired_key_until_tokens_expire() {
        let start = OffsetDateTime::now_utc();
        let keys = KeySet::new(new_key(start).unwrap()).unwrap();
        let first_kid = keys.current().kid().to_owned();

        assert!(
            rotate_if_due(&keys, start + time::Duration::hours(1))
                .unwrap()
                .is_none(),
            "not due yet"
        );

        let rotated_at = start + to_time(JWT_KEY_ROTATION);
        let rotated = rotate_if_due(&keys, rotated_at)
            .unwrap()
            .expect("due after 24 h");
        assert_ne!(rotated.current().kid(), first_kid, "a new key must sign");
        let published: Vec<String> = rotated.jwks().keys.iter().map(|k| k.kid.clone()).collect();
        assert!(
            published.contains(&first_kid),
            "the retired key must stay published"
        );

        let after_tokens = rotated_at + to_time(MAX_JWT_LIFETIME) + time::Duration::minutes(5);
        let pruned = rotate_if_due(&rotated, after_tokens)
            .unwrap()
            .expect("the retired key is prunable");
        let published: Vec<String> = pruned.jwks().keys.iter().map(|k| k.kid.clone()).collect();
        assert!(
            !published.contains(&first_kid),
            "the retired key must go once its tokens expired"
        );
        assert_eq!(
            pruned.current().kid(),
            rotated.current().kid(),
            "pruning must not rotate"
        );
    }
}
