//! The CA material the authority signs with, loaded from and saved to the data directory.

use std::fs;
use std::time::Duration;

use sigil_ca::CaCertificate;
use sigil_core::TrustDomain;
use time::OffsetDateTime;

use crate::ServerError;
use crate::layout::{DataDir, write_atomic};

/// Default lifetime of the root CA.
pub const ROOT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Default lifetime of a signing CA; it is replaced at half-life.
pub const SIGNING_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

/// The root CA and the current signing CA.
#[derive(Debug)]
pub struct Authority {
    pub root: CaCertificate,
    pub signing: CaCertificate,
}

impl Authority {
    /// Loads the root and signing CAs from the data directory.
    pub fn load(data_dir: &DataDir) -> Result<Self, ServerError> {
        Ok(Self {
            root: load_ca(data_dir, &data_dir.root_cert(), &data_dir.root_key())?,
            signing: load_ca(data_dir, &data_dir.signing_cert(), &data_dir.signing_key())?,
        })
    }

    /// Returns the trust bundle: the root CA certificate in PEM.
    pub fn bundle_pem(&self) -> &str {
        self.root.cert_pem()
    }

    /// Returns `leaf_pem` followed by the signing CA, the chain an SVID is served with.
    pub fn chain_pem(&self, leaf_pem: &str) -> String {
        let mut chain = leaf_pem.trim_end().to_owned();
        chain.push('\n');
        chain.push_str(self.signing.cert_pem());
        chain
    }

    /// Returns a new authority with a fresh signing CA, saved to the data directory.
    ///
    /// The root is unchanged, so the trust bundle stays the same.
    pub fn rotate(
        &self,
        data_dir: &DataDir,
        trust_domain: &TrustDomain,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Self, ServerError> {
        let signing =
            CaCertificate::create_intermediate(&self.root, trust_domain, now, to_time(lifetime))?;
        save_ca(&signing, &data_dir.signing_cert(), &data_dir.signing_key())?;
        Ok(Self {
            root: CaCertificate::from_pem(self.root.cert_pem(), &self.root.key_pem())?,
            signing,
        })
    }
}

/// Writes a CA's certificate (0644) and key (0600).
pub(crate) fn save_ca(
    ca: &CaCertificate,
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
) -> Result<(), ServerError> {
    write_atomic(key_path, ca.key_pem().as_bytes(), true)?;
    write_atomic(cert_path, ca.cert_pem().as_bytes(), false)
}

fn load_ca(
    data_dir: &DataDir,
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
) -> Result<CaCertificate, ServerError> {
    let missing = |path: &std::path::Path, err| {
        ServerError::Config(format!(
            "cannot read {}: {err}; is {} a data directory made by `sigil init`?",
            path.display(),
            data_dir.root().display()
        ))
    };
    let cert = fs::read_to_string(cert_path).map_err(|err| missing(cert_path, err))?;
    let key = zeroize::Zeroizing::new(
        fs::read_to_string(key_path).map_err(|err| missing(key_path, err))?,
    );
    Ok(CaCertificate::from_pem(&cert, &key)?)
}

/// Converts a standard duration to a `time` duration, saturating.
pub(crate) fn to_time(duration: Duration) -> time::Duration {
    time::Duration::try_from(duration).unwrap_or(time::Duration::MAX)
}
