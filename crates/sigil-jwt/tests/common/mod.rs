//! Helpers shared by the integration tests: a key set with a matching verifier, and builders for
//! tokens that Sigil itself would never mint.

#![allow(dead_code)]
#![allow(
    clippy::unwrap_used,
    reason = "test helpers abort the test on any failure"
)]

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sigil_core::{Email, SpiffeId, TrustDomain};
use sigil_jwt::{Jwk, KeySet, MintRequest, MintedToken, SigningKey, Verifier};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

pub const TRUST_DOMAIN: &str = "example.org";
pub const ISSUER: &str = "https://sigil.example.org";
pub const SUBJECT: &str = "spiffe://example.org/agent/crm-bot";
pub const AUDIENCE: &str = "https://crm.example.org";
pub const OWNER: &str = "alice@example.org";

/// The fixed time at which the tests mint and verify.
pub const NOW: OffsetDateTime = datetime!(2026-05-01 12:00 UTC);

/// A key set with one key, the same key as an aws-lc-rs key pair for crafting tokens, and a
/// verifier for the key set's JWKS.
pub struct Fixture {
    pub key_set: KeySet,
    pub key_pair: EcdsaKeyPair,
    pub verifier: Verifier,
}

impl Fixture {
    pub fn new() -> Self {
        let signing_key = SigningKey::generate(NOW).unwrap();
        let key_pair = key_pair_of(&signing_key);
        let key_set = KeySet::new(signing_key).unwrap();
        let verifier = verifier_for(&key_set);
        Self {
            key_set,
            key_pair,
            verifier,
        }
    }

    pub fn kid(&self) -> &str {
        self.key_set.current().kid()
    }

    pub fn jwk(&self) -> Jwk {
        self.key_set.current().public_jwk()
    }

    /// Mints a 5-minute token for `AUDIENCE` at `NOW`.
    pub fn mint(&self) -> MintedToken {
        mint_with(&self.key_set, AUDIENCE, NOW)
    }

    /// Signs a token with this fixture's key over exactly the given header and payload JSON.
    pub fn sign(&self, header: &str, payload: &str) -> String {
        sign_es256(&self.key_pair, header, payload)
    }

    /// Signs a token with this fixture's key, a standard header and the given claims.
    pub fn sign_claims(&self, claims: &Value) -> String {
        self.sign(
            &standard_header(self.kid()).to_string(),
            &claims.to_string(),
        )
    }

    pub fn verify(&self, token: &str) -> Result<sigil_jwt::VerifiedClaims, sigil_jwt::JwtError> {
        self.verifier.verify(token, &[AUDIENCE], NOW)
    }
}

pub fn verifier_for(key_set: &KeySet) -> Verifier {
    Verifier::new(TrustDomain::new(TRUST_DOMAIN).unwrap(), &key_set.jwks()).unwrap()
}

pub fn mint_with(key_set: &KeySet, audience: &str, now: OffsetDateTime) -> MintedToken {
    let subject = SpiffeId::parse(SUBJECT).unwrap();
    let owner = Email::new(OWNER).unwrap();
    key_set
        .mint(&MintRequest {
            issuer: ISSUER,
            subject: &subject,
            audience,
            owner: &owner,
            lifetime: Duration::minutes(5),
            now,
        })
        .unwrap()
}

/// Reads the private key of a `SigningKey` through its PEM export.
pub fn key_pair_of(key: &SigningKey) -> EcdsaKeyPair {
    let der = pem_body(&key.to_pkcs8_pem());
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap()
}

/// Decodes the base64 body of a single-block PEM.
pub fn pem_body(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).unwrap()
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

pub fn standard_header(kid: &str) -> Value {
    json!({"alg": "ES256", "kid": kid, "typ": "JWT"})
}

/// Returns the claims Sigil mints for `SUBJECT` at `NOW`, valid for 5 minutes.
pub fn standard_claims() -> Value {
    let iat = NOW.unix_timestamp();
    json!({
        "iss": ISSUER,
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "exp": iat + 300,
        "iat": iat,
        "nbf": iat,
        "jti": "AAECAwQFBgcICQoLDA0ODw",
        "owner": OWNER,
    })
}

/// Builds a compact JWS over the exact header and payload text, signed with ES256.
pub fn sign_es256(key_pair: &EcdsaKeyPair, header: &str, payload: &str) -> String {
    let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let signature = key_pair
        .sign(&SystemRandom::new(), signing_input.as_bytes())
        .unwrap();
    format!("{signing_input}.{}", b64(signature.as_ref()))
}

/// Builds a compact JWS signed with HMAC-SHA256 under `secret`.
pub fn sign_hs256(secret: &[u8], header: &str, payload: &str) -> String {
    let signing_input = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let tag = hmac::sign(&key, signing_input.as_bytes());
    format!("{signing_input}.{}", b64(tag.as_ref()))
}

/// Replaces the header of a token, keeping its payload and signature.
pub fn with_header(token: &str, header: &str) -> String {
    let (_, rest) = token.split_once('.').unwrap();
    format!("{}.{rest}", b64(header.as_bytes()))
}

/// Encodes the public key of a JWK as a `PUBLIC KEY` PEM (SubjectPublicKeyInfo, RFC 5480).
pub fn public_key_pem(jwk: &Jwk) -> String {
    // DER prefix of a P-256 SubjectPublicKeyInfo: SEQUENCE { SEQUENCE { id-ecPublicKey,
    // prime256v1 }, BIT STRING (66 bytes, no unused bits) }, followed by the 65-byte point.
    const P256_SPKI_PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.push(0x04);
    der.extend(unb64(&jwk.x));
    der.extend(unb64(&jwk.y));

    let body = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PUBLIC KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}
