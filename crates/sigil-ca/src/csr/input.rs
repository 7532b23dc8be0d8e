//! Decoding untrusted CSR input, PEM or DER, into one DER PKCS#10 structure.

use std::borrow::Cow;

use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::pem::parse_x509_pem;
use x509_parser::prelude::FromDer;

use super::MAX_CSR_LEN;
use crate::CaError;

const PEM_LABEL: &str = "CERTIFICATE REQUEST";
const PEM_BEGIN: &[u8] = b"-----BEGIN ";
const PEM_END: &str = "-----END CERTIFICATE REQUEST-----";

fn malformed(reason: impl Into<String>) -> CaError {
    CaError::MalformedCsr {
        reason: reason.into(),
    }
}

/// Returns the DER of a CSR given as one PEM `CERTIFICATE REQUEST` block or as DER.
///
/// Input that starts with a PEM boundary, after optional whitespace, is read as PEM and
/// anything else as DER.
pub(super) fn decode(input: &[u8]) -> Result<Cow<'_, [u8]>, CaError> {
    if input.is_empty() {
        return Err(malformed("the input is empty"));
    }
    if input.len() > MAX_CSR_LEN {
        return Err(CaError::CsrTooLarge {
            len: input.len(),
            max: MAX_CSR_LEN,
        });
    }

    if input.trim_ascii_start().starts_with(PEM_BEGIN) {
        decode_pem(input).map(Cow::Owned)
    } else {
        Ok(Cow::Borrowed(input))
    }
}

fn decode_pem(input: &[u8]) -> Result<Vec<u8>, CaError> {
    // x509-parser skips lines that do not start with the BEGIN boundary, so the leading
    // whitespace goes first.
    let input = input.trim_ascii_start();
    let (rest, pem) =
        parse_x509_pem(input).map_err(|error| malformed(format!("invalid PEM ({error})")))?;

    if pem.label != PEM_LABEL {
        return Err(malformed(format!(
            "the PEM label is `{}`, expected `{PEM_LABEL}`",
            pem.label
        )));
    }

    // x509-parser accepts any END line, so the block's own END line is checked here.
    let block = &input[..input.len() - rest.len()];
    if !block.trim_ascii_end().ends_with(PEM_END.as_bytes()) {
        return Err(malformed(format!(
            "the PEM block does not end with `{PEM_END}`"
        )));
    }
    if !rest.trim_ascii().is_empty() {
        return Err(malformed("data follows the PEM block"));
    }

    Ok(pem.contents)
}

/// Parses a DER PKCS#10 CSR with nothing after it.
pub(super) fn parse(der: &[u8]) -> Result<X509CertificationRequest<'_>, CaError> {
    let (rest, request) = X509CertificationRequest::from_der(der)
        .map_err(|error| malformed(format!("invalid DER ({error})")))?;

    if !rest.is_empty() {
        return Err(malformed(format!("{} bytes follow the CSR", rest.len())));
    }

    let version = request.certification_request_info.version.0;
    if version != 0 {
        return Err(malformed(format!(
            "version {version} is not 0, the only version of PKCS#10"
        )));
    }

    Ok(request)
}
