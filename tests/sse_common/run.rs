//! `run`: one library's whole check sequence (payloads, stream-start, heartbeats, restart,
//! json) against the gateway binary, reported as `ok LIB: CHECK` / `FAIL LIB: CHECK: …`.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use serde_json::Value;

use super::client::{
    compare, data_events, event_of, has_data, is_message, messages_before_hello, render, show,
    Client,
};
use super::gateway::{free_ports, heartbeats_seen_by_raw_reader, publish, Gateway};
use super::{Lib, AFTER_IDLE, AFTER_RESTART, IDLE, PAYLOADS, STARTUP, WAIT};

pub fn run(lib: Lib) {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/sse");
    for p in lib.prerequisites(&dir) {
        assert!(
            p.exists(),
            "{}: {} is missing: run `bash tests/setup.sh` first",
            lib.name(),
            p.display()
        );
    }
    let (public, admin) = free_ports();
    let mut gateway = Gateway::start(public, admin);
    let channel = format!("sse-{}", lib.tag());
    let base = format!("http://127.0.0.1:{public}");
    let mut client = Client::spawn(lib, &dir, &base, &channel);
    let mut checks: Vec<(&str, Option<String>)> = Vec::new();

    // Connected: the stream's hello has arrived.
    let hello = |lines: &[Value]| {
        lines
            .iter()
            .filter_map(event_of)
            .any(|e| e["type"] == "hello")
    };
    if !client.wait_for(STARTUP, hello) {
        panic!(
            "{}: no hello within {STARTUP:?}; the client printed:\n{}\nstderr:\n{}\ngateway:\n{}",
            lib.name(),
            render(&client.seen),
            client.stderr.lock().unwrap(),
            gateway.log_tail()
        );
    }
    let first_stream_start = messages_before_hello(&client.seen)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();

    // payloads: byte-identical, in seq order.
    let mut published: Vec<(u64, String)> = PAYLOADS
        .iter()
        .map(|p| (publish(admin, &channel, p), p.to_string()))
        .collect();
    let n = published.len();
    let ch = channel.clone();
    let all_arrived = client.wait_for(WAIT, |l| data_events(l, &ch).len() >= n);
    let got = data_events(&client.seen, &channel);
    let mut payload_problem = compare(&got, &published);
    if !all_arrived {
        payload_problem = Some(format!(
            "only {} of {n} messages arrived within {WAIT:?}; {}",
            got.len(),
            payload_problem.unwrap_or_default()
        ));
    }

    // heartbeats: about a second of idling (a raw reader counts the heartbeats meanwhile),
    // then one more message: nothing may have been delivered in between.
    let idle_from = client.seen.len();
    let heartbeats = heartbeats_seen_by_raw_reader(public, &channel, IDLE);
    let marker_seq = publish(admin, &channel, AFTER_IDLE);
    let ch = channel.clone();
    let marker_arrived = client.wait_for(WAIT, |l| has_data(&l[idle_from..], &ch, AFTER_IDLE));
    let idle_messages: Vec<&Value> = client.seen[idle_from..]
        .iter()
        .filter(|v| is_message(v))
        .take_while(|v| event_of(v).is_none_or(|e| e["data"] != AFTER_IDLE))
        .collect();
    let heartbeat_problem = if heartbeats == 0 {
        Some(format!(
            "the gateway sent no heartbeat to a raw reader during {IDLE:?} (run with --heartbeat 200ms): the check proves nothing"
        ))
    } else if !idle_messages.is_empty() {
        Some(format!(
            "{} message event(s) delivered during {IDLE:?} of idling, while the gateway sent {heartbeats} heartbeat(s) to a raw reader: {}",
            idle_messages.len(),
            show(&idle_messages)
        ))
    } else if !marker_arrived {
        Some(format!(
            "the message published after the idle period did not arrive within {WAIT:?}"
        ))
    } else {
        None
    };
    published.push((marker_seq, AFTER_IDLE.to_string()));
    if payload_problem.is_none() {
        // The message after the idle period is in order too.
        payload_problem = compare(&data_events(&client.seen, &channel), &published);
    }
    checks.push(("payloads", payload_problem));

    // restart: SIGKILL, start again on the same ports, publish; the library resumes alone.
    let killed_at = client.seen.len();
    let last_id_before_kill = client
        .seen
        .iter()
        .rev()
        .find(|v| is_message(v) && v["id"].as_str().is_some_and(|s| !s.is_empty()))
        .map(|v| v["id"].as_str().unwrap().to_string());
    let seqs_before_kill: HashSet<u64> = published.iter().map(|(s, _)| *s).collect();
    gateway.kill();
    gateway = Gateway::start(public, admin);
    let reconnected = client.wait_for(WAIT, |l| {
        l[killed_at..]
            .iter()
            .filter_map(event_of)
            .any(|e| e["type"] == "hello")
    });
    let mut second_stream_start = Vec::new();
    let restart_problem = if !reconnected {
        Some(format!(
            "no new stream (hello) within {WAIT:?} of the restart; after the kill the client printed:\n{}",
            render(&client.seen[killed_at..])
        ))
    } else {
        // The stream the library opened: from the last connection report before its hello.
        let after_kill = &client.seen[killed_at..];
        let hello_at = after_kill
            .iter()
            .position(|v| event_of(v).is_some_and(|e| e["type"] == "hello"))
            .unwrap();
        let opened_at = after_kill[..hello_at]
            .iter()
            .rposition(|v| v["kind"] == "open" || v["kind"] == "request")
            .map_or(0, |i| i + 1);
        second_stream_start = messages_before_hello(&after_kill[opened_at..])
            .into_iter()
            .cloned()
            .collect();
        let after: Vec<(u64, String)> = AFTER_RESTART
            .iter()
            .map(|p| (publish(admin, &channel, p), p.to_string()))
            .collect();
        let last = AFTER_RESTART[AFTER_RESTART.len() - 1];
        let ch = channel.clone();
        let complete = client.wait_for(WAIT, |l| has_data(&l[killed_at..], &ch, last));
        let stream = &client.seen[killed_at..][hello_at..];
        let events: Vec<&Value> = stream.iter().filter_map(event_of).collect();
        let requests: Vec<&Value> = client.seen[killed_at..]
            .iter()
            .filter(|v| v["kind"] == "request")
            .collect();
        let resumed_with = format!(
            "last id before the kill {last_id_before_kill:?}; reconnect requests: {}",
            show(&requests)
        );
        let resets: Vec<&&Value> = events
            .iter()
            .filter(|e| e["type"] == "reset" && e["channel"] == channel.as_str())
            .collect();
        let got = data_events(stream, &channel);
        let duplicates: Vec<&(u64, String)> = got
            .iter()
            .filter(|(s, d)| {
                seqs_before_kill.contains(s) || PAYLOADS.contains(&d.as_str()) || d == AFTER_IDLE
            })
            .collect();
        let others: Vec<&&Value> = events
            .iter()
            .skip(1) // the hello
            .filter(|e| !(e["type"] == "data" || e["type"] == "reset"))
            .collect();
        let first_data = events.iter().position(|e| e["type"] == "data");
        let first_reset = events.iter().position(|e| e["type"] == "reset");
        if !complete {
            Some(format!(
                "the messages published after the restart did not all arrive within {WAIT:?}: got {got:?}; {resumed_with}"
            ))
        } else if resets.len() != 1 {
            Some(format!(
                "expected one reset event for {channel} after the restart, got {}; events of the new stream: {}; {resumed_with}",
                resets.len(),
                events.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
            ))
        } else if first_reset > first_data {
            Some(format!(
                "the reset came after data; events of the new stream: {}",
                events
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else if !duplicates.is_empty() {
            Some(format!(
                "messages from before the kill were delivered again: {duplicates:?}"
            ))
        } else if let Some(diff) = compare(&got, &after) {
            Some(format!("after the restart: {diff}"))
        } else if resets[0]["seq"].as_u64() != Some(after[0].0) {
            Some(format!(
                "reset says what follows starts at {}, but the first message after it has seq {}",
                resets[0]["seq"], after[0].0
            ))
        } else if !others.is_empty() {
            Some(format!(
                "unexpected events in the new stream: {}",
                others
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else {
            None
        }
    };
    checks.push(("restart", restart_problem));
    checks.insert(
        1,
        (
            "stream-start",
            match (first_stream_start.is_empty(), second_stream_start.is_empty()) {
                (true, true) => None,
                _ => Some(format!(
                    "message event(s) delivered before hello: {} on the first stream [{}], {} on the stream after the restart [{}]",
                    first_stream_start.len(),
                    show(&first_stream_start.iter().collect::<Vec<_>>()),
                    second_stream_start.len(),
                    show(&second_stream_start.iter().collect::<Vec<_>>())
                )),
            },
        ),
    );
    checks.insert(2, ("heartbeats", heartbeat_problem));

    // json: every message event of the run carried one JSON event.
    let bad: Vec<&Value> = client
        .seen
        .iter()
        .filter(|v| is_message(v) && event_of(v).is_none())
        .collect();
    let page_errors: Vec<&Value> = client
        .seen
        .iter()
        .filter(|v| v["kind"] == "pageerror" || v["kind"] == "garbage")
        .collect();
    checks.push((
        "json",
        if bad.is_empty() && page_errors.is_empty() {
            None
        } else {
            let empty = bad.iter().filter(|v| v["data"] == "").count();
            Some(format!(
                "{} of {} message events were not a JSON event ({} with empty data, {} others): {}{}",
                bad.len(),
                client.seen.iter().filter(|v| is_message(v)).count(),
                empty,
                bad.len() - empty,
                show(&bad),
                if page_errors.is_empty() {
                    String::new()
                } else {
                    format!("; page errors or stray output: {}", show(&page_errors))
                }
            ))
        },
    ));

    client.stop();
    drop(gateway);

    let mut report = Vec::new();
    for (name, problem) in &checks {
        match problem {
            None => report.push(format!("ok {}: {name}", lib.name())),
            Some(p) => report.push(format!("FAIL {}: {name}: {p}", lib.name())),
        }
    }
    let report = report.join("\n");
    let took = started.elapsed().as_secs_f64();
    assert!(
        checks.iter().all(|(_, p)| p.is_none()),
        "{report}\n({took:.1} s)\n\nthe client printed:\n{}",
        render(&client.seen)
    );
    println!("{report}\n({took:.1} s)");
}
