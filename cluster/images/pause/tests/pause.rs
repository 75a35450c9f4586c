//! The pause binary as a pod's PID 1: it reaps orphans re-parented to it and exits 0 on
//! SIGTERM. Runs it in a new PID namespace with `unshare` (needs root).

#![allow(clippy::unwrap_used)] // a test: a panic fails it

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn children_of(pid: u32) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{child}/status")) else {
            continue;
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        if field("PPid:") == pid.to_string() {
            out.push((child, field("State:")));
        }
    }
    out
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn reaps_orphans_and_exits_on_sigterm() {
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_pause"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // unshare forks pause as PID 1 of the new namespace.
    let mut pause = 0;
    wait_for("pause to start", || {
        pause = children_of(unshare.id()).first().map(|c| c.0).unwrap_or(0);
        pause != 0
    });
    // Orphans in its namespace: their parent (sh) exits at once, so they re-parent to
    // pause, and exit shortly after: without reaping they would stay zombies.
    let status = Command::new("nsenter")
        .args([
            "-t",
            &pause.to_string(),
            "-p",
            "--",
            "sh",
            "-c",
            "sleep 0.2 & sleep 0.2 & exit 0",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    wait_for("orphans adopted", || !children_of(pause).is_empty());
    wait_for("orphans reaped", || children_of(pause).is_empty());

    let kill = Command::new("kill")
        .args(["-TERM", &pause.to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = unshare.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("Shutting down, got signal: SIGTERM"),
        "{stderr}"
    );
    assert!(!stderr.contains("Warning"), "pause was not PID 1: {stderr}");
}

#[test]
fn version_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_pause"))
        .arg("-v")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("pause.rs "));
}
