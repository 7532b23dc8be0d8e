//! Minting and verifying through the public API, key rotation and pruning, the JWKS and the
//! persisted key set.

mod common;

use common::{AUDIENCE, Fixture, ISSUER, NOW, OWNER, SUBJECT, mint_with, verifier_for};
use serde_json::json;
use sha2::{Digest, Sha256};
use sigil_core::TrustDomain;
use sigil_jwt::{
    CLOCK_SKEW_LEEWAY, Jwk, Jwks, JwtError, KeySet, SigningKey, Verifier, openid_configuration,
};
use time::Duration;

const MAX_LIFETIME: Duration = Duration::minutes(5);

#[test]
fn minted_token_verifies() {
    let fixture = Fixture::new();
    let minted = fixture.mint();

    let claims = fixture.verify(&minted.token).unwrap();

    assert_eq!(claims.subject.as_str(), SUBJECT);
    assert_eq!(claims.audience, [AUDIENCE]);
    assert_eq!(claims.issuer.as_deref(), Some(ISSUER));
    assert_eq!(claims.owner.as_deref(), Some(OWNER));
    assert_eq!(claims.jti, minted.jti);
    assert_eq!(claims.expires_at, minted.expires_at);
    assert_eq!(claims.expires_at, NOW + Duration::minutes(5));
    assert_eq!(claims.issued_at, NOW);
    assert_eq!(claims.raw["nbf"], json!(NOW.unix_timestamp()));
}

#[test]
fn retired_key_still_published_verifies() {
    let mut key_set = KeySet::new(SigningKey::generate(NOW).unwrap()).unwrap();
    let old_token = mint_with(&key_set, AUDIENCE, NOW);
    let rotated_at = NOW + Duration::minutes(1);

    key_set
        .rotate(SigningKey::generate(rotated_at).unwrap(), rotated_at)
        .unwrap();
    let verifier = verifier_for(&key_set);

    let claims = verifier
        .verify(&old_token.token, &[AUDIENCE], rotated_at)
        .unwrap();
    assert_eq!(claims.jti, old_token.jti);

    let new_token = mint_with(&key_set, AUDIENCE, rotated_at);
    assert!(
        verifier
            .verify(&new_token.token, &[AUDIENCE], rotated_at)
            .is_ok()
    );
}

#[test]
fn pruned_key_no_longer_verifies() {
    let mut key_set = KeySet::new(SigningKey::generate(NOW).unwrap()).unwrap();
    let old_kid = key_set.current().kid().to_owned();
    let old_token = mint_with(&key_set, AUDIENCE, NOW);
    key_set
        .rotate(SigningKey::generate(NOW).unwrap(), NOW)
        .unwrap();
    let after_expiry = NOW + MAX_LIFETIME + CLOCK_SKEW_LEEWAY + Duration::SECOND;

    let pruned = key_set.prune(after_expiry, MAX_LIFETIME);

    assert_eq!(pruned, std::slice::from_ref(&old_kid));
    assert!(key_set.jwks().keys.iter().all(|jwk| jwk.kid != old_kid));
    let verifier = verifier_for(&key_set);
    // Checked at NOW, so that only the missing key can cause the rejection.
    let err = verifier
        .verify(&old_token.token, &[AUDIENCE], NOW)
        .unwrap_err();
    assert!(matches!(err, JwtError::UnknownKeyId { .. }), "{err}");
}

