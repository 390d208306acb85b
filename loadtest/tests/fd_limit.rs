//! The load generator raises its soft descriptor limit to the hard one at start-up, as the
//! gateway does: started under `ulimit -S -n 256`, it still opens 300 subscribers, and
//! says which limit it ran with.

use std::process::Command;

mod common;

use common::Gateway;

/// The hard limit of open files this test runs under (`ulimit -H -n`).
fn hard_limit() -> String {
    let out = Command::new("sh")
        .args(["-c", "ulimit -H -n"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn three_hundred_subscribers_under_a_soft_limit_of_256() {
    let hard = hard_limit();
    assert!(
        hard.parse::<u64>().map_or(hard == "unlimited", |h| h > 400),
        "this test needs a hard limit above 400, not {hard}"
    );
    let g = Gateway::start(|_| {});
    let bin = env!("CARGO_BIN_EXE_comet-loadtest");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -S -n 256 && exec '{bin}' --target={} --admin={} --quiet \
             --subscribers=300 --channels=3 --transport=events --burst=3 --rate=0 --drain=20s",
            g.public, g.admin
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{stderr}");
    if hard != "unlimited" {
        let said = format!(
            "comet-loadtest: descriptor limit {hard} (soft limit raised from 256 to the hard limit)"
        );
        assert!(stderr.contains(&said), "{stderr}");
    }
    assert!(!stderr.contains("warning"), "{stderr}");
    // A run whose connects all fail still counts as clean (nothing was expected), so the
    // account is what shows every subscriber got in.
    assert!(text.contains("connects 300"), "{text}");
    assert!(text.contains("expected 300  received 300"), "{text}");
    assert!(text.contains("errors: connect 0 "), "{text}");
}
