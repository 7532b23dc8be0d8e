//! Benchmark of JWT-SVID minting against its cryptographic floor.
//!
//! `jwt/mint` mints one typical JWT-SVID with `KeySet::mint`: claims serialization, base64url,
//! 128 random bits for `jti` and one ES256 signature. `jwt/raw_es256_sign` signs a message of the
//! same length as that token's signing input with aws-lc-rs directly, the floor `mint` cannot go
//! below. `jwt/jsonwebtoken_sign` signs the same message through `jsonwebtoken::crypto::sign`,
//! which Sigil does not use because it parses the PKCS#8 key again for every signature.
//! `jwt/verify` runs `Verifier::verify` on the minted token, and `jwt/raw_es256_verify` checks the
//! same signature with aws-lc-rs directly.
//!
//! Run with `cargo bench -p sigil-jwt --bench mint`.

#![allow(clippy::unwrap_used, reason = "a benchmark aborts on any failure")]

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
    ParsedPublicKey,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use criterion::{Criterion, criterion_group, criterion_main};
use sigil_core::{Email, SpiffeId, TrustDomain};
use sigil_jwt::{KeySet, MintRequest, SigningKey, Verifier};
use time::{Duration, OffsetDateTime};

fn jwt(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let key_set = KeySet::new(SigningKey::generate(now).unwrap()).unwrap();
    let subject = SpiffeId::parse("spiffe://example.org/agent/crm-bot").unwrap();
    let owner = Email::new("alice@example.org").unwrap();
    let request = MintRequest {
        issuer: "https://sigil.example.org",
        subject: &subject,
        audience: "https://crm.example.org",
        owner: &owner,
        lifetime: Duration::minutes(5),
        now,
    };
    let token = key_set.mint(&request).unwrap().token;
    let signing_input_len = token.rfind('.').unwrap();
    let message = vec![b'a'; signing_input_len];

    let pem = key_set.current().to_pkcs8_pem();
    let der: Vec<u8> = STANDARD
        .decode(
            pem.lines()
                .filter(|line| !line.starts_with("-----"))
                .collect::<String>(),
        )
        .unwrap();
    let key_pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
    let rng = SystemRandom::new();
    let encoding_key = jsonwebtoken::EncodingKey::from_ec_der(&der);

    let verifier =
        Verifier::new(TrustDomain::new("example.org").unwrap(), &key_set.jwks()).unwrap();
    let audiences = ["https://crm.example.org"];
    let public_key =
        ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, key_pair.public_key().as_ref()).unwrap();
    let (signing_input, encoded_signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(encoded_signature).unwrap();

    let mut group = c.benchmark_group("jwt");

    group.bench_function("mint", |b| {
        b.iter(|| black_box(key_set.mint(black_box(&request)).unwrap()))
    });

    group.bench_function("raw_es256_sign", |b| {
        b.iter(|| black_box(key_pair.sign(&rng, black_box(&message)).unwrap()))
    });

    group.bench_function("jsonwebtoken_sign", |b| {
        b.iter(|| {
            black_box(
                jsonwebtoken::crypto::sign(
                    black_box(&message),
                    &encoding_key,
                    jsonwebtoken::Algorithm::ES256,
                )
                .unwrap(),
            )
        })
    });

    group.bench_function("verify", |b| {
        b.iter(|| black_box(verifier.verify(black_box(&token), &audiences, now).unwrap()))
    });

    group.bench_function("raw_es256_verify", |b| {
        b.iter(|| {
            public_key
                .verify_sig(black_box(signing_input.as_bytes()), black_box(&signature))
                .unwrap()
        })
    });

    group.finish();
}

criterion_group!(benches, jwt);
criterion_main!(benches);