#[test]
fn rotation_and_pruning_times() {
    let t0 = NOW;
    let t1 = t0 + Duration::hours(6);
    let t2 = t1 + Duration::hours(6);
    let mut key_set = KeySet::new(SigningKey::generate(t0).unwrap()).unwrap();
    let first_kid = key_set.current().kid().to_owned();
    key_set
        .rotate(SigningKey::generate(t1).unwrap(), t1)
        .unwrap();
    let second_kid = key_set.current().kid().to_owned();
    key_set
        .rotate(SigningKey::generate(t2).unwrap(), t2)
        .unwrap();

    let retired: Vec<_> = key_set
        .retired()
        .iter()
        .map(|key| (key.kid().to_owned(), key.created_at(), key.retired_at()))
        .collect();
    assert_eq!(
        retired,
        [
            (first_kid.clone(), t0, Some(t1)),
            (second_kid.clone(), t1, Some(t2)),
        ]
    );
    assert_eq!(key_set.current().created_at(), t2);
    assert_eq!(key_set.jwks().keys.len(), 3);

    // The first key retired at t1 and the second at t2, 6 hours apart.
    let first_gone = t1 + MAX_LIFETIME + CLOCK_SKEW_LEEWAY + Duration::SECOND;
    assert!(first_gone < t2);
    assert_eq!(key_set.prune(first_gone, MAX_LIFETIME), [first_kid]);
    assert!(key_set.prune(t2 + MAX_LIFETIME, MAX_LIFETIME).is_empty());
    let second_gone = t2 + MAX_LIFETIME + CLOCK_SKEW_LEEWAY + Duration::SECOND;
    assert_eq!(key_set.prune(second_gone, MAX_LIFETIME), [second_kid]);
    assert_eq!(key_set.jwks().keys.len(), 1);
}

#[test]
fn jwks_json_shape() {
    let fixture = Fixture::new();

    let json = serde_json::to_value(fixture.key_set.jwks()).unwrap();

    let keys = json["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = keys[0].as_object().unwrap();
    let mut members: Vec<&str> = key.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["alg", "crv", "kid", "kty", "use", "x", "y"]);
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], fixture.kid());
    for coordinate in ["x", "y"] {
        let encoded = key[coordinate].as_str().unwrap();
        assert_eq!(
            encoded.len(),
            43,
            "{coordinate} is not 32 bytes of base64url"
        );
        assert_eq!(common::unb64(encoded).len(), 32);
    }
    assert!(
        !json.to_string().contains("\"d\""),
        "private key member published"
    );
}

#[test]
fn jwks_json_parses_back() {
    let fixture = Fixture::new();
    let text = serde_json::to_string(&fixture.key_set.jwks()).unwrap();

    let jwks: Jwks = serde_json::from_str(&text).unwrap();

    assert_eq!(jwks, fixture.key_set.jwks());
}

#[test]
fn kid_is_rfc7638_thumbprint() {
    let key = SigningKey::generate(NOW).unwrap();
    let jwk = key.public_jwk();
    // RFC 7638, section 3.2: the required EC members in lexicographic order, no whitespace.
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk.x, jwk.y
    );

    let thumbprint = common::b64(&Sha256::digest(canonical.as_bytes()));

    assert_eq!(key.kid(), thumbprint);
    assert_eq!(jwk.kid, thumbprint);
}

#[test]
fn kid_survives_pem_round_trip() {
    let key = SigningKey::generate(NOW).unwrap();

    let read = SigningKey::from_pkcs8_pem(&key.to_pkcs8_pem(), NOW, None).unwrap();

    assert_eq!(read.kid(), key.kid());
}

#[test]
fn persisted_key_set_keeps_verifying() {
    let mut key_set = KeySet::new(SigningKey::generate(NOW).unwrap()).unwrap();
    let old_token = mint_with(&key_set, AUDIENCE, NOW);
    key_set
        .rotate(SigningKey::generate(NOW).unwrap(), NOW)
        .unwrap();

    let restored = KeySet::from_json(&key_set.to_json().unwrap()).unwrap();

    assert_eq!(restored.jwks(), key_set.jwks());
    let verifier = verifier_for(&restored);
    assert!(verifier.verify(&old_token.token, &[AUDIENCE], NOW).is_ok());
    let new_token = mint_with(&restored, AUDIENCE, NOW);
    assert!(
        verifier_for(&key_set)
            .verify(&new_token.token, &[AUDIENCE], NOW)
            .is_ok()
    );
}

#[test]
fn debug_output_hides_keys_and_tokens() {
    let mut key_set = KeySet::new(SigningKey::generate(NOW).unwrap()).unwrap();
    key_set
        .rotate(SigningKey::generate(NOW).unwrap(), NOW)
        .unwrap();
    let minted = mint_with(&key_set, AUDIENCE, NOW);
    let stored = key_set.to_json().unwrap();
    let secrets: Vec<String> = stored
        .split("\\n")
        .filter(|line| line.len() >= 32 && !line.contains("-----"))
        .map(str::to_owned)
        .collect();
    assert!(
        secrets.len() >= 4,
        "no PEM lines found in the stored key set"
    );

    let debug_outputs = [
        format!("{key_set:?}"),
        format!("{:?}", key_set.current()),
        format!("{:?}", key_set.retired()),
        format!("{minted:?}"),
    ];

    for debug in &debug_outputs {
        for secret in &secrets {
            assert!(!debug.contains(&secret[..32]), "key material in {debug}");
        }
        for part in minted.token.split('.') {
            assert!(!debug.contains(part), "token in {debug}");
        }
    }
    assert!(debug_outputs[0].contains(key_set.current().kid()));
}

