//! Serving the Workload API on a Unix socket.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio::sync::watch;
use tokio_stream::wrappers::UnixListenerStream;

use super::X509Material;
use super::pb::spiffe_workload_api_server::SpiffeWorkloadApiServer as GeneratedServer;
use super::service::{JwtBackend, WorkloadService};
use crate::AgentError;

/// What the Workload API serves: the current X.509 material and a JWT backend.
pub struct WorkloadApiServer {
    pub socket: PathBuf,
    pub x509: watch::Receiver<Option<Arc<X509Material>>>,
    pub jwt: Arc<dyn JwtBackend>,
}

/// Binds the socket (mode 0600) and serves until `shutdown` completes, then removes the socket.
pub async fn serve_workload_api(
    server: WorkloadApiServer,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AgentError> {
    let listener = bind(&server.socket)?;
    tracing::info!(socket = %server.socket.display(), "Workload API listening");

    let service = WorkloadService::new(server.x509, server.jwt);
    let result = tonic::transport::Server::builder()
        .add_service(GeneratedServer::new(service))
        .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
        .await;

    if let Err(err) = std::fs::remove_file(&server.socket) {
        tracing::debug!(error = %err, socket = %server.socket.display(), "could not remove the socket");
    }
    tracing::info!("Workload API stopped");
    result.map_err(|err| AgentError::Crypto(format!("Workload API server failed: {err}")))
}

/// Binds a Unix socket readable and writable only by this user, replacing a stale socket file.
fn bind(path: &Path) -> Result<UnixListener, AgentError> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    if let Ok(metadata) = std::fs::symlink_metadata(path) {
        if !metadata.file_type().is_socket() {
            return Err(AgentError::io(
                path,
                std::io::Error::other("exists and is not a socket; refusing to replace it"),
            ));
        }
        std::fs::remove_file(path).map_err(|err| AgentError::io(path, err))?;
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|err| AgentError::io(dir, err))?;
    }

    // NOTE: std has no safe way to set the umask and this crate forbids unsafe code, so the
    // socket exists with the process umask until the chmod below. Put it in a 0700 directory
    // where other users must not connect even for that moment.
    let listener = UnixListener::bind(path).map_err(|err| AgentError::io(path, err))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|err| AgentError::io(path, err))?;
    Ok(listener)
}
