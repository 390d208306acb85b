//! Races on the Redis engine, made repeatable with `CLIENT PAUSE n WRITE` (Redis holds
//! every script, reads and publishes alike, while pub/sub goes on): reads that come back
//! after their channel was let go, control subscribes "from now on" whose start is not
//! known yet, a delete racing a new subscriber, and the keys and index entries that
//! channels leave in Redis. (First written as failing tests by a review.)

mod util;

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use comet_gateway::engine::redis::RedisEngine;
use comet_gateway::engine::Limits;
use comet_gateway::Config;
use util::{get, request, wait_until, Conn, Redis, StreamClient, TestServer, Transport};

fn gateway_with(redis: &Redis, tweak: impl FnOnce(&mut Config)) -> TestServer {
    let mut c = Config::ephemeral();
    tweak(&mut c);
    let limits = Limits::of(&c);
    let engine = RedisEngine::connect(redis.addr(), "comet:", limits).expect("connects");
    TestServer::start_with_engine(tweak_again(c), Box::new(engine))
}

fn tweak_again(c: Config) -> impl FnOnce(&mut Config) {
    move |x: &mut Config| *x = c
}

fn control(g: &TestServer, client: &str, action: &str, query: &str) -> u16 {
    request(
        g.public,
        &format!("POST /clients/{client}/{action}?{query} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"),
    )
    .status
}

