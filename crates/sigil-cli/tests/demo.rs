//! `sigil demo` runs its whole tour and reports every step.

use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn demo_passes_every_step() {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_sigil"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "sigil demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for step in 1..=8 {
        assert!(
            stdout.contains(&format!("\n{step}. ")),
            "step {step} missing:\n{stdout}"
        );
    }
    assert!(stdout.contains("All steps passed"), "{stdout}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the demo took {:?}",
        started.elapsed()
    );
}
