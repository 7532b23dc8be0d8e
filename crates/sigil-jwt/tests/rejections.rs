//! Every token the verifier must reject, each crafted by hand and signed where a valid signature
//! matters, so that the rejection comes from the rule under test and not from a bad signature.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers abort the test on any failure"
)]

mod common;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use common::{AUDIENCE, Fixture, NOW, b64, sign_es256, sign_hs256, standard_claims, unb64};
use serde_json::{Value, json};
use sigil_jwt::{CLOCK_SKEW_LEEWAY, JwtError, MAX_TOKEN_LEN};
use time::Duration;

/// Verifies `token` with the fixture, expects an error, and checks that the error's message and
/// `Debug` output quote no part of the token.
fn reject(fixture: &Fixture, token: &str) -> JwtError {
    let err = fixture.verify(token).unwrap_err();
    let message = err.to_string();
    let debug = format!("{err:?}");
    for part in token.split('.').filter(|part| part.len() >= 8) {
        assert!(
            !message.contains(part),
            "message quotes the token: {message}"
        );
        assert!(!debug.contains(part), "Debug quotes the token: {debug}");
    }
    err
}

fn claims_with(name: &str, value: Value) -> Value {
    let mut claims = standard_claims();
    claims[name] = value;
    claims
}

fn claims_without(name: &str) -> Value {
    let mut claims = standard_claims();
    claims.as_object_mut().unwrap().remove(name);
    claims
}

// Algorithms: `none`, HMAC and mismatches.

#[test]
fn alg_none_with_empty_signature_rejected() {
    let fixture = Fixture::new();
    let minted = fixture.mint();
    let (signing_input, _) = minted.token.rsplit_once('.').unwrap();
    let (_, payload) = signing_input.split_once('.').unwrap();

    for header in [
        json!({"alg": "none", "typ": "JWT"}),
        json!({"alg": "none", "kid": fixture.kid(), "typ": "JWT"}),
        json!({"alg": "NONE", "kid": fixture.kid()}),
    ] {
        let token = format!("{}.{payload}.", b64(header.to_string().as_bytes()));
        let err = reject(&fixture, &token);
        assert!(matches!(err, JwtError::AlgorithmNone), "{header}: {err}");
    }
}

#[test]
fn alg_none_with_original_signature_rejected() {
    let fixture = Fixture::new();
    let minted = fixture.mint();
    let header = json!({"alg": "none", "kid": fixture.kid(), "typ": "JWT"});

    let token = common::with_header(&minted.token, &header.to_string());

    let err = reject(&fixture, &token);
    assert!(matches!(err, JwtError::AlgorithmNone), "{err}");
}

#[test]
fn hs256_with_public_key_pem_rejected() {
    let fixture = Fixture::new();
    let pem = common::public_key_pem(&fixture.jwk());
    let payload = standard_claims().to_string();

    for alg in ["HS256", "HS384", "HS512"] {
        let header = json!({"alg": alg, "kid": fixture.kid(), "typ": "JWT"}).to_string();
        let token = sign_hs256(pem.as_bytes(), &header, &payload);

        let err = reject(&fixture, &token);

        assert!(matches!(err, JwtError::HmacAlgorithm), "{alg}: {err}");
    }
}

#[test]
fn hs256_with_jwk_json_rejected() {
    let fixture = Fixture::new();
    let jwk_json = serde_json::to_string(&fixture.jwk()).unwrap();
    let jwks_json = serde_json::to_string(&fixture.key_set.jwks()).unwrap();
    let header = json!({"alg": "HS256", "kid": fixture.kid(), "typ": "JWT"}).to_string();
    let payload = standard_claims().to_string();

    for secret in [jwk_json, jwks_json] {
        let token = sign_hs256(secret.as_bytes(), &header, &payload);

        let err = reject(&fixture, &token);

        assert!(matches!(err, JwtError::HmacAlgorithm), "{err}");
    }
}

#[test]
fn hs256_without_kid_rejected() {
    let fixture = Fixture::new();
    let pem = common::public_key_pem(&fixture.jwk());
    let header = json!({"alg": "HS256", "typ": "JWT"}).to_string();

    let token = sign_hs256(pem.as_bytes(), &header, &standard_claims().to_string());

    let err = reject(&fixture, &token);
    assert!(matches!(err, JwtError::HmacAlgorithm), "{err}");
}

