//! JWT-SVIDs for Sigil: ES256 minting, JWKS publication and strict verification.
//!
//! A JWT-SVID is a JWT whose `sub` is a SPIFFE ID. The authority keeps a [`KeySet`] with one
//! current [`SigningKey`] and the retired keys whose tokens may still be live, mints tokens
//! with [`KeySet::mint`], and publishes [`KeySet::jwks`] at `/.well-known/jwks.json` next to
//! [`openid_configuration`]. Services check tokens with a [`Verifier`], which accepts only
//! ES256 tokens signed by a published key and never lets the token header choose the algorithm
//! or the key material.
//!
//! Signing and verification use aws-lc-rs directly. The `jsonwebtoken` crate serves only as an
//! independent verifier in the tests and as a baseline in the benchmark.

#![forbid(unsafe_code)]

mod base64url;
mod discovery;
mod error;
mod jwk;
mod key_set;
mod mint;
mod persistence;
mod signing_key;
mod strict_json;
mod verify;

pub use discovery::openid_configuration;
pub use error::JwtError;
pub use jwk::{Jwk, Jwks};
pub use key_set::KeySet;
pub use mint::{MAX_TOKEN_LIFETIME, MintRequest, MintedToken};
pub use signing_key::SigningKey;
pub use verify::{CLOCK_SKEW_LEEWAY, MAX_TOKEN_LEN, VerifiedClaims, Verifier};

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn shared_types_are_send_and_sync() {
        assert_send_sync::<SigningKey>();
        assert_send_sync::<KeySet>();
        assert_send_sync::<Verifier>();
    }
}
