//! Subscribers against an engine whose history reads are answered later (the held-
//! answers wrapper of `tests/util/later.rs`): a stream or a poll waits for its reads,
//! keeps the live messages published meanwhile, and gets every message once, in order.

mod util;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use util::{send_poll, Conn, Later, StreamClient, TestServer, Transport};

fn post(channel: &str, body: &str) -> String {
    format!(
        "POST /pub?channel={channel} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_stream_whose_history_read_comes_later_gets_every_message_once_in_order() {
    let mut engine = Later::new(Arc::new(Mutex::new(Some(0))));
    engine.read_delay = Some(300);
    let s = TestServer::start_with_engine(|_| {}, Box::new(engine));
    let first = s.publish_seq("news", "m1");
    s.publish_seq("news", "m2");
    s.publish_seq("news", "m3");
    // While the stream's read is in flight, two more are published.
    let admin = s.admin;
    let live = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        for m in ["m4", "m5"] {
            let r = util::request(admin, &post("news", m));
            assert_eq!(r.status, 200);
        }
    });
    let query = format!("channel=news&seq={first}");
    let mut sub = StreamClient::open(s.public, Transport::Stream, &query, "");
    live.join().unwrap();
    let hello = sub.next_event().unwrap();
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["cursor"], format!("news:{first}"));
    let got: Vec<(u64, String)> = sub
        .data(5)
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["data"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = (0..5).map(|i| (first + i, format!("m{}", i + 1))).collect();
    assert_eq!(got, want);
    // And live delivery goes on after the merge.
    s.publish_seq("news", "m6");
    assert_eq!(sub.data(1)[0]["data"], "m6");
}

#[test]
fn a_stream_whose_read_never_comes_is_refused_after_the_engine_timeout() {
    let mut engine = Later::new(Arc::new(Mutex::new(Some(0))));
    engine.read_delay = None;
    engine.read_delay = Some(u64::MAX / 4);
    let s = TestServer::start_with_engine(
        |c| c.engine_timeout = Duration::from_millis(200),
        Box::new(engine),
    );
    let r = util::get(s.public, "/stream?channel=news");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "engine unavailable");
    // Nothing of it is left: the channel has no subscriber.
    assert_eq!(s.subscribers("news"), 0);
}

#[test]
fn a_poll_whose_reads_come_later_is_answered_with_everything_once_in_order() {
    let mut engine = Later::new(Arc::new(Mutex::new(Some(0))));
    engine.read_delay = Some(300);
    let s = TestServer::start_with_engine(|_| {}, Box::new(engine));
    let first = s.publish_seq("news", "m1");
    s.publish_seq("news", "m2");
    let admin = s.admin;
    let live = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(util::request(admin, &post("news", "m3")).status, 200);
    });
    let r = util::get(s.public, &format!("/poll?channel=news&seq={first}"));
    live.join().unwrap();
    let got: Vec<(u64, String)> = r
        .events()
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["data"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = (0..3).map(|i| (first + i, format!("m{}", i + 1))).collect();
    assert_eq!(got, want);
    // The session resumes past all of them.
    let id = r.header("X-Comet-Client").unwrap().to_string();
    let mut poll = Conn::open(s.public);
    send_poll(&mut poll, &format!("client={id}"));
    s.wait_subscribers("news", 1);
    s.publish_seq("news", "m4");
    let next = poll.response().events();
    assert_eq!((next[0]["seq"].as_u64(), next.len()), (Some(first + 3), 1));
}

#[test]
fn a_poll_with_nothing_due_after_a_later_read_parks_until_a_message() {
    let mut engine = Later::new(Arc::new(Mutex::new(Some(0))));
    engine.read_delay = Some(100);
    let s = TestServer::start_with_engine(|_| {}, Box::new(engine));
    let mut poll = Conn::open(s.public);
    send_poll(&mut poll, "channel=quiet");
    s.wait_subscribers("quiet", 1);
    let seq = s.publish_seq("quiet", "finally");
    let events = poll.response().events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0]["seq"].as_u64(), events[0]["data"].as_str()),
        (Some(seq), Some("finally"))
    );
}
