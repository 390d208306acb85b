//! Admin requests against an engine that answers later, as a networked one does (a
//! `MemoryEngine` behind a wrapper that holds each answer, and the messages it caused,
//! for a while or for ever): the request waits in its connection, requests pipelined
//! behind it wait too, subscribers still get the message before the publisher its
//! answer, and an engine that never answers costs a 503 after `--engine-timeout`.

mod util;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use util::{send_poll, Conn, Later, StreamClient, TestServer, Transport};

fn start(delay_ms: Option<u64>, tweak: impl FnOnce(&mut comet_gateway::Config)) -> TestServer {
    let delay = Arc::new(Mutex::new(delay_ms));
    TestServer::start_with_engine(tweak, Box::new(Later::new(delay)))
}

fn post(channel: &str, body: &str) -> String {
    format!(
        "POST /pub?channel={channel} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_publish_waits_for_the_engine_and_requests_behind_it_wait_too() {
    let s = start(Some(150), |_| {});
    let mut sub = StreamClient::open(s.public, Transport::Stream, "channel=news", "");
    assert_eq!(sub.next_event().unwrap()["type"], "hello");
    let mut admin = Conn::open(s.admin);
    // Pipelined: the publish, then the channel's info, then the list.
    admin.send(&format!(
        "{}GET /channels/news HTTP/1.1\r\nHost: t\r\n\r\nGET /channels HTTP/1.1\r\nHost: t\r\n\r\n",
        post("news", "hello")
    ));
    let published = admin.response();
    assert_eq!(published.status, 200, "{}", published.text());
    let seq = published.json()["seq"].as_u64().unwrap();
    let info = admin.response();
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["next_seq"].as_u64(), Some(seq + 1));
    assert_eq!(info.json()["subscribers"].as_u64(), Some(1));
    let list = admin.response();
    assert_eq!(list.json()[0]["channel"], "news");
    let got = sub.data(1);
    assert_eq!(
        (got[0]["seq"].as_u64(), got[0]["data"].as_str()),
        (Some(seq), Some("hello"))
    );
}

#[test]
fn an_engine_that_never_answers_costs_a_503_after_the_engine_timeout() {
    let s = start(None, |c| c.engine_timeout = Duration::from_millis(200));
    let mut admin = Conn::open(s.admin);
    admin.send(&post("news", "lost in the engine"));
    let r = admin.response();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "engine unavailable");
    // The connection goes on: a request that needs no engine answer is served.
    admin.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(admin.response().status, 200);
}

#[test]
fn a_delete_answered_later_closes_its_subscribers_then_answers() {
    let s = start(Some(50), |_| {});
    let mut admin = Conn::open(s.admin);
    admin.send(&post("doomed", "x"));
    assert_eq!(admin.response().status, 200);
    let mut poll = Conn::open(s.public);
    send_poll(&mut poll, "channel=doomed");
    s.wait_subscribers("doomed", 1);
    admin.send("DELETE /channels/doomed HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(admin.response().status, 204);
    let events = poll.response().events();
    assert_eq!(events[0]["type"], "close");
    assert_eq!(events[0]["channel"], "doomed");
    admin.send("GET /channels/doomed HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(admin.response().status, 404);
}

#[test]
fn a_publisher_that_hangs_up_while_waiting_leaves_nothing_behind() {
    let s = start(Some(100), |_| {});
    {
        let mut admin = Conn::open(s.admin);
        admin.send(&post("news", "orphan"));
    }
    // The answer finds nobody; the gateway goes on.
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.publish("news", "next")["seq"].as_u64().is_some());
    let info = s.channel("news").unwrap();
    assert_eq!(info["buffered"].as_u64(), Some(2));
}

#[test]
fn a_publisher_that_half_closes_while_waiting_still_gets_its_answer() {
    let s = start(Some(300), |_| {});
    let mut admin = Conn::open(s.admin);
    admin.send(&post("hc", "x"));
    // The request is waiting by now; then the client says it will send no more.
    std::thread::sleep(Duration::from_millis(100));
    admin.sock.shutdown(std::net::Shutdown::Write).unwrap();
    let r = admin.response();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(admin.ends_cleanly());
}

#[test]
fn a_head_request_and_a_connection_close_wait_like_any_other() {
    let s = start(Some(100), |_| {});
    s.publish("h", "x");
    let mut admin = Conn::open(s.admin);
    admin.send(concat!(
        "HEAD /channels/h HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /channels/h HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\n\r\n"
    ));
    let r = admin.head_only();
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    let r = admin.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["channel"], "h");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(
        admin.ends_cleanly(),
        "nothing answered past Connection: close"
    );
}

#[test]
fn an_answer_after_the_timeout_goes_nowhere() {
    let s = start(Some(400), |c| c.engine_timeout = Duration::from_millis(150));
    let mut admin = Conn::open(s.admin);
    admin.send(&post("late", "x"));
    assert_eq!(admin.response().status, 503);
    std::thread::sleep(Duration::from_millis(400));
    admin.send("GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(admin.response().status, 200);
    assert!(admin.nothing_pending(), "the late answer was not written");
}

#[test]
fn an_answer_the_engine_queued_during_the_call_is_not_lost() {
    let mut engine = Later::new(Arc::new(Mutex::new(Some(0))));
    engine.quick = true;
    let s = TestServer::start_with_engine(|_| {}, Box::new(engine));
    let mut sub = StreamClient::open(s.public, Transport::Stream, "channel=q", "");
    assert_eq!(sub.next_event().unwrap()["type"], "hello");
    let mut admin = Conn::open(s.admin);
    admin.send(&post("q", "x"));
    let r = admin.response();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sub.data(1)[0]["data"], "x");
}
