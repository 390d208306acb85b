//! HTTP/1.1 behaviour over real loopback sockets: keep-alive, pipelining, every error
//! status, limits, timeouts, `100 Continue`, `--max-conns`.

mod util;

use std::time::Duration;

use util::{get, request, send_poll, Conn, TestServer};

#[test]
fn keep_alive_serves_two_requests_on_one_connection() {
    let s = TestServer::start(|_| {});
    let mut c = Conn::open(s.admin);
    c.send("POST /pub?channel=k HTTP/1.1\r\nContent-Length: 3\r\n\r\none");
    let first = c.response();
    assert_eq!(first.status, 200);
    assert_eq!(first.header("Connection"), Some("keep-alive"));
    c.send("GET /channels/k HTTP/1.1\r\n\r\n");
    let second = c.response();
    assert_eq!(second.status, 200);
    assert_eq!(second.json()["buffered"], 1);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let s = TestServer::start(|_| {});
    let mut c = Conn::open(s.admin);
    // Three requests in one write, the last split from its body's end.
    c.send(concat!(
        "POST /pub?channel=p HTTP/1.1\r\nContent-Length: 1\r\n\r\na",
        "POST /pub?channel=p HTTP/1.1\r\nContent-Length: 1\r\n\r\nb",
        "GET /channels/p HTTP/1.1\r\n\r\n"
    ));
    let a = c.response().json()["seq"].as_u64().unwrap();
    let b = c.response().json()["seq"].as_u64().unwrap();
    assert_eq!(b, a + 1);
    assert_eq!(c.response().json()["next_seq"], b + 1);
}

#[test]
fn a_request_pipelined_behind_a_parked_poll_waits_for_it() {
    let s = TestServer::start(|_| {});
    let seq = s.publish_seq("pp", "first");
    let mut c = Conn::open(s.public);
    // The first poll parks (cursor at the head); the second would answer at once, but must
    // not overtake it.
    c.send(&format!(
        "GET /poll?channel=pp&seq={} HTTP/1.1\r\n\r\nGET /poll?channel=pp&seq={seq} HTTP/1.1\r\n\r\n",
        seq + 1
    ));
    s.wait_subscribers("pp", 1);
    assert!(
        c.nothing_pending(),
        "the second request overtook the parked one"
    );
    let seq2 = s.publish_seq("pp", "second");
    let first = c.response().events();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0]["seq"], seq2);
    let second = c.response().events();
    assert_eq!(second.len(), 2);
    assert_eq!(second[0]["seq"], seq);
}

