//! The streaming transports over real loopback sockets, each of `/stream`, `/iframe` and
//! `/events`: hello first, messages in order, heartbeats, `reconnect` with a cursor that
//! resumes with no gap and no duplicate, script safety, EventSource resume.

mod util;

use std::time::Duration;

use util::{cursor_query, StreamClient, TestServer, Transport, TRANSPORTS};

fn seqs(events: &[serde_json::Value]) -> Vec<u64> {
    events.iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

#[test]
fn hello_first_then_messages_in_order() {
    let s = TestServer::start(|_| {});
    for t in TRANSPORTS {
        let ch = format!("order-{}", &t.path()[1..]);
        let before: Vec<u64> = (0..3)
            .map(|i| s.publish_seq(&ch, &format!("b{i}")))
            .collect();
        let mut c = StreamClient::open(s.public, t, &format!("channel={ch}&seq=0"), "");
        assert_eq!(c.head.status, 200, "{t:?}");
        assert_eq!(c.head.header("Transfer-Encoding"), Some("chunked"));
        assert_eq!(c.head.header("X-Accel-Buffering"), Some("no"));
        assert_eq!(c.head.header("Cache-Control"), Some("no-store"));
        let ctype = c.head.header("Content-Type").unwrap().to_string();
        let expect_type = match t {
            Transport::Stream => "application/x-ndjson; charset=utf-8",
            Transport::Iframe => "text/html; charset=utf-8",
            Transport::Events => "text/event-stream; charset=utf-8",
        };
        assert_eq!(ctype, expect_type);
        let hello = c.next_event().unwrap();
        assert_eq!(hello["type"], "hello", "{t:?}");
        let client = hello["client"].as_str().unwrap();
        assert_eq!(client.len(), 32);
        assert_eq!(c.head.header("X-Comet-Client"), Some(client));
        assert_eq!(hello["cursor"], format!("{ch}:{}", before[0]));
        assert_eq!(seqs(&c.data(3)), before, "{t:?}: buffered replay");
        s.wait_subscribers(&ch, 1);
        let after: Vec<u64> = (0..5)
            .map(|i| s.publish_seq(&ch, &format!("a{i}")))
            .collect();
        let got = c.data(5);
        assert_eq!(seqs(&got), after, "{t:?}: live messages");
        assert_eq!(got[4]["data"], "a4");
        if t == Transport::Events {
            assert_eq!(
                c.last_id.as_deref(),
                Some(format!("{ch}:{}", after[4] + 1).as_str())
            );
        }
    }
}

#[test]
fn heartbeats_arrive_while_idle() {
    let s = TestServer::start(|c| c.heartbeat = Duration::from_millis(100));
    for t in TRANSPORTS {
        let mut c = StreamClient::open(s.public, t, "channel=quiet", "");
        assert_eq!(c.next_event().unwrap()["type"], "hello");
        for _ in 0..2 {
            assert_eq!(c.next_event().unwrap()["type"], "noop", "{t:?}");
        }
        if t == Transport::Events {
            assert!(
                String::from_utf8_lossy(&c.raw).contains("\n:hb\n"),
                "SSE heartbeat is a comment"
            );
        }
    }
}

#[test]
fn reconnect_after_max_age_resumes_with_no_gap_and_no_duplicate() {
    let s = TestServer::start(|c| c.stream_max_age = Duration::from_millis(300));
    for t in TRANSPORTS {
        let ch = format!("age-{}", &t.path()[1..]);
        let first = s.publish_seq(&ch, "m0");
        let mut c = StreamClient::open(s.public, t, &format!("channel={ch},other-{ch}&seq=0"), "");
        assert_eq!(c.next_event().unwrap()["type"], "hello");
        // m1 may reach this stream or come after its end; either way nothing is lost.
        s.publish_seq(&ch, "m1");
        let mut got = Vec::new();
        let end = loop {
            let e = c.next_non_noop().expect("a reconnect event");
            match e["type"].as_str() {
                Some("data") => got.push(e["seq"].as_u64().unwrap()),
                Some("reconnect") => break e,
                _ => panic!("{t:?}: unexpected {e}"),
            }
        };
        assert!(
            c.next_event().is_none(),
            "{t:?}: the stream ends after reconnect"
        );
        let cursor = end["cursor"].as_str().unwrap().to_string();
        // Published while the client is away.
        for i in 2..5 {
            s.publish_seq(&ch, &format!("m{i}"));
        }
        let mut c2 = if t == Transport::Events {
            // EventSource resumes with Last-Event-ID, not the URL's seq.
            assert_eq!(c.last_id.as_deref(), Some(cursor.as_str()));
            let q = format!("channel={ch},other-{ch}&seq=0,0");
            StreamClient::open(s.public, t, &q, &format!("Last-Event-ID: {cursor}\r\n"))
        } else {
            StreamClient::open(s.public, t, &cursor_query(&cursor), "")
        };
        assert_eq!(c2.next_event().unwrap()["type"], "hello");
        let rest = 5 - got.len();
        got.extend(seqs(&c2.data(rest)));
        assert_eq!(
            got,
            (first..first + 5).collect::<Vec<_>>(),
            "{t:?}: gap or duplicate"
        );
        // Nothing else is due.
        let mut c3 =
            StreamClient::open(s.public, t, &format!("channel={ch}&seq={}", first + 5), "");
        assert_eq!(c3.next_event().unwrap()["type"], "hello");
        assert!(c3.conn.nothing_pending(), "{t:?}: duplicate after resume");
    }
}

#[test]
fn iframe_prelude_is_padded_and_scripts_cannot_be_ended() {
    let s = TestServer::start(|_| {});
    let evil = "</script><script>alert(1)</script>";
    s.publish_seq("xss", evil);
    let mut c = StreamClient::open(s.public, Transport::Iframe, "channel=xss&seq=0", "");
    assert_eq!(c.next_event().unwrap()["type"], "hello");
    let prelude_len = String::from_utf8_lossy(&c.raw).find("<script>").unwrap();
    assert!(prelude_len >= 1024, "prelude is {prelude_len} bytes");
    let e = c.data(1).remove(0);
    assert_eq!(e["data"], evil);
    let raw = String::from_utf8(c.raw.clone()).unwrap();
    assert!(
        !raw.contains("alert(1)</script>"),
        "payload closed a script element"
    );
    // Only our own two script elements (hello, the message) are closed.
    assert_eq!(raw.matches("</script>").count(), 2);
    // A callback is required and validated.
    let r = util::get(s.public, "/iframe?channel=xss");
    assert_eq!(r.status, 400);
    let r = util::get(s.public, "/iframe?channel=xss&cb=alert(1)");
    assert_eq!(r.status, 400);
}

#[test]
fn eventsource_resume_delivers_exactly_the_missed_messages_or_lost() {
    let s = TestServer::start(|c| c.buffer = 3);
    let seq0 = s.publish_seq("sse", "m0");
    let mut c = StreamClient::open(s.public, Transport::Events, "channel=sse&seq=0", "");
    assert_eq!(c.next_event().unwrap()["type"], "hello");
    c.data(1);
    let id = c.last_id.clone().unwrap();
    assert_eq!(id, format!("sse:{}", seq0 + 1));
    drop(c);
    s.wait_subscribers("sse", 0);
    // Two missed: both delivered, exactly.
    let missed = [s.publish_seq("sse", "m1"), s.publish_seq("sse", "m2")];
    let mut c = StreamClient::open(
        s.public,
        Transport::Events,
        "channel=sse",
        &format!("Last-Event-ID: {id}\r\n"),
    );
    assert_eq!(c.next_event().unwrap()["type"], "hello");
    assert_eq!(seqs(&c.data(2)), missed);
    assert!(c.conn.nothing_pending());
    drop(c);
    // Five missed with a buffer of three: `lost` for the first two, then the three.
    let more: Vec<u64> = (3..8)
        .map(|i| s.publish_seq("sse", &format!("m{i}")))
        .collect();
    let id = format!("sse:{}", missed[1] + 1);
    let mut c = StreamClient::open(
        s.public,
        Transport::Events,
        "channel=sse",
        &format!("Last-Event-ID: {id}\r\n"),
    );
    assert_eq!(c.next_event().unwrap()["type"], "hello");
    let lost = c.next_non_noop().unwrap();
    assert_eq!(
        lost,
        serde_json::json!({"type": "lost", "channel": "sse", "from": more[0], "to": more[1]})
    );
    assert_eq!(seqs(&c.data(3)), &more[2..]);
}

#[test]
fn a_stream_client_that_vanishes_is_cleaned_up() {
    let s = TestServer::start(|_| {});
    let mut clients: Vec<StreamClient> = TRANSPORTS
        .iter()
        .map(|t| StreamClient::open(s.public, *t, "channel=vanish", ""))
        .collect();
    for c in &mut clients {
        assert_eq!(c.next_event().unwrap()["type"], "hello");
    }
    s.wait_subscribers("vanish", 3);
    // Half-close by one, full close by another.
    clients[0]
        .conn
        .sock
        .shutdown(std::net::Shutdown::Write)
        .unwrap();
    clients.remove(1);
    s.wait_subscribers("vanish", 1);
    let seq = s.publish_seq("vanish", "left");
    assert_eq!(seqs(&clients[1].data(1)), [seq]);
}

#[test]
fn a_resume_with_a_large_backlog_is_not_dropped_as_slow() {
    // 100 buffered messages of 60 KiB: far past --max-pending-bytes (256 KiB), but a
    // replay shared with the channel's buffer, which a client must be able to read.
    let s = TestServer::start(|_| {});
    let payload = "z".repeat(60 * 1024);
    let first = s.publish_seq("backlog", &payload);
    for _ in 1..100 {
        s.publish_seq("backlog", &payload);
    }
    for t in TRANSPORTS {
        let mut c = StreamClient::open(s.public, t, "channel=backlog&seq=0", "");
        assert_eq!(c.next_event().unwrap()["type"], "hello");
        let got = c.data(100);
        assert_eq!(got[0]["seq"], first, "{t:?}");
        assert_eq!(got[99]["seq"], first + 99, "{t:?}");
    }
}
