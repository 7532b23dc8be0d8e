//! `sigil demo`: a self-contained tour of Sigil on a temporary data directory.
//!
//! It starts an authority in this process, enrolls three agents of two owners with real
//! `sigil-agent` daemons (also in this process, each with its own Workload API socket), and then
//! shows, step by step and timed: a mutual-TLS call between two agents, an automatic rotation, a
//! copied credential caught as a fork, a decommissioned agent refused at once, and an intact
//! audit chain. Any failed step stops the tour with a non-zero exit status.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde::de::DeserializeOwned;
use sigil_agent::daemon::{DaemonOptions, run_daemon};
use sigil_agent::files::OutputDir;
use sigil_agent::mtls::{
    AllowList, MaterialWatch, client_config, server_config, watch_workload_api,
};
use sigil_agent::workload::{JwtSource, WorkloadApiServer, serve_workload_api};
use sigil_agent::{RunOptions, obtain_svid};
use sigil_client::{Identity, SigilClient};
use sigil_core::{SpiffeId, TrustDomain};
use sigil_proto::{
    AddOwnerRequest, CreateTokenRequest, FindingList, RegisterAgentRequest, StatusChangeRequest,
};
use sigil_server::layout::DataDir;
use sigil_server::{ServeOptions, serve};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::{TlsAcceptor, TlsConnector};

const TRUST_DOMAIN: &str = "demo.sigil.local";

/// The whole tour must finish well within this.
const TOUR_LIMIT: Duration = Duration::from_secs(60);

