//! Keeps the data directory's admin identity usable.
//!
//! Admin certificates live 12 hours. When the one in `<data-dir>/admin` is past half its
//! lifetime, a command that can read the data directory's signing key issues a fresh one
//! offline: whoever can read the data directory is the root of trust anyway.

use std::path::Path;

use anyhow::Context;
use sigil_server::authority::Authority;
use sigil_server::layout::DataDir;
use sigil_store::Store;
use time::OffsetDateTime;

/// Replaces the admin certificate at `cert_path` if it belongs to the data directory, is past
/// half-life, and the signing key is readable. Otherwise leaves it alone.
pub async fn refresh_if_stale(data_dir: &DataDir, cert_path: &Path) -> anyhow::Result<()> {
    if cert_path != data_dir.admin_cert() || !data_dir.signing_key().exists() {
        return Ok(());
    }
    let chain = std::fs::read_to_string(cert_path)
        .with_context(|| format!("cannot read {}", cert_path.display()))?;
    let now = OffsetDateTime::now_utc();
    if !past_half_life(&chain, now) {
        return Ok(());
    }

    let config = data_dir.read_config()?;
    let trust_domain = sigil_core::TrustDomain::new(&config.trust_domain)?;
    let authority = Authority::load(data_dir, now)?;
    let store = Store::open(&data_dir.database()).await?;
    let id = sigil_server::init::issue_admin_identity(
        data_dir,
        &store,
        &authority,
        &trust_domain,
        "root",
        now,
    )
    .await?;
    store.close().await;
    tracing::info!(%id, "admin identity was past half-life; issued a new one offline");
    Ok(())
}

fn past_half_life(chain_pem: &str, now: OffsetDateTime) -> bool {
    let Ok((_, pem)) = x509_parser::pem::parse_x509_pem(chain_pem.as_bytes()) else {
        return true;
    };
    let Ok(cert) = pem.parse_x509() else {
        return true;
    };
    let not_before = cert.validity().not_before.to_datetime();
    let not_after = cert.validity().not_after.to_datetime();
    now >= not_before + (not_after - not_before) / 2
}
