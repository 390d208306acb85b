//! Writes coalesced per loop turn, and batch publishing (`POST /pub` with an ndjson
//! body): messages published in one turn reach a stream in one write system call
//! (`/stats` `public_writes`), and a parked poll is answered with all of them at once; a
//! batch's lines are published in order, answered with their seqs, with the atomicity
//! of one publish; a bad batch publishes nothing.

mod util;

use util::{send_poll, stats, Conn, StreamClient, TestServer, Transport};

fn batch(g: &TestServer, body: &str) -> util::Response {
    util::request(
        g.admin,
        &format!(
            "POST /pub HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

fn writes(g: &TestServer) -> u64 {
    stats(g.admin)["public_writes"].as_u64().unwrap()
}

#[test]
fn a_batch_reaches_each_stream_in_one_write() {
    let g = TestServer::start(|_| {});
    let mut streams: Vec<StreamClient> = [Transport::Stream, Transport::Events, Transport::Iframe]
        .into_iter()
        .map(|t| {
            let mut s = StreamClient::open(g.public, t, "channel=a,b", "");
            assert_eq!(s.next_event().unwrap()["type"], "hello");
            s
        })
        .collect();
    g.wait_subscribers("a", 3);
    let lines: String = (0..100)
        .map(|i| {
            let ch = if i % 2 == 0 { "a" } else { "b" };
            format!("{{\"channel\":\"{ch}\",\"data\":\"m{i}\"}}\n")
        })
        .collect();
    let before = writes(&g);
    let r = batch(&g, &lines);
    assert_eq!(r.status, 200, "{}", r.text());
    let seqs = r.json();
    assert_eq!(seqs.as_array().unwrap().len(), 100);
    for s in &mut streams {
        let got = s.data(100);
        let data: Vec<String> = got
            .iter()
            .map(|e| e["data"].as_str().unwrap().to_string())
            .collect();
        let want: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        assert_eq!(data, want, "{:?}", s.transport);
        for (e, a) in got.iter().zip(seqs.as_array().unwrap()) {
            assert_eq!((&e["channel"], &e["seq"]), (&a["channel"], &a["seq"]));
        }
    }
    // 100 messages, 3 streams: one write each.
    assert_eq!(writes(&g) - before, 3, "{}", stats(g.admin));
}

#[test]
fn a_parked_poll_is_answered_with_everything_its_turn_published() {
    let g = TestServer::start(|_| {});
    let mut c = Conn::open(g.public);
    send_poll(&mut c, "channel=a,b");
    g.wait_subscribers("a", 1);
    // One publish to two channels, then a batch of three: each is one turn.
    let r = util::request(
        g.admin,
        "POST /pub?channel=a,b HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_eq!(r.status, 200);
    let r = c.response();
    let client = r.header("X-Comet-Client").unwrap().to_string();
    let answer = r.json();
    let data: Vec<(&str, &str)> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["channel"].as_str().unwrap(), e["data"].as_str().unwrap()))
        .collect();
    assert_eq!(
        data,
        [("a", "x"), ("b", "x")],
        "both messages in the one answer"
    );
    send_poll(&mut c, &format!("client={client}"));
    g.wait_subscribers("a", 1);
    let body = "{\"channel\":\"a\",\"data\":\"1\"}\n{\"channel\":\"b\",\"data\":\"2\"}\n{\"channel\":\"a\",\"data\":\"3\"}\n";
    assert_eq!(batch(&g, body).status, 200);
    let answer = c.response().json();
    let data: Vec<&str> = answer
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"].as_str().unwrap())
        .collect();
    assert_eq!(data, ["1", "2", "3"]);
}

#[test]
fn a_bad_batch_publishes_nothing_and_says_why() {
    let g = TestServer::start(|c| c.max_channels = 2);
    for (body, status, why) in [
        ("", 400, "empty batch"),
        ("{\"channel\":\"a\"}\n", 400, "each line of a batch"),
        ("{\"channel\":\"a\",\"data\":7}\n", 400, "data a string"),
        ("{\"channel\":\"a\",\"data\":\"x\"}\nnot json\n", 400, "each line of a batch"),
        ("{\"channel\":\"no spaces\",\"data\":\"x\"}\n", 400, "bad channel name"),
        (
            "{\"channel\":\"a\",\"data\":\"x\"}\n{\"channel\":\"b\",\"data\":\"x\"}\n{\"channel\":\"c\",\"data\":\"x\"}\n",
            503,
            "too many channels",
        ),
    ] {
        let r = batch(&g, body);
        assert_eq!(r.status, status, "{body:?}: {}", r.text());
        assert!(r.text().contains(why), "{body:?}: {}", r.text());
        assert_eq!(g.channel("a"), None, "{body:?} published something");
    }
    let line = "{\"channel\":\"a\",\"data\":\"x\"}\n";
    let r = util::request(
        g.admin,
        &format!(
            "POST /pub?channel=a HTTP/1.1\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{line}",
            line.len()
        ),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    // Blank lines and CRLF are fine; one line gets an array too.
    let r = batch(&g, "\r\n{\"channel\":\"a\",\"data\":\"x\"}\r\n\r\n");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json().as_array().unwrap().len(), 1);
}

#[test]
fn a_batch_through_redis_gets_its_seqs_in_order_on_every_process() {
    let redis = util::Redis::start();
    let a = util::redis_gateway(redis.addr(), |_| {});
    let b = util::redis_gateway(redis.addr(), |_| {});
    let mut s = StreamClient::open(b.public, Transport::Stream, "channel=x,y", "");
    assert_eq!(s.next_event().unwrap()["type"], "hello");
    util::wait_until("b subscribed", || stats(b.admin)["channels"] == 2);
    let body: String = (0..20)
        .map(|i| {
            format!(
                "{{\"channel\":\"{}\",\"data\":\"d{i}\"}}\n",
                ["x", "y"][i % 2]
            )
        })
        .collect();
    let r = batch(&a, &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    let got = s.data(20);
    for (i, (e, want)) in got.iter().zip(answer.as_array().unwrap()).enumerate() {
        assert_eq!(e["data"], format!("d{i}"));
        assert_eq!((&e["channel"], &e["seq"]), (&want["channel"], &want["seq"]));
    }
}
