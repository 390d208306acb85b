//! The admin listener's management side: `--admin-token` (401 without it, or with a
//! wrong one), `GET /channels`, `DELETE /channels/NAME` (subscribers get `close`),
//! `GET /stats`, and `GET /metrics` in Prometheus text format, whose counters move.

mod util;

use util::{get, request, send_poll, Conn, StreamClient, TestServer, Transport};

fn admin(s: &TestServer, method: &str, path: &str, token: Option<&str>) -> util::Response {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    request(
        s.admin,
        &format!("{method} {path} HTTP/1.1\r\n{auth}Content-Length: 0\r\n\r\n"),
    )
}

#[test]
fn the_admin_token_guards_every_admin_request() {
    let s = TestServer::start(|c| c.admin_token = Some("s3cret".into()));
    for path in ["/stats", "/metrics", "/channels", "/channels/x"] {
        assert_eq!(
            admin(&s, "GET", path, None).status,
            401,
            "{path} without a token"
        );
        let r = admin(&s, "GET", path, Some("wrong"));
        assert_eq!(r.status, 401, "{path} with a wrong token");
        assert_eq!(r.header("WWW-Authenticate"), Some("Bearer"));
    }
    assert_eq!(
        admin(&s, "POST", "/pub?channel=a", Some("s3cre")).status,
        401
    );
    assert_eq!(
        admin(&s, "POST", "/pub?channel=a", Some("s3cret")).status,
        200
    );
    assert_eq!(admin(&s, "GET", "/stats", Some("s3cret")).status, 200);
    // The scheme is case-insensitive (RFC 9110 11.1).
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let r = request(
            s.admin,
            &format!("GET /stats HTTP/1.1\r\nAuthorization: {scheme} s3cret\r\n\r\n"),
        );
        assert_eq!(r.status, 200, "{scheme}");
    }
    // Health checks (load-balancer probes) need no token.
    assert_eq!(admin(&s, "GET", "/healthz", None).status, 200);
    assert_eq!(admin(&s, "GET", "/healthz", Some("wrong")).status, 200);
    // The public listener needs no token.
    assert_eq!(get(s.public, "/poll?channel=a&seq=0").status, 200);
    // 4 paths x (no token, wrong token) + 1 wrong publish.
    let m = admin(&s, "GET", "/metrics", Some("s3cret")).text();
    assert!(m.contains("comet_auth_failures_total 9"), "{m}");
}

#[test]
fn channels_are_listed_with_prefix_and_limit() {
    let s = TestServer::start(|_| {});
    for name in ["news.a", "news.b", "news.c", "chat"] {
        s.publish_seq(name, "x");
    }
    let all = get(s.admin, "/channels").json();
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["chat", "news.a", "news.b", "news.c"]);
    assert_eq!(all[0]["buffered"], 1);
    assert!(all[0]["next_seq"].is_u64() && all[0]["subscribers"] == 0);
    let some = get(s.admin, "/channels?prefix=news.&limit=2").json();
    let names: Vec<&str> = some
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["news.a", "news.b"]);
    assert_eq!(get(s.admin, "/channels?limit=x").status, 400);
}

#[test]
fn deleting_a_channel_closes_its_subscribers() {
    let s = TestServer::start(|_| {});
    s.publish_seq("doomed", "x");
    let mut stream = StreamClient::open(s.public, Transport::Events, "channel=doomed,kept", "");
    assert_eq!(stream.next_event().unwrap()["type"], "hello");
    let mut poll = Conn::open(s.public);
    send_poll(&mut poll, "channel=doomed");
    s.wait_subscribers("doomed", 2);
    let r = request(s.admin, "DELETE /channels/doomed HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(
        poll.response().events(),
        [serde_json::json!({"type": "close", "channel": "doomed"})]
    );
    assert_eq!(
        stream.next_non_noop().unwrap(),
        serde_json::json!({"type": "close", "channel": "doomed"})
    );
    assert!(s.channel("doomed").is_none());
    // The stream lives on for its other channel.
    let seq = s.publish_seq("kept", "still here");
    assert_eq!(stream.data(1)[0]["seq"], seq);
    assert_eq!(
        request(s.admin, "DELETE /channels/doomed HTTP/1.1\r\n\r\n").status,
        404
    );
    // A stream whose last channel is deleted stays open, as after `unsubscribe` (an
    // EventSource would otherwise reconnect to the deleted channel): a control request
    // can give it channels again.
    let mut only = StreamClient::open(s.public, Transport::Stream, "channel=solo", "");
    let hello = only.next_event().unwrap();
    let id = hello["client"].as_str().unwrap().to_string();
    s.wait_subscribers("solo", 1);
    assert_eq!(
        request(s.admin, "DELETE /channels/solo HTTP/1.1\r\n\r\n").status,
        204
    );
    assert_eq!(only.next_non_noop().unwrap()["type"], "close");
    let r = request(
        s.public,
        &format!(
            "POST /clients/{id}/subscribe?channel=solo2 HTTP/1.1\r\nContent-Length: 0\r\n\r\n"
        ),
    );
    assert_eq!(r.status, 204);
    let seq = s.publish_seq("solo2", "back");
    assert_eq!(only.data(1)[0]["seq"], seq);
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{name} missing"))
        .parse()
        .unwrap()
}