#[test]
fn alg_other_than_key_algorithm_rejected() {
    let fixture = Fixture::new();
    let payload = standard_claims().to_string();

    for alg in [
        "ES384", "ES512", "RS256", "PS256", "EdDSA", "es256", "ES256 ",
    ] {
        let header = json!({"alg": alg, "kid": fixture.kid(), "typ": "JWT"}).to_string();
        let token = fixture.sign(&header, &payload);

        let err = reject(&fixture, &token);

        assert!(
            matches!(err, JwtError::AlgorithmMismatch { expected: "ES256" }),
            "{alg}: {err}"
        );
    }
}

// Header: `kid`, `crit`, `typ` and duplicate members.

#[test]
fn missing_kid_rejected() {
    let fixture = Fixture::new();
    let header = json!({"alg": "ES256", "typ": "JWT"}).to_string();

    let token = fixture.sign(&header, &standard_claims().to_string());

    let err = reject(&fixture, &token);
    assert!(matches!(err, JwtError::MissingKeyId), "{err}");
}

#[test]
fn unknown_kid_rejected() {
    let fixture = Fixture::new();
    let header = json!({"alg": "ES256", "kid": "no-such-key", "typ": "JWT"}).to_string();

    let token = fixture.sign(&header, &standard_claims().to_string());

    let err = reject(&fixture, &token);
    assert!(matches!(err, JwtError::UnknownKeyId { .. }), "{err}");
    assert!(err.to_string().contains("`no-such-key`"), "{err}");
}

#[test]
fn crit_header_rejected() {
    let fixture = Fixture::new();
    let payload = standard_claims().to_string();

    for crit in [json!(["exp"]), json!(["b64"]), json!([])] {
        let header = json!({
            "alg": "ES256",
            "kid": fixture.kid(),
            "typ": "JWT",
            "crit": crit,
            "exp": 1,
            "b64": false,
        })
        .to_string();
        let token = fixture.sign(&header, &payload);

        let err = reject(&fixture, &token);

        assert!(matches!(err, JwtError::CriticalHeader), "{crit}: {err}");
    }
}

#[test]
fn unexpected_typ_rejected() {
    let fixture = Fixture::new();
    let header = json!({"alg": "ES256", "kid": fixture.kid(), "typ": "at+jwt"}).to_string();

    let token = fixture.sign(&header, &standard_claims().to_string());

    let err = reject(&fixture, &token);
    assert!(matches!(err, JwtError::UnsupportedType), "{err}");
}

#[test]
fn duplicate_header_member_rejected() {
    let fixture = Fixture::new();
    let header = format!(
        r#"{{"alg":"ES256","kid":"{kid}","typ":"JWT","kid":"{kid}"}}"#,
        kid = fixture.kid()
    );

    let token = fixture.sign(&header, &standard_claims().to_string());

    let err = reject(&fixture, &token);
    assert!(
        matches!(err, JwtError::DuplicateMember { part: "header" }),
        "{err}"
    );
}

#[test]
fn duplicate_payload_member_rejected() {
    let fixture = Fixture::new();
    let header = common::standard_header(fixture.kid()).to_string();
    let claims = standard_claims().to_string();

    for extra in [
        r#""sub":"spiffe://example.org/admin/root""#,
        r#""s\u0075b":"spiffe://example.org/admin/root""#,
        r#""aud":"https://crm.example.org""#,
    ] {
        let payload = format!("{},{extra}}}", claims.strip_suffix('}').unwrap());
        let token = fixture.sign(&header, &payload);

        let err = reject(&fixture, &token);

        assert!(
            matches!(err, JwtError::DuplicateMember { part: "payload" }),
            "{extra}: {err}"
        );
    }
}

// Signature.

#[test]
fn altered_signature_rejected() {
    let fixture = Fixture::new();
    let minted = fixture.mint();
    let (signing_input, signature) = minted.token.rsplit_once('.').unwrap();
    let mut bytes = unb64(signature);
    bytes[10] ^= 0x01;

    let token = format!("{signing_input}.{}", b64(&bytes));

    let err = reject(&fixture, &token);
    assert!(matches!(err, JwtError::BadSignature), "{err}");
}

#[test]
fn signature_by_other_key_rejected() {
    let fixture = Fixture::new();
    let document =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let other_key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, document.as_ref()).unwrap();
    let header = common::standard_header(fixture.kid()).to_string();

    let token = sign_es256(&other_key, &header, &standard_claims().to_string());

    let err = reject(&fixture, &token);
    assert!(matches!(err, JwtError::BadSignature), "{err}");
}

