//! Certificate serial numbers: how Sigil generates them and the hexadecimal form it stores.
//!
//! Serial hex is the lowercase hexadecimal of the serial's big-endian magnitude with leading
//! zero bytes removed, or `00` for zero. Every serial Sigil generates is 16 bytes with the top
//! bit clear and the next bit set, so its hex is always exactly 32 digits.

use crate::CaError;

/// Length in bytes of every serial number Sigil generates.
pub(crate) const SERIAL_LEN: usize = 16;

/// Maximum serial length in bytes that RFC 5280 (section 4.1.2.2) allows a CA to use.
const MAX_SERIAL_LEN: usize = 20;

/// Generates a fresh serial number with 126 random bits.
///
/// The top bit is cleared so that DER encodes the value as a positive INTEGER with no leading
/// zero byte, and the next bit is set so that the encoding is always exactly 16 bytes long.
pub(crate) fn random_serial() -> [u8; SERIAL_LEN] {
    let mut serial: [u8; SERIAL_LEN] = rand::random();
    serial[0] = (serial[0] & 0x7f) | 0x40;
    serial
}

/// Formats the content bytes of a DER serial INTEGER as serial hex.
///
/// NOTE: a negative serial, which Sigil never issues, loses its sign here.
pub(crate) fn to_hex(integer_content: &[u8]) -> String {
    let first_nonzero = integer_content.iter().position(|&byte| byte != 0);

    match first_nonzero {
        Some(start) => hex::encode(&integer_content[start..]),
        None => "00".to_owned(),
    }
}

/// Parses serial hex back into big-endian bytes.
pub(crate) fn from_hex(value: &str) -> Result<Vec<u8>, CaError> {
    let invalid = || CaError::InvalidSerial {
        value: value.to_owned(),
    };

    if value.bytes().any(|byte| byte.is_ascii_uppercase()) {
        return Err(invalid());
    }

    let bytes = hex::decode(value).map_err(|_| invalid())?;
    if bytes.is_empty() || bytes.len() > MAX_SERIAL_LEN {
        return Err(invalid());
    }

    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_serial_is_positive_and_full_length() {
        for _ in 0..1000 {
            let serial = random_serial();

            assert_eq!(serial[0] & 0x80, 0, "top bit must be clear");
            assert_eq!(serial[0] & 0x40, 0x40, "second bit must be set");
        }
    }

    #[test]
    fn random_serials_differ() {
        assert_ne!(random_serial(), random_serial());
    }

    #[test]
    fn to_hex_strips_leading_zero_bytes() {
        assert_eq!(to_hex(&[0x00, 0x80, 0x01]), "8001");
    }

    #[test]
    fn to_hex_of_zero() {
        assert_eq!(to_hex(&[0x00]), "00");
        assert_eq!(to_hex(&[]), "00");
    }

    #[test]
    fn from_hex_round_trips_generated_serials() {
        let serial = random_serial();

        let hex = to_hex(&serial);

        assert_eq!(hex.len(), 32);
        assert_eq!(from_hex(&hex).unwrap(), serial.to_vec());
    }

    #[test]
    fn from_hex_rejects_bad_input() {
        for value in ["", "0", "zz", "ABCD", &"00".repeat(21)] {
            let error = from_hex(value).unwrap_err();

            assert!(
                matches!(error, CaError::InvalidSerial { .. }),
                "{value}: {error}"
            );
        }
    }
}
