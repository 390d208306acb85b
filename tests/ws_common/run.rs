//! The checks, one public function each, run against the gateway binary for one library.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::client::{compare, count, data_events, events, has_event, render, Client};
use super::gateway::{admin_get, free_ports, publish, sign, Gateway};
use super::{Lib, PAYLOADS, WAIT};

/// The client scripts' directory, after checking the library is installed.
fn scripts(lib: Lib) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ws");
    for p in lib.prerequisites(&dir) {
        assert!(
            p.exists(),
            "{}: {} is missing: run `bash tests/setup.sh` first",
            lib.name(),
            p.display()
        );
    }
    dir
}

fn hello_count(lines: &[Value]) -> usize {
    events(lines)
        .iter()
        .filter(|e| e["type"] == "hello")
        .count()
}

fn subscribers(admin: u16, channel: &str) -> u64 {
    match admin_get(admin, &format!("/channels/{channel}")) {
        (200, v) => v["subscribers"].as_u64().unwrap_or(0),
        _ => 0,
    }
}

/// Payloads arrive byte-identical, in seq order, each once, after `hello`.
pub fn order(lib: Lib) {
    let dir = scripts(lib);
    let (public, admin) = free_ports();
    let _gateway = Gateway::start(public, admin);
    let channel = format!("ws-order-{}", lib.tag());
    let mut client = Client::spawn(lib, &dir);
    client.open(public, &channel, "", None, false);
    client.expect("hello", WAIT, |l| hello_count(l) == 1);
    // JSON escaping doubles each quote: the event is past 65,535 bytes, so its frame
    // carries a 64-bit length.
    let big = format!("big {}", "\"".repeat(40_000));
    let mut payloads: Vec<String> = PAYLOADS.iter().map(|p| p.to_string()).collect();
    payloads.push(big);
    for i in 0..50 {
        payloads.push(format!("m{i}"));
    }
    let published: Vec<(u64, String)> = payloads
        .iter()
        .map(|p| (publish(admin, &channel, p), p.clone()))
        .collect();
    let n = published.len();
    let ch = channel.clone();
    let arrived = client.wait_for(WAIT, |l| data_events(l, &ch).len() >= n);
    let got = data_events(&client.seen, &channel);
    let all = events(&client.seen);
    assert!(
        arrived && compare(&got, &published).is_none(),
        "{}: order: {}\n(all arrived within {WAIT:?}: {arrived})",
        lib.name(),
        compare(&got, &published).unwrap_or_default()
    );
    assert_eq!(all[0]["type"], "hello", "{}: first event", lib.name());
    let stray: Vec<&&Value> = all[1..].iter().filter(|e| e["type"] != "data").collect();
    assert!(
        stray.is_empty(),
        "{}: unexpected events {stray:?}",
        lib.name()
    );
    let bad = client
        .seen
        .iter()
        .filter(|v| v["kind"] == "message" && !v["error"].is_null() || v["kind"] == "garbage")
        .count();
    assert_eq!(
        bad,
        0,
        "{}: unparsable messages:\n{}",
        lib.name(),
        render(&client.seen)
    );
    assert_eq!(count(&client.seen, "close"), 0, "{}: closed", lib.name());
    client.stop();
    println!("ok {}: order ({n} messages)", lib.name());
}

