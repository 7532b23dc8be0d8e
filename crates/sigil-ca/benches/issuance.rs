//! Benchmark of SVID issuance against its cryptographic floor.
//!
//! `svid_issuance/issue` runs the whole in-process issuance path for one request: `check_csr`
//! on a PEM ECDSA P-256 CSR, `issue_svid`, and PEM encoding. `svid_issuance/crypto_floor` runs
//! the two public-key operations that path cannot avoid: one P-256 ECDSA verification (the
//! CSR's self-signature) and one P-256 ECDSA signature (the certificate), both with aws-lc-rs
//! over a CSR-sized message. The ratio of the two rates shows the cost of everything else.
//!
//! Run with `cargo bench -p sigil-ca --bench issuance`.

#![allow(clippy::unwrap_used, reason = "a benchmark aborts on any failure")]

use std::hint::black_box;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use criterion::{Criterion, criterion_group, criterion_main};
use rcgen::CertificateParams;
use sigil_ca::{CaCertificate, SvidRequest, check_csr, issue_svid};
use sigil_core::{SpiffeId, TrustDomain};
use time::{Duration, OffsetDateTime};

fn issuance(c: &mut Criterion) {
    let now = OffsetDateTime::now_utc();
    let trust_domain = TrustDomain::new("example.org").unwrap();
    let root = CaCertificate::create_root(&trust_domain, now, Duration::days(365)).unwrap();
    let signing =
        CaCertificate::create_intermediate(&root, &trust_domain, now, Duration::days(30)).unwrap();
    let spiffe_id = SpiffeId::parse("spiffe://example.org/agents/bench").unwrap();

    let client_key = rcgen::KeyPair::generate().unwrap();
    let csr = CertificateParams::new(Vec::<String>::new())
        .unwrap()
        .serialize_request(&client_key)
        .unwrap();
    let csr_pem = csr.pem().unwrap();
    let csr_len = csr.der().len();

    let mut group = c.benchmark_group("svid_issuance");

    group.bench_function("issue", |b| {
        b.iter(|| {
            let public_key = check_csr(black_box(csr_pem.as_bytes())).unwrap();
            let request = SvidRequest {
                spiffe_id: &spiffe_id,
                public_key: &public_key,
                lifetime: Duration::hours(1),
                now,
                dns_names: &[],
                ip_addresses: &[],
            };
            let issued = issue_svid(&signing, &request).unwrap();
            black_box(issued.pem)
        })
    });

    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let signer = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref()).unwrap();
    let message = vec![0x5a; csr_len];
    let signature = signer.sign(&rng, &message).unwrap();
    let verifier = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, signer.public_key().as_ref());

    group.bench_function("crypto_floor", |b| {
        b.iter(|| {
            verifier
                .verify(black_box(&message), signature.as_ref())
                .unwrap();
            black_box(signer.sign(&rng, black_box(&message)).unwrap())
        })
    });

    group.finish();
}

criterion_group!(benches, issuance);
criterion_main!(benches);