#[test]
fn connection_close_and_http10_are_honoured() {
    let s = TestServer::start(|_| {});
    let mut c = Conn::open(s.admin);
    c.send("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(c.closed_by_server());
    let mut c = Conn::open(s.admin);
    c.send("GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(c.response().status, 200);
    assert!(c.closed_by_server());
}

fn error_of(r: &util::Response) -> String {
    r.json()["error"]
        .as_str()
        .expect("JSON error body")
        .to_string()
}

#[test]
fn every_error_status() {
    let s = TestServer::start(|c| {
        c.max_message = 1000;
        c.max_header_bytes = 2048;
    });
    // 400: bad parameters, bad syntax.
    for path in [
        "/poll",
        "/poll?channel=",
        "/poll?channel=bad%20name",
        "/poll?channel=a&seq=x",
        "/poll?channel=a,a",
        "/poll?channel=a&seq=1,2",
        "/poll?channel=a%ZZ",
    ] {
        let r = get(s.public, path);
        assert_eq!(r.status, 400, "{path}");
        assert!(!error_of(&r).is_empty());
    }
    let too_many: Vec<String> = (0..17).map(|i| format!("c{i}")).collect();
    let r = get(s.public, &format!("/poll?channel={}", too_many.join(",")));
    assert_eq!(r.status, 400);
    let r = request(s.public, "NONSENSE\r\n\r\n");
    assert_eq!(r.status, 400);
    // 404: unknown paths, publishing on the public listener, unknown channel.
    let r = get(s.public, "/nope");
    assert_eq!((r.status, error_of(&r).as_str()), (404, "not found"));
    assert_eq!(get(s.public, "/pub").status, 404);
    assert_eq!(get(s.admin, "/poll").status, 404);
    // A publish sent to the public port is told where publishing is.
    let r = request(
        s.public,
        "POST /pub?channel=news HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (
            404,
            "not found: publishing is on the admin listener (--admin-listen)"
        )
    );
    let r = get(s.admin, "/poll?channel=news");
    assert_eq!(
        (r.status, error_of(&r).as_str()),
        (
            404,
            "not found: this path is on the public listener (--listen)"
        )
    );
    let r = get(s.admin, "/channels/never");
    assert_eq!((r.status, error_of(&r).as_str()), (404, "no such channel"));
    // 405 with Allow.
    let r = request(s.admin, "GET /pub?channel=a HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("POST, OPTIONS"));
    let r = request(s.public, "DELETE /poll?channel=a HTTP/1.1\r\n\r\n");
    assert_eq!(r.status, 405);
    // 411: chunked request bodies.
    let r = request(
        s.admin,
        "POST /pub?channel=a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n",
    );
    assert_eq!(r.status, 411);
    // 413: body past --max-message, refused from the header alone.
    let mut c = Conn::open(s.admin);
    c.send("POST /pub?channel=a HTTP/1.1\r\nContent-Length: 1001\r\n\r\n");
    let r = c.response();
    assert_eq!(r.status, 413);
    assert!(c.closed_by_server());
    // 414: request target too long.
    let r = get(s.public, &format!("/poll?channel={}", "a".repeat(5000)));
    assert_eq!(r.status, 414);
    // 431: header past --max-header-bytes, complete or still arriving.
    let r = request(
        s.public,
        &format!(
            "GET /poll?channel=a HTTP/1.1\r\nX-Big: {}\r\n\r\n",
            "b".repeat(3000)
        ),
    );
    assert_eq!(r.status, 431);
    let mut c = Conn::open(s.public);
    c.send(&format!(
        "GET /poll?channel=a HTTP/1.1\r\nX-Big: {}",
        "b".repeat(3000)
    ));
    assert_eq!(c.response().status, 431);
    assert!(c.closed_by_server());
    // Nothing above hurt the server.
    assert_eq!(get(s.admin, "/healthz").status, 200);
}

#[test]
fn max_channels_gives_503() {
    let s = TestServer::start(|c| c.max_channels = 2);
    s.publish_seq("one", "x");
    s.publish_seq("two", "x");
    let r = request(
        s.admin,
        "POST /pub?channel=three HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_eq!(r.status, 503);
    // Channels that only subscribers name do not count (they live while subscribed).
    let r = get(s.public, "/poll?channel=three&seq=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.events()[0]["type"], "reset");
    // Existing channels are unaffected.
    s.publish_seq("one", "y");
}

#[test]
fn max_conns_gives_503_and_frees_up() {
    let s = TestServer::start(|c| c.max_conns = 3);
    let mut held: Vec<Conn> = (0..3).map(|_| Conn::open(s.public)).collect();
    for c in &mut held {
        send_poll(c, "channel=full");
    }
    // The third subscriber may still be on its way; the count of parked polls tells.
    util::wait_until("3 parked polls", || {
        let mut c = Conn::open(s.admin);
        c.send("GET /channels/full HTTP/1.1\r\n\r\n");
        let r = c.response();
        r.status == 503 || r.json()["subscribers"] == 3
    });
    let r = get(s.public, "/comet.js");
    assert_eq!(r.status, 503);
    assert_eq!(error_of(&r), "too many connections");
    assert_eq!(r.header("Retry-After"), Some("1"));
    // The admin listener has its own cap: publishers and health checks still get in.
    assert_eq!(get(s.admin, "/healthz").status, 200);
    held.clear();
    util::wait_until("a connection slot is free", || {
        get(s.public, "/comet.js").status == 200
    });
}

#[test]
fn expect_100_continue_is_answered() {
    let s = TestServer::start(|_| {});
    let mut c = Conn::open(s.admin);
    c.send("POST /pub?channel=e HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n");
    let interim = c.response();
    assert_eq!(interim.status, 100);
    c.send("hello");
    let r = c.response();
    assert_eq!(r.status, 200);
    assert!(r.json()["seq"].is_u64());
}

#[test]
fn byte_at_a_time_requests_work() {
    let s = TestServer::start(|_| {});
    let mut c = Conn::open(s.admin);
    for b in b"POST /pub?channel=slow HTTP/1.1\r\nContent-Length: 4\r\n\r\nslow" {
        c.send_bytes(&[*b]);
    }
    assert_eq!(c.response().status, 200);
}

#[test]
fn header_timeout_closes_slow_clients() {
    let s = TestServer::start(|c| c.header_timeout = Duration::from_millis(150));
    let mut silent = Conn::open(s.public);
    assert!(silent.closed_by_server());
    let mut partial = Conn::open(s.public);
    partial.send("GET /poll?chan");
    assert!(partial.closed_by_server());
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let s = TestServer::start(|c| c.idle_timeout = Duration::from_millis(150));
    let mut c = Conn::open(s.admin);
    c.send("GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(c.response().status, 200);
    assert!(c.closed_by_server());
}

#[test]
fn cors_preflight_and_headers() {
    let s = TestServer::start(|c| c.allow_origin = vec!["https://app.example".into()]);
    let r = request(
        s.public,
        "OPTIONS /poll HTTP/1.1\r\nOrigin: https://app.example\r\nAccess-Control-Request-Method: GET\r\n\r\n",
    );
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://app.example")
    );
    assert!(r
        .header("Access-Control-Allow-Methods")
        .unwrap()
        .contains("GET"));
    let r = request(
        s.public,
        "GET /poll?channel=x,x HTTP/1.1\r\nOrigin: https://app.example\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://app.example")
    );
    let r = request(
        s.public,
        "GET /nope HTTP/1.1\r\nOrigin: https://evil.example\r\n\r\n",
    );
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
}

#[test]
fn cors_on_success_and_on_a_timed_out_poll() {
    let s = TestServer::start(|c| {
        c.allow_origin = vec!["https://a.example".into(), "https://b.example".into()];
        c.poll_timeout = Duration::from_millis(100);
    });
    s.publish_seq("cors", "x");
    let ok = request(
        s.public,
        "GET /poll?channel=cors&seq=0 HTTP/1.1\r\nOrigin: https://b.example\r\n\r\n",
    );
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.header("Access-Control-Allow-Origin"),
        Some("https://b.example")
    );
    assert_eq!(ok.header("Vary"), Some("Origin"));
    assert_eq!(
        ok.header("Access-Control-Expose-Headers"),
        Some("X-Comet-Client")
    );
    // A parked poll answered by its timeout keeps the CORS answer of its request.
    let timed_out = request(
        s.public,
        "GET /poll?channel=quiet HTTP/1.1\r\nOrigin: https://a.example\r\n\r\n",
    );
    assert_eq!(timed_out.json(), serde_json::json!([{"type": "noop"}]));
    assert_eq!(
        timed_out.header("Access-Control-Allow-Origin"),
        Some("https://a.example")
    );
    // The admin listener answers CORS the same way.
    let r = request(
        s.admin,
        "GET /healthz HTTP/1.1\r\nOrigin: https://a.example\r\n\r\n",
    );
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://a.example")
    );
}