pub async fn run() -> anyhow::Result<()> {
    let started = Instant::now();
    let workspace = tempfile::Builder::new()
        .prefix("sigil-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    println!(
        "Sigil demo in {} (removed at the end)\n",
        workspace.path().display()
    );

    let result = tokio::time::timeout(TOUR_LIMIT, tour(workspace.path(), started)).await;
    match result {
        Ok(Ok(())) => {
            println!(
                "\nAll steps passed in {:.1} s.",
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Ok(Err(err)) => Err(err.context("the demo failed")),
        Err(_) => bail!("the demo did not finish within {} s", TOUR_LIMIT.as_secs()),
    }
}

/// Prints one step of the narrative with the time it took.
fn step(number: u32, text: &str, since: Instant) {
    println!(
        "{number}. {text} ({:.0} ms)",
        since.elapsed().as_secs_f64() * 1000.0
    );
}

async fn tour(root: &Path, started: Instant) -> anyhow::Result<()> {
    let (stop, stopped) = watch::channel(false);
    let result = tour_steps(root, started, stopped).await;
    let _ = stop.send(true);
    // Give the daemons and the server a moment to shut down cleanly.
    tokio::time::sleep(Duration::from_millis(200)).await;
    result
}

async fn tour_steps(
    root: &Path,
    started: Instant,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    // 1. The authority.
    let t = Instant::now();
    let data_dir = DataDir::new(root.join("data"));
    sigil_server::init::initialize(
        &data_dir,
        TRUST_DOMAIN,
        &[],
        time::OffsetDateTime::now_utc(),
    )
    .await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("https://{}", listener.local_addr()?);
    tokio::spawn(serve(
        ServeOptions::new(data_dir.clone()),
        listener,
        wait_for(stopped.clone()),
    ));
    let bundle = std::fs::read_to_string(data_dir.bundle())?;
    let admin = admin_client(&data_dir, &url, &bundle)?;
    wait_until_ready(&admin).await?;
    step(
        1,
        &format!("Started an authority for trust domain {TRUST_DOMAIN} at {url}"),
        t,
    );

    // 2. Owners and agents.
    let t = Instant::now();
    for (email, name) in [("alice@example.org", "Alice"), ("bob@example.org", "Bob")] {
        post::<serde_json::Value>(
            &admin,
            "/v1/admin/owners",
            &AddOwnerRequest {
                email: email.into(),
                name: Some(name.into()),
            },
        )
        .await?;
    }
    let agents = [
        ("crm-bot", "alice@example.org", "invoke:tool:crm/*", "1m"),
        (
            "billing-bot",
            "alice@example.org",
            "invoke:tool:billing/*",
            "15m",
        ),
        ("research-bot", "bob@example.org", "read:web/*", "15m"),
    ];
    for (name, owner, entitlement, ttl) in agents {
        let request = RegisterAgentRequest {
            name: name.into(),
            owner: owner.into(),
            purpose: Some(format!("demo agent {name}")),
            entitlements: vec![entitlement.into()],
            ttl: Some(ttl.into()),
        };
        post::<serde_json::Value>(&admin, "/v1/admin/agents", &request).await?;
    }
    step(
        2,
        "Added owners alice@ and bob@example.org and registered crm-bot, billing-bot and research-bot",
        t,
    );

    // 3. Daemons with Workload API sockets.
    let t = Instant::now();
    let mut sockets = Vec::new();
    for (name, ..) in agents {
        let token: sigil_proto::TokenResponse = post(
            &admin,
            "/v1/admin/tokens",
            &CreateTokenRequest {
                agent: name.into(),
                ttl: None,
            },
        )
        .await?;
        let socket = start_daemon(root, name, &url, &bundle, token.token, stopped.clone()).await?;
        sockets.push(socket);
    }
    let crm = watch_workload_api(&endpoint(&sockets[0])).await?;
    let billing = watch_workload_api(&endpoint(&sockets[1])).await?;
    step(
        3,
        "Each agent's sigil-agent attested with a one-time join token and serves the Workload API",
        t,
    );

    // 4. Mutual TLS between agents.
    let t = Instant::now();
    let reply = call_over_mtls(billing.clone(), "crm-bot", crm.clone(), "billing-bot").await?;
    ensure!(reply == "hello crm-bot", "unexpected reply `{reply}`");
    step(
        4,
        "crm-bot called billing-bot over mutual TLS; each side checked the other's SPIFFE ID",
        t,
    );

    // 5. Rotation.
    let t = Instant::now();
    let first_serial = leaf_serial(&crm)?;
    let mut rotations = crm.clone();
    tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            rotations.changed().await?;
            if leaf_serial(&rotations)? != first_serial {
                return anyhow::Ok(());
            }
        }
    })
    .await
    .context("crm-bot did not rotate within 40 s")??;
    step(
        5,
        "crm-bot's 1-minute SVID rotated at half-life with a fresh key, pushed through the Workload API",
        t,
    );

    // 6. A copied credential.
    let t = Instant::now();
    let original = root.join("research-bot");
    let thief = root.join("thief");
    std::fs::create_dir_all(&thief)?;
    for file in ["svid.pem", "svid.key", "bundle.pem"] {
        std::fs::copy(original.join(file), thief.join(file))?;
    }
    let honest = run_options(&url, &bundle, original);
    obtain_svid(&honest)
        .await
        .context("research-bot's own renewal failed")?;
    let stolen = obtain_svid(&run_options(&url, &bundle, thief)).await;
    let refused = matches!(&stolen, Err(sigil_agent::AgentError::Client(err)) if err.code() == Some("identity_fork"));
    ensure!(refused, "the copied credential was not caught: {stolen:?}");
    let findings: FindingList = admin
        .get_json("/v1/admin/findings?kind=identity-fork")
        .await?;
    ensure!(
        findings.findings.len() == 1,
        "expected one identity-fork finding"
    );
    step(
        6,
        "A copy of research-bot's key renewed too: Sigil saw two holders, refused it and suspended the agent",
        t,
    );

    // 7. Decommission.
    let t = Instant::now();
    let response: sigil_proto::StatusChangeResponse = post(
        &admin,
        "/v1/admin/agents/billing-bot/decommission",
        &StatusChangeRequest {
            reason: Some("demo: project ended".into()),
        },
    )
    .await?;
    let renewal = obtain_svid(&run_options(&url, &bundle, root.join("billing-bot"))).await;
    ensure!(
        renewal.is_err(),
        "billing-bot could still renew after decommission"
    );
    step(
        7,
        &format!(
            "Decommissioned billing-bot: {} certificate(s) revoked at once and its next renewal refused",
            response.revoked_serials.len()
        ),
        t,
    );

    // 8. Audit.
    let t = Instant::now();
    let store = sigil_store::Store::open(&data_dir.database()).await?;
    let verified = store.verify_audit_chain().await?;
    store.close().await;
    let events = verified.map_err(|err| anyhow::anyhow!("{err}"))?;
    step(
        8,
        &format!("`sigil audit verify`: the hash chain of {events} audit events is intact"),
        t,
    );

    ensure!(
        started.elapsed() < TOUR_LIMIT,
        "the demo took longer than {} s",
        TOUR_LIMIT.as_secs()
    );
    Ok(())
}

