//! The files the daemon maintains in its output directory, written atomically.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::AgentError;

/// File names inside `--out`.
pub const SVID_FILE: &str = "svid.pem";
pub const KEY_FILE: &str = "svid.key";
pub const BUNDLE_FILE: &str = "bundle.pem";
/// The key of the request in flight, kept until the request succeeds.
pub const PENDING_KEY_FILE: &str = "pending.key";

/// Paths of the daemon's output files.
#[derive(Debug, Clone)]
pub struct OutputDir {
    root: PathBuf,
}

impl OutputDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    pub fn svid(&self) -> PathBuf {
        self.root.join(SVID_FILE)
    }
    pub fn key(&self) -> PathBuf {
        self.root.join(KEY_FILE)
    }
    pub fn bundle(&self) -> PathBuf {
        self.root.join(BUNDLE_FILE)
    }

    pub fn pending_key_path(&self) -> PathBuf {
        self.root.join(PENDING_KEY_FILE)
    }

    /// Returns the pending key in PKCS#8 PEM, generating and saving a new P-256 key (mode 0600)
    /// when there is none. Saving it first also proves the directory is writable before a join
    /// token is spent.
    pub fn pending_key(&self) -> Result<zeroize::Zeroizing<String>, AgentError> {
        let path = self.pending_key_path();
        match fs::read_to_string(&path) {
            Ok(pem) => return Ok(zeroize::Zeroizing::new(pem)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(AgentError::io(&path, err)),
        }

        fs::create_dir_all(&self.root).map_err(|err| AgentError::io(&self.root, err))?;
        let key = rcgen::KeyPair::generate()
            .map_err(|err| AgentError::Crypto(format!("key generation failed: {err}")))?;
        let pem = zeroize::Zeroizing::new(key.serialize_pem());
        write_atomic(&path, pem.as_bytes(), true)?;
        Ok(pem)
    }

    /// Removes the pending key once its certificate is on disk.
    pub fn clear_pending_key(&self) -> Result<(), AgentError> {
        let path = self.pending_key_path();
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(AgentError::io(&path, err)),
        }
    }

    /// Reads the current SVID chain and key, if both exist.
    pub fn read_identity(
        &self,
    ) -> Result<Option<(String, zeroize::Zeroizing<String>)>, AgentError> {
        let (svid, key) = (self.svid(), self.key());
        if !svid.exists() || !key.exists() {
            return Ok(None);
        }
        let chain = fs::read_to_string(&svid).map_err(|err| AgentError::io(&svid, err))?;
        let key_pem = zeroize::Zeroizing::new(
            fs::read_to_string(&key).map_err(|err| AgentError::io(&key, err))?,
        );
        Ok(Some((chain, key_pem)))
    }

    /// Writes a new identity. The key is written first so that `svid.pem` never names a key
    /// that is not on disk yet; each file is replaced atomically.
    pub fn write_identity(
        &self,
        chain_pem: &str,
        key_pem: &str,
        bundle_pem: &str,
    ) -> Result<(), AgentError> {
        fs::create_dir_all(&self.root).map_err(|err| AgentError::io(&self.root, err))?;
        write_atomic(&self.key(), key_pem.as_bytes(), true)?;
        write_atomic(&self.svid(), chain_pem.as_bytes(), false)?;
        write_atomic(&self.bundle(), bundle_pem.as_bytes(), false)
    }
}

/// Writes through a temporary file in the same directory, then renames it over `path`.
pub fn write_atomic(path: &Path, contents: &[u8], secret: bool) -> Result<(), AgentError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));

    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;

    let mut file = options
        .open(&tmp)
        .map_err(|err| AgentError::io(&tmp, err))?;
    file.write_all(contents)
        .map_err(|err| AgentError::io(&tmp, err))?;
    file.sync_all().map_err(|err| AgentError::io(&tmp, err))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|err| AgentError::io(path, err))
}
