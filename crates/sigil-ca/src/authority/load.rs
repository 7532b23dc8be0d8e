//! Reading a CA certificate into the facts the authority needs to sign with it.

use rcgen::string::{BmpString, Ia5String, PrintableString, TeletexString, UniversalString};
use rcgen::{DistinguishedName, DnType, DnValue, KeyUsagePurpose};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::{CaError, serial, x509};

/// Facts of a CA certificate that signing with it requires.
pub(crate) struct CaFacts {
    pub(crate) subject: DistinguishedName,
    pub(crate) common_name: String,
    pub(crate) subject_key_id: Vec<u8>,
    pub(crate) key_usages: Vec<KeyUsagePurpose>,
    pub(crate) subject_der: Vec<u8>,
    pub(crate) spki_der: Vec<u8>,
    pub(crate) not_before: OffsetDateTime,
    pub(crate) not_after: OffsetDateTime,
    pub(crate) serial_hex: String,
}

impl CaFacts {
    /// Reads a CA certificate, rejecting one that is not a CA allowed to sign certificates and
    /// CRLs or whose subject rcgen cannot reproduce.
    pub(crate) fn read(certificate_der: &[u8]) -> Result<Self, CaError> {
        let certificate = x509::parse_certificate(certificate_der)?;

        check_is_ca(&certificate)?;
        let key_usages = signing_key_usages(&certificate)?;
        let subject_key_id = x509::subject_key_identifier(&certificate)?
            .ok_or_else(|| invalid("the subject key identifier extension is missing"))?
            .to_vec();
        let subject = distinguished_name(certificate.subject())?;

        let validity = certificate.validity();
        Ok(Self {
            subject,
            common_name: common_name(certificate.subject()),
            subject_key_id,
            key_usages,
            subject_der: certificate.subject().as_raw().to_vec(),
            spki_der: certificate.public_key().raw.to_vec(),
            not_before: validity.not_before.to_datetime(),
            not_after: validity.not_after.to_datetime(),
            serial_hex: serial::to_hex(certificate.raw_serial()),
        })
    }
}

fn invalid(reason: &str) -> CaError {
    CaError::InvalidCaCertificate {
        reason: reason.to_owned(),
    }
}

fn check_is_ca(certificate: &X509Certificate<'_>) -> Result<(), CaError> {
    let is_ca = x509::basic_constraints(certificate)?.is_some_and(|constraints| constraints.ca);

    if !is_ca {
        return Err(invalid("basicConstraints does not mark it as a CA"));
    }

    Ok(())
}

/// Returns the key usages, which must include keyCertSign and cRLSign.
fn signing_key_usages(certificate: &X509Certificate<'_>) -> Result<Vec<KeyUsagePurpose>, CaError> {
    let usage = x509::key_usage(certificate)?
        .ok_or_else(|| invalid("the key usage extension is missing"))?;

    if !usage.key_cert_sign() || !usage.crl_sign() {
        return Err(invalid("key usage lacks keyCertSign or cRLSign"));
    }

    let flags = [
        (usage.digital_signature(), KeyUsagePurpose::DigitalSignature),
        (usage.non_repudiation(), KeyUsagePurpose::ContentCommitment),
        (usage.key_encipherment(), KeyUsagePurpose::KeyEncipherment),
        (usage.data_encipherment(), KeyUsagePurpose::DataEncipherment),
        (usage.key_agreement(), KeyUsagePurpose::KeyAgreement),
        (usage.key_cert_sign(), KeyUsagePurpose::KeyCertSign),
        (usage.crl_sign(), KeyUsagePurpose::CrlSign),
        (usage.encipher_only(), KeyUsagePurpose::EncipherOnly),
        (usage.decipher_only(), KeyUsagePurpose::DecipherOnly),
    ];
    Ok(flags
        .into_iter()
        .filter_map(|(present, purpose)| present.then_some(purpose))
        .collect())
}

fn common_name(name: &X509Name<'_>) -> String {
    name.iter_common_name()
        .next()
        .and_then(|attribute| attribute.as_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Converts a parsed name into rcgen's form, so that certificates issued by this CA carry an
/// issuer name equal to the CA's subject.
///
/// rcgen writes one attribute per RDN in insertion order and keeps one value per attribute
/// type, so multi-valued RDNs and repeated attribute types are rejected.
fn distinguished_name(name: &X509Name<'_>) -> Result<DistinguishedName, CaError> {
    let mut converted = DistinguishedName::new();

    for rdn in name.iter() {
        let mut attributes = rdn.iter();
        let (Some(attribute), None) = (attributes.next(), attributes.next()) else {
            return Err(invalid("its subject has a multi-valued RDN"));
        };

        let dn_type = dn_type(attribute)?;
        if converted.get(&dn_type).is_some() {
            return Err(invalid("its subject repeats an attribute type"));
        }

        converted.push(dn_type, dn_value(attribute)?);
    }

    Ok(converted)
}

fn dn_type(attribute: &AttributeTypeAndValue<'_>) -> Result<DnType, CaError> {
    let components: Vec<u64> = attribute
        .attr_type()
        .iter()
        .ok_or_else(|| invalid("its subject has an attribute type that is not a valid OID"))?
        .collect();

    Ok(DnType::from_oid(&components))
}

fn dn_value(attribute: &AttributeTypeAndValue<'_>) -> Result<DnValue, CaError> {
    let value = attribute.attr_value();
    let data = value.data;
    let unsupported = || invalid("its subject has a value with an unsupported string encoding");
    let text = || std::str::from_utf8(data).map_err(|_| unsupported());

    let converted = match value.header.tag() {
        Tag::Utf8String => DnValue::Utf8String(text()?.to_owned()),
        Tag::PrintableString => {
            DnValue::PrintableString(PrintableString::try_from(text()?).map_err(|_| unsupported())?)
        }
        Tag::Ia5String => {
            DnValue::Ia5String(Ia5String::try_from(text()?).map_err(|_| unsupported())?)
        }
        Tag::T61String => {
            DnValue::TeletexString(TeletexString::try_from(text()?).map_err(|_| unsupported())?)
        }
        Tag::BmpString => {
            DnValue::BmpString(BmpString::from_utf16be(data.to_vec()).map_err(|_| unsupported())?)
        }
        Tag::UniversalString => DnValue::UniversalString(
            UniversalString::from_utf32be(data.to_vec()).map_err(|_| unsupported())?,
        ),
        _ => return Err(unsupported()),
    };

    Ok(converted)
}
