//! Control requests over real loopback sockets: `close`, `subscribe` and `unsubscribe`
//! steer a stream or a long-poll session from a separate short request.

mod util;

use std::time::Duration;

use util::{get, request, send_poll, Conn, StreamClient, TestServer, Transport, TRANSPORTS};

fn control(s: &TestServer, id: &str, action: &str, query: &str) -> u16 {
    request(
        s.public,
        &format!("POST /clients/{id}/{action}?{query} HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
    )
    .status
}

fn hello(c: &mut StreamClient) -> String {
    let h = c.next_event().unwrap();
    assert_eq!(h["type"], "hello");
    h["client"].as_str().unwrap().to_string()
}

#[test]
fn close_ends_a_stream() {
    let s = TestServer::start(|_| {});
    for t in TRANSPORTS {
        let mut c = StreamClient::open(s.public, t, "channel=c1,c2", "");
        let id = hello(&mut c);
        assert_eq!(control(&s, &id, "close", ""), 204);
        let closes: Vec<_> = std::iter::from_fn(|| c.next_non_noop()).collect();
        assert_eq!(
            closes,
            [
                serde_json::json!({"type": "close", "channel": "c1"}),
                serde_json::json!({"type": "close", "channel": "c2"})
            ],
            "{t:?}"
        );
        assert!(c.ended);
        // The id is gone with it.
        assert_eq!(control(&s, &id, "close", ""), 404);
    }
    s.wait_subscribers("c1", 0);
}

#[test]
fn close_ends_a_parked_poll_and_its_session() {
    let s = TestServer::start(|_| {});
    // The first poll answers at once and names the session.
    s.publish_seq("pc", "x");
    let first = get(s.public, "/poll?channel=pc&seq=0");
    let id = first.header("X-Comet-Client").unwrap().to_string();
    let mut c = Conn::open(s.public);
    send_poll(&mut c, &format!("client={id}"));
    s.wait_subscribers("pc", 1);
    assert_eq!(control(&s, &id, "close", ""), 204);
    let r = c.response();
    assert_eq!(
        r.events(),
        [serde_json::json!({"type": "close", "channel": "pc"})]
    );
    s.wait_subscribers("pc", 0);
    assert_eq!(control(&s, &id, "close", ""), 404);
}

#[test]
fn subscribe_and_unsubscribe_steer_a_live_stream() {
    let s = TestServer::start(|_| {});
    for t in TRANSPORTS {
        let (a, b) = (
            format!("a-{}", &t.path()[1..]),
            format!("b-{}", &t.path()[1..]),
        );
        let mut c = StreamClient::open(s.public, t, &format!("channel={a}"), "");
        let id = hello(&mut c);
        // A message already buffered on b is due from the given cursor.
        let b0 = s.publish_seq(&b, "before");
        assert_eq!(
            control(&s, &id, "subscribe", &format!("channel={b}&seq={b0}")),
            204
        );
        let e = c.data(1).remove(0);
        assert_eq!(
            (e["channel"].as_str(), e["seq"].as_u64()),
            (Some(b.as_str()), Some(b0))
        );
        let b1 = s.publish_seq(&b, "after");
        assert_eq!(c.data(1)[0]["seq"], b1, "{t:?}");
        // Unsubscribe from a: its messages stop, b's still come.
        assert_eq!(
            control(&s, &id, "unsubscribe", &format!("channel={a}")),
            204
        );
        s.wait_subscribers(&a, 0);
        s.publish_seq(&a, "not for you");
        let b2 = s.publish_seq(&b, "for you");
        let e = c.data(1).remove(0);
        assert_eq!(
            (e["channel"].as_str(), e["seq"].as_u64()),
            (Some(b.as_str()), Some(b2)),
            "{t:?}"
        );
        // Still the same data connection.
        assert!(!c.ended);
    }
}

#[test]
fn unknown_or_malformed_ids_get_404() {
    let s = TestServer::start(|_| {});
    assert_eq!(control(&s, &"0".repeat(32), "close", ""), 404);
    assert_eq!(control(&s, "not-an-id", "subscribe", "channel=a"), 404);
    let r = request(
        s.public,
        "POST /clients/x/frobnicate HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 404);
    let r = get(s.public, &format!("/clients/{}/close", "0".repeat(32)));
    assert_eq!(r.status, 405);
}

#[test]
fn a_long_poll_session_survives_between_polls_and_expires() {
    // Long enough for each step below to land inside it even on a loaded machine.
    let s = TestServer::start(|c| c.session_timeout = Some(Duration::from_secs(2)));
    let seq = s.publish_seq("sess", "one");
    let r = get(s.public, &format!("/poll?channel=sess&seq={seq}"));
    let id = r.header("X-Comet-Client").unwrap().to_string();
    // Between polls, a control request adds a channel to the session...
    assert_eq!(control(&s, &id, "subscribe", "channel=extra"), 204);
    let extra = s.publish_seq("extra", "added between polls");
    // ...and the next poll, naming only its own channel, receives it.
    let r = get(s.public, &format!("/poll?channel=sess&client={id}"));
    assert_eq!(r.header("X-Comet-Client"), Some(id.as_str()));
    let events = r.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["channel"].as_str(), events[0]["seq"].as_u64()),
        (Some("extra"), Some(extra))
    );
    // Unsubscribe between polls removes it again: the next poll waits on `sess` only.
    assert_eq!(control(&s, &id, "unsubscribe", "channel=extra"), 204);
    let mut c = Conn::open(s.public);
    send_poll(&mut c, &format!("client={id}"));
    s.wait_subscribers("sess", 1);
    assert_eq!(s.subscribers("extra"), 0);
    let next = s.publish_seq("sess", "two");
    assert_eq!(c.response().events()[0]["seq"], next);
    // Not polled again within --session-timeout: forgotten.
    // (Probed with a harmless unsubscribe: a `close` would end the session itself.)
    let probe = |s: &TestServer| control(s, &id, "unsubscribe", "channel=none");
    assert_eq!(
        probe(&s),
        204,
        "the session is still alive right after a poll"
    );
    util::wait_until("session expired", || probe(&s) == 404);
    let r = get(s.public, &format!("/poll?channel=sess&seq=0&client={id}"));
    assert_ne!(
        r.header("X-Comet-Client"),
        Some(id.as_str()),
        "an expired id is replaced"
    );
}

#[test]
fn control_requests_are_answered_while_a_thousand_streams_are_open() {
    let s = TestServer::start(|_| {});
    let mut streams: Vec<StreamClient> = (0..1000)
        .map(|i| StreamClient::open(s.public, TRANSPORTS[i % 3], "channel=many", ""))
        .collect();
    let ids: Vec<String> = streams.iter_mut().map(hello).collect();
    s.wait_subscribers("many", 1000);
    assert_eq!(control(&s, &ids[500], "close", ""), 204);
    assert_eq!(control(&s, &ids[10], "subscribe", "channel=more"), 204);
    s.wait_subscribers("many", 999);
    assert_eq!(s.subscribers("more"), 1);
    let seq = s.publish_seq("many", "all");
    for (i, c) in streams.iter_mut().enumerate() {
        if i == 500 {
            let last = c.next_non_noop().unwrap();
            assert_eq!(last["type"], "close");
            continue;
        }
        assert_eq!(c.data(1)[0]["seq"], seq, "stream {i} ({:?})", c.transport);
    }
    assert_eq!(streams[0].transport, Transport::Stream);
}
