//! Sigil's certificate authority: CA certificates, CSR checks, X.509-SVID issuance, CRLs and the
//! rules that every verification path of Sigil applies to an SVID.
//!
//! The authority trusts nothing in a CSR except its public key: [`csr::check_csr`] proves that
//! the requester possesses the private key and extracts the key, and [`issue::issue_svid`] builds
//! the certificate from the authority's own inputs. [`verify`] is the one rule set for reading
//! an SVID back, used by the TLS verifier, the parsers and any later gateway.
//!
//! All cryptography runs on aws-lc-rs.

#![forbid(unsafe_code)]

pub mod authority;
pub mod crl;
pub mod csr;
pub mod error;
pub mod fingerprint;
pub mod issue;
pub mod verify;

mod pem;
mod serial;
mod signing_key;
mod validity;
mod x509;

pub use authority::CaCertificate;
pub use crl::{RevokedSerial, build_crl, crl_pem};
pub use csr::{CsrPublicKey, KeyType, check_csr};
pub use error::CaError;
pub use issue::{IssuedCertificate, SvidRequest, issue_svid, issue_with_new_key};
pub use verify::{LeafSvid, svid_from_leaf, verify_chain, verify_svid};
