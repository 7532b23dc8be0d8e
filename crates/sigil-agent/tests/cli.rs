//! The `sigil-agent` command line, without an authority.

use std::process::Command;

#[test]
fn missing_token_and_svid_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, "").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_sigil-agent"))
        .args([
            "run",
            "--once",
            "--server",
            "https://127.0.0.1:1",
            "--bundle",
        ])
        .arg(&bundle)
        .arg("--out")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--join-token"), "{stderr}");
}