#[test]
fn empty_or_truncated_signature_rejected() {
    let fixture = Fixture::new();
    let minted = fixture.mint();
    let (signing_input, signature) = minted.token.rsplit_once('.').unwrap();
    let bytes = unb64(signature);

    for signature in [
        String::new(),
        b64(&bytes[..63]),
        b64(&[bytes.clone(), vec![0]].concat()),
    ] {
        let token = format!("{signing_input}.{signature}");
        let err = reject(&fixture, &token);
        assert!(matches!(err, JwtError::BadSignature), "{err}");
    }
}

#[test]
fn der_encoded_signature_rejected() {
    let fixture = Fixture::new();
    let minted = fixture.mint();
    let (signing_input, signature) = minted.token.rsplit_once('.').unwrap();
    let bytes = unb64(signature);
    // An ASN.1 DER ECDSA signature of the same r and s, as some libraries wrongly emit.
    let integer = |value: &[u8]| {
        let mut encoded = vec![0x02];
        if value[0] & 0x80 != 0 {
            encoded.extend([33, 0]);
        } else {
            encoded.push(32);
        }
        encoded.extend(value);
        encoded
    };
    let body = [integer(&bytes[..32]), integer(&bytes[32..])].concat();
    let der = [vec![0x30, u8::try_from(body.len()).unwrap()], body].concat();

    let token = format!("{signing_input}.{}", b64(&der));

    let err = reject(&fixture, &token);
    assert!(matches!(err, JwtError::BadSignature), "{err}");
}

// Structure and size.

#[test]
fn wrong_part_count_rejected() {
    let fixture = Fixture::new();
    let minted = fixture.mint();
    let (signing_input, _) = minted.token.rsplit_once('.').unwrap();

    for token in [
        signing_input.to_owned(),
        format!("{}.extra", minted.token),
        format!("{}.", minted.token),
        String::new(),
    ] {
        let err = reject(&fixture, &token);
        assert!(matches!(err, JwtError::Malformed { .. }), "{err}");
    }
}

#[test]
fn padded_signature_rejected() {
    let fixture = Fixture::new();
    let minted = fixture.mint();

    // A 64-byte signature needs two padding characters in standard base64.
    let err = reject(&fixture, &format!("{}==", minted.token));

    assert!(matches!(err, JwtError::Malformed { .. }), "{err}");
}

#[test]
fn signed_payload_that_is_not_an_object_rejected() {
    let fixture = Fixture::new();
    let header = common::standard_header(fixture.kid()).to_string();

    for payload in ["[]", "\"claims\"", "not json", ""] {
        let token = fixture.sign(&header, payload);
        let err = reject(&fixture, &token);
        assert!(
            matches!(err, JwtError::Malformed { .. }),
            "{payload}: {err}"
        );
    }
}

#[test]
fn oversized_token_rejected() {
    let fixture = Fixture::new();
    let claims = claims_with("padding", json!("x".repeat(MAX_TOKEN_LEN)));

    let token = fixture.sign_claims(&claims);

    let err = reject(&fixture, &token);
    assert!(matches!(err, JwtError::TokenTooLarge { .. }), "{err}");
}

// Audience.

#[test]
fn audience_of_other_service_rejected() {
    let fixture = Fixture::new();

    for aud in [
        json!("https://billing.example.org"),
        json!(["https://billing.example.org", "https://hr.example.org"]),
        json!([]),
        json!("https://crm.example.org/"),
        json!("HTTPS://CRM.EXAMPLE.ORG"),
    ] {
        let token = fixture.sign_claims(&claims_with("aud", aud.clone()));
        let err = reject(&fixture, &token);
        assert!(matches!(err, JwtError::AudienceMismatch), "{aud}: {err}");
    }
}

#[test]
fn minted_audience_checked() {
    let fixture = Fixture::new();
    let minted = common::mint_with(&fixture.key_set, "https://billing.example.org", NOW);

    let err = reject(&fixture, &minted.token);

    assert!(matches!(err, JwtError::AudienceMismatch), "{err}");
}

#[test]
fn missing_aud_rejected() {
    let fixture = Fixture::new();

    let token = fixture.sign_claims(&claims_without("aud"));

    let err = reject(&fixture, &token);
    assert!(
        matches!(err, JwtError::MissingClaim { claim: "aud" }),
        "{err}"
    );
}

#[test]
fn aud_of_wrong_type_rejected() {
    let fixture = Fixture::new();

    for aud in [
        json!(null),
        json!(1),
        json!({"aud": AUDIENCE}),
        json!([AUDIENCE, 1]),
        json!([[AUDIENCE]]),
    ] {
        let token = fixture.sign_claims(&claims_with("aud", aud.clone()));
        let err = reject(&fixture, &token);
        assert!(
            matches!(err, JwtError::InvalidClaimType { claim: "aud", .. }),
            "{aud}: {err}"
        );
    }
}

