//! The SPIFFE Workload API over a Unix socket.
//!
//! Any SPIFFE-aware library can fetch the agent's X.509-SVID and bundle here, with a new message
//! after every rotation, and ask for JWT-SVIDs. Every call must carry the `workload.spiffe.io:
//! true` metadata header, which a browser or a server-side request forgery cannot set. The
//! socket is created with mode 0600, so only the agent's own user can open it.

mod jwt;
mod material;
mod server;
mod service;

pub use service::{JwtBackend, JwtBundle, JwtBundleWatch};

pub use jwt::JwtSource;
pub use material::X509Material;
pub use server::{WorkloadApiServer, serve_workload_api};

pub mod pb {
    //! Code generated from `proto/workload.proto`.
    #![allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
    tonic::include_proto!("_");
}
