//! Governance through `sigil` against a real `sigil serve`: offboarding with the grace-period
//! suspension, reviews, risk acceptance, inventory imports and signed webhooks.
//!
//! Time-based rules run with short periods passed to `sigil serve`; the store tests cover the
//! same rules with an injected clock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test on a setup error"
)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::Authority;
use serde_json::Value;

fn findings(authority: &Authority, kind: &str) -> Vec<Value> {
    let list = authority.sigil_json(&["findings", "--kind", kind]);
    list["findings"].as_array().unwrap().clone()
}

fn open_subjects(authority: &Authority, kind: &str) -> Vec<String> {
    let mut subjects: Vec<String> = findings(authority, kind)
        .iter()
        .filter(|f| f["status"] == "open")
        .map(|f| f["subject"].as_str().unwrap().to_owned())
        .collect();
    subjects.sort();
    subjects
}

fn status(authority: &Authority, agent: &str) -> String {
    let shown = authority.sigil_json(&["agent", "show", agent]);
    shown["status"].as_str().unwrap().to_owned()
}

/// Waits until `check` returns true, for up to `limit`.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

#[test]
fn offboarding_transfers_or_suspends() {
    // The grace period leaves room for the steps before the transfer on a loaded machine, where
    // each `sigil` process can take a second.
    let authority =
        Authority::start_with(&["--owner-grace-period", "10s", "--scan-interval", "1s"]);
    authority.sigil_ok(&["owner", "add", "alice@example.org"]);
    authority.enrolled_agent("bob@example.org", "kept");
    authority.enrolled_agent("bob@example.org", "left");

    authority.sigil_ok(&["owner", "depart", "bob@example.org"]);
    assert_eq!(
        open_subjects(&authority, "owner-departed"),
        ["kept", "left"],
        "depart opens one finding per agent at once"
    );

    let moved =
        authority.sigil_json(&["agent", "transfer", "kept", "--owner", "alice@example.org"]);
    assert_eq!(moved["agent"]["owner"], "alice@example.org");
    assert_eq!(moved["previous_owner"], "bob@example.org");
    assert_eq!(open_subjects(&authority, "owner-departed"), ["left"]);

    authority.sigil_ok(&["owner", "add", "carol@example.org"]);
    authority.sigil_ok(&["owner", "depart", "carol@example.org"]);
    let refused = authority.sigil(&["agent", "transfer", "left", "--owner", "carol@example.org"]);
    assert!(
        !refused.status.success(),
        "transfer to a departed owner must fail"
    );
    assert!(String::from_utf8_lossy(&refused.stderr).contains("departed"));

    assert!(
        eventually(Duration::from_secs(30), || status(&authority, "left")
            == "suspended"),
        "the scan did not suspend the agent after the grace period"
    );
    assert_eq!(status(&authority, "kept"), "active");
    let audit = authority.sql(
        "SELECT actor || ' ' || action FROM audit_events WHERE subject = 'left' AND action = 'agent.suspended'",
    );
    assert_eq!(audit.trim(), "system agent.suspended");
    let decision = authority.sigil_json(&["authorize", "left", "invoke", "tool:x"]);
    assert_eq!(decision["decision"], "deny");
    authority.sigil_ok(&["audit", "verify"]);
}

