//! Long-polling over real loopback sockets: buffering, parking, timeouts, cursors,
//! several channels, JSONP, payload escaping, disconnect cleanup.

mod util;

use std::time::Duration;

use util::{get, send_poll, Conn, TestServer};

fn data_seqs(events: &[serde_json::Value]) -> Vec<u64> {
    events
        .iter()
        .filter(|e| e["type"] == "data")
        .map(|e| e["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn publish_then_poll_from_zero_returns_buffered_in_order() {
    let s = TestServer::start(|_| {});
    let seqs: Vec<u64> = (0..5)
        .map(|i| s.publish_seq("news", &format!("m{i}")))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "consecutive: {seqs:?}"
    );
    let r = get(s.public, "/poll?channel=news&seq=0");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/json; charset=utf-8")
    );
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    let id = r.header("X-Comet-Client").expect("client id");
    assert_eq!(id.len(), 32);
    let events = r.events();
    assert_eq!(data_seqs(&events), seqs);
    let payloads: Vec<&str> = events.iter().map(|e| e["data"].as_str().unwrap()).collect();
    assert_eq!(payloads, ["m0", "m1", "m2", "m3", "m4"]);
    assert!(events.iter().all(|e| e["channel"] == "news"));
    // From the middle of the buffer.
    let r = get(s.public, &format!("/poll?channel=news&seq={}", seqs[3]));
    assert_eq!(data_seqs(&r.events()), &seqs[3..]);
}

#[test]
fn first_seq_comes_from_the_clock() {
    let s = TestServer::start(|_| {});
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as u64;
    let seq = s.publish_seq("clocked", "x");
    assert!(
        seq >= before,
        "first seq {seq} is before creation time {before}"
    );
    assert!(seq < 1 << 53, "seq must stay exact in JavaScript");
}

#[test]
fn parked_poll_is_answered_by_a_later_publish() {
    let s = TestServer::start(|_| {});
    let mut c = Conn::open(s.public);
    send_poll(&mut c, "channel=live");
    s.wait_subscribers("live", 1);
    let seq = s.publish_seq("live", "hello");
    let r = c.response();
    assert_eq!(r.status, 200);
    let events = r.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["seq"], seq);
    assert_eq!(events[0]["data"], "hello");
    // Answered polls leave the channel.
    s.wait_subscribers("live", 0);
    // The next poll with the following cursor parks again and gets the next message only.
    send_poll(&mut c, &format!("channel=live&seq={}", seq + 1));
    s.wait_subscribers("live", 1);
    let seq2 = s.publish_seq("live", "again");
    assert_eq!(data_seqs(&c.response().events()), [seq2]);
}

#[test]
fn poll_times_out_with_noop() {
    let s = TestServer::start(|c| c.poll_timeout = Duration::from_millis(200));
    let r = get(s.public, "/poll?channel=quiet");
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), serde_json::json!([{"type": "noop"}]));
    s.wait_subscribers("quiet", 0);
}

#[test]
fn cursor_behind_the_buffer_yields_lost_then_the_rest() {
    let s = TestServer::start(|c| c.buffer = 3);
    let seqs: Vec<u64> = (0..7)
        .map(|i| s.publish_seq("ring", &i.to_string()))
        .collect();
    let r = get(s.public, &format!("/poll?channel=ring&seq={}", seqs[1]));
    let events = r.events();
    assert_eq!(
        events[0],
        serde_json::json!({"type": "lost", "channel": "ring", "from": seqs[1], "to": seqs[3]})
    );
    assert_eq!(data_seqs(&events[1..]), &seqs[4..]);
    assert_eq!(events.len(), 4);
    // `seq=0` means everything still buffered, without a lost event.
    let r = get(s.public, "/poll?channel=ring&seq=0");
    assert_eq!(data_seqs(&r.events()), &seqs[4..]);
    assert_eq!(r.events().len(), 3);
}

#[test]
fn message_ttl_drops_old_messages_and_reports_them_lost() {
    let s = TestServer::start(|c| c.message_ttl = Duration::from_millis(100));
    let seq = s.publish_seq("short", "old");
    util::wait_until("the message expired", || {
        s.channel("short").unwrap()["buffered"] == 0
    });
    let r = get(s.public, &format!("/poll?channel=short&seq={seq}"));
    assert_eq!(
        r.events(),
        [serde_json::json!({"type": "lost", "channel": "short", "from": seq, "to": seq})]
    );
}

