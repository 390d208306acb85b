//! `deploy/comet-gateway.service` checked by `systemd-analyze verify`: a copy whose
//! ExecStart names the binary cargo built (verify wants an executable there), which must
//! pass with no complaint at all (verify exits 0 on unknown keys and bad values, printing
//! only a warning, so its output is checked too), and the settings the unit promises.
//! Needs `systemd-analyze` (Debian's systemd package); it fails, never skips, without it.

use std::process::Command;

const UNIT: &str = include_str!("../deploy/comet-gateway.service");

/// Runs `systemd-analyze verify` on `text` saved as comet-gateway.service in a fresh
/// directory: (exit status success, what it printed).
fn verify(text: &str) -> (bool, String) {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("comet-systemd-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("comet-gateway.service");
    std::fs::write(&path, text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "systemd-analyze cannot run ({e}): install Debian's systemd package \
                 (apt-get install systemd) to check deploy/comet-gateway.service"
            )
        });
    let _ = std::fs::remove_dir_all(&dir);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn with_built_binary(unit: &str) -> String {
    unit.replace(
        "/usr/local/bin/comet-gateway",
        env!("CARGO_BIN_EXE_comet-gateway"),
    )
}

#[test]
fn unit_passes_systemd_analyze_verify() {
    let (ok, out) = verify(&with_built_binary(UNIT));
    assert!(
        ok && out.trim().is_empty(),
        "systemd-analyze verify:\n{out}"
    );
}

#[test]
fn verify_catches_what_it_should() {
    // The check above means something: a bad value in this very unit is reported.
    let bad = with_built_binary(UNIT).replace("KillSignal=SIGTERM", "KillSignal=SIGBOGUS");
    let (_, out) = verify(&bad);
    assert!(out.contains("SIGBOGUS"), "not reported:\n{out}");
    // And so is a binary that is not there.
    let (ok, out) = verify(UNIT.replace("/usr/local/bin/", "/nonexistent/").as_str());
    assert!(!ok && out.contains("not executable"), "{out}");
}

/// The value of `key=` in the unit (the last one, as systemd takes it).
fn setting(key: &str) -> Option<&'static str> {
    UNIT.lines()
        .rev()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
}

fn seconds(text: &str) -> u64 {
    text.trim_end_matches('s').parse().unwrap()
}

#[test]
fn unit_settings() {
    assert_eq!(setting("LimitNOFILE"), Some("1048576"));
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("KillSignal", "SIGTERM"),
        ("Restart", "on-failure"),
    ] {
        assert_eq!(setting(key), Some(value), "{key}");
    }
    assert!(setting("RestrictAddressFamilies").is_some());
    // The gateway has no reload.
    assert_eq!(setting("ExecReload"), None);
    // systemd waits past the gateway's own drain before it kills.
    let drain = UNIT
        .split("--shutdown-timeout ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .expect("--shutdown-timeout on ExecStart");
    let stop = setting("TimeoutStopSec").expect("TimeoutStopSec");
    assert!(
        seconds(stop) > seconds(drain),
        "TimeoutStopSec={stop} vs --shutdown-timeout {drain}"
    );
}
