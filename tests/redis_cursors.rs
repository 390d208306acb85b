//! Cursors across gateway processes on one Redis: a cursor older than history gets
//! `lost` naming exactly what was trimmed, and a subscriber whose history read races
//! publishes on another gateway gets a contiguous run, each seq once (the read is sent
//! once its SUBSCRIBE took effect, and the live messages kept meanwhile are merged).
//! Real redis-server, gateways in-process, loopback sockets only.

mod util;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::Value;
use util::{brief, data_briefs, redis_gateway, wait_until, Poller, Redis, StreamClient, Transport};

/// A gateway on `redis` keeping `buffer` messages per channel, with a short heartbeat
/// (a reader waiting for a message that already came wakes up).
fn gateway(redis: &Redis, buffer: u32) -> util::TestServer {
    redis_gateway(redis.addr(), move |c| {
        c.buffer = buffer;
        c.heartbeat = std::time::Duration::from_millis(100);
    })
}

#[test]
fn a_cursor_older_than_history_on_another_gateway_gets_lost_for_exactly_the_trimmed_range() {
    let redis = Redis::start();
    let a = gateway(&redis, 3);
    let b = gateway(&redis, 3);
    let first = a.publish_seq("news", "m0");
    for i in 1..8 {
        assert_eq!(a.publish_seq("news", &format!("m{i}")), first + i);
    }
    // History holds first+5..=first+7.
    for cursor in [first, first + 1, first + 4] {
        let mut want = vec![format!("lost {cursor}-{}", first + 4)];
        want.extend(data_briefs(first + 5..=first + 7));
        let query = format!("channel=news&seq={cursor}");
        for t in [Transport::Stream, Transport::Events, Transport::Iframe] {
            let mut s = StreamClient::open(b.public, t, &query, "");
            assert_eq!(s.next_non_noop().unwrap()["type"], "hello");
            assert_eq!(s.briefs(4), want, "{t:?} from {cursor}");
        }
        let got: Vec<String> = Poller::new(b.public, "news", Some(cursor))
            .until(|seen| seen.len() >= 4)
            .iter()
            .map(brief)
            .collect();
        assert_eq!(got, want, "poll from {cursor}");
    }
    // A cursor within history loses nothing.
    let mut s = StreamClient::open(
        b.public,
        Transport::Stream,
        &format!("channel=news&seq={}", first + 5),
        "",
    );
    assert_eq!(s.next_non_noop().unwrap()["type"], "hello");
    assert_eq!(s.briefs(3), data_briefs(first + 5..=first + 7));
    let live = a.publish_seq("news", "m8");
    assert_eq!(s.briefs(1), [format!("d{live}")]);
}

/// Publishes to `channel` through `admin` on one keep-alive connection until `stop`,
/// keeping the last seq in `latest`.
fn publisher(admin: SocketAddr, stop: Arc<AtomicBool>, latest: Arc<AtomicU64>) {
    let mut conn = util::Conn::open(admin);
    while !stop.load(Ordering::SeqCst) {
        conn.send("POST /pub?channel=race HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx");
        let r = conn.response();
        assert_eq!(r.status, 200, "{}", r.text());
        latest.store(r.json()["seq"].as_u64().unwrap(), Ordering::SeqCst);
    }
}

/// Reads `s` until a message at or past `target`; the events in short.
fn stream_until(s: &mut StreamClient, target: u64) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let e: Value = s.next_non_noop().expect("stream open");
        out.push(brief(&e));
        if e["type"] != "data" || e["seq"].as_u64().unwrap() >= target {
            return out;
        }
    }
}

#[test]
fn a_subscribe_racing_publishes_on_another_gateway_gets_a_contiguous_run() {
    let redis = Redis::start();
    let a = gateway(&redis, 1000);
    let b = gateway(&redis, 1000);
    let (stop, latest) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicU64::new(0)),
    );
    let pubs = {
        let (stop, latest) = (stop.clone(), latest.clone());
        let admin = a.admin;
        std::thread::spawn(move || publisher(admin, stop, latest))
    };
    wait_until("the publisher is going", || {
        latest.load(Ordering::SeqCst) > 0
    });
    let first = latest.load(Ordering::SeqCst);
    // Cursors go back up to 3 seqs: they must stay in this life of the channel.
    wait_until("the publisher is going", || {
        latest.load(Ordering::SeqCst) > first + 3
    });
    // For the second half, a subscriber stays on b (the channel stays subscribed there,
    // so new subscribers meet live messages already flowing); it reads on its own thread.
    let end = Arc::new(AtomicU64::new(0));
    let mut keeper = None;
    for i in 0..200u64 {
        if i == 100 {
            let from = latest.load(Ordering::SeqCst);
            let end = end.clone();
            let public = b.public;
            keeper = Some((from, std::thread::spawn(move || keep(public, from, &end))));
        }
        // From a message already published (or the next one), give or take.
        let cursor = latest.load(Ordering::SeqCst) + 1 - i % 4;
        let query = format!("channel=race&seq={cursor}");
        let (got, end) = match i % 3 {
            0 | 1 => {
                let t = [Transport::Stream, Transport::Events][i as usize % 3];
                let mut s = StreamClient::open(b.public, t, &query, "");
                assert_eq!(s.next_non_noop().unwrap()["type"], "hello");
                let target = latest.load(Ordering::SeqCst) + 2;
                let got = stream_until(&mut s, target);
                (got, target)
            }
            _ => {
                let target = latest.load(Ordering::SeqCst) + 2;
                let seen = Poller::new(b.public, "race", Some(cursor)).until(|seen| {
                    seen.last()
                        .is_some_and(|e| e["seq"].as_u64().is_some_and(|s| s >= target))
                });
                (seen.iter().map(brief).collect(), target)
            }
        };
        let n = got.len() as u64;
        assert!(cursor + n > end, "iteration {i}: {got:?}");
        assert_eq!(
            got,
            data_briefs(cursor..cursor + n),
            "iteration {i} from {cursor}"
        );
    }
    stop.store(true, Ordering::SeqCst);
    pubs.join().unwrap();
    // The keeper saw every seq from where it started, once, in order.
    let (from, keeper) = keeper.unwrap();
    let last = latest.load(Ordering::SeqCst);
    end.store(last, Ordering::SeqCst);
    assert_eq!(keeper.join().unwrap(), data_briefs(from..=last));
}

/// A stream on `public` from `from` on, read until `end` is set and reached; the events
/// in short.
fn keep(public: SocketAddr, from: u64, end: &AtomicU64) -> Vec<String> {
    let query = format!("channel=race&seq={from}");
    let mut s = StreamClient::open(public, Transport::Stream, &query, "");
    assert_eq!(s.next_non_noop().unwrap()["type"], "hello");
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let e = s.next_event().expect("stream open");
        if e["type"] != "noop" {
            out.push(brief(&e));
            at = e["seq"].as_u64().unwrap_or(u64::MAX);
        }
        let end = end.load(Ordering::SeqCst);
        if end != 0 && at >= end {
            return out;
        }
    }
}