#[test]
fn cursor_from_an_earlier_life_yields_reset() {
    let s = TestServer::start(|c| {
        c.channel_ttl = Duration::from_millis(200);
        c.poll_timeout = Duration::from_secs(600);
    });
    let old = s.publish_seq("phoenix", "first life");
    util::wait_until("the channel expired", || s.channel("phoenix").is_none());
    // A subscriber keeps the new life from expiring while the test runs.
    let mut keeper = Conn::open(s.public);
    send_poll(&mut keeper, "channel=phoenix,keeper");
    s.wait_subscribers("phoenix", 1);
    let new = s.publish_seq("phoenix", "second life");
    assert!(new > old, "a new life never reuses seqs");
    let r = get(s.public, &format!("/poll?channel=phoenix&seq={}", old + 1));
    let events = r.events();
    assert_eq!(
        events[0],
        serde_json::json!({"type": "reset", "channel": "phoenix", "seq": new})
    );
    assert_eq!(data_seqs(&events[1..]), [new]);
    assert_eq!(events[1]["data"], "second life");
}

#[test]
fn cursor_ahead_of_the_channel_yields_reset() {
    let s = TestServer::start(|_| {});
    let seq = s.publish_seq("ahead", "x");
    let mut c = Conn::open(s.public);
    send_poll(&mut c, &format!("channel=ahead&seq={}", seq + 50));
    let r = c.response();
    assert_eq!(
        r.events(),
        [serde_json::json!({"type": "reset", "channel": "ahead", "seq": seq + 1})]
    );
}

#[test]
fn channels_only_live_while_used() {
    let s = TestServer::start(|c| {
        c.channel_ttl = Duration::from_millis(150);
        c.session_timeout = Some(Duration::from_millis(100));
    });
    let first = s.publish_seq("held", "x");
    let mut c = Conn::open(s.public);
    send_poll(&mut c, &format!("channel=held&seq={}", first + 1));
    s.wait_subscribers("held", 1);
    // A channel with a subscriber outlives its ttl...
    std::thread::sleep(Duration::from_millis(400));
    assert!(s.channel("held").is_some());
    // ...and goes once idle (its poll's session, which holds it, times out first).
    drop(c);
    util::wait_until("idle channel dropped", || s.channel("held").is_none());
}

#[test]
fn several_channels_in_one_poll() {
    let s = TestServer::start(|_| {});
    let a = s.publish_seq("a", "a1");
    let b = s.publish_seq("b", "b1");
    let r = get(s.public, &format!("/poll?channel=a,b&seq={a},{b}"));
    let events = r.events();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (events[0]["channel"].as_str(), events[0]["seq"].as_u64()),
        (Some("a"), Some(a))
    );
    assert_eq!(
        (events[1]["channel"].as_str(), events[1]["seq"].as_u64()),
        (Some("b"), Some(b))
    );
    // Repeated `channel` works too, and a parked multi-channel poll wakes on either.
    let mut c = Conn::open(s.public);
    send_poll(
        &mut c,
        &format!("channel=a&channel=b&seq={},{}", a + 1, b + 1),
    );
    s.wait_subscribers("a", 1);
    s.wait_subscribers("b", 1);
    let b2 = s.publish_seq("b", "b2");
    let events = c.response().events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0]["channel"].as_str(), events[0]["seq"].as_u64()),
        (Some("b"), Some(b2))
    );
    // The answered poll left both channels.
    s.wait_subscribers("a", 0);
    s.wait_subscribers("b", 0);
    // One publish to several channels.
    let res = s.publish("a,b", "both");
    assert_eq!(res[0]["channel"], "a");
    assert_eq!(res[1]["channel"], "b");
    assert_eq!(res[1]["seq"], b2 + 1);
}

#[test]
fn jsonp_wraps_the_answer_and_bad_callbacks_are_rejected() {
    let s = TestServer::start(|_| {});
    let seq = s.publish_seq("j", "hi");
    let r = get(s.public, "/poll?channel=j&seq=0&cb=jQuery_1.cb$");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/javascript; charset=utf-8")
    );
    let text = r.text();
    let inner = text
        .strip_prefix("/**/jQuery_1.cb$(")
        .and_then(|t| t.strip_suffix(");"))
        .unwrap_or_else(|| panic!("not JSONP: {text}"));
    let events: Vec<serde_json::Value> = serde_json::from_str(inner).unwrap();
    assert_eq!(events[0]["seq"], seq);
    for bad in ["alert(1)", "a;b", "", "x%3Cscript", &"a".repeat(65)] {
        let r = get(s.public, &format!("/poll?channel=j&seq=0&cb={bad}"));
        assert_eq!(r.status, 400, "cb={bad}");
        assert!(r.json()["error"].as_str().unwrap().contains("cb"));
    }
}

