//! The Redis engine's Lua scripts, run by `redis-cli` (a client this project did not
//! write) against a real `redis-server` that the test starts on a free loopback port:
//! seqs from the server clock, one step per publish (seq, capped history, live message),
//! catch-up reads, deletes that never let a seq come back, and a Redis that lost its data.

mod util;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use util::Redis;

const PUBLISH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/engine/redis/publish.lua");
const READ: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/engine/redis/read.lua");
const DELETE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/engine/redis/delete.lua");

/// Runs a script with its keys and arguments; its output lines.
fn eval(r: &Redis, script: &str, keys: &[&str], args: &[&str]) -> Vec<String> {
    let mut a = vec!["--eval", script];
    a.extend_from_slice(keys);
    a.push(",");
    a.extend_from_slice(args);
    r.cli(&a).lines().map(str::to_string).collect()
}

fn publish(r: &Redis, ch: &str, payload: &str, buffer: u32) -> u64 {
    let b = buffer.to_string();
    let live = format!("live:{ch}");
    let out = eval(
        r,
        PUBLISH,
        &[&format!("m:{ch}"), &format!("h:{ch}"), "floor"],
        &[payload, &b, "0", &live],
    );
    out[0].parse().expect("a seq")
}

/// `(first, next, payloads with their seqs)` from `from` on.
fn read(r: &Redis, ch: &str, from: u64, create: bool) -> (String, String, Vec<(u64, String)>) {
    let out = eval(
        r,
        READ,
        &[&format!("m:{ch}"), &format!("h:{ch}"), "floor"],
        &[&from.to_string(), if create { "1" } else { "0" }, "0"],
    );
    // first, next, now_ms, then per entry: id, "d", payload, "t", ms.
    let entries = out[3..]
        .chunks(5)
        .filter(|e| e.len() == 5)
        .map(|e| {
            let seq = e[0].strip_suffix("-0").unwrap().parse().unwrap();
            (seq, e[2].clone())
        })
        .collect();
    (out[0].clone(), out[1].clone(), entries)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64
}

#[test]
fn seqs_start_at_the_server_clock_and_count_up_with_a_capped_history() {
    let r = Redis::start();
    let before = now_us();
    let first = publish(&r, "a", "one", 3);
    assert!(
        first >= before && first < before + 10_000_000,
        "first seq {first} is the server's clock in µs (ours: {before})"
    );
    for (i, p) in ["two", "three", "four"].iter().enumerate() {
        assert_eq!(publish(&r, "a", p, 3), first + 1 + i as u64);
    }
    assert_eq!(r.cli(&["XLEN", "h:a"]), "3", "history capped at --buffer");
    let (f, n, entries) = read(&r, "a", 0, false);
    assert_eq!((f, n), (first.to_string(), (first + 4).to_string()));
    let seqs: Vec<u64> = entries.iter().map(|e| e.0).collect();
    assert_eq!(seqs, [first + 1, first + 2, first + 3]);
    let (_, _, from) = read(&r, "a", first + 2, false);
    assert_eq!(
        from,
        [(first + 2, "three".into()), (first + 3, "four".into())]
    );
}

#[test]
fn a_publish_reaches_pubsub_with_its_seq_and_exact_payload() {
    let r = Redis::start();
    let mut sub = Command::new("redis-cli")
        .args(["-p", &r.port.to_string(), "--no-raw", "SUBSCRIBE", "live:x"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the subscription is in place.
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.cli(&["PUBSUB", "NUMSUB", "live:x"]).lines().nth(1) != Some("1") {
        assert!(Instant::now() < deadline, "SUBSCRIBE did not take");
        std::thread::sleep(Duration::from_millis(20));
    }
    let payload = "a:b \"quoted\" é ✓";
    let seq = publish(&r, "x", payload, 10);
    std::thread::sleep(Duration::from_millis(200));
    let _ = sub.kill();
    let out = sub.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let (_, _, stored) = read(&r, "x", 0, false);
    assert_eq!(stored, [(seq, payload.to_string())]);
    assert!(
        text.contains(&format!("{seq}:a:b")),
        "live message carries `seq:payload`: {text}"
    );
}

#[test]
fn a_deleted_channel_and_a_channel_redis_lost_never_reuse_a_seq() {
    let r = Redis::start();
    let first = publish(&r, "d", "x", 10);
    let last = publish(&r, "d", "y", 10);
    assert_eq!(eval(&r, DELETE, &["m:d", "h:d", "floor"], &[]), ["1"]);
    assert_eq!(eval(&r, DELETE, &["m:d", "h:d", "floor"], &[]), ["0"]);
    let (f, n, entries) = read(&r, "d", 0, false);
    assert_eq!((f.as_str(), n.as_str(), entries.len()), ("", "", 0));
    let again = publish(&r, "d", "z", 10);
    assert!(
        again > last,
        "new life {again} starts past {last} (first {first})"
    );
    // Redis loses everything (a restart without persistence): the next life starts at
    // the server clock, past every seq of the old one.
    assert_eq!(r.cli(&["FLUSHALL"]), "OK");
    let reborn = publish(&r, "d", "w", 10);
    assert!(reborn > again, "after data loss {reborn} > {again}");
}

#[test]
fn a_subscriber_fixes_the_first_seq_of_a_channel_nobody_published_to() {
    let r = Redis::start();
    let (f, n, entries) = read(&r, "q", 0, true);
    assert!(!f.is_empty() && f == n && entries.is_empty());
    // The first message gets exactly that seq, so a subscriber waiting at `next` has it.
    let seq = publish(&r, "q", "first", 10);
    assert_eq!(seq.to_string(), f);
}