#[test]
fn stats_and_metrics_move_when_messages_flow() {
    let s = TestServer::start(|_| {});
    let mut stream = StreamClient::open(s.public, Transport::Stream, "channel=m", "");
    assert_eq!(stream.next_event().unwrap()["type"], "hello");
    let mut poll = Conn::open(s.public);
    send_poll(&mut poll, "channel=m");
    s.wait_subscribers("m", 2);
    let before = get(s.admin, "/metrics");
    assert_eq!(
        before.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let before = before.text();
    // Every line is a comment or `name{labels} value`.
    for line in before.lines() {
        assert!(
            line.starts_with("# HELP comet_") || line.starts_with("# TYPE comet_") || {
                let (name, value) = line.rsplit_once(' ').unwrap();
                name.starts_with("comet_") && value.parse::<u64>().is_ok()
            },
            "not Prometheus text: {line}"
        );
    }
    assert_eq!(metric(&before, "comet_connections{kind=\"stream\"}"), 1);
    assert_eq!(
        metric(&before, "comet_connections{kind=\"parked_poll\"}"),
        1
    );
    s.publish_seq("m", "one");
    stream.data(1);
    poll.response();
    let after = get(s.admin, "/metrics").text();
    assert_eq!(
        metric(&after, "comet_messages_published_total"),
        metric(&before, "comet_messages_published_total") + 1
    );
    assert_eq!(
        metric(&after, "comet_messages_delivered_total"),
        metric(&before, "comet_messages_delivered_total") + 2
    );
    assert!(metric(&after, "comet_bytes_out_total") > metric(&before, "comet_bytes_out_total"));
    let stats = get(s.admin, "/stats").json();
    assert_eq!(stats["connections"]["streams"]["stream"], 1);
    assert_eq!(
        stats["messages"]["published"],
        metric(&after, "comet_messages_published_total")
    );
    assert!(stats["channels"].as_u64().unwrap() >= 1);
    assert!(
        stats["sessions"].as_u64().unwrap() >= 1,
        "the answered poll left a session"
    );
}

#[test]
fn delivered_counts_every_message_handed_to_a_subscriber() {
    let s = TestServer::start(|_| {});
    for i in 0..3 {
        s.publish_seq("dl", &format!("m{i}"));
    }
    let delivered = || {
        util::stats(s.admin)["messages"]["delivered"]
            .as_u64()
            .unwrap()
    };
    // An immediate poll answer: 3.
    assert_eq!(get(s.public, "/poll?channel=dl&seq=0").events().len(), 3);
    assert_eq!(delivered(), 3);
    // A stream's catch-up: 3 more.
    let mut stream = StreamClient::open(s.public, Transport::Events, "channel=dl&seq=0", "");
    assert_eq!(stream.next_event().unwrap()["type"], "hello");
    stream.data(3);
    assert_eq!(delivered(), 6);
    // A parked poll and the live stream: one each.
    let mut poll = Conn::open(s.public);
    send_poll(&mut poll, "channel=dl");
    s.wait_subscribers("dl", 2);
    let st = util::stats(s.admin);
    assert_eq!(st["connections"]["parked_polls"], 1, "{st}");
    assert_eq!(st["connections"]["streams"]["events"], 1, "{st}");
    s.publish_seq("dl", "live");
    poll.response();
    stream.data(1);
    assert_eq!(delivered(), 8);
    // Counts by kind follow the connections as they change and go.
    drop(stream);
    drop(poll);
    util::wait_until("no subscriber connections left", || {
        let st = util::stats(s.admin);
        st["connections"]["parked_polls"] == 0
            && st["connections"]["streams"]["events"] == 0
            && st["connections"]["public"] == 0
    });
}