#[test]
fn hostile_payloads_survive_as_valid_json() {
    let s = TestServer::start(|_| {});
    let payload = "</script><script>alert(\"x\")</script> 'q' \\ \u{0}\u{1}\u{1f}\n\t é 中文 😀 \u{2028}\u{2029} &amp;";
    s.publish_seq("evil", payload);
    let r = get(s.public, "/poll?channel=evil&seq=0");
    let raw = r.text();
    for forbidden in ["<", ">", "&", "\u{2028}", "\u{2029}"] {
        assert!(
            !raw.contains(forbidden),
            "raw body contains {forbidden:?}: {raw}"
        );
    }
    assert_eq!(r.events()[0]["data"], payload);
    let r = get(s.public, "/poll?channel=evil&seq=0&cb=f");
    let text = r.text();
    assert!(!text.contains("</script"));
    let inner = &text["/**/f(".len()..text.len() - 2];
    let events: Vec<serde_json::Value> = serde_json::from_str(inner).unwrap();
    assert_eq!(events[0]["data"], payload);
}

#[test]
fn payloads_must_be_utf8() {
    let s = TestServer::start(|_| {});
    let mut c = Conn::open(s.admin);
    c.send_bytes(b"POST /pub?channel=u HTTP/1.1\r\nContent-Length: 2\r\n\r\n\xff\xfe");
    let r = c.response();
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().unwrap().contains("UTF-8"));
}

#[test]
fn client_id_is_kept_when_given_and_checked() {
    let s = TestServer::start(|_| {});
    s.publish_seq("ids", "x");
    let first = get(s.public, "/poll?channel=ids&seq=0");
    let id = first.header("X-Comet-Client").unwrap().to_string();
    let again = get(s.public, &format!("/poll?channel=ids&seq=0&client={id}"));
    assert_eq!(again.header("X-Comet-Client"), Some(id.as_str()));
    let other = get(s.public, "/poll?channel=ids&seq=0");
    assert_ne!(
        other.header("X-Comet-Client"),
        Some(id.as_str()),
        "ids are random"
    );
    assert_eq!(get(s.public, "/poll?channel=ids&client=nothex").status, 400);
}

#[test]
fn a_client_that_disconnects_while_parked_is_cleaned_up() {
    let s = TestServer::start(|_| {});
    let mut conns: Vec<Conn> = (0..10).map(|_| Conn::open(s.public)).collect();
    for c in &mut conns {
        send_poll(c, "channel=gone,gone2");
    }
    s.wait_subscribers("gone", 10);
    s.wait_subscribers("gone2", 10);
    conns.truncate(4);
    s.wait_subscribers("gone", 4);
    s.wait_subscribers("gone2", 4);
    // Reset (RST) instead of FIN is cleaned up too.
    for c in conns.drain(..2) {
        let sock = socket_with_linger_zero(c.sock);
        drop(sock);
    }
    s.wait_subscribers("gone", 2);
    // The survivors still get the next message.
    let seq = s.publish_seq("gone2", "still here");
    for c in &mut conns {
        assert_eq!(data_seqs(&c.response().events()), [seq]);
    }
}

/// Makes `close` send RST instead of FIN.
fn socket_with_linger_zero(sock: std::net::TcpStream) -> std::net::TcpStream {
    socket2::SockRef::from(&sock)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
    sock
}

/// `seq=` gives cursors in the order of `channel=`; a channel left without one (fewer seqs
/// than channels) gets only what is published from now on, as a missing seq always does.
/// More seqs than channels is a 400.
#[test]
fn fewer_seqs_than_channels_leaves_the_rest_at_now() {
    let s = TestServer::start(|_| {});
    let a = s.publish_seq("a", "old-a");
    s.publish_seq("b", "old-b");
    let r = get(s.public, "/poll?channel=a,b&seq=0");
    assert_eq!(r.status, 200);
    let events = r.events();
    assert_eq!(data_seqs(&events), vec![a], "{events:?}");
    assert_eq!(events[0]["channel"], "a");
    assert_eq!(get(s.public, "/poll?channel=a&seq=0,0").status, 400);
}
