//! Interoperability with the `jsonwebtoken` crate (version 12, aws-lc-rs backend) in both
//! directions: it verifies Sigil's tokens and thumbprints, and Sigil verifies its tokens.

mod common;

use common::{AUDIENCE, Fixture, OWNER, SUBJECT, mint_with, verifier_for};
use jsonwebtoken::jwk::{JwkSet, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde_json::{Value, json};
use sigil_jwt::{KeySet, SigningKey};
use time::OffsetDateTime;

#[test]
fn jsonwebtoken_verifies_minted_token() {
    // jsonwebtoken checks `exp` against the system clock.
    let now = OffsetDateTime::now_utc();
    let key_set = KeySet::new(SigningKey::generate(now).unwrap()).unwrap();
    let minted = mint_with(&key_set, AUDIENCE, now);
    let jwks_json = serde_json::to_string(&key_set.jwks()).unwrap();
    let jwks: JwkSet = serde_json::from_str(&jwks_json).unwrap();
    let jwk = jwks.find(key_set.current().kid()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "sub", "aud"]);

    let data = decode::<Value>(
        &minted.token,
        &DecodingKey::from_jwk(jwk).unwrap(),
        &validation,
    )
    .unwrap();

    assert_eq!(data.header.alg, Algorithm::ES256);
    assert_eq!(data.header.kid.as_deref(), Some(key_set.current().kid()));
    assert_eq!(data.header.typ.as_deref(), Some("JWT"));
    assert_eq!(data.claims["sub"], SUBJECT);
    assert_eq!(data.claims["aud"], AUDIENCE);
    assert_eq!(data.claims["owner"], OWNER);
}

#[test]
fn jsonwebtoken_thumbprint_matches_kid() {
    let fixture = Fixture::new();
    let jwks_json = serde_json::to_string(&fixture.key_set.jwks()).unwrap();
    let jwks: JwkSet = serde_json::from_str(&jwks_json).unwrap();

    let thumbprint = jwks.keys[0].thumbprint(ThumbprintHash::SHA256).unwrap();

    assert_eq!(thumbprint, fixture.kid());
}

#[test]
fn token_encoded_by_jsonwebtoken_verifies() {
    let fixture = Fixture::new();
    let der = common::pem_body(&fixture.key_set.current().to_pkcs8_pem());
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(fixture.kid().to_owned());
    let claims = common::standard_claims();

    let token = encode(&header, &claims, &EncodingKey::from_ec_der(&der)).unwrap();

    let verified = fixture.verify(&token).unwrap();
    assert_eq!(verified.subject.as_str(), SUBJECT);
    assert_eq!(verified.raw, *claims.as_object().unwrap());
}

#[test]
fn jsonwebtoken_rejects_wrong_audience() {
    let now = OffsetDateTime::now_utc();
    let key_set = KeySet::new(SigningKey::generate(now).unwrap()).unwrap();
    let minted = mint_with(&key_set, AUDIENCE, now);
    let jwks: JwkSet = serde_json::from_value(json!(key_set.jwks())).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["https://billing.example.org"]);

    let err = decode::<Value>(
        &minted.token,
        &DecodingKey::from_jwk(&jwks.keys[0]).unwrap(),
        &validation,
    )
    .unwrap_err();

    assert_eq!(
        err.kind(),
        &jsonwebtoken::errors::ErrorKind::InvalidAudience
    );
    // The same key set verifies the token for the right audience.
    assert!(
        verifier_for(&key_set)
            .verify(&minted.token, &[AUDIENCE], now)
            .is_ok()
    );
}