#[test]
fn review_overdue_suspends_and_accept_stops_it() {
    let authority = Authority::start_with(&["--scan-interval", "1h"]);
    authority.enrolled_agent("alice@example.org", "certified");
    authority.enrolled_agent("alice@example.org", "forgotten");
    authority.enrolled_agent("alice@example.org", "excused");
    authority.sigil_ok(&["agent", "grant", "certified", "invoke:tool:billing/*"]);

    let started = authority.sigil_json(&["review", "start", "--due", "2s"]);
    let agents: Vec<&str> = started["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["agent"].as_str().unwrap())
        .collect();
    assert_eq!(
        agents.len(),
        2,
        "the drifted agent already has an item: {started}"
    );
    assert!(agents.contains(&"forgotten") && agents.contains(&"excused"));

    let certified = authority.sigil_json(&["review", "certify", "certified", "--drop-drift"]);
    assert_eq!(certified["status"], "dropped");
    assert_eq!(certified["dropped"][0], "invoke:tool:billing/*");

    let bad = authority.sigil(&["review", "certify", "certified", "--keep", "--drop-drift"]);
    assert!(!bad.status.success(), "keep and drop-drift are exclusive");

    std::thread::sleep(Duration::from_millis(2500));
    authority.sigil_ok(&["findings", "--scan"]);
    assert_eq!(
        open_subjects(&authority, "review-overdue"),
        ["excused", "forgotten"]
    );
    assert_eq!(status(&authority, "forgotten"), "suspended");
    assert_eq!(status(&authority, "excused"), "suspended");

    let id = findings(&authority, "review-overdue")
        .iter()
        .find(|f| f["subject"] == "excused")
        .unwrap()["id"]
        .as_i64()
        .unwrap()
        .to_string();
    let before = authority.audit_count();
    let empty = authority.sigil(&["finding", "accept", &id, "--reason", " "]);
    assert!(!empty.status.success(), "an empty reason must be rejected");
    assert_eq!(
        authority.audit_count(),
        before + 1,
        "the rejection is audited"
    );

    let accepted =
        authority.sigil_json(&["finding", "accept", &id, "--reason", "on leave until May"]);
    assert_eq!(accepted["status"], "accepted");
    assert_eq!(accepted["acceptance"]["reason"], "on leave until May");
    authority.sigil_ok(&["agent", "resume", "excused"]);
    authority.sigil_ok(&["findings", "--scan"]);
    let excused = findings(&authority, "review-overdue");
    let excused = excused.iter().find(|f| f["subject"] == "excused").unwrap();
    assert_eq!(
        excused["status"], "accepted",
        "an accepted finding is not reopened"
    );
    assert_eq!(
        status(&authority, "excused"),
        "active",
        "nor enforced again"
    );

    let missing = authority.sigil(&["finding", "accept", "999999", "--reason", "x"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("not found"));
}

const AWS_HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,\
password_last_changed,password_next_rotation,mfa_active,access_key_1_active,\
access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,\
access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,\
access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,\
cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

fn aws_row(user: &str, key1: (&str, &str, &str), key2: (&str, &str, &str)) -> String {
    format!(
        "{user},arn:aws:iam::123456789012:user/{user},2020-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,\
{},{},{},us-east-1,s3,{},{},{},N/A,N/A,false,N/A,false,N/A",
        key1.0, key1.1, key1.2, key2.0, key2.1, key2.2
    )
}

fn iso_days_ago(days: i64) -> String {
    (time::OffsetDateTime::now_utc() - time::Duration::days(days))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn aws_report_import_and_findings() {
    let authority = Authority::start_with(&["--scan-interval", "1h"]);
    authority.enrolled_agent("alice@example.org", "crm-bot");
    authority.enrolled_agent("alice@example.org", "billing-bot");

    let fresh = iso_days_ago(2);
    let old = iso_days_ago(120);
    let rows = [
        // Line 2: crm-bot, one fresh key and one key not rotated for 120 days.
        aws_row("crm-bot", ("true", &fresh, &fresh), ("true", &old, &fresh)),
        // Line 3: malformed (bad boolean).
        aws_row("broken", ("maybe", &fresh, "N/A"), ("false", "N/A", "N/A")),
        // Line 4: svc-billing maps to billing-bot through the mapping file; never used.
        aws_row(
            "svc-billing",
            ("true", &iso_days_ago(40), "N/A"),
            ("false", "N/A", "N/A"),
        ),
        // Line 5: a user that is no agent.
        aws_row("intern", ("true", &fresh, &fresh), ("false", "N/A", "N/A")),
        // Line 6: too few fields.
        "short,row".to_owned(),
    ];
    let report = authority.dir.path().join("report.csv");
    std::fs::write(&report, format!("{AWS_HEADER}\n{}\n", rows.join("\n"))).unwrap();
    let mapping = authority.dir.path().join("mapping.json");
    std::fs::write(&mapping, r#"{"svc-billing": "billing-bot"}"#).unwrap();

    let summary = authority.sigil_json(&[
        "credentials",
        "import",
        "--format",
        "aws-iam-credential-report",
        report.to_str().unwrap(),
        "--mapping",
        mapping.to_str().unwrap(),
    ]);
    assert_eq!(summary["rows"], 5, "{summary}");
    assert_eq!(summary["imported"], 4, "{summary}");
    assert_eq!(summary["skipped"], 2, "{summary}");
    assert_eq!(summary["unmapped"], 1, "{summary}");
    let lines: Vec<i64> = summary["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["line"].as_i64().unwrap())
        .collect();
    assert_eq!(lines, [3, 6]);
    assert_eq!(summary["unmapped_lines"][0], 5);

    authority.sigil_ok(&["findings", "--scan"]);
    let arn = |user: &str, slot: &str| format!("aws:arn:aws:iam::123456789012:user/{user}#{slot}");
    assert_eq!(
        open_subjects(&authority, "static-credential"),
        [arn("crm-bot", "access_key_2")]
    );
    assert_eq!(
        open_subjects(&authority, "unused-credential"),
        [arn("svc-billing", "access_key_1")]
    );
    assert_eq!(
        open_subjects(&authority, "unmapped-credential"),
        [arn("intern", "access_key_1")]
    );

    // A file with a secret column is rejected whole: nothing is stored, the rejection is
    // audited, and the secret appears nowhere.
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let leaky = authority.dir.path().join("leaky.csv");
    std::fs::write(
        &leaky,
        format!(
            "{AWS_HEADER},aws_secret_access_key\n{},{secret}\n",
            aws_row("x", ("true", &fresh, &fresh), ("false", "N/A", "N/A"))
        ),
    )
    .unwrap();
    let before = authority.sql("SELECT COUNT(*) FROM external_credentials");
    let rejected = authority.sigil(&[
        "credentials",
        "import",
        "--format",
        "aws-iam-credential-report",
        leaky.to_str().unwrap(),
    ]);
    assert!(!rejected.status.success());
    let stderr = String::from_utf8_lossy(&rejected.stderr);
    assert!(stderr.contains("aws_secret_access_key"), "{stderr}");
    assert!(!stderr.contains(secret));
    assert_eq!(
        authority.sql("SELECT COUNT(*) FROM external_credentials"),
        before
    );
    let audited =
        authority.sql("SELECT COUNT(*) FROM audit_events WHERE action = 'request.rejected'");
    assert_ne!(audited.trim(), "0");
    let everything = authority.sql("SELECT * FROM audit_events") + &authority.server_log();
    assert!(
        !everything.contains(secret),
        "the secret reached the audit log or server log"
    );

    let unknown = authority.sigil(&[
        "credentials",
        "import",
        "--format",
        "csv",
        report.to_str().unwrap(),
    ]);
    assert!(!unknown.status.success());
}

#[test]
fn json_inventory_sprawl_and_decommission() {
    let authority = Authority::start_with(&["--scan-interval", "1h"]);
    authority.enrolled_agent("alice@example.org", "sprawler");
    authority.enrolled_agent("alice@example.org", "retired");
    let fresh = iso_days_ago(1);
    let mut lines = Vec::new();
    for i in 0..4 {
        lines.push(format!(
            r#"{{"id":"gh:{i}","agent":"sprawler","kind":"github-token","last_rotated":"{fresh}","last_used":"{fresh}","scopes":["repo"]}}"#
        ));
    }
    lines.push(format!(
        r#"{{"id":"gh:retired","agent":"retired","kind":"github-token","last_rotated":"{fresh}","last_used":"{fresh}"}}"#
    ));
    lines.push(
        r#"{"id":"gh:bad","agent":"sprawler","kind":"x","password":"hunter2hunter2"}"#.to_owned(),
    );
    let file = authority.dir.path().join("inventory.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();

    let summary = authority.sigil_json(&[
        "credentials",
        "import",
        "--format",
        "json",
        file.to_str().unwrap(),
    ]);
    assert_eq!(summary["imported"], 5, "{summary}");
    assert_eq!(summary["skipped"], 1, "{summary}");
    assert_eq!(summary["errors"][0]["line"], 6);
    assert!(
        !authority
            .sql("SELECT * FROM external_credentials")
            .contains("hunter2")
    );

    authority.sigil_ok(&["agent", "decommission", "retired"]);
    authority.sigil_ok(&["findings", "--scan"]);
    assert_eq!(open_subjects(&authority, "credential-sprawl"), ["sprawler"]);
    assert_eq!(
        open_subjects(&authority, "credential-after-decommission"),
        ["retired"]
    );
}

/// One request received by the test webhook receiver.
struct Received {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Starts a plain HTTP/1.1 receiver on loopback that answers 500 to the first `failures`
/// requests and 200 after; every request is sent on the returned channel.
fn start_receiver(failures: usize) -> (u16, mpsc::Receiver<Received>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for (index, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = Vec::new();
            let mut length = 0;
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            loop {
                line.clear();
                reader.read_line(&mut line).unwrap();
                let trimmed = line.trim_end();
                if trimmed.is_empty() {
                    break;
                }
                let (name, value) = trimmed.split_once(':').unwrap();
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
                headers.push((name.to_owned(), value.trim().to_owned()));
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let status = if index < failures {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            let _ = stream.write_all(
                format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            if sender.send(Received { headers, body }).is_err() {
                return;
            }
        }
    });
    (port, receiver)
}

#[test]
fn webhook_is_signed_and_retried() {
    let secret = "webhook-test-secret-0123456789";
    let (port, received) = start_receiver(2);
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("webhook.secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    let url = format!("http://127.0.0.1:{port}/hooks/sigil");
    let authority = Authority::start_with(&[
        "--scan-interval",
        "1h",
        "--webhook-url",
        &url,
        "--webhook-secret-file",
        secret_file.to_str().unwrap(),
    ]);
    authority.enrolled_agent("alice@example.org", "bot");
    authority.sigil_ok(&["agent", "grant", "bot", "invoke:tool:billing/*"]);

    let mut attempts = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while attempts.len() < 3 && Instant::now() < deadline {
        if let Ok(request) = received.recv_timeout(Duration::from_millis(500)) {
            attempts.push(request);
        }
    }
    assert_eq!(attempts.len(), 3, "expected two failures and one success");

    let delivered = &attempts[2];
    assert_eq!(
        attempts[0].body, delivered.body,
        "a retry resends the same delivery"
    );
    let signature = delivered.header("X-Sigil-Signature").unwrap();
    let timestamp = delivered.header("X-Sigil-Timestamp").unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    sigil_governance::webhook::verify(
        secret.as_bytes(),
        signature,
        timestamp,
        &delivered.body,
        now,
        300,
    )
    .expect("the signature verifies with the shared secret");
    assert!(
        sigil_governance::webhook::verify(
            b"wrong-secret-0123456789",
            signature,
            timestamp,
            &delivered.body,
            now,
            300
        )
        .is_err()
    );

    let body: Value = serde_json::from_slice(&delivered.body).unwrap();
    assert_eq!(body["event"], "finding.opened");
    assert_eq!(body["finding"]["kind"], "privilege-drift");
    assert_eq!(body["finding"]["subject"], "bot");

    // Resolving the drift sends a second, resolved event.
    authority.sigil_ok(&["agent", "revoke-grant", "bot", "invoke:tool:billing/*"]);
    let resolved = received.recv_timeout(Duration::from_secs(15)).unwrap();
    let body: Value = serde_json::from_slice(&resolved.body).unwrap();
    assert_eq!(body["event"], "finding.resolved");

    let log = authority.server_log();
    assert!(
        log.contains("webhook delivery failed; will retry"),
        "retries are logged"
    );
    assert!(!log.contains(secret), "the webhook secret reached the log");
}

#[test]
fn unknown_finding_kind_rejected() {
    let authority = Authority::start();

    let output = authority.sigil(&["findings", "--kind", "orphaned-everything"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "an unknown kind must fail");
    assert!(stderr.contains("unknown finding kind"), "{stderr}");
    assert!(
        stderr.contains("identity-fork"),
        "the message lists the kinds: {stderr}"
    );

    let (status, body) = authority.request(
        "GET",
        "/v1/admin/findings?kind=orphaned-everything",
        None,
        Some((&authority.admin_cert(), &authority.admin_key())),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid_query"), "{body}");
}