#[test]
fn verifier_rejects_unsupported_jwks_entries() {
    let good = SigningKey::generate(NOW).unwrap().public_jwk();
    let trust_domain = TrustDomain::new("example.org").unwrap();
    let mut off_curve = good.clone();
    off_curve.y = common::b64(&[7; 32]);
    let mut short_x = good.clone();
    short_x.x = common::b64(&[7; 31]);
    let mut padded_x = good.clone();
    padded_x.x.push('=');

    let cases: Vec<(&str, Jwk)> = vec![
        (
            "kty RSA",
            Jwk {
                kty: "RSA".into(),
                ..good.clone()
            },
        ),
        (
            "kty oct",
            Jwk {
                kty: "oct".into(),
                ..good.clone()
            },
        ),
        (
            "crv P-384",
            Jwk {
                crv: "P-384".into(),
                ..good.clone()
            },
        ),
        (
            "alg ES384",
            Jwk {
                alg: "ES384".into(),
                ..good.clone()
            },
        ),
        (
            "alg HS256",
            Jwk {
                alg: "HS256".into(),
                ..good.clone()
            },
        ),
        (
            "alg none",
            Jwk {
                alg: "none".into(),
                ..good.clone()
            },
        ),
        (
            "use enc",
            Jwk {
                key_use: "enc".into(),
                ..good.clone()
            },
        ),
        (
            "empty kid",
            Jwk {
                kid: String::new(),
                ..good.clone()
            },
        ),
        ("point off the curve", off_curve),
        ("short x", short_x),
        ("padded x", padded_x),
    ];

    for (case, jwk) in cases {
        let jwks = Jwks {
            keys: vec![good.clone(), jwk],
        };
        let err = Verifier::new(trust_domain.clone(), &jwks).unwrap_err();
        assert!(
            matches!(err, JwtError::UnsupportedJwk { index: 1, .. }),
            "{case}: {err}"
        );
    }
}

#[test]
fn verifier_rejects_duplicate_kids() {
    let first = SigningKey::generate(NOW).unwrap().public_jwk();
    let mut second = SigningKey::generate(NOW).unwrap().public_jwk();
    second.kid = first.kid.clone();
    let jwks = Jwks {
        keys: vec![first, second],
    };

    let err = Verifier::new(TrustDomain::new("example.org").unwrap(), &jwks).unwrap_err();

    assert!(matches!(err, JwtError::DuplicateKeyId { .. }), "{err}");
}

#[test]
fn verifier_rejects_empty_jwks() {
    let err =
        Verifier::new(TrustDomain::new("example.org").unwrap(), &Jwks::default()).unwrap_err();

    assert!(matches!(err, JwtError::EmptyJwks), "{err}");
}

#[test]
fn jwks_missing_alg_does_not_parse() {
    let jwk = SigningKey::generate(NOW).unwrap().public_jwk();
    let mut json = serde_json::to_value(Jwks { keys: vec![jwk] }).unwrap();
    json["keys"][0].as_object_mut().unwrap().remove("alg");

    assert!(serde_json::from_value::<Jwks>(json).is_err());
}

#[test]
fn openid_configuration_points_at_jwks() {
    let document = openid_configuration(ISSUER, "https://sigil.example.org/.well-known/jwks.json");

    assert_eq!(document["issuer"], ISSUER);
    assert_eq!(
        document["jwks_uri"],
        "https://sigil.example.org/.well-known/jwks.json"
    );
    assert_eq!(
        document["id_token_signing_alg_values_supported"],
        json!(["ES256"])
    );
    assert_eq!(document["response_types_supported"], json!(["id_token"]));
    assert_eq!(document["subject_types_supported"], json!(["public"]));
}
