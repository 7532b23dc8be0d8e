//! Strict readers for the parts of an X.509 certificate that Sigil's rules depend on.
//!
//! x509-parser's convenience getters treat an extension whose content fails to parse as
//! absent (for basicConstraints) or hide entries it could not decode. These readers reject
//! both, so that a malformed extension can never weaken a check.

use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::{
    BasicConstraints, GeneralName, KeyUsage, ParsedExtension, X509Extension,
};
use x509_parser::oid_registry::{
    OID_X509_EXT_BASIC_CONSTRAINTS, OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
    OID_X509_EXT_SUBJECT_KEY_IDENTIFIER, Oid,
};
use x509_parser::prelude::FromDer;

use crate::CaError;

/// Parses one DER certificate with nothing after it.
pub(crate) fn parse_certificate(der: &[u8]) -> Result<X509Certificate<'_>, CaError> {
    let (rest, certificate) =
        X509Certificate::from_der(der).map_err(|error| CaError::MalformedCertificate {
            reason: format!("invalid DER ({error})"),
        })?;

    if !rest.is_empty() {
        return Err(CaError::MalformedCertificate {
            reason: format!("{} bytes follow the certificate", rest.len()),
        });
    }

    Ok(certificate)
}

/// Returns the extension `oid`, or `None` when absent.
///
/// Fails when the extension occurs twice or its content could not be parsed.
fn unique_extension<'a, 'b>(
    certificate: &'a X509Certificate<'b>,
    oid: &Oid<'_>,
    name: &str,
) -> Result<Option<&'a X509Extension<'b>>, CaError> {
    let extension =
        certificate
            .get_extension_unique(oid)
            .map_err(|_| CaError::MalformedCertificate {
                reason: format!("the {name} extension occurs more than once"),
            })?;

    if let Some(ParsedExtension::ParseError { error }) =
        extension.map(|extension| extension.parsed_extension())
    {
        return Err(CaError::MalformedCertificate {
            reason: format!("the {name} extension is invalid ({error})"),
        });
    }

    Ok(extension)
}

fn unexpected(name: &str) -> CaError {
    CaError::MalformedCertificate {
        reason: format!("the {name} extension has unexpected content"),
    }
}

/// Returns the basicConstraints extension, or `None` when absent.
pub(crate) fn basic_constraints<'a>(
    certificate: &'a X509Certificate<'_>,
) -> Result<Option<&'a BasicConstraints>, CaError> {
    const NAME: &str = "basicConstraints";

    match unique_extension(certificate, &OID_X509_EXT_BASIC_CONSTRAINTS, NAME)? {
        None => Ok(None),
        Some(extension) => match extension.parsed_extension() {
            ParsedExtension::BasicConstraints(constraints) => Ok(Some(constraints)),
            _ => Err(unexpected(NAME)),
        },
    }
}

/// Returns the key usage extension, or `None` when absent.
pub(crate) fn key_usage<'a>(
    certificate: &'a X509Certificate<'_>,
) -> Result<Option<&'a KeyUsage>, CaError> {
    const NAME: &str = "key usage";

    match unique_extension(certificate, &OID_X509_EXT_KEY_USAGE, NAME)? {
        None => Ok(None),
        Some(extension) => match extension.parsed_extension() {
            ParsedExtension::KeyUsage(usage) => Ok(Some(usage)),
            _ => Err(unexpected(NAME)),
        },
    }
}

/// Returns the subject key identifier, or `None` when absent.
pub(crate) fn subject_key_identifier<'a>(
    certificate: &'a X509Certificate<'_>,
) -> Result<Option<&'a [u8]>, CaError> {
    const NAME: &str = "subject key identifier";

    match unique_extension(certificate, &OID_X509_EXT_SUBJECT_KEY_IDENTIFIER, NAME)? {
        None => Ok(None),
        Some(extension) => match extension.parsed_extension() {
            ParsedExtension::SubjectKeyIdentifier(identifier) => Ok(Some(identifier.0)),
            _ => Err(unexpected(NAME)),
        },
    }
}

/// Returns every URI in the subject alternative name extension, in order.
pub(crate) fn uri_sans<'a>(certificate: &'a X509Certificate<'_>) -> Result<Vec<&'a str>, CaError> {
    const NAME: &str = "subject alternative name";

    let Some(extension) = unique_extension(certificate, &OID_X509_EXT_SUBJECT_ALT_NAME, NAME)?
    else {
        return Ok(Vec::new());
    };
    let ParsedExtension::SubjectAlternativeName(names) = extension.parsed_extension() else {
        return Err(unexpected(NAME));
    };

    let mut uris = Vec::new();
    for name in &names.general_names {
        match name {
            GeneralName::URI(uri) => uris.push(*uri),
            // An entry that failed to decode could be a URI, so it must not be skipped.
            GeneralName::Invalid(..) => {
                return Err(CaError::MalformedCertificate {
                    reason: "a subject alternative name entry is invalid".to_owned(),
                });
            }
            _ => {}
        }
    }

    Ok(uris)
}
