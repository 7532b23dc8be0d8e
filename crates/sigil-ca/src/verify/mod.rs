//! The rules every verification path of Sigil applies to an X.509-SVID: the TLS verifier, the
//! certificate parsers and any later gateway.
//!
//! [`verify_chain`] checks the cryptography and validity period with rustls-webpki,
//! [`svid_from_leaf`] checks the shape the SPIFFE X.509-SVID specification requires of a leaf,
//! and [`verify_svid`] applies both.

mod chain;
mod leaf;

use time::OffsetDateTime;

pub use self::chain::{ChainUsage, verify_chain, verify_chain_for_usage, verify_svid};
pub use self::leaf::svid_from_leaf;

/// The facts of an SVID leaf certificate that passed [`svid_from_leaf`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafSvid {
    /// The SPIFFE ID from the certificate's only URI SAN.
    pub spiffe_id: sigil_core::SpiffeId,
    /// Serial number in serial hex, as in [`crate::IssuedCertificate::serial_hex`].
    pub serial_hex: String,
    /// End of validity.
    pub not_after: OffsetDateTime,
    /// Lowercase hexadecimal SHA-256 of the certificate's DER.
    pub fingerprint: String,
    /// Lowercase hexadecimal SHA-256 of the certificate's SubjectPublicKeyInfo DER.
    pub public_key_fingerprint: String,
}
