//! The long-running daemon: keeps the SVID fresh, publishes each rotation to the Workload API,
//! and keeps serving the current certificate while the authority is unreachable.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use crate::identity::{spiffe_id_of, validity};
use crate::workload::X509Material;
use crate::{AgentError, Outcome, RunOptions, obtain_svid};

/// Longest wait between two attempts while the authority is failing.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// What the daemon needs beyond one run.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub run: RunOptions,
    /// Command run with `sh -c` after each rotation.
    pub on_rotate: Option<String>,
}

/// Keeps the identity fresh until `shutdown` completes, publishing each new SVID on `publish`.
pub async fn run_daemon(
    mut options: DaemonOptions,
    publish: watch::Sender<Option<Arc<X509Material>>>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    tracing::info!(out = %options.run.out.root().display(), "sigil-agent started");
    tokio::pin!(shutdown);

    if let Some(material) = current_material(&options.run)? {
        tracing::info!(spiffe_id = %material.spiffe_id, "serving the SVID already on disk");
        publish.send_replace(Some(Arc::new(material)));
    }

    let mut failures: u32 = 0;
    loop {
        let wait = match obtain_svid(&options.run).await {
            Ok(outcome) => {
                if failures > 0 {
                    tracing::info!(failures, "authority reachable again; SVID renewed");
                }
                failures = 0;
                log_outcome(&outcome);

                // A join token is single use; every later run renews with the SVID.
                options.run.join_token = None;
                if let Some(material) = current_material(&options.run)? {
                    publish.send_replace(Some(Arc::new(material)));
                }
                if let Some(command) = &options.on_rotate {
                    run_hook(command, &options.run).await;
                }
                until_half_life(&options.run)
            }
            Err(AgentError::NeedsJoinToken(out)) => {
                tracing::error!(
                    out,
                    "the SVID on disk has expired (or there is none) and no join token is left: \
                     create one with `sigil token create AGENT` and restart with --join-token"
                );
                return Err(AgentError::NeedsJoinToken(out));
            }
            Err(err) => {
                failures += 1;
                let wait = backoff(failures);
                if failures == 1 || failures.is_multiple_of(10) {
                    tracing::warn!(error = %err, retry_in = ?wait, "renewal failed; keeping the current SVID");
                } else {
                    tracing::debug!(error = %err, failures, retry_in = ?wait, "renewal still failing");
                }
                wait
            }
        };

        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut shutdown => {
                tracing::info!("sigil-agent stopped");
                return Ok(());
            }
        }
    }
}

fn log_outcome(outcome: &Outcome) {
    match outcome {
        Outcome::Attested {
            spiffe_id,
            serial,
            expires_at,
        } => {
            tracing::info!(%spiffe_id, %serial, %expires_at, "attested");
        }
        Outcome::Renewed {
            spiffe_id,
            serial,
            expires_at,
        } => {
            tracing::info!(%spiffe_id, %serial, %expires_at, "renewed");
        }
    }
}

/// Reads the SVID on disk as Workload API material, if there is one that has not expired.
fn current_material(options: &RunOptions) -> Result<Option<X509Material>, AgentError> {
    let Some((chain, key)) = options.out.read_identity()? else {
        return Ok(None);
    };
    let (_, not_after) = validity(&chain)?;
    if not_after <= OffsetDateTime::now_utc() {
        return Ok(None);
    }
    let bundle_path = options.out.bundle();
    let bundle =
        std::fs::read_to_string(&bundle_path).map_err(|err| AgentError::io(&bundle_path, err))?;
    let spiffe_id = spiffe_id_of(&chain)?;
    X509Material::from_pem(&spiffe_id, &chain, &key, &bundle).map(Some)
}

/// Exponential backoff from 1 s to 60 s, with up to 25 % random jitter so that a fleet that lost
/// the authority at the same moment does not return in lockstep.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(6)).min(MAX_BACKOFF);
    let jitter = rand::random_range(0.0..0.25);
    base.mul_f64(1.0 + jitter)
}

fn until_half_life(options: &RunOptions) -> Duration {
    let Ok(Some((chain, _))) = options.out.read_identity() else {
        return Duration::from_secs(1);
    };
    let Ok((not_before, not_after)) = validity(&chain) else {
        return Duration::from_secs(1);
    };
    let half_life = not_before + (not_after - not_before) / 2;
    let wait: time::Duration = half_life - OffsetDateTime::now_utc();
    Duration::try_from(wait)
        .unwrap_or(Duration::from_secs(1))
        .max(Duration::from_secs(1))
}

/// Runs the rotation hook with the file paths in its environment; logs its exit status.
async fn run_hook(command: &str, options: &RunOptions) {
    let status = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .env("SIGIL_SVID", options.out.svid())
        .env("SIGIL_SVID_KEY", options.out.key())
        .env("SIGIL_BUNDLE", options.out.bundle())
        .status()
        .await;
    match status {
        Ok(status) if status.success() => tracing::debug!(command, "rotation hook succeeded"),
        Ok(status) => tracing::warn!(command, %status, "rotation hook failed"),
        Err(err) => tracing::warn!(command, error = %err, "rotation hook could not be started"),
    }
}

/// Returns where the Workload API socket goes: `--socket`, else `SPIFFE_ENDPOINT_SOCKET`
/// (with or without its `unix:` prefix).
pub fn socket_path(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| {
        let value = std::env::var("SPIFFE_ENDPOINT_SOCKET").ok()?;
        let path = value
            .strip_prefix("unix://")
            .or_else(|| value.strip_prefix("unix:"))
            .unwrap_or(&value);
        Some(PathBuf::from(path))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert!(backoff(1) >= Duration::from_secs(1));
        assert!(backoff(1) <= Duration::from_millis(1250));
        assert!(backoff(3) >= Duration::from_secs(4));
        assert!(backoff(30) <= MAX_BACKOFF.mul_f64(1.25));
        assert!(backoff(30) >= MAX_BACKOFF);
    }
}
