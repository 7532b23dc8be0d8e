//! PEM encoding (RFC 7468) of certificates and private keys.
//!
//! Sigil encodes PEM itself so that a private key's text is written straight into one
//! [`Zeroizing`] heap buffer that never reallocates, so no partial copy is left in freed heap
//! memory.

use zeroize::Zeroizing;

/// PEM label of an X.509 certificate.
pub(crate) const CERTIFICATE: &str = "CERTIFICATE";

/// PEM label of a certificate revocation list (RFC 7468 section 6).
pub(crate) const X509_CRL: &str = "X509 CRL";

/// PEM label of a PKCS#8 private key.
pub(crate) const PRIVATE_KEY: &str = "PRIVATE KEY";

const BASE64_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Bytes per line: 48 bytes encode to the 64 base64 characters RFC 7468 puts on a line.
const BYTES_PER_LINE: usize = 48;

/// Encodes `der` as a PEM block with `label`.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let mut pem = String::with_capacity(encoded_len(label, der.len()));
    write_block(&mut pem, label, der);
    pem
}

/// Encodes secret `der` as a PEM block in a buffer that is zeroized when dropped.
pub(crate) fn encode_secret(label: &str, der: &[u8]) -> Zeroizing<String> {
    // The capacity is exact, so the buffer never reallocates and leaves no copy behind.
    let mut pem = Zeroizing::new(String::with_capacity(encoded_len(label, der.len())));
    write_block(&mut pem, label, der);
    pem
}

fn encoded_len(label: &str, der_len: usize) -> usize {
    let boundaries = "-----BEGIN -----\n".len() + "-----END -----\n".len() + 2 * label.len();
    let lines = der_len.div_ceil(BYTES_PER_LINE);
    let base64 = der_len.div_ceil(3) * 4;

    boundaries + base64 + lines
}

fn write_block(pem: &mut String, label: &str, der: &[u8]) {
    pem.push_str("-----BEGIN ");
    pem.push_str(label);
    pem.push_str("-----\n");

    for line in der.chunks(BYTES_PER_LINE) {
        push_base64(pem, line);
        pem.push('\n');
    }

    pem.push_str("-----END ");
    pem.push_str(label);
    pem.push_str("-----\n");
}

/// Appends the padded standard base64 encoding of `bytes`.
fn push_base64(out: &mut String, bytes: &[u8]) {
    for group in bytes.chunks(3) {
        let byte_at = |index: usize| u32::from(group.get(index).copied().unwrap_or(0));
        let bits = (byte_at(0) << 16) | (byte_at(1) << 8) | byte_at(2);

        // A group of n bytes yields n + 1 significant characters, and `=` pads the rest.
        let significant = group.len() + 1;
        for (position, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if position < significant {
                let sextet = (bits >> shift) & 0x3f;
                out.push(char::from(BASE64_ALPHABET[sextet as usize]));
            } else {
                out.push('=');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_padding_cases() {
        let cases: [(&[u8], &str); 4] = [
            (b"", ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foobar", "Zm9vYmFy"),
        ];

        for (input, expected) in cases {
            let mut out = String::new();
            push_base64(&mut out, input);
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn encode_wraps_at_64_characters() {
        let der: Vec<u8> = (0..=255).collect();

        let pem = encode(CERTIFICATE, &der);

        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines.first(), Some(&"-----BEGIN CERTIFICATE-----"));
        assert_eq!(lines.last(), Some(&"-----END CERTIFICATE-----"));
        assert!(
            lines[1..lines.len() - 1]
                .iter()
                .all(|line| line.len() <= 64)
        );
        assert_eq!(lines[1].len(), 64);
    }

    #[test]
    fn encode_capacity_is_exact() {
        for len in [0, 1, 2, 3, 47, 48, 49, 96, 1000] {
            let der = vec![0xa5; len];

            let pem = encode_secret(PRIVATE_KEY, &der);

            assert_eq!(pem.len(), encoded_len(PRIVATE_KEY, len), "length {len}");
            assert_eq!(pem.capacity(), pem.len(), "length {len}");
        }
    }

    #[test]
    fn encode_round_trips_through_pki_types() {
        use rustls_pki_types::CertificateDer;
        use rustls_pki_types::pem::PemObject;
        let der: Vec<u8> = (0..200u8).collect();

        let pem = encode(CERTIFICATE, &der);

        let decoded = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        assert_eq!(decoded.as_ref(), der.as_slice());
    }
}
