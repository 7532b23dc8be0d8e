//! Where Sigil keeps its files inside the data directory.
//!
//! ```text
//! <data-dir>/
//!   config.json          trust domain, listen address, extra TLS names
//!   bundle.pem           trust bundle (the root CA certificate)
//!   sigil.db             SQLite registry and audit log
//!   ca/root.pem|key      root CA (1 year)
//!   ca/signing.pem|key   current signing CA (7 days, rotated at half-life)
//!   ca/previous/         replaced signing CAs, <serial>.pem|key, kept until they expire
//!   server/tls.pem|key   the authority's serving certificate
//!   admin/svid.pem|key   the first admin identity, spiffe://<td>/admin/root
//!   jwt/keys.json        JWT-SVID signing keys, current and retired (mode 0600)
//! ```
//!
//! Key files are written with mode 0600 and every file is replaced atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::ServerError;

/// Paths of the files in a data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Wraps a data directory path; nothing is read or created.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn config(&self) -> PathBuf {
        self.root.join("config.json")
    }
    pub fn bundle(&self) -> PathBuf {
        self.root.join("bundle.pem")
    }
    pub fn database(&self) -> PathBuf {
        self.root.join(sigil_store::DATABASE_FILE)
    }
    pub fn root_cert(&self) -> PathBuf {
        self.root.join("ca/root.pem")
    }
    pub fn root_key(&self) -> PathBuf {
        self.root.join("ca/root.key")
    }
    pub fn signing_cert(&self) -> PathBuf {
        self.root.join("ca/signing.pem")
    }
    pub fn signing_key(&self) -> PathBuf {
        self.root.join("ca/signing.key")
    }
    /// Directory of the signing CAs replaced by rotation that have not expired yet.
    pub fn previous_signing_dir(&self) -> PathBuf {
        self.root.join("ca/previous")
    }
    /// Certificate and key paths of a previous signing CA, named by its serial in hex.
    pub fn previous_signing(&self, serial_hex: &str) -> (PathBuf, PathBuf) {
        let dir = self.previous_signing_dir();
        (
            dir.join(format!("{serial_hex}.pem")),
            dir.join(format!("{serial_hex}.key")),
        )
    }
    pub fn server_cert(&self) -> PathBuf {
        self.root.join("server/tls.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.root.join("server/tls.key")
    }
    pub fn lock(&self) -> PathBuf {
        self.root.join("server/lock")
    }
    /// The address the running authority listens on, written by `sigil serve` so that admin
    /// commands find a server started with `--listen`.
    pub fn listen_file(&self) -> PathBuf {
        self.root.join("server/listen")
    }
    pub fn jwt_keys(&self) -> PathBuf {
        self.root.join("jwt/keys.json")
    }
    pub fn admin_cert(&self) -> PathBuf {
        self.root.join("admin/svid.pem")
    }
    pub fn admin_key(&self) -> PathBuf {
        self.root.join("admin/svid.key")
    }

    /// Reads `config.json`.
    pub fn read_config(&self) -> Result<Config, ServerError> {
        let path = self.config();
        let text = fs::read_to_string(&path).map_err(|err| ServerError::io(&path, err))?;
        serde_json::from_str(&text)
            .map_err(|err| ServerError::Config(format!("{} is not valid: {err}", path.display())))
    }
}

/// Settings written by `sigil init`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    pub trust_domain: String,
    /// Address `sigil serve` listens on unless `--listen` is given.
    pub listen: String,
    /// DNS names and IP addresses the serving certificate covers beyond the loopback names.
    #[serde(default)]
    pub extra_sans: Vec<String>,
}

/// Takes the data directory's exclusive lock, so that two `sigil serve` processes never share one
/// data directory (they would rotate its CAs independently). The lock lasts as long as the file.
pub fn lock_data_dir(data_dir: &DataDir) -> Result<fs::File, ServerError> {
    let path = data_dir.lock();
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|err| ServerError::io(dir, err))?;
    }
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|err| ServerError::io(&path, err))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(ServerError::Config(format!(
            "another `sigil serve` is already running on {}; stop it first, or give this one its \
             own --data-dir",
            data_dir.root().display()
        ))),
        Err(fs::TryLockError::Error(err)) => Err(ServerError::io(&path, err)),
    }
}

/// Refuses private keys that other users can read, as ssh does: a readable CA key lets anyone
/// on the machine issue identities.
#[cfg(unix)]
pub fn check_key_permissions(data_dir: &DataDir) -> Result<(), ServerError> {
    use std::os::unix::fs::PermissionsExt;

    for path in [
        data_dir.root_key(),
        data_dir.signing_key(),
        data_dir.jwt_keys(),
    ] {
        let Ok(metadata) = fs::metadata(&path) else {
            continue;
        };
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(ServerError::Config(format!(
                "{} is readable by other users (mode {mode:o}); run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
    }
    Ok(())
}

#[cfg(not(unix))]
pub fn check_key_permissions(_data_dir: &DataDir) -> Result<(), ServerError> {
    Ok(())
}

/// Writes `contents` to `path` atomically (temporary file, fsync, rename).
///
/// `secret` files get mode 0600 from creation, so the contents are never readable by others.
pub fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> Result<(), ServerError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|err| ServerError::io(dir, err))?;

    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));

    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    set_mode(&mut options, if secret { 0o600 } else { 0o644 });

    let mut file = options
        .open(&tmp)
        .map_err(|err| ServerError::io(&tmp, err))?;
    file.write_all(contents)
        .map_err(|err| ServerError::io(&tmp, err))?;
    file.sync_all().map_err(|err| ServerError::io(&tmp, err))?;
    drop(file);

    fs::rename(&tmp, path).map_err(|err| ServerError::io(path, err))
}

#[cfg(unix)]
fn set_mode(options: &mut fs::OpenOptions, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    options.mode(mode);
}

#[cfg(not(unix))]
fn set_mode(_options: &mut fs::OpenOptions, _mode: u32) {}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn secret_files_are_private() {
        use std::os::unix::fs::PermissionsExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/key.pem");
        write_atomic(&path, b"secret", true).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(fs::read(&path).unwrap(), b"secret");
    }
}