/// SIGKILL and a restart on the same ports: the script resumes with its cursor, gets one
/// `reset`, then exactly what was published since, in order.
pub fn restart(lib: Lib) {
    let dir = scripts(lib);
    let (public, admin) = free_ports();
    let mut gateway = Gateway::start(public, admin);
    let channel = format!("ws-restart-{}", lib.tag());
    let mut client = Client::spawn(lib, &dir);
    client.open(public, &channel, "", None, true);
    client.expect("hello", WAIT, |l| hello_count(l) == 1);
    let before: Vec<(u64, String)> = (0..5)
        .map(|i| {
            let p = format!("before {i}");
            (publish(admin, &channel, &p), p)
        })
        .collect();
    let ch = channel.clone();
    client.expect("the messages before the kill", WAIT, |l| {
        data_events(l, &ch).len() >= 5
    });
    assert_eq!(
        data_events(&client.seen, &channel),
        before,
        "{}",
        lib.name()
    );
    let killed_at = client.seen.len();
    gateway.kill();
    gateway = Gateway::start(public, admin);
    client.expect("a new hello after the restart", WAIT, |l| {
        hello_count(&l[killed_at..]) == 1
    });
    // It asked for the seq after the last message it had.
    let resumed = client.seen[killed_at..]
        .iter()
        .rev()
        .find(|v| v["kind"] == "request")
        .map(|v| v["url"].as_str().unwrap_or("").to_string())
        .unwrap_or_default();
    let want_seq = format!("seq={}", before[4].0 + 1);
    assert!(
        resumed.contains(&want_seq),
        "{}: reconnected with {resumed}, want {want_seq}",
        lib.name()
    );
    let after: Vec<(u64, String)> = (0..4)
        .map(|i| {
            let p = format!("after {i}");
            (publish(admin, &channel, &p), p)
        })
        .collect();
    let ch = channel.clone();
    let complete = client.wait_for(WAIT, |l| data_events(&l[killed_at..], &ch).len() >= 4);
    let lines = &client.seen[killed_at..];
    let hello_at = lines
        .iter()
        .position(|v| v["kind"] == "message" && v["json"]["type"] == "hello")
        .unwrap();
    let stream = &lines[hello_at..];
    let evs = events(stream);
    let describe = || {
        evs.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let got = data_events(stream, &channel);
    let old: HashSet<u64> = before.iter().map(|(s, _)| *s).collect();
    let resets: Vec<&&Value> = evs
        .iter()
        .filter(|e| e["type"] == "reset" && e["channel"] == channel.as_str())
        .collect();
    assert!(
        complete,
        "{}: after the restart got {got:?}; events {}",
        lib.name(),
        describe()
    );
    assert_eq!(
        resets.len(),
        1,
        "{}: resets; events {}",
        lib.name(),
        describe()
    );
    assert!(
        evs.iter().position(|e| e["type"] == "reset")
            < evs.iter().position(|e| e["type"] == "data"),
        "{}: reset after data: {}",
        lib.name(),
        describe()
    );
    assert!(
        got.iter().all(|(s, _)| !old.contains(s)),
        "{}: messages from before the kill again: {got:?}",
        lib.name()
    );
    if let Some(diff) = compare(&got, &after) {
        panic!(
            "{}: after the restart: {diff}; events {}",
            lib.name(),
            describe()
        );
    }
    assert_eq!(
        resets[0]["seq"].as_u64(),
        Some(after[0].0),
        "{}: reset seq vs the first message after it",
        lib.name()
    );
    let others: Vec<&&Value> = evs[1..]
        .iter()
        .filter(|e| !(e["type"] == "data" || e["type"] == "reset"))
        .collect();
    assert!(
        others.is_empty(),
        "{}: unexpected events {others:?}",
        lib.name()
    );
    client.stop();
    drop(gateway);
    println!(
        "ok {}: restart (reset, then {} messages once each)",
        lib.name(),
        after.len()
    );
}

/// `subscribe` (with a seq), `unsubscribe`, a bad command and `close`, over the socket.
pub fn commands(lib: Lib) {
    let dir = scripts(lib);
    let (public, admin) = free_ports();
    let _gateway = Gateway::start(public, admin);
    let a = format!("ws-cmd-a-{}", lib.tag());
    let b = format!("ws-cmd-b-{}", lib.tag());
    let mut client = Client::spawn(lib, &dir);
    client.open(public, &a, "", None, false);
    client.expect("hello", WAIT, |l| hello_count(l) == 1);
    let a1 = publish(admin, &a, "a1");
    let ch = a.clone();
    client.expect("a1", WAIT, |l| !data_events(l, &ch).is_empty());

    // Subscribe to b from a seq: what is buffered from it comes first, then live ones.
    let b0 = publish(admin, &b, "b0");
    let b1 = publish(admin, &b, "b1");
    client.frame(json!({"type": "subscribe", "channel": b, "seq": b1.to_string()}));
    let ch = b.clone();
    client.expect("b1 (buffered)", WAIT, |l| !data_events(l, &ch).is_empty());
    let b2 = publish(admin, &b, "b2");
    client.expect("b2", WAIT, |l| data_events(l, &ch).len() >= 2);
    assert_eq!(
        data_events(&client.seen, &b),
        vec![(b1, "b1".to_string()), (b2, "b2".to_string())],
        "{}: subscribe from seq {b1} (b0 = {b0} before it)",
        lib.name()
    );

    // Unsubscribe from a: a's next message does not arrive, b's does.
    client.frame(json!({"type": "unsubscribe", "channel": a}));
    let (ca, cb) = (a.clone(), b.clone());
    let admin_sees = || subscribers(admin, &ca) == 0 && subscribers(admin, &cb) == 1;
    let deadline = std::time::Instant::now() + WAIT;
    while !admin_sees() {
        assert!(
            std::time::Instant::now() < deadline,
            "{}: the gateway never had a unsubscribed ({} subscribers on {a})",
            lib.name(),
            subscribers(admin, &a)
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    publish(admin, &a, "a2, not for us");
    let b3 = publish(admin, &b, "b3");
    client.expect("b3", WAIT, |l| data_events(l, &cb).len() >= 3);
    assert_eq!(
        data_events(&client.seen, &a),
        vec![(a1, "a1".to_string())],
        "{}: a after unsubscribing",
        lib.name()
    );

    // A bad command: an error event, the connection stays.
    let errors_before = events(&client.seen)
        .iter()
        .filter(|e| e["type"] == "error")
        .count();
    client.frame(json!({"type": "subscribe", "channel": "no spaces allowed"}));
    client.expect("an error event", WAIT, |l| {
        events(l).iter().filter(|e| e["type"] == "error").count() > errors_before
    });
    let b4 = publish(admin, &b, "b4");
    client.expect("b4 after the error", WAIT, |l| {
        data_events(l, &cb).len() >= 4
    });
    let seqs: Vec<u64> = data_events(&client.seen, &b)
        .iter()
        .map(|(s, _)| *s)
        .collect();
    assert_eq!(seqs, vec![b1, b2, b3, b4], "{}: b", lib.name());
    assert_eq!(count(&client.seen, "close"), 0, "{}: closed", lib.name());

    // close: the gateway ends the connection.
    client.frame(json!({"type": "close"}));
    client.expect("the connection closed", WAIT, |l| count(l, "close") == 1);
    let deadline = std::time::Instant::now() + WAIT;
    while subscribers(admin, &b) != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "{}: still subscribed after close",
            lib.name()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let close = client.seen.iter().find(|v| v["kind"] == "close").unwrap();
    println!(
        "ok {}: commands (subscribe from a seq, unsubscribe, error, close → {close})",
        lib.name()
    );
    client.stop();
}

/// With `--auth-secret`: no token and a forged one are refused with 403; a signed one
/// is let in.
pub fn auth(lib: Lib) {
    let dir = scripts(lib);
    let (public, admin) = free_ports();
    let _gateway = Gateway::start_with(
        public,
        admin,
        &[
            "--heartbeat",
            "200ms",
            "--auth-secret",
            "ws-client-test-secret",
        ],
    );
    let channel = format!("ws-auth-{}", lib.tag());
    let token = sign(admin, &channel);
    // The same token with its last character changed.
    let mut forged = token.clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let other = sign(admin, "some-other-channel");
    for (what, t) in [
        ("no token", None),
        ("a forged token", Some(forged.as_str())),
        ("another channel's token", Some(other.as_str())),
    ] {
        let mut client = Client::spawn(lib, &dir);
        client.open(public, &channel, "", t, false);
        client.expect(&format!("a refusal for {what}"), WAIT, |l| {
            count(l, "refused") + count(l, "open") + count(l, "error") > 0
        });
        let refused: Vec<&Value> = client
            .seen
            .iter()
            .filter(|v| v["kind"] == "refused")
            .collect();
        assert!(
            refused.len() == 1 && refused[0]["status"] == 403 && count(&client.seen, "open") == 0,
            "{}: {what}: want a 403 refusal; the script printed:\n{}",
            lib.name(),
            render(&client.seen)
        );
        client.stop();
    }
    let mut client = Client::spawn(lib, &dir);
    client.open(public, &channel, "", Some(&token), false);
    client.expect("hello with a signed token", WAIT, |l| hello_count(l) == 1);
    let seq = publish(admin, &channel, "authorized");
    client.expect("the message", WAIT, |l| has_event(l, "data"));
    assert_eq!(
        data_events(&client.seen, &channel),
        vec![(seq, "authorized".to_string())],
        "{}",
        lib.name()
    );
    client.stop();
    println!(
        "ok {}: auth (403 without, with a forged and with another channel's token)",
        lib.name()
    );
}

/// A client that stops reading is dropped past `--max-pending-bytes`; another one on the
/// same channel gets every message.
pub fn slow(lib: Lib) {
    const SIZE: usize = 32 * 1024;
    const MAX: usize = 600;
    let dir = scripts(lib);
    let (public, admin) = free_ports();
    // Heartbeats far apart: the stalled client, which answers no ping, must be dropped
    // for its pending bytes, not for its silence.
    let _gateway = Gateway::start_with(
        public,
        admin,
        &["--heartbeat", "60s", "--max-pending-bytes", "64k"],
    );
    let channel = format!("ws-slow-{}", lib.tag());
    let mut stalled = Client::spawn(lib, &dir);
    let mut reader = Client::spawn(lib, &dir);
    stalled.open(public, &channel, "", None, false);
    reader.open(public, &channel, "", None, false);
    stalled.expect("hello (stalled)", WAIT, |l| hello_count(l) == 1);
    reader.expect("hello (reader)", WAIT, |l| hello_count(l) == 1);
    stalled.send(json!({"op": "pause"}));
    let dropped_before = admin_get(admin, "/stats").1["slow_consumers_dropped"]
        .as_u64()
        .unwrap_or(0);
    let payload = "x".repeat(SIZE);
    let mut published = Vec::new();
    // Two messages (64 KiB) at a time, each round read by the reader before the next:
    // it never falls behind, the stalled client only does.
    while published.len() < MAX && subscribers(admin, &channel) == 2 {
        for _ in 0..2 {
            published.push((publish(admin, &channel, &payload), payload.clone()));
        }
        let n = published.len();
        let ch = channel.clone();
        reader.expect(&format!("{n} messages (reader)"), WAIT, |l| {
            data_events(l, &ch).len() >= n
        });
    }
    assert_eq!(
        subscribers(admin, &channel),
        1,
        "{}: the stalled client was not dropped after {} messages of {SIZE} bytes",
        lib.name(),
        published.len()
    );
    let dropped = admin_get(admin, "/stats").1["slow_consumers_dropped"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(
        dropped,
        dropped_before + 1,
        "{}: slow_consumers_dropped",
        lib.name()
    );
    for i in 0..5 {
        let p = format!("after the drop {i}");
        published.push((publish(admin, &channel, &p), p));
    }
    let n = published.len();
    let ch = channel.clone();
    reader.expect("every message (reader)", WAIT, |l| {
        data_events(l, &ch).len() >= n
    });
    if let Some(diff) = compare(&data_events(&reader.seen, &channel), &published) {
        panic!("{}: the reader: {diff}", lib.name());
    }
    assert_eq!(
        count(&reader.seen, "close"),
        0,
        "{}: the reader was closed",
        lib.name()
    );
    // The stalled client, reading again, finds its connection ended: what it got is a
    // prefix of what was published, in order.
    stalled.send(json!({"op": "resume"}));
    stalled.expect("the end of the stalled connection", WAIT, |l| {
        count(l, "close") + count(l, "error") > 0
    });
    let got = data_events(&stalled.seen, &channel);
    assert!(
        got.len() < published.len() && compare(&got, &published[..got.len()]).is_none(),
        "{}: the stalled client got {} of {} messages, not a prefix in order",
        lib.name(),
        got.len(),
        published.len()
    );
    let tail: Vec<String> = events(&stalled.seen)
        .iter()
        .filter(|e| e["type"] != "data")
        .map(|e| e.to_string())
        .collect();
    let end = stalled
        .seen
        .iter()
        .find(|v| v["kind"] == "close" || v["kind"] == "error")
        .unwrap();
    println!(
        "ok {}: slow (stalled dropped after {} published, it had read {}; other events {tail:?}; end {end}; reader got all {n})",
        lib.name(),
        published.len() - 5,
        got.len()
    );
    reader.stop();
    stalled.stop();
}
