//! Runs the `comet-loadtest` binary with `--processes 3` against a gateway on loopback:
//! the merged account is exact (every share's subscribers counted once, on the channels
//! their index in the whole run gives them, one publisher for all, the latency histograms
//! merged to exactly the deliveries), the source addresses are split between the
//! processes, and killing the coordinator ends its workers.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::Gateway;

/// The load generator's binary aimed at the gateway.
trait Binary {
    fn command(&self, extra: &[&str]) -> Command;
}

impl Binary for Gateway {
    fn command(&self, extra: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_comet-loadtest"));
        c.arg(format!("--target={}", self.public))
            .arg(format!("--admin={}", self.admin))
            .args(extra);
        c
    }
}

/// The number after the last `"key":` in `json`.
fn last_number(json: &str, key: &str) -> u64 {
    let at = json.rfind(&format!("\"{key}\":")).expect(key) + key.len() + 3;
    let digits: String = json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().expect(key)
}

#[test]
fn three_processes_are_accounted_as_one_run() {
    let g = Gateway::start(|_| {});
    let json = std::env::temp_dir().join(format!("lt-processes-{}.json", std::process::id()));
    let out = g
        .command(&[
            "--quiet",
            "--processes=3",
            "--subscribers=300",
            "--channels=3",
            "--channels-per-subscriber=2",
            "--source=127.0.0.2-127.0.0.4",
            "--transport=events",
            "--burst=5",
            "--rate=0",
            "--drain=20s",
            &format!("--json={}", json.display()),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}\n{stderr}");
    let json_text = std::fs::read_to_string(&json).unwrap();
    let _ = std::fs::remove_file(&json);
    let whole = json_text.split(",\"processes\":[").next().unwrap();
    let n = |key: &str| last_number(whole, key);
    // Burst of 5 round robin over 3 channels: 2, 2 and 1 messages. Subscriber i takes
    // channels i % 3 and (i + 1) % 3 (i in the whole run, not in its process): 100 of each
    // pair, 4 + 3 + 3 messages.
    assert_eq!(n("published"), 5, "{text}");
    assert_eq!(n("subscribers"), 300);
    assert_eq!(n("expected"), 1000, "{text}");
    assert_eq!(n("received"), n("expected"), "{text}");
    for key in ["duplicates", "out_of_order", "lost", "missing", "skipped"] {
        assert_eq!(n(key), 0, "{key}: {text}");
    }
    assert!(json_text.contains("\"clean\":true"));
    assert_eq!(
        last_number(&json_text, "latency_count"),
        n("received"),
        "the merged histogram holds every delivery: {text}"
    );
    // One line per process in the text and in the JSON, each with its own address.
    let each: Vec<&str> = json_text
        .split(",\"processes\":[")
        .nth(1)
        .and_then(|list| list.split("}]").next())
        .unwrap()
        .split("},{")
        .collect();
    assert_eq!(each.len(), 3, "{json_text}");
    let mut counted = 0;
    for (k, p) in each.iter().enumerate() {
        assert!(
            p.contains(&format!("\"sources\":\"127.0.0.{}\"", k + 2)),
            "{p}"
        );
        assert_eq!(last_number(p, "subscribers"), 100);
        assert_eq!(last_number(p, "latency_count"), last_number(p, "received"));
        counted += last_number(p, "latency_count");
        assert!(text.contains(&format!(
            "process {k}: subscribers 100  from 127.0.0.{}",
            k + 2
        )));
    }
    assert_eq!(counted, n("received"));
    assert!(text.contains("latency histograms of 3 processes merged: 1000 deliveries"));
    assert!(text.ends_with("RESULT: clean (nothing lost unannounced, duplicated or reordered)\n"));
}

/// The processes whose parent is `pid` (from /proc).
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
            let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
            after.split_whitespace().nth(1) == Some(&pid.to_string())
        })
        .collect()
}

/// A process that has not ended (a zombie has).
fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest.trim_start());
    !stat.is_empty() && !state.starts_with('Z')
}

#[test]
fn workers_end_when_their_coordinator_is_killed() {
    let g = Gateway::start(|_| {});
    let mut coordinator = g
        .command(&[
            "--quiet",
            "--processes=2",
            "--subscribers=20",
            "--rate=10",
            "--duration=60s",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut workers = Vec::new();
    while workers.len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        workers = children(coordinator.id());
    }
    assert_eq!(workers.len(), 2, "the coordinator started its workers");
    std::thread::sleep(Duration::from_millis(500));
    coordinator.kill().unwrap();
    let _ = coordinator.wait();
    let deadline = Instant::now() + Duration::from_secs(10);
    while workers.iter().any(|&w| alive(w)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left: Vec<u32> = workers.into_iter().filter(|&w| alive(w)).collect();
    for w in &left {
        let _ = Command::new("kill").arg("-9").arg(w.to_string()).status();
    }
    assert!(
        left.is_empty(),
        "workers {left:?} outlived their coordinator"
    );
}