fn publish_status(g: &TestServer, ch: &str, body: &str) -> u16 {
    request(
        g.admin,
        &format!(
            "POST /pub?channel={ch} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
    .status
}

/// A stream given up at --engine-timeout (Redis stalled) whose read comes back after its
/// channel was let go must not leave an expectation behind that holds every later
/// publish's answer for a live message that never comes.
#[test]
fn a_read_answered_after_its_channel_was_let_go_does_not_hold_later_publishes() {
    let redis = Redis::start();
    let b = gateway_with(&redis, |c| c.engine_timeout = Duration::from_millis(300));
    assert_eq!(publish_status(&b, "x", "old"), 200);
    // Redis stalls scripts for 1 s (a slow command, a fork, a failover...).
    redis.cli(&["CLIENT", "PAUSE", "1000", "WRITE"]);
    let mut s = TcpStream::connect(b.public).unwrap();
    s.write_all(b"GET /stream?channel=x HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    // The stream is refused at --engine-timeout: x is unwatched; its read is still queued.
    std::thread::sleep(Duration::from_millis(1500));
    // The read came back after the unwatch. Publishes to x now wait forever.
    let before = std::time::Instant::now();
    let status = publish_status(&b, "x", "new");
    let took = before.elapsed();
    let next = redis.cli(&["HGET", "comet:{x}:m", "n"]);
    assert_eq!(
        status, 200,
        "publish answered {status} after {took:?}, but Redis stored it (n={next})"
    );
    for _ in 0..3 {
        assert_eq!(publish_status(&b, "x", "again"), 200);
    }
}

/// Control: the same steps without the stall publish fine.
#[test]
fn without_a_stall_publishes_are_answered() {
    let redis = Redis::start();
    let b = gateway_with(&redis, |c| c.engine_timeout = Duration::from_millis(300));
    assert_eq!(publish_status(&b, "x", "old"), 200);
    {
        let mut s = TcpStream::connect(b.public).unwrap();
        s.write_all(b"GET /stream?channel=x HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..3 {
        assert_eq!(publish_status(&b, "x", "new"), 200);
    }
}

/// A channel whose first subscriber came before its first message (read.lua created its
/// meta) is listed once it has one.
#[test]
fn a_channel_subscribed_before_its_first_publish_is_listed() {
    let redis = Redis::start();
    let b = gateway_with(&redis, |_| {});
    let mut s = StreamClient::open(b.public, Transport::Stream, "channel=early", "");
    assert_eq!(s.next_event().unwrap()["type"], "hello");
    b.publish_seq("early", "one");
    assert_eq!(s.data(1)[0]["data"], "one");
    assert!(b.channel("early").is_some());
    let list = get(b.admin, "/channels?prefix=early").json();
    assert_eq!(list.as_array().unwrap().len(), 1, "GET /channels: {list}");
}

/// A DELETE (on another process) that Redis runs before a new stream's read on this
/// process: the new stream is never left following nothing. It is refused (503,
/// subscribe again: the delete reached it while its read was in flight), or opened and
/// then told `close` (the delete reached this process after its read), or opened on
/// the channel's new life and gets its messages.
#[test]
fn a_stream_opening_while_another_process_deletes_its_channel_is_never_left_deaf() {
    let redis = Redis::start();
    let a = gateway_with(&redis, |_| {});
    let b = gateway_with(&redis, |_| {});
    a.publish_seq("news", "one");
    // Keeps news watched on b.
    let mut s1 = StreamClient::open(b.public, Transport::Stream, "channel=news", "");
    assert_eq!(s1.next_event().unwrap()["type"], "hello");
    redis.cli(&["CLIENT", "PAUSE", "800", "WRITE"]);
    let admin = a.admin;
    let del = std::thread::spawn(move || {
        request(
            admin,
            "DELETE /channels/news HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        )
        .status
    });
    std::thread::sleep(Duration::from_millis(200));
    // Opens after the DELETE was sent (its read runs after the delete in Redis).
    let mut s2 = StreamClient::open(b.public, Transport::Stream, "channel=news", "");
    assert_eq!(del.join().unwrap(), 204);
    let c1 = s1.next_non_noop().unwrap();
    assert_eq!(c1["type"], "close");
    if s2.head.status == 503 {
        return;
    }
    assert_eq!(s2.head.status, 200);
    let hello = s2.next_event().unwrap();
    let seq = a.publish_seq("news", "new life");
    let got = s2.next_non_noop().unwrap();
    assert!(
        got["seq"].as_u64() == Some(seq) || got["type"] == "close",
        "hello {hello}; then {got}"
    );
}

/// A control subscribe "from now on" to a parked poll whose read is in flight: if the
/// poll is answered meanwhile (timeout), the next poll must not replay the channel's
/// history.
#[test]
fn a_control_subscribe_from_now_on_never_replays_history_after_the_poll_is_answered() {
    let redis = Redis::start();
    let b = gateway_with(&redis, |c| {
        c.poll_timeout = Duration::from_millis(500);
        c.engine_timeout = Duration::from_secs(5);
    });
    for i in 0..3 {
        assert_eq!(publish_status(&b, "old", &format!("old{i}")), 200);
    }
    assert_eq!(publish_status(&b, "news", "n0"), 200);
    let r = get(b.public, "/poll?channel=news&seq=0");
    let client = r.header("x-comet-client").expect("client id").to_string();
    let mut poll = Conn::open(b.public);
    util::send_poll(&mut poll, &format!("client={client}"));
    wait_until("parked", || b.subscribers("news") == 1);
    redis.cli(&["CLIENT", "PAUSE", "1200", "WRITE"]);
    // From now on: nothing published before this request is due.
    assert_eq!(control(&b, &client, "subscribe", "channel=old"), 204);
    // The parked poll timed out (noop) while the read was held in Redis.
    let first = poll.response().events();
    assert!(first.iter().all(|e| e["type"] == "noop"), "{first:?}");
    let events = get(b.public, &format!("/poll?client={client}")).events();
    let old: Vec<_> = events.iter().filter(|e| e["channel"] == "old").collect();
    assert!(
        old.is_empty(),
        "subscribed from now on, got history: {old:?}"
    );
}

/// While a control subscribe's read is in flight, a stream that ends (max age) must not
/// tell the client to resume the new channel from 0 (its whole history).
#[test]
fn a_stream_cursor_never_names_seq_0_for_a_syncing_membership() {
    let redis = Redis::start();
    let b = gateway_with(&redis, |c| {
        c.engine_timeout = Duration::from_secs(5);
        c.stream_max_age = Duration::from_millis(1500);
    });
    for i in 0..3 {
        assert_eq!(publish_status(&b, "old", &format!("old{i}")), 200);
    }
    let mut s = StreamClient::open(b.public, Transport::Stream, "channel=news", "");
    let hello = s.next_event().unwrap();
    let client = hello["client"].as_str().unwrap().to_string();
    redis.cli(&["CLIENT", "PAUSE", "2500", "WRITE"]);
    let t = std::thread::spawn({
        let public = b.public;
        move || {
            request(
                public,
                &format!("POST /clients/{client}/subscribe?channel=old HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"),
            )
            .status
        }
    });
    let end = s.next_non_noop().expect("reconnect");
    assert_eq!(end["type"], "reconnect", "{end}");
    let _ = t.join();
    let cursor = end["cursor"].as_str().unwrap();
    assert!(
        !cursor.contains("old:0"),
        "subscribed from now on, told to resume from 0: {cursor}"
    );
}

/// A control subscribe "from now on" to a session between polls, with no head known on
/// this process: what is published after the 204 reaches the next poll.
#[test]
fn a_session_subscribe_from_now_on_gets_what_comes_before_the_next_poll() {
    let redis = Redis::start();
    let b = gateway_with(&redis, |_| {});
    let n0 = b.publish_seq("news", "n0");
    let r = get(b.public, &format!("/poll?channel=news&seq={n0}"));
    let client = r.header("x-comet-client").expect("client id").to_string();
    assert_eq!(control(&b, &client, "subscribe", "channel=sport"), 204);
    let seq = b.publish_seq("sport", "after the subscribe");
    let mut poll = Conn::open(b.public);
    util::send_poll(&mut poll, &format!("client={client}"));
    std::thread::sleep(Duration::from_millis(300));
    b.publish_seq("news", "wake");
    let events = poll.response().events();
    assert!(
        events.iter().any(|e| e["seq"].as_u64() == Some(seq)),
        "published after the subscribe, not delivered: {events:?}"
    );
}

/// Channels only subscribers named do not stay long in Redis after they leave: their
/// meta lives a minute past the last read, not --channel-ttl (an hour by default).
#[test]
fn channels_named_only_by_subscribers_leave_redis_soon() {
    let redis = Redis::start();
    let b = gateway_with(&redis, |_| {});
    for i in 0..5 {
        let mut s =
            StreamClient::open(b.public, Transport::Stream, &format!("channel=junk{i}"), "");
        assert_eq!(s.next_event().unwrap()["type"], "hello");
    }
    b.wait_subscribers("junk0", 0);
    std::thread::sleep(Duration::from_millis(200));
    let ttl: i64 = redis
        .cli(&["TTL", "comet:{junk0}:m"])
        .trim()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
    // Once published, a channel keeps --channel-ttl, or no expiry at all with 0.
    b.publish_seq("junk0", "now it has one");
    let ttl: i64 = redis
        .cli(&["TTL", "comet:{junk0}:m"])
        .trim()
        .parse()
        .unwrap();
    assert!(ttl > 60, "ttl {ttl}");
    let c = gateway_with(&redis, |c| c.channel_ttl = Duration::ZERO);
    let mut s = StreamClient::open(c.public, Transport::Stream, "channel=kept", "");
    assert_eq!(s.next_event().unwrap()["type"], "hello");
    c.publish_seq("kept", "x");
    assert_eq!(redis.cli(&["TTL", "comet:{kept}:m"]).trim(), "-1");
}

/// Baseline: the session subscribe test on the memory engine.
#[test]
fn memory_engine_session_subscribe_from_now_on() {
    let b = TestServer::start(|_| {});
    let n0 = b.publish_seq("news", "n0");
    let r = get(b.public, &format!("/poll?channel=news&seq={n0}"));
    let client = r.header("x-comet-client").expect("client id").to_string();
    assert_eq!(control(&b, &client, "subscribe", "channel=sport"), 204);
    let seq = b.publish_seq("sport", "after the subscribe");
    let events = get(b.public, &format!("/poll?client={client}")).events();
    assert!(
        events.iter().any(|e| e["seq"].as_u64() == Some(seq)),
        "{events:?}"
    );
}

/// The channel index forgets channels whose keys expired (--channel-ttl): each publish
/// drops a few, so per-user channel names do not make it grow without bound.
#[test]
fn the_channel_index_forgets_expired_channels() {
    let redis = Redis::start();
    let b = gateway_with(&redis, |c| c.channel_ttl = Duration::from_secs(1));
    for i in 0..200 {
        assert_eq!(publish_status(&b, &format!("user{i}"), "x"), 200);
    }
    std::thread::sleep(Duration::from_millis(2500));
    // 200 expired; each publish drops up to 8 of them.
    for _ in 0..30 {
        assert_eq!(publish_status(&b, "fresh", "x"), 200);
    }
    let indexed = redis.cli(&["ZCARD", "comet:channels"]);
    assert_eq!(indexed.trim(), "1", "index entries: {indexed}");
}
