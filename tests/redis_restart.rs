//! The Redis engine when Redis goes away and comes back: real redis-server processes
//! started here, gateways on it in-process, loopback sockets only. While Redis is down,
//! publishes are refused at once (503 `engine unavailable`), `/healthz` answers 503 and
//! subscribers keep their heartbeats; once it is back every subscriber gets every seq
//! exactly once, in order, or a `lost` (trimmed) / `reset` (Redis lost the channel) that
//! names what it missed.

mod util;

use std::net::SocketAddr;
use std::time::Duration;

use comet_gateway::Config;
use util::{
    brief, data_briefs, redis_gateway, wait_until, Poller, Proxy, Redis, Response, StreamClient,
    TestServer, Transport,
};

/// Flags for these tests: a short heartbeat (streams show they are alive while Redis is
/// down), the poll timeout given, and an engine timeout far past the clients' read
/// timeout, so a publish that is not refused at once hangs and fails the test.
fn flags(poll_timeout_ms: u64, buffer: u32) -> impl Fn(&mut Config) {
    move |c| {
        c.heartbeat = Duration::from_millis(100);
        c.poll_timeout = Duration::from_millis(poll_timeout_ms);
        c.engine_timeout = Duration::from_secs(600);
        c.buffer = buffer;
    }
}

