//! `check_csr`: which CSRs are accepted, and the error each rejected CSR gets.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod common;

use common::der::{self, SignedParts};
use common::{TestKey, csr_der, csr_pem, fixture};
use rcgen::PublicKeyData;
use sigil_ca::csr::MAX_CSR_LEN;
use sigil_ca::{CaError, KeyType, check_csr};

fn expected_key_type(key: TestKey) -> KeyType {
    match key {
        TestKey::P256 => KeyType::P256,
        TestKey::P384 => KeyType::P384,
        TestKey::Ed25519 => KeyType::Ed25519,
        TestKey::Rsa2048 => KeyType::Rsa { bits: 2048 },
    }
}

#[test]
fn accepts_every_supported_key_type_as_der() {
    for test_key in TestKey::ALL {
        let key = test_key.generate();

        let public_key = check_csr(&csr_der(&key)).unwrap();

        assert_eq!(public_key.key_type(), expected_key_type(test_key));
        assert_eq!(
            public_key.spki_der(),
            key.subject_public_key_info().as_slice()
        );
    }
}

#[test]
fn accepts_every_supported_key_type_as_pem() {
    for test_key in TestKey::ALL {
        let key = test_key.generate();

        let public_key = check_csr(csr_pem(&key).as_bytes()).unwrap();

        assert_eq!(public_key.key_type(), expected_key_type(test_key));
    }
}

#[test]
fn accepts_pem_with_surrounding_whitespace() {
    let key = TestKey::P256.generate();
    let pem = format!("\n  {}\n\n", csr_pem(&key));

    let public_key = check_csr(pem.as_bytes()).unwrap();

    assert_eq!(public_key.key_type(), KeyType::P256);
}

#[test]
fn accepts_openssl_p256_csr() {
    let public_key = check_csr(&fixture("p256-openssl.csr.pem")).unwrap();

    assert_eq!(public_key.key_type(), KeyType::P256);
}

#[test]
fn accepts_openssl_rsa3072_sha512_csr() {
    let public_key = check_csr(&fixture("rsa3072-sha512.csr.pem")).unwrap();

    assert_eq!(public_key.key_type(), KeyType::Rsa { bits: 3072 });
    assert_eq!(public_key.key_type().to_string(), "RSA-3072");
}

#[test]
fn fingerprint_is_sha256_of_spki() {
    let key = TestKey::P256.generate();

    let public_key = check_csr(&csr_der(&key)).unwrap();

    assert_eq!(
        public_key.fingerprint(),
        sigil_ca::fingerprint::sha256_hex(&key.subject_public_key_info())
    );
    assert_eq!(public_key.fingerprint().len(), 64);
}

fn assert_unsupported_key_type(file: &str, key_type: &str) {
    let error = check_csr(&fixture(file)).unwrap_err();

    let CaError::UnsupportedKeyType { key_type: named } = &error else {
        panic!("{file}: expected UnsupportedKeyType, got {error:?}");
    };
    assert_eq!(named, key_type, "{file}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("unsupported key type {key_type}: use ECDSA P-256")),
        "{file}: {message}"
    );
}

#[test]
fn rejects_rsa_1024() {
    assert_unsupported_key_type("rsa1024.csr.pem", "RSA-1024");
}

#[test]
fn rejects_p224() {
    assert_unsupported_key_type("p224.csr.pem", "EC secp224r1 (P-224)");
}

#[test]
fn rejects_secp256k1() {
    assert_unsupported_key_type("secp256k1.csr.pem", "EC secp256k1");
}

#[test]
fn rejects_p521() {
    assert_unsupported_key_type("p521.csr.pem", "EC secp521r1 (P-521)");
}

#[test]
fn rejects_ed448() {
    assert_unsupported_key_type("ed448.csr.pem", "Ed448");
}

#[test]
fn rejects_explicit_curve_parameters() {
    assert_unsupported_key_type("p256-explicit.csr.pem", "EC with explicit curve parameters");
}

#[test]
fn rejects_sha1_signature_naming_the_oid() {
    let error = check_csr(&fixture("p256-sha1.csr.pem")).unwrap_err();

    let CaError::UnsupportedSignatureAlgorithm { algorithm } = &error else {
        panic!("expected UnsupportedSignatureAlgorithm, got {error:?}");
    };
    assert_eq!(algorithm, "1.2.840.10045.4.1");
    assert!(error.to_string().contains("1.2.840.10045.4.1"), "{error}");
}

/// Replaces the signature algorithm of a valid P-256 CSR.
fn p256_csr_with_algorithm(algorithm: Vec<u8>) -> Vec<u8> {
    let key = TestKey::P256.generate();
    let mut parts = der::split_signed(&csr_der(&key));
    parts.algorithm = algorithm;
    der::join_signed(&parts)
}

