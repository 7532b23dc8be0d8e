//! Helpers shared by the integration tests: CAs, CSRs for every key type, a small DER writer,
//! and a runner for the `openssl` command-line tool.

#![allow(dead_code)]

pub mod der;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use rcgen::{
    CertificateParams, KeyPair, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
    PKCS_RSA_SHA256, RsaKeySize,
};
use sigil_ca::CaCertificate;
use sigil_core::{SpiffeId, TrustDomain};
use time::{Duration, OffsetDateTime};

pub const TRUST_DOMAIN: &str = "example.org";

pub fn trust_domain() -> TrustDomain {
    TrustDomain::new(TRUST_DOMAIN).unwrap()
}

pub fn spiffe_id(path: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://{TRUST_DOMAIN}{path}")).unwrap()
}

/// A root CA and a signing CA of one trust domain, created by Sigil.
pub struct Authority {
    pub root: CaCertificate,
    pub signing: CaCertificate,
}

impl Authority {
    /// Creates a root valid for 365 days and a signing CA valid for 30 days from `now`.
    pub fn new(trust_domain: &TrustDomain, now: OffsetDateTime) -> Self {
        let root = CaCertificate::create_root(trust_domain, now, Duration::days(365)).unwrap();
        let signing =
            CaCertificate::create_intermediate(&root, trust_domain, now, Duration::days(30))
                .unwrap();

        Self { root, signing }
    }
}

/// The key types Sigil accepts, as rcgen key pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    P256,
    P384,
    Ed25519,
    Rsa2048,
}

impl TestKey {
    pub const ALL: [TestKey; 4] = [
        TestKey::P256,
        TestKey::P384,
        TestKey::Ed25519,
        TestKey::Rsa2048,
    ];

    /// Generates a key pair. RSA key generation is slow, so one RSA key is shared.
    pub fn generate(self) -> KeyPair {
        match self {
            TestKey::P256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap(),
            TestKey::P384 => KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap(),
            TestKey::Ed25519 => KeyPair::generate_for(&PKCS_ED25519).unwrap(),
            TestKey::Rsa2048 => {
                static RSA_PKCS8: OnceLock<Vec<u8>> = OnceLock::new();
                let pkcs8 = RSA_PKCS8.get_or_init(|| {
                    KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048)
                        .unwrap()
                        .serialize_der()
                });
                KeyPair::try_from(pkcs8.as_slice()).unwrap()
            }
        }
    }
}

/// Returns a CSR for `key` with an empty subject and no extensions, in DER.
pub fn csr_der(key: &KeyPair) -> Vec<u8> {
    let params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.serialize_request(key).unwrap().der().to_vec()
}

/// Returns a CSR for `key` with an empty subject and no extensions, in PEM.
pub fn csr_pem(key: &KeyPair) -> String {
    let params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.serialize_request(key).unwrap().pem().unwrap()
}

/// Reads a fixture from `tests/fixtures`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// Runs `openssl` with `args` in `dir`, asserts that it succeeds, and returns its output.
pub fn openssl(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl command-line tool must be installed");

    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "openssl {args:?} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}