fn pub_request(admin: SocketAddr, channel: &str, body: &str) -> Response {
    util::request(
        admin,
        &format!(
            "POST /pub?channel={channel} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Publishes through `g` once its engine is back (503 until then); the seq.
fn publish_when_back(g: &TestServer, channel: &str, body: &str) -> u64 {
    let mut seq = None;
    wait_until("a publish is accepted", || {
        let r = pub_request(g.admin, channel, body);
        match r.status {
            200 => seq = r.json()["seq"].as_u64(),
            503 => assert_eq!(r.json()["error"], "engine unavailable"),
            s => panic!("publish answered {s}: {}", r.text()),
        }
        seq.is_some()
    });
    seq.unwrap()
}

fn health(g: &TestServer) -> u16 {
    util::get(g.admin, "/healthz").status
}

/// While Redis is down: publishes on every gateway are refused at once, `/healthz`
/// says so, and every stream gets heartbeats and nothing else.
fn check_down(gateways: &[&TestServer], streams: &mut [StreamClient]) {
    for g in gateways {
        wait_until("/healthz says 503", || health(g) == 503);
    }
    for g in gateways {
        let r = pub_request(g.admin, "news", "while down");
        assert_eq!(r.status, 503, "{}", r.text());
        assert_eq!(r.json()["error"], "engine unavailable");
    }
    for s in streams.iter_mut() {
        for _ in 0..2 {
            let e = s
                .next_event()
                .expect("the stream stays open while Redis is down");
            assert_eq!(e["type"], "noop", "while Redis is down: {e}");
        }
    }
    for g in gateways {
        for _ in 0..10 {
            assert_eq!(health(g), 503, "/healthz while Redis is down");
        }
    }
}

/// A poller on its own thread, from `cursor` until it is sent a message `last`.
fn poll_until(
    addr: SocketAddr,
    cursor: u64,
    last: &'static str,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut p = Poller::new(addr, "news", Some(cursor));
        let seen = p.until(|seen| seen.iter().any(|e| e["data"] == last));
        seen.iter().map(brief).collect()
    })
}

fn parked_polls(g: &TestServer) -> u64 {
    util::stats(g.admin)["connections"]["parked_polls"]
        .as_u64()
        .unwrap()
}

/// Two streams (`/events`, `/stream`) on `g`, past their `hello`.
fn open_streams(g: &TestServer) -> Vec<StreamClient> {
    [Transport::Events, Transport::Stream]
        .into_iter()
        .map(|t| {
            let mut s = StreamClient::open(g.public, t, "channel=news", "");
            assert_eq!(s.next_non_noop().unwrap()["type"], "hello");
            s
        })
        .collect()
}

#[test]
fn redis_restarted_without_its_data_resets_every_subscriber_once() {
    let mut redis = Redis::start();
    // a gets Redis back as soon as it restarts; b only once a proxy held shut between
    // them lets it through, after the channel's new life has two messages. a holds its
    // polls past the outage; b's time out meanwhile and poll again.
    let proxy = Proxy::start(redis.addr());
    let a = redis_gateway(redis.addr(), flags(30_000, 100));
    let b = redis_gateway(proxy.addr, flags(200, 100));
    let mut streams = open_streams(&a);
    streams.extend(open_streams(&b));
    let before = a.publish_seq("news", "before");
    for s in &mut streams {
        assert_eq!(s.briefs(1), [format!("d{before}")]);
    }
    let poll_a = poll_until(a.public, before + 1, "second");
    let poll_b = poll_until(b.public, before + 1, "second");
    wait_until("a's poll is parked", || parked_polls(&a) == 1);

    proxy.hold();
    redis.kill();
    check_down(&[&a, &b], &mut streams);
    // Back on the same port, empty.
    let _redis = Redis::start_on(redis.port);
    let (on_a, on_b) = streams.split_at_mut(2);
    // a's subscribers learn of the channel's new life before it has a message.
    wait_until("a is back", || health(&a) == 200);
    let resets: Vec<Vec<String>> = on_a.iter_mut().map(|s| s.briefs(1)).collect();
    let first = a.publish_seq("news", "first");
    assert!(first > before, "a new life's seq {first} is past {before}");
    let reset = format!("reset {first}");
    assert_eq!(resets, [[reset.clone()], [reset.clone()]]);
    let second = a.publish_seq("news", "second");
    assert_eq!(second, first + 1);
    for s in on_a.iter_mut() {
        assert_eq!(s.briefs(2), data_briefs([first, second]));
    }
    let want = [reset, format!("d{first}"), format!("d{second}")];
    assert_eq!(poll_a.join().unwrap(), want);
    // b's learn of it once b gets through, with what it has had meanwhile.
    assert_eq!(health(&b), 503, "b cannot reach Redis yet");
    proxy.release();
    for s in on_b.iter_mut() {
        assert_eq!(s.briefs(3), want);
    }
    assert_eq!(poll_b.join().unwrap(), want);
    // And on, live, each once.
    let again = b.publish_seq("news", "again");
    assert_eq!(again, second + 1);
    for s in &mut streams {
        assert_eq!(s.briefs(1), [format!("d{again}")]);
    }
}

/// Redis killed and restarted from its append-only file while gateway b cannot reach
/// it (a proxy between them held shut) and gateway a publishes `meanwhile` messages
/// after the restart; then b gets through again. b's subscribers (streams and polls)
/// must get what `expected` says, given the first seq b missed and the last one.
fn restarted_with_its_data(
    buffer: u32,
    meanwhile: u64,
    expected: impl Fn(u64, u64) -> Vec<String>,
) {
    let mut redis = Redis::start_persistent();
    let proxy = Proxy::start(redis.addr());
    let a = redis_gateway(redis.addr(), flags(200, buffer));
    let b = redis_gateway(proxy.addr, flags(200, buffer));
    let mut streams = open_streams(&b);
    let first = a.publish_seq("news", "m1");
    let seen = a.publish_seq("news", "m2");
    for s in &mut streams {
        assert_eq!(s.briefs(2), data_briefs(first..=seen));
    }
    let polls = [
        poll_until(b.public, seen + 1, "last"),
        poll_until(b.public, seen + 1, "last"),
    ];

    proxy.hold();
    redis.kill();
    check_down(&[&a, &b], &mut streams);
    let redis = redis.restart();
    // Its data is back: the channel's life goes on where it was.
    let missed = publish_when_back(&a, "news", "m3");
    assert_eq!(
        missed,
        seen + 1,
        "the channel kept its seqs over the restart"
    );
    for i in 1..meanwhile {
        let body = if i + 1 == meanwhile { "last" } else { "more" };
        a.publish_seq("news", body);
    }
    let last = missed + meanwhile - 1;
    assert_eq!(health(&b), 503, "b cannot reach Redis yet");
    proxy.release();
    let want = expected(missed, last);
    for s in &mut streams {
        assert_eq!(s.briefs(want.len()), want);
    }
    for p in polls {
        assert_eq!(p.join().unwrap(), want);
    }
    let live = a.publish_seq("news", "live");
    assert_eq!(live, last + 1);
    for s in &mut streams {
        assert_eq!(s.briefs(1), [format!("d{live}")]);
    }
    drop(redis);
}

#[test]
fn redis_restarted_with_its_data_catches_a_gateway_up_on_what_it_missed() {
    restarted_with_its_data(100, 4, |missed, last| data_briefs(missed..=last));
}

#[test]
fn redis_restarted_with_its_data_tells_lost_for_what_history_trimmed() {
    // --buffer 3: of the 7 published while b was away, the first 4 are gone.
    restarted_with_its_data(3, 7, |missed, last| {
        let mut want = vec![format!("lost {missed}-{}", last - 3)];
        want.extend(data_briefs(last - 2..=last));
        want
    });
}

/// Gateway b's pub/sub connection to Redis is cut (twice) while a repair read b sent is
/// still unanswered on its command connection (a proxy holds Redis's answers back): the
/// second reconnect happens with that read in flight (the command connection, alive,
/// is kept), and the channel neither stalls nor skips once the answers flow.
#[test]
fn a_reconnect_while_a_repair_read_is_in_flight_neither_stalls_nor_skips() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.addr());
    let a = redis_gateway(redis.addr(), flags(30_000, 100));
    let b = redis_gateway(proxy.addr, flags(30_000, 100));
    let mut s = open_streams(&b).pop().unwrap();
    let one = a.publish_seq("news", "one");
    assert_eq!(s.briefs(1), [format!("d{one}")]);
    // Redis's answers on b's command connections are held from now on; its pub/sub
    // connection is cut: b reconnects and sends a repair read, which stays in flight.
    proxy.pause(Some("SCRIPT"));
    let evals = proxy.count_since(0, "SCRIPT", "EVALSHA");
    assert_eq!(proxy.cut("SUBSCRIBE"), 1);
    wait_until("b's repair read is in flight", || {
        proxy.count_since(0, "SCRIPT", "EVALSHA") > evals
    });
    let two = a.publish_seq("news", "two");
    // Cut again: b reconnects, dropping the command connection with the read in flight.
    let since = proxy.accepted();
    assert_eq!(proxy.cut("SUBSCRIBE"), 1);
    wait_until("b reconnected", || {
        proxy.sent_since(since, "SUBSCRIBE", "SUBSCRIBE")
    });
    proxy.pause(None);
    let three = a.publish_seq("news", "three");
    assert_eq!(s.briefs(2), data_briefs([two, three]));
}