#[test]
fn empty_expected_audience_list_rejected() {
    let fixture = Fixture::new();
    let minted = fixture.mint();

    let err = fixture
        .verifier
        .verify(&minted.token, &[], NOW)
        .unwrap_err();
    assert!(matches!(err, JwtError::NoExpectedAudience), "{err}");

    let err = fixture
        .verifier
        .verify(&minted.token, &[""], NOW)
        .unwrap_err();
    assert!(matches!(err, JwtError::NoExpectedAudience), "{err}");
}

#[test]
fn any_expected_audience_accepted() {
    let fixture = Fixture::new();
    let claims = claims_with("aud", json!(["https://other.example.org", AUDIENCE]));
    let token = fixture.sign_claims(&claims);

    let verified = fixture
        .verifier
        .verify(&token, &["https://billing.example.org", AUDIENCE], NOW)
        .unwrap();

    assert_eq!(verified.audience, ["https://other.example.org", AUDIENCE]);
}

// Times.

#[test]
fn missing_exp_rejected() {
    let fixture = Fixture::new();

    let token = fixture.sign_claims(&claims_without("exp"));

    let err = reject(&fixture, &token);
    assert!(
        matches!(err, JwtError::MissingClaim { claim: "exp" }),
        "{err}"
    );
}

#[test]
fn exp_of_wrong_type_rejected() {
    let fixture = Fixture::new();
    let exp = NOW.unix_timestamp() + 300;

    for value in [
        json!(exp.to_string()),
        json!(exp as f64 + 0.5),
        json!(exp as f64),
        json!(true),
        json!(null),
        json!([exp]),
        json!(u64::MAX),
        json!(i64::MAX),
    ] {
        let token = fixture.sign_claims(&claims_with("exp", value.clone()));
        let err = reject(&fixture, &token);
        assert!(
            matches!(err, JwtError::InvalidClaimType { claim: "exp", .. }),
            "{value}: {err}"
        );
    }
}

#[test]
fn exp_written_as_exponent_rejected() {
    let fixture = Fixture::new();
    let exp = NOW.unix_timestamp() + 300;
    let payload = standard_claims()
        .to_string()
        .replace(&format!("\"exp\":{exp}"), &format!("\"exp\":{exp}e0"));
    assert!(payload.contains("e0"), "the claim was not rewritten");

    let token = fixture.sign(
        &common::standard_header(fixture.kid()).to_string(),
        &payload,
    );

    let err = reject(&fixture, &token);
    assert!(
        matches!(err, JwtError::InvalidClaimType { claim: "exp", .. }),
        "{err}"
    );
}

#[test]
fn nbf_and_iat_of_wrong_type_rejected() {
    let fixture = Fixture::new();
    let iat = NOW.unix_timestamp();

    for claim in ["nbf", "iat"] {
        for value in [
            json!(iat.to_string()),
            json!(iat as f64 + 0.25),
            json!(null),
        ] {
            let token = fixture.sign_claims(&claims_with(claim, value.clone()));
            let err = reject(&fixture, &token);
            assert!(
                matches!(err, JwtError::InvalidClaimType { claim: c, .. } if c == claim),
                "{claim} = {value}: {err}"
            );
        }
    }
}

#[test]
fn missing_iat_rejected() {
    let fixture = Fixture::new();

    let token = fixture.sign_claims(&claims_without("iat"));

    let err = reject(&fixture, &token);
    assert!(
        matches!(err, JwtError::MissingClaim { claim: "iat" }),
        "{err}"
    );
}

#[test]
fn missing_nbf_accepted() {
    let fixture = Fixture::new();

    let token = fixture.sign_claims(&claims_without("nbf"));

    assert!(fixture.verify(&token).is_ok());
}

#[test]
fn expiry_allows_leeway_only() {
    let fixture = Fixture::new();
    let minted = fixture.mint();
    let last_accepted = minted.expires_at + CLOCK_SKEW_LEEWAY - Duration::SECOND;
    let first_rejected = minted.expires_at + CLOCK_SKEW_LEEWAY;

    assert!(
        fixture
            .verifier
            .verify(&minted.token, &[AUDIENCE], last_accepted)
            .is_ok()
    );

    let err = fixture
        .verifier
        .verify(&minted.token, &[AUDIENCE], first_rejected)
        .unwrap_err();
    assert!(matches!(err, JwtError::Expired { .. }), "{err}");
    assert!(err.to_string().contains("request a new token"), "{err}");
}