#[test]
fn rejects_unknown_signature_algorithm_naming_the_oid() {
    let csr = p256_csr_with_algorithm(der::sequence(&[&der::oid(&[1, 2, 3, 4, 5])]));

    let error = check_csr(&csr).unwrap_err();

    assert!(
        matches!(error, CaError::UnsupportedSignatureAlgorithm { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("unsupported CSR signature algorithm 1.2.3.4.5:"),
        "{error}"
    );
}

#[test]
fn rejects_signature_algorithm_of_another_key_type() {
    let sha256_with_rsa = der::oid(&[1, 2, 840, 113549, 1, 1, 11]);
    let csr = p256_csr_with_algorithm(der::sequence(&[&sha256_with_rsa, &der::null()]));

    let error = check_csr(&csr).unwrap_err();

    let CaError::SignatureAlgorithmMismatch { key_type, .. } = &error else {
        panic!("expected SignatureAlgorithmMismatch, got {error:?}");
    };
    assert_eq!(*key_type, KeyType::P256);
    assert!(
        error.to_string().contains("sha256WithRSAEncryption"),
        "{error}"
    );
    assert!(error.to_string().contains("ECDSA P-256"), "{error}");
}

#[test]
fn rejects_ecdsa_signature_with_other_hash() {
    // ecdsa-with-SHA384 over a CSR that was signed with SHA-256.
    let csr = p256_csr_with_algorithm(der::sequence(&[&der::oid(&[1, 2, 840, 10045, 4, 3, 3])]));

    let error = check_csr(&csr).unwrap_err();

    assert!(matches!(error, CaError::CsrSignatureInvalid), "{error:?}");
}

fn assert_signature_invalid(csr: &[u8], case: &str) {
    let error = check_csr(csr).unwrap_err();

    assert!(
        matches!(error, CaError::CsrSignatureInvalid),
        "{case}: {error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with("CSR self-signature check failed"),
        "{case}: {error}"
    );
}

#[test]
fn rejects_flipped_signature_bytes() {
    for test_key in TestKey::ALL {
        let key = test_key.generate();
        let mut csr = csr_der(&key);

        // The signature's last byte is the last byte of the CSR for every key type.
        let last = csr.len() - 1;
        csr[last] ^= 0x01;

        assert_signature_invalid(&csr, &format!("{test_key:?}"));
    }
}

#[test]
fn rejects_signature_of_another_key() {
    let key = TestKey::P256.generate();
    let other = TestKey::P256.generate();
    let mut parts: SignedParts = der::split_signed(&csr_der(&key));
    parts.signature = der::split_signed(&csr_der(&other)).signature;

    assert_signature_invalid(&der::join_signed(&parts), "signature of another key");
}

#[test]
fn rejects_modified_signed_data() {
    let key = TestKey::Ed25519.generate();
    let params = rcgen::CertificateParams::new(vec!["a.example.org".to_owned()]).unwrap();
    let mut csr = params.serialize_request(&key).unwrap().der().to_vec();

    // Change the requested DNS name, which lies inside the signed data.
    let position = csr
        .windows(13)
        .position(|window| window == b"a.example.org")
        .unwrap();
    csr[position] = b'b';

    assert_signature_invalid(&csr, "modified DNS name");
}

fn assert_malformed(input: &[u8], reason_part: &str) {
    let error = check_csr(input).unwrap_err();

    let CaError::MalformedCsr { reason } = &error else {
        panic!("expected MalformedCsr for {reason_part:?}, got {error:?}");
    };
    assert!(reason.contains(reason_part), "{reason}");
    assert!(error.to_string().starts_with("malformed CSR: "), "{error}");
}

#[test]
fn rejects_empty_input() {
    assert_malformed(b"", "empty");
}

#[test]
fn rejects_garbage_bytes() {
    assert_malformed(b"\x00\x01\x02garbage\xff", "invalid DER");
    assert_malformed(b"hello, this is not a CSR", "invalid DER");
}

#[test]
fn rejects_pem_with_wrong_label() {
    let key = TestKey::P256.generate();
    let pem = csr_pem(&key).replace("CERTIFICATE REQUEST", "CERTIFICATE");

    assert_malformed(pem.as_bytes(), "the PEM label is `CERTIFICATE`");
}

#[test]
fn rejects_pem_with_mismatched_end_line() {
    let key = TestKey::P256.generate();
    let pem = csr_pem(&key).replace("END CERTIFICATE REQUEST", "END PRIVATE KEY");

    assert_malformed(pem.as_bytes(), "does not end with");
}

#[test]
fn rejects_pem_with_bad_base64() {
    let pem = "-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n";

    assert_malformed(pem.as_bytes(), "invalid PEM");
}

#[test]
fn rejects_pem_without_end_line() {
    let key = TestKey::P256.generate();
    let pem = csr_pem(&key);
    let truncated = &pem[..pem.find("-----END").unwrap()];

    assert_malformed(truncated.as_bytes(), "invalid PEM");
}

#[test]
fn rejects_two_pem_blocks() {
    let key = TestKey::P256.generate();
    let pem = csr_pem(&key);
    let twice = format!("{pem}{pem}");

    assert_malformed(twice.as_bytes(), "data follows the PEM block");
}

#[test]
fn rejects_trailing_bytes_after_der() {
    let key = TestKey::P256.generate();
    let mut csr = csr_der(&key);
    csr.push(0);

    assert_malformed(&csr, "1 bytes follow the CSR");
}

#[test]
fn rejects_truncated_der() {
    let key = TestKey::P256.generate();
    let csr = csr_der(&key);

    assert_malformed(&csr[..csr.len() - 10], "invalid DER");
}

#[test]
fn rejects_oversized_input() {
    let input = vec![0x30; MAX_CSR_LEN + 1];

    let error = check_csr(&input).unwrap_err();

    assert!(
        matches!(error, CaError::CsrTooLarge { len, max } if len == MAX_CSR_LEN + 1 && max == MAX_CSR_LEN),
        "{error:?}"
    );
}

/// Replaces the SubjectPublicKeyInfo inside the signed data of a CSR.
fn csr_with_spki(template: &[u8], spki: &[u8]) -> Vec<u8> {
    let parts = der::split_signed(template);
    let (_, info, _) = der::split_tlv(&parts.signed_data);
    let (version_and_subject, rest) = {
        let (_, _, after_version) = der::split_tlv(info);
        let (_, _, after_subject) = der::split_tlv(after_version);
        (&info[..info.len() - after_subject.len()], after_subject)
    };
    let (_, _, attributes) = der::split_tlv(rest);

    let signed_data = der::sequence(&[version_and_subject, spki, attributes]);
    der::join_signed(&SignedParts {
        signed_data,
        ..parts
    })
}

#[test]
fn rejects_compressed_p256_point() {
    let key = TestKey::P256.generate();
    let point = key.public_key_raw();
    let mut compressed = vec![0x02 | (point[64] & 1)];
    compressed.extend_from_slice(&point[1..33]);
    let algorithm = der::sequence(&[
        &der::oid(&[1, 2, 840, 10045, 2, 1]),
        &der::oid(&[1, 2, 840, 10045, 3, 1, 7]),
    ]);
    let spki = der::sequence(&[&algorithm, &der::bit_string(&compressed)]);

    let error = check_csr(&csr_with_spki(&csr_der(&key), &spki)).unwrap_err();

    assert!(
        matches!(&error, CaError::InvalidPublicKey { key_type, .. } if key_type == "ECDSA P-256"),
        "{error:?}"
    );
}

#[test]
fn rejects_rsa_key_without_null_parameters() {
    let key = TestKey::Rsa2048.generate();
    let algorithm = der::sequence(&[&der::oid(&[1, 2, 840, 113549, 1, 1, 1])]);
    let spki = der::sequence(&[&algorithm, &der::bit_string(key.public_key_raw())]);

    let error = check_csr(&csr_with_spki(&csr_der(&key), &spki)).unwrap_err();

    assert!(
        matches!(&error, CaError::InvalidPublicKey { key_type, reason } if key_type == "RSA-2048" && reason.contains("canonical")),
        "{error:?}"
    );
}

#[test]
fn rejects_x25519_key_naming_it() {
    let key = TestKey::Ed25519.generate();
    let algorithm = der::sequence(&[&der::oid(&[1, 3, 101, 110])]);
    let spki = der::sequence(&[&algorithm, &der::bit_string(key.public_key_raw())]);

    let error = check_csr(&csr_with_spki(&csr_der(&key), &spki)).unwrap_err();

    assert!(
        matches!(&error, CaError::UnsupportedKeyType { key_type } if key_type == "X25519"),
        "{error:?}"
    );
}

#[test]
fn rejects_unknown_key_algorithm_naming_the_oid() {
    let key = TestKey::Ed25519.generate();
    let algorithm = der::sequence(&[&der::oid(&[1, 2, 3, 4])]);
    let spki = der::sequence(&[&algorithm, &der::bit_string(key.public_key_raw())]);

    let error = check_csr(&csr_with_spki(&csr_der(&key), &spki)).unwrap_err();

    assert_eq!(
        error.to_string(),
        "unsupported key type with algorithm 1.2.3.4: use ECDSA P-256, P-384, Ed25519 or RSA of \
         2048 to 8192 bits"
    );
}
