//! The Workload API of a running `sigil-agent`, checked with the `spiffe` crate's client: no
//! Sigil code on the client side.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers fail the test on a setup error"
)]

mod common;

use std::time::{Duration, Instant};

use common::Authority;
use common::daemon::{Daemon, enroll};
use spiffe::WorkloadApiClient;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn x509_svid_and_bundle_served() {
    let authority = Authority::start();
    let (out, token) = enroll(&authority, "crm-bot", "15m");
    let daemon = Daemon::start(&authority, &out, Some(&token), &[]);

    runtime().block_on(async {
        let client = WorkloadApiClient::connect_to(daemon.endpoint())
            .await
            .unwrap();
        let svid = client.fetch_x509_svid().await.unwrap();
        assert_eq!(
            svid.spiffe_id().to_string(),
            "spiffe://example.org/agent/crm-bot"
        );
        assert_eq!(svid.cert_chain().len(), 2, "leaf and signing CA expected");

        let on_disk = std::fs::read_to_string(out.join("svid.pem")).unwrap();
        let leaf_pem = common::pem_blocks(&on_disk).remove(0);
        let leaf_der = common::pem_to_der(&leaf_pem);
        assert_eq!(
            svid.leaf().as_ref(),
            leaf_der.as_slice(),
            "Workload API and svid.pem disagree"
        );

        let bundles = client.fetch_x509_bundles().await.unwrap();
        let trust_domain = spiffe::TrustDomain::new("example.org").unwrap();
        let bundle = bundles.get(&trust_domain).expect("bundle for example.org");
        assert_eq!(
            bundle.authorities().len(),
            1,
            "the bundle is the root CA alone"
        );
    });
}

#[test]
fn x509_stream_pushes_rotation() {
    let authority = Authority::start();
    let (out, token) = enroll(&authority, "rotating-bot", "1m");
    let daemon = Daemon::start(&authority, &out, Some(&token), &[]);

    runtime().block_on(async {
        let client = WorkloadApiClient::connect_to(daemon.endpoint())
            .await
            .unwrap();
        let mut stream = client.stream_x509_svids().await.unwrap();
        use tokio_stream::StreamExt;

        let first = stream.next().await.unwrap().unwrap();
        let second = tokio::time::timeout(Duration::from_secs(60), stream.next())
            .await
            .expect("no rotation pushed within 60 s")
            .unwrap()
            .unwrap();
        assert_eq!(second.spiffe_id(), first.spiffe_id());
        assert_ne!(
            second.leaf().as_ref(),
            first.leaf().as_ref(),
            "the pushed SVID must be new"
        );
        assert_ne!(
            second.private_key().as_ref(),
            first.private_key().as_ref(),
            "each rotation must use a fresh key"
        );
    });
}

#[test]
fn jwt_svid_fetched_and_validated() {
    let authority = Authority::start();
    let (out, token) = enroll(&authority, "jwt-bot", "15m");
    let daemon = Daemon::start(&authority, &out, Some(&token), &[]);

    runtime().block_on(async {
        let client = WorkloadApiClient::connect_to(daemon.endpoint())
            .await
            .unwrap();
        let token = client
            .fetch_jwt_token(["https://crm.example.org"], None)
            .await
            .unwrap();
        assert_eq!(token.split('.').count(), 3, "compact JWS expected");

        let validated = client
            .validate_jwt_token("https://crm.example.org", &token)
            .await
            .unwrap();
        assert_eq!(
            validated.spiffe_id().to_string(),
            "spiffe://example.org/agent/jwt-bot"
        );

        let wrong_audience = client
            .validate_jwt_token("https://other.example.org", &token)
            .await;
        assert!(
            wrong_audience.is_err(),
            "a token for another audience must not validate"
        );

        let bundles = client.fetch_jwt_bundles().await.unwrap();
        let trust_domain = spiffe::TrustDomain::new("example.org").unwrap();
        assert!(
            bundles.get(&trust_domain).is_some(),
            "JWT bundle for example.org expected"
        );
    });
}

#[test]
fn daemon_restart_needs_no_token() {
    let authority = Authority::start();
    let (out, token) = enroll(&authority, "restart-bot", "15m");
    let mut daemon = Daemon::start(&authority, &out, Some(&token), &[]);
    let status = daemon.terminate();
    assert!(
        status.success(),
        "SIGTERM must stop the daemon cleanly: {status}"
    );
    assert!(
        daemon.log().contains("sigil-agent stopped"),
        "{}",
        daemon.log()
    );
    assert!(
        !daemon.socket.exists(),
        "the socket must be removed on shutdown"
    );

    let restarted = Daemon::start(&authority, &out, None, &[]);
    assert!(
        restarted.log().contains("renewed"),
        "restart must renew with the SVID on disk: {}",
        restarted.log()
    );
}

#[test]
fn socket_is_private() {
    use std::os::unix::fs::PermissionsExt;

    let authority = Authority::start();
    let (out, token) = enroll(&authority, "private-bot", "15m");
    let daemon = Daemon::start(&authority, &out, Some(&token), &[]);
    let mode = std::fs::metadata(&daemon.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "the Workload API socket must be mode 0600");
}

#[test]
fn rotation_hook_runs() {
    let authority = Authority::start();
    let (out, token) = enroll(&authority, "hook-bot", "15m");
    let marker = authority.dir.path().join("rotated");
    let hook = format!("echo \"$SIGIL_SVID\" >> {}", marker.display());
    let _daemon = Daemon::start(&authority, &out, Some(&token), &["--on-rotate", &hook]);

    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() {
        assert!(
            Instant::now() < deadline,
            "the --on-rotate command did not run"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let written = std::fs::read_to_string(&marker).unwrap();
    assert!(
        written.trim().ends_with("svid.pem"),
        "SIGIL_SVID must name svid.pem: {written}"
    );
}

#[test]
fn daemon_survives_authority_outage() {
    let mut authority = Authority::start();
    let (out, token) = enroll(&authority, "outage-bot", "1m");
    let daemon = Daemon::start(&authority, &out, Some(&token), &[]);
    let before = std::fs::read_to_string(out.join("svid.pem")).unwrap();

    let status = authority.terminate();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(40);
    while !daemon
        .log()
        .contains("renewal failed; keeping the current SVID")
    {
        assert!(
            Instant::now() < deadline,
            "no failure logged while the authority was down: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        std::fs::read_to_string(out.join("svid.pem")).unwrap(),
        before,
        "the current SVID must stay in place"
    );

    authority.spawn(&[]);
    let deadline = Instant::now() + Duration::from_secs(90);
    while !daemon.log().contains("authority reachable again") {
        assert!(
            Instant::now() < deadline,
            "no recovery logged: {}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_ne!(
        std::fs::read_to_string(out.join("svid.pem")).unwrap(),
        before,
        "the SVID must be renewed after recovery"
    );
}