fn admin_client(data_dir: &DataDir, url: &str, bundle: &str) -> anyhow::Result<SigilClient> {
    let chain = std::fs::read_to_string(data_dir.admin_cert())?;
    let key = zeroize::Zeroizing::new(std::fs::read_to_string(data_dir.admin_key())?);
    Ok(SigilClient::new(
        url,
        bundle,
        Some(Identity {
            chain_pem: &chain,
            key_pem: &key,
        }),
    )?)
}

async fn wait_until_ready(admin: &SigilClient) -> anyhow::Result<()> {
    for _ in 0..100 {
        if admin.get_bytes("/healthz").await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("the authority did not start")
}

async fn post<T: DeserializeOwned>(
    client: &SigilClient,
    path: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<T> {
    client
        .post_json(path, body)
        .await
        .with_context(|| format!("POST {path} failed"))
}

fn run_options(url: &str, bundle: &str, out: PathBuf) -> RunOptions {
    RunOptions {
        server: url.to_owned(),
        bundle_pem: bundle.to_owned(),
        join_token: None,
        out: OutputDir::new(out),
    }
}

/// Starts a daemon and its Workload API for `name`; returns the socket path once the first SVID
/// is served.
async fn start_daemon(
    root: &Path,
    name: &str,
    url: &str,
    bundle: &str,
    token: String,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<PathBuf> {
    let mut options = run_options(url, bundle, root.join(name));
    options.join_token = Some(token);
    let socket = root.join(format!("{name}.sock"));

    let (publish, material) = watch::channel(None);
    let jwt = Arc::new(JwtSource::new(url, bundle, options.out.clone())?);
    let server = WorkloadApiServer {
        socket: socket.clone(),
        x509: material.clone(),
        jwt,
    };
    tokio::spawn(serve_workload_api(server, wait_for(stopped.clone())));
    tokio::spawn(run_daemon(
        DaemonOptions {
            run: options,
            on_rotate: None,
        },
        publish,
        wait_for(stopped),
    ));

    let mut ready = material;
    tokio::time::timeout(Duration::from_secs(10), ready.wait_for(Option::is_some))
        .await
        .with_context(|| format!("{name} did not attest"))??;
    for _ in 0..100 {
        if socket.exists() {
            return Ok(socket);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bail!("{name}'s Workload API socket did not appear")
}

fn endpoint(socket: &Path) -> String {
    format!("unix:{}", socket.display())
}

fn agent_id(name: &str) -> anyhow::Result<SpiffeId> {
    Ok(SpiffeId::parse(&format!(
        "spiffe://{TRUST_DOMAIN}/agent/{name}"
    ))?)
}

/// The server (`server_material`) accepts only `client_name`; the client accepts only
/// `server_name`. Returns the server's reply.
async fn call_over_mtls(
    server_material: MaterialWatch,
    client_name: &str,
    client_material: MaterialWatch,
    server_name: &str,
) -> anyhow::Result<String> {
    let trust_domain = TrustDomain::new(TRUST_DOMAIN)?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let acceptor = TlsAcceptor::from(Arc::new(server_config(
        server_material,
        AllowList::new(trust_domain.clone(), [agent_id(client_name)?])?,
    )?));
    let expected = client_name.to_owned();
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await?;
        let mut tls = acceptor.accept(stream).await?;
        let mut name = vec![0u8; expected.len()];
        tls.read_exact(&mut name).await?;
        tls.write_all(format!("hello {}", String::from_utf8_lossy(&name)).as_bytes())
            .await?;
        tls.shutdown().await?;
        anyhow::Ok(())
    });

    let connector = TlsConnector::from(Arc::new(client_config(
        client_material,
        AllowList::new(trust_domain, [agent_id(server_name)?])?,
    )?));
    let stream = TcpStream::connect(address).await?;
    let mut tls = connector
        .connect("peer.invalid".try_into()?, stream)
        .await?;
    tls.write_all(client_name.as_bytes()).await?;
    let mut reply = String::new();
    tls.read_to_string(&mut reply).await?;
    server.await??;
    Ok(reply)
}

fn leaf_serial(material: &MaterialWatch) -> anyhow::Result<String> {
    let current = material.borrow().clone().context("no SVID yet")?;
    let chain = sigil_agent::mtls::split_der_certificates(&current.chain_der)
        .map_err(|err| anyhow::anyhow!(err))?;
    let leaf = chain.first().context("empty chain")?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(leaf).map_err(|err| anyhow::anyhow!("{err}"))?;
    Ok(cert.raw_serial_as_string())
}

async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|stop| *stop).await;
}