#[test]
fn future_nbf_rejected_beyond_leeway() {
    let fixture = Fixture::new();
    let iat = NOW.unix_timestamp();
    let leeway = CLOCK_SKEW_LEEWAY.whole_seconds();

    let within = fixture.sign_claims(&claims_with("nbf", json!(iat + leeway)));
    assert!(fixture.verify(&within).is_ok());

    let beyond = fixture.sign_claims(&claims_with("nbf", json!(iat + leeway + 1)));
    let err = reject(&fixture, &beyond);
    assert!(
        matches!(err, JwtError::NotYetValid { claim: "nbf", .. }),
        "{err}"
    );
}

#[test]
fn future_iat_rejected_beyond_leeway() {
    let fixture = Fixture::new();
    let iat = NOW.unix_timestamp() + CLOCK_SKEW_LEEWAY.whole_seconds() + 1;
    let claims = claims_with("iat", json!(iat));

    let token = fixture.sign_claims(&claims);

    let err = reject(&fixture, &token);
    assert!(
        matches!(err, JwtError::NotYetValid { claim: "iat", .. }),
        "{err}"
    );
}

// Subject and the other claims.

#[test]
fn missing_sub_rejected() {
    let fixture = Fixture::new();

    let token = fixture.sign_claims(&claims_without("sub"));

    let err = reject(&fixture, &token);
    assert!(
        matches!(err, JwtError::MissingClaim { claim: "sub" }),
        "{err}"
    );
}

#[test]
fn sub_not_spiffe_id_rejected() {
    let fixture = Fixture::new();

    for sub in [
        "crm-bot",
        "spiffe://example.org",
        "spiffe://example.org/",
        "spiffe://example.org/agent/../admin/root",
        "spiffe://example.org/agent/%63rm",
        "spiffe://Example.org/agent/crm-bot",
        "https://example.org/agent/crm-bot",
    ] {
        let token = fixture.sign_claims(&claims_with("sub", json!(sub)));
        let err = reject(&fixture, &token);
        assert!(matches!(err, JwtError::InvalidSubject(_)), "{sub}: {err}");
    }
}

#[test]
fn sub_in_other_trust_domain_rejected() {
    let fixture = Fixture::new();
    let claims = claims_with("sub", json!("spiffe://evil.example/agent/crm-bot"));

    let token = fixture.sign_claims(&claims);

    let err = reject(&fixture, &token);
    assert!(
        matches!(&err, JwtError::ForeignTrustDomain { subject_trust_domain, .. }
            if subject_trust_domain == "evil.example"),
        "{err}"
    );
}

#[test]
fn sub_in_trust_domain_with_same_prefix_rejected() {
    let fixture = Fixture::new();
    let claims = claims_with("sub", json!("spiffe://example.org.evil/agent/crm-bot"));

    let token = fixture.sign_claims(&claims);

    let err = reject(&fixture, &token);
    assert!(matches!(err, JwtError::ForeignTrustDomain { .. }), "{err}");
}

#[test]
fn non_string_claims_rejected() {
    let fixture = Fixture::new();

    for (claim, value) in [
        ("sub", json!(["spiffe://example.org/agent/crm-bot"])),
        ("iss", json!(1)),
        ("owner", json!({"email": "alice@example.org"})),
        ("jti", json!(7)),
        ("jti", json!("")),
    ] {
        let token = fixture.sign_claims(&claims_with(claim, value.clone()));
        let err = reject(&fixture, &token);
        assert!(
            matches!(err, JwtError::InvalidClaimType { claim: c, .. } if c == claim),
            "{claim} = {value}: {err}"
        );
    }
}

#[test]
fn missing_jti_rejected() {
    let fixture = Fixture::new();

    let token = fixture.sign_claims(&claims_without("jti"));

    let err = reject(&fixture, &token);
    assert!(
        matches!(err, JwtError::MissingClaim { claim: "jti" }),
        "{err}"
    );
}

#[test]
fn missing_iss_and_owner_accepted() {
    let fixture = Fixture::new();
    let mut claims = claims_without("iss");
    claims.as_object_mut().unwrap().remove("owner");

    let token = fixture.sign_claims(&claims);

    let verified = fixture.verify(&token).unwrap();
    assert_eq!(verified.issuer, None);
    assert_eq!(verified.owner, None);
}
