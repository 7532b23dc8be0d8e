//! Certificate revocation lists (RFC 5280 section 5) signed by a Sigil CA: the root, for the
//! signing CAs below it, or a signing CA, for the SVIDs it issued.

use rcgen::{CertificateRevocationListParams, KeyIdMethod, RevokedCertParams, SerialNumber};
use time::OffsetDateTime;

use crate::authority::CaCertificate;
use crate::validity::to_certificate_time;
use crate::{CaError, pem, serial};

/// A revoked certificate to list in a CRL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevokedSerial {
    /// Serial number in serial hex, as in [`crate::IssuedCertificate::serial_hex`].
    pub serial_hex: String,
    /// Time of revocation.
    pub revoked_at: OffsetDateTime,
}

/// Builds a CRL signed by `signing` (a signing CA or the root) and returns it in DER.
///
/// The CRL is version 2 with thisUpdate `now`, the given nextUpdate, a CRL number, an
/// authority key identifier equal to the signing CA's subject key identifier, and one entry
/// without a reason code per revoked serial.
pub fn build_crl(
    signing: &CaCertificate,
    revoked: &[RevokedSerial],
    crl_number: u64,
    now: OffsetDateTime,
    next_update: OffsetDateTime,
) -> Result<Vec<u8>, CaError> {
    let this_update = to_certificate_time(now)?;
    let next_update = to_certificate_time(next_update)?;
    if next_update <= this_update {
        return Err(CaError::InvalidCrlWindow {
            this_update,
            next_update,
        });
    }

    let revoked_certs = revoked
        .iter()
        .map(revoked_entry)
        .collect::<Result<Vec<_>, _>>()?;
    let params = CertificateRevocationListParams {
        this_update,
        next_update,
        crl_number: SerialNumber::from_slice(&crl_number.to_be_bytes()),
        issuing_distribution_point: None,
        revoked_certs,
        key_identifier_method: KeyIdMethod::PreSpecified(signing.subject_key_id().to_vec()),
    };

    let crl = params
        .signed_by(signing.issuer())
        .map_err(CaError::rcgen("sign the CRL"))?;
    Ok(crl.der().to_vec())
}

/// Encodes a DER CRL as a PEM `X509 CRL` block, the form nginx's `ssl_crl` and
/// `openssl verify -CRLfile` read.
pub fn crl_pem(der: &[u8]) -> String {
    pem::encode(pem::X509_CRL, der)
}

fn revoked_entry(revoked: &RevokedSerial) -> Result<RevokedCertParams, CaError> {
    Ok(RevokedCertParams {
        serial_number: SerialNumber::from_slice(&serial::from_hex(&revoked.serial_hex)?),
        revocation_time: to_certificate_time(revoked.revoked_at)?,
        reason_code: None,
        invalidity_date: None,
    })
}