/// A publish in flight on b's command connection when b reconnects (its pub/sub
/// connection was cut) is answered, not left to --engine-timeout.
#[test]
fn a_publish_in_flight_when_the_gateway_reconnects_is_answered() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.addr());
    let b = redis_gateway(proxy.addr, flags(30_000, 100));
    let mut s = open_streams(&b).pop().unwrap();
    let one = b.publish_seq("news", "one");
    assert_eq!(s.briefs(1), [format!("d{one}")]);
    // Redis's answer to the next publish is held back; b reconnects meanwhile.
    proxy.pause(Some("SCRIPT"));
    let admin = b.admin;
    let publisher = std::thread::spawn(move || pub_request(admin, "news", "two"));
    wait_until("the publish reached Redis", || {
        redis.cli(&["XLEN", "comet:{news}:h"]) == "2"
    });
    let since = proxy.accepted();
    assert_eq!(proxy.cut("SUBSCRIBE"), 1);
    wait_until("b reconnected", || {
        proxy.sent_since(since, "SUBSCRIBE", "SUBSCRIBE")
    });
    proxy.pause(None);
    let r = publisher.join().unwrap();
    assert!(matches!(r.status, 200 | 503), "{}: {}", r.status, r.text());
}

/// A stream and a poll whose history reads are in flight on b when b loses Redis (the
/// reads are never answered) follow their channel once Redis is back.
#[test]
fn subscribers_whose_reads_are_in_flight_when_redis_goes_away_follow_their_channel_once_back() {
    let redis = Redis::start();
    let proxy = Proxy::start(redis.addr());
    let a = redis_gateway(redis.addr(), flags(30_000, 100));
    let b = redis_gateway(proxy.addr, flags(30_000, 100));
    let one = a.publish_seq("news", "one");
    proxy.pause(Some("SCRIPT"));
    let public = b.public;
    let stream = std::thread::spawn(move || {
        let query = format!("channel=news&seq={one}");
        let mut s = StreamClient::open(public, Transport::Stream, &query, "");
        let hello = s.next_non_noop().unwrap();
        (s, hello)
    });
    let poll = poll_until(b.public, one, "two");
    wait_until("both reads are in flight", || {
        proxy.count_since(0, "SCRIPT", "EVALSHA") == 2
    });
    proxy.hold();
    wait_until("b lost Redis", || health(&b) == 503);
    proxy.pause(None);
    proxy.release();
    let two = a.publish_seq("news", "two");
    let (mut s, hello) = stream.join().unwrap();
    assert_eq!(hello["cursor"], format!("news:{one}"), "{hello}");
    assert_eq!(s.briefs(2), data_briefs([one, two]));
    assert_eq!(poll.join().unwrap(), data_briefs([one, two]));
}
