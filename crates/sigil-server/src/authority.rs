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

/// The root CA, the current signing CA and the signing CAs it replaced.
#[derive(Debug)]
pub struct Authority {
    pub root: CaCertificate,
    pub signing: CaCertificate,
    /// Signing CAs replaced by rotation that had not expired when this authority was loaded or
    /// rotated. Certificates they issued stay valid until they expire, so each of them keeps
    /// signing a CRL.
    pub previous: Vec<CaCertificate>,
}

impl Authority {
    /// Loads the root, the signing CA and the previous signing CAs from the data directory.
    pub fn load(data_dir: &DataDir, now: OffsetDateTime) -> Result<Self, ServerError> {
        Ok(Self {
            root: load_ca(data_dir, &data_dir.root_cert(), &data_dir.root_key())?,
            signing: load_ca(data_dir, &data_dir.signing_cert(), &data_dir.signing_key())?,
            previous: load_previous(data_dir, now)?,
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
    /// The root is unchanged, so the trust bundle stays the same. The replaced signing CA is
    /// kept in `ca/previous/` until it expires, and previous CAs that have expired are deleted.
    pub fn rotate(
        &self,
        data_dir: &DataDir,
        trust_domain: &TrustDomain,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<Self, ServerError> {
        let signing =
            CaCertificate::create_intermediate(&self.root, trust_domain, now, to_time(lifetime))?;

        // The replaced CA is saved before the new one overwrites `ca/signing.*`, so a crash in
        // between never loses the key that signs CRLs for its live certificates.
        let mut previous = Vec::with_capacity(self.previous.len() + 1);
        for ca in std::iter::once(&self.signing).chain(&self.previous) {
            let (cert_path, key_path) = data_dir.previous_signing(ca.serial_hex());
            if ca.not_after() <= now {
                remove_if_present(&cert_path)?;
                remove_if_present(&key_path)?;
                continue;
            }
            save_ca(ca, &cert_path, &key_path)?;
            previous.push(CaCertificate::from_pem(ca.cert_pem(), &ca.key_pem())?);
        }
        save_ca(&signing, &data_dir.signing_cert(), &data_dir.signing_key())?;

        Ok(Self {
            root: CaCertificate::from_pem(self.root.cert_pem(), &self.root.key_pem())?,
            signing,
            previous,
        })
    }

    /// Returns the signing CAs whose certificates may still be valid at `now`: the current one
    /// first, then the previous ones that have not expired.
    pub fn live_signing_cas(&self, now: OffsetDateTime) -> impl Iterator<Item = &CaCertificate> {
        std::iter::once(&self.signing)
            .chain(self.previous.iter().filter(move |ca| ca.not_after() > now))
    }
}

/// Loads the previous signing CAs from `ca/previous/`, skipping expired ones.
fn load_previous(
    data_dir: &DataDir,
    now: OffsetDateTime,
) -> Result<Vec<CaCertificate>, ServerError> {
    let dir = data_dir.previous_signing_dir();
    let entries = match fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(ServerError::io(&dir, err)),
    };
    let mut previous = Vec::new();
    for entry in entries {
        let path = entry.map_err(|err| ServerError::io(&dir, err))?.path();
        if path.extension().is_none_or(|ext| ext != "pem") {
            continue;
        }
        let ca = load_ca(data_dir, &path, &path.with_extension("key"))?;
        if ca.not_after() > now {
            previous.push(ca);
        }
    }
    previous.sort_by_key(|ca| std::cmp::Reverse(ca.not_after()));
    Ok(previous)
}

fn remove_if_present(path: &std::path::Path) -> Result<(), ServerError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(ServerError::io(path, err)),
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
