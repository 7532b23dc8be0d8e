//! The shape rules for an SVID leaf certificate.

use sigil_core::{SpiffeId, TrustDomain};
use x509_parser::certificate::X509Certificate;

use super::LeafSvid;
use crate::{CaError, fingerprint, serial, x509};

/// Checks that `leaf_der` has the shape of an X.509-SVID of `trust_domain` and returns its
/// facts.
///
/// The certificate must have exactly one URI SAN, a SPIFFE ID with a non-empty path in
/// `trust_domain`; basicConstraints CA=false or no basicConstraints; and a key usage extension
/// with digitalSignature and without keyCertSign and cRLSign. This checks no signature and no
/// validity period: see [`super::verify_svid`] for that.
pub fn svid_from_leaf(leaf_der: &[u8], trust_domain: &TrustDomain) -> Result<LeafSvid, CaError> {
    let certificate = x509::parse_certificate(leaf_der)?;

    let spiffe_id = spiffe_id(&certificate, trust_domain)?;
    check_end_entity(&certificate)?;
    check_key_usage(&certificate)?;

    Ok(LeafSvid {
        spiffe_id,
        serial_hex: serial::to_hex(certificate.raw_serial()),
        not_after: certificate.validity().not_after.to_datetime(),
        fingerprint: fingerprint::sha256_hex(leaf_der),
        public_key_fingerprint: fingerprint::sha256_hex(certificate.public_key().raw),
    })
}

fn spiffe_id(
    certificate: &X509Certificate<'_>,
    trust_domain: &TrustDomain,
) -> Result<SpiffeId, CaError> {
    let uris = x509::uri_sans(certificate)?;
    let [uri] = uris.as_slice() else {
        return Err(CaError::UriSanCount {
            uris: uris.iter().map(|uri| (*uri).to_owned()).collect(),
        });
    };

    let spiffe_id = SpiffeId::parse(uri).map_err(|source| CaError::InvalidSpiffeId {
        uri: (*uri).to_owned(),
        source,
    })?;
    if !spiffe_id.is_member_of(trust_domain) {
        return Err(CaError::ForeignTrustDomain {
            spiffe_id: spiffe_id.as_str().to_owned(),
            trust_domain: trust_domain.as_str().to_owned(),
        });
    }

    Ok(spiffe_id)
}

fn check_end_entity(certificate: &X509Certificate<'_>) -> Result<(), CaError> {
    let is_ca = x509::basic_constraints(certificate)?.is_some_and(|constraints| constraints.ca);

    if is_ca {
        return Err(CaError::LeafIsCa);
    }

    Ok(())
}

fn check_key_usage(certificate: &X509Certificate<'_>) -> Result<(), CaError> {
    let usage = x509::key_usage(certificate)?.ok_or(CaError::MissingKeyUsage)?;

    if !usage.digital_signature() {
        return Err(CaError::MissingDigitalSignature);
    }
    if usage.key_cert_sign() {
        return Err(CaError::ForbiddenKeyUsage {
            usage: "keyCertSign",
        });
    }
    if usage.crl_sign() {
        return Err(CaError::ForbiddenKeyUsage { usage: "cRLSign" });
    }

    Ok(())
}
