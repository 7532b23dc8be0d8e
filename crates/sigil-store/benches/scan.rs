//! Full governance scan over a large registry: seeds agents, certificates, external credentials
//! and entitlements straight into SQLite, then times `Store::scan` and reads the process's
//! peak resident memory.
//!
//! About 1 % of the fleet carries each planted problem, so the first scan opens tens of
//! thousands of findings and the second one refreshes them.
//!
//! Run: `cargo bench -p sigil-store --bench scan -- [AGENTS]` (default 1,000,000 agents, with
//! two certificates and one external credential each, so three credentials per agent).

#![allow(
    clippy::expect_used,
    reason = "a benchmark aborts on any setup failure"
)]

use std::time::Instant;

use sigil_governance::Settings;
use sigil_store::Store;
use sqlx::Connection;
use sqlx::sqlite::SqliteConnection;

const NOW: i64 = 1_800_000_000_000;
const MINUTE: i64 = 60_000;
const DAY: i64 = 86_400_000;

#[tokio::main]
async fn main() {
    let agents: i64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().expect("temporary directory");
    // SIGIL_BENCH_DB keeps the seeded database at that path for inspection.
    let path = std::env::var_os("SIGIL_BENCH_DB")
        .map_or_else(|| dir.path().join("sigil.db"), std::path::PathBuf::from);
    let store = Store::open(&path).await.expect("open store");

    let started = Instant::now();
    seed(&path, agents).await;
    println!(
        "seeded {agents} agents, {} certificates, {agents} external credentials, {agents} entitlements in {:.1} s",
        2 * agents,
        started.elapsed().as_secs_f64()
    );
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("database file: {} MiB", size / (1024 * 1024));

    for round in [
        "first scan (opens findings)",
        "second scan (refreshes them)",
    ] {
        reset_peak_memory();
        let before = memory_kib("VmRSS");
        let started = Instant::now();
        let report = store.scan(&Settings::default(), NOW).await.expect("scan");
        let elapsed = started.elapsed();
        println!(
            "{round}: {:.2} s; agents {}, external {}, entitlements {}, candidates {}, opened {}, refreshed {}, resolved {}, suspended {}",
            elapsed.as_secs_f64(),
            report.agents,
            report.external_credentials,
            report.entitlements,
            report.candidates,
            report.opened,
            report.refreshed,
            report.resolved,
            report.suspended.len()
        );
        println!(
            "  resident memory before {} MiB, peak during the scan {} MiB",
            before / 1024,
            memory_kib("VmHWM") / 1024
        );
    }
    store.close().await;
}

/// Seeds the registry with SQL generated inside SQLite, which is far faster than row-by-row
/// inserts from Rust.
async fn seed(path: &std::path::Path, agents: i64) {
    let url = format!("sqlite://{}", path.display());
    let mut conn = SqliteConnection::connect(&url).await.expect("connect");
    let statements = [
        "PRAGMA synchronous = OFF".to_owned(),
        "PRAGMA foreign_keys = OFF".to_owned(),
        "BEGIN".to_owned(),
        format!(
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < 999)
             INSERT INTO owners (email, name, status, created_at, departed_at)
             SELECT printf('owner-%d@example.org', n), NULL,
                    CASE n WHEN 0 THEN 'departed' ELSE 'active' END, {c}, 
                    CASE n WHEN 0 THEN {d} END FROM seq",
            c = NOW - 400 * DAY,
            d = NOW - DAY
        ),
        format!(
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < {last})
             INSERT INTO agents (name, spiffe_id, owner_email, purpose, status, ttl_secs,
                                 created_at, updated_at)
             SELECT printf('agent-%07d', n), printf('spiffe://example.org/agent/agent-%07d', n),
                    printf('owner-%d@example.org', n % 1000), NULL, 'active', 900, {t}, {t}
             FROM seq",
            last = agents - 1,
            t = NOW - 60 * DAY
        ),
        // Two certificates per agent: a live one and its expired predecessor. One agent in a
        // hundred last used a credential 40 days ago (agent-inactive).
        format!(
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < {last})
             INSERT INTO credentials (serial, spiffe_id, agent, kind, fingerprint,
                                      public_key_fingerprint, cert_pem, issued_at, expires_at)
             SELECT printf('%016x%016x', n, k), printf('spiffe://example.org/agent/agent-%07d', n),
                    printf('agent-%07d', n), 'x509-svid', 'fp', 'pk', 'PEM',
                    CASE WHEN n % 100 = 1 THEN {old} ELSE {now} - k * {m} END,
                    CASE WHEN n % 100 = 1 THEN {old} + 15 * {m} ELSE {now} + (10 - k * 15) * {m} END
             FROM seq, (SELECT 0 AS k UNION ALL SELECT 1)",
            last = agents - 1,
            old = NOW - 40 * DAY,
            now = NOW - 5 * MINUTE,
            m = MINUTE
        ),
        // One external key per agent: one in a hundred not rotated for 100 days
        // (static-credential), one in a hundred mapped to no agent (unmapped-credential). The
        // inactive agents' keys were deactivated 40 days ago.
        format!(
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < {last})
             INSERT INTO external_credentials (id, source, source_user, agent, kind, active,
                                               created_at, last_rotated_at, last_used_at, scopes,
                                               imported_at)
             SELECT printf('aws:arn:aws:iam::1:user/agent-%07d#access_key_1', n), 'aws-iam',
                    printf('agent-%07d', n),
                    CASE WHEN n % 100 = 3 THEN NULL ELSE printf('agent-%07d', n) END,
                    'aws-access-key', CASE WHEN n % 100 = 1 THEN 0 ELSE 1 END, NULL,
                    CASE WHEN n % 100 = 2 THEN {static_at} ELSE {rotated} END,
                    CASE WHEN n % 100 = 1 THEN {old} ELSE {used} END, '[]', {now}
             FROM seq",
            last = agents - 1,
            static_at = NOW - 100 * DAY,
            rotated = NOW - 10 * DAY,
            used = NOW - DAY,
            old = NOW - 40 * DAY,
            now = NOW
        ),
        // One baseline entitlement per agent: one in a hundred never used (unused-entitlement).
        format!(
            "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < {last})
             INSERT INTO entitlements (agent, action, resource, baseline, granted_at, last_used_at)
             SELECT printf('agent-%07d', n), 'invoke', 'tool:crm/*', 1, {granted},
                    CASE WHEN n % 100 = 4 THEN NULL ELSE {used} END
             FROM seq",
            last = agents - 1,
            granted = NOW - 60 * DAY,
            used = NOW - DAY
        ),
        "COMMIT".to_owned(),
        "ANALYZE".to_owned(),
        // Moves the seeded pages from the write-ahead log into the database file, as SQLite's
        // automatic checkpoints do for a registry that grew over time.
        "PRAGMA wal_checkpoint(TRUNCATE)".to_owned(),
    ];
    for statement in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&mut conn)
            .await
            .expect("seed statement");
    }
    conn.close().await.expect("close");
}

/// Resets the kernel's peak resident set (`VmHWM`) to the current one.
fn reset_peak_memory() {
    // Writing 5 to clear_refs resets VmHWM on Linux 4.0 and later; elsewhere this does nothing.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Reads a `/proc/self/status` field in KiB, or 0 where it is not available.
fn memory_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with(field))
                .and_then(|line| line.split_whitespace().nth(1))
                .and_then(|value| value.parse().ok())
        })
        .unwrap_or(0)
}
