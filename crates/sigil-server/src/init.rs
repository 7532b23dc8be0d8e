//! `sigil init`: creates a data directory with its CAs, database, serving certificate and first
//! admin identity.

use std::fs;
use std::net::IpAddr;
use std::path::Path;

use serde_json::json;
use sigil_ca::CaCertificate;
use sigil_core::{AgentName, AuditRecord, SpiffeId, TrustDomain};
use sigil_store::{NewCredential, Store};
use time::OffsetDateTime;

use crate::ServerError;
use crate::authority::{Authority, ROOT_LIFETIME, SIGNING_LIFETIME, save_ca, to_time};
use crate::clock::unix_ms;
use crate::layout::{Config, DataDir, write_atomic};
use crate::routes::ADMIN_LIFETIME;
use crate::tls::issue_serving_certificate;

/// Default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "sigil.local";

/// Default listen address of `sigil serve`.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";

/// What `sigil init` created.
#[derive(Debug, Clone)]
pub struct InitReport {
    pub trust_domain: TrustDomain,
    pub admin_id: SpiffeId,
    pub root_fingerprint: String,
}

/// Creates a new data directory. Refuses to touch a directory that exists and is not empty.
pub async fn initialize(
    data_dir: &DataDir,
    trust_domain: &str,
    extra_sans: &[String],
    now: OffsetDateTime,
) -> Result<InitReport, ServerError> {
    let trust_domain = TrustDomain::new(trust_domain).map_err(|err| {
        ServerError::Config(format!("{err}; for example `--trust-domain example.org`"))
    })?;
    for san in extra_sans {
        check_san(san)?;
    }
    ensure_fresh(data_dir.root())?;

    let root = CaCertificate::create_root(&trust_domain, now, to_time(ROOT_LIFETIME))?;
    let signing =
        CaCertificate::create_intermediate(&root, &trust_domain, now, to_time(SIGNING_LIFETIME))?;
    save_ca(&root, &data_dir.root_cert(), &data_dir.root_key())?;
    save_ca(&signing, &data_dir.signing_cert(), &data_dir.signing_key())?;
    write_atomic(&data_dir.bundle(), root.cert_pem().as_bytes(), false)?;

    let config = Config {
        trust_domain: trust_domain.to_string(),
        listen: DEFAULT_LISTEN.to_owned(),
        extra_sans: extra_sans.to_vec(),
    };
    let config_json =
        serde_json::to_vec_pretty(&config).map_err(|err| ServerError::Config(err.to_string()))?;
    write_atomic(&data_dir.config(), &config_json, false)?;

    let authority = Authority {
        root,
        signing,
        previous: Vec::new(),
    };
    let (chain, key) = issue_serving_certificate(&authority, &trust_domain, extra_sans, now)?;
    write_atomic(&data_dir.server_key(), key.as_bytes(), true)?;
    write_atomic(&data_dir.server_cert(), chain.as_bytes(), false)?;

    crate::jwt_keys::load_or_create(data_dir, now)?;

    let store = Store::open(&data_dir.database()).await?;
    restrict_permissions(&data_dir.database())?;
    let record = AuditRecord {
        at_ms: unix_ms(now),
        actor: "cli".into(),
        action: "authority.initialized".into(),
        subject: trust_domain.to_string(),
        outcome: "success".into(),
        details: json!({
            "root_serial": authority.root.serial_hex(),
            "root_fingerprint": authority.root.fingerprint(),
            "signing_serial": authority.signing.serial_hex(),
        })
        .to_string(),
    };
    store.record_audit(record).await?;

    let admin_id =
        issue_admin_identity(data_dir, &store, &authority, &trust_domain, "root", now).await?;
    store.close().await;

    tracing::info!(trust_domain = %trust_domain, data_dir = %data_dir.root().display(), "data directory initialised");
    Ok(InitReport {
        trust_domain,
        admin_id,
        root_fingerprint: authority.root.fingerprint().to_owned(),
    })
}

/// Issues `spiffe://<td>/admin/<name>` with a new key and writes it to `<data-dir>/admin/`.
///
/// Anyone who can read the data directory's signing key can do this: the data directory is the
/// root of trust.
pub async fn issue_admin_identity(
    data_dir: &DataDir,
    store: &Store,
    authority: &Authority,
    trust_domain: &TrustDomain,
    name: &str,
    now: OffsetDateTime,
) -> Result<SpiffeId, ServerError> {
    let name = AgentName::new(name).map_err(|err| ServerError::Config(err.to_string()))?;
    let admin_id = name.admin_id(trust_domain);
    let (issued, key) = sigil_ca::issue::issue_with_new_key(
        &authority.signing,
        &admin_id,
        ADMIN_LIFETIME,
        now,
        &[],
        &[],
    )?;
    let chain = authority.chain_pem(&issued.pem);

    write_atomic(&data_dir.admin_key(), key.as_bytes(), true)?;
    write_atomic(&data_dir.admin_cert(), chain.as_bytes(), false)?;

    let credential = NewCredential {
        serial: issued.serial_hex.clone(),
        spiffe_id: admin_id.to_string(),
        agent: None,
        fingerprint: issued.fingerprint.clone(),
        public_key_fingerprint: issued.public_key_fingerprint.clone(),
        cert_pem: chain,
        issued_at_ms: unix_ms(issued.not_before),
        expires_at_ms: unix_ms(issued.not_after),
        parent_serial: None,
    };
    let record = AuditRecord {
        at_ms: unix_ms(now),
        actor: "cli".into(),
        action: "admin.issued".into(),
        subject: admin_id.to_string(),
        outcome: "success".into(),
        details: json!({"serial": issued.serial_hex, "fingerprint": issued.fingerprint})
            .to_string(),
    };
    store.record_credential(&credential, record).await?;
    Ok(admin_id)
}

fn ensure_fresh(root: &Path) -> Result<(), ServerError> {
    match fs::read_dir(root) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(ServerError::Config(format!(
                    "{} already exists and is not empty; `sigil init` never touches an existing \
                     data directory: choose another --data-dir or remove this one",
                    root.display()
                )));
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(root).map_err(|err| ServerError::io(root, err))?;
        }
        Err(err) => return Err(ServerError::io(root, err)),
    }
    set_private_dir(root)
}

#[cfg(unix)]
fn set_private_dir(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700))
        .map_err(|err| ServerError::io(path, err))
}

#[cfg(not(unix))]
fn set_private_dir(_path: &Path) -> Result<(), ServerError> {
    Ok(())
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<(), ServerError> {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|err| ServerError::io(path, err))
}

#[cfg(not(unix))]
fn restrict_permissions(_path: &Path) -> Result<(), ServerError> {
    Ok(())
}

/// Checks a `--san` value: an IP address or a DNS name.
fn check_san(value: &str) -> Result<(), ServerError> {
    if value.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let valid_dns = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if valid_dns {
        Ok(())
    } else {
        Err(ServerError::Config(format!(
            "invalid --san `{value}`: give a DNS name such as `sigil.example.org` or an IP address"
        )))
    }
}
