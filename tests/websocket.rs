//! `GET /ws`: the opening handshake (101 with the RFC 6455 accept key; 426, 400 and 403
//! for what is refused), events as text frames (`hello` first, then published messages),
//! pings answered with pongs, the closing handshake, a protocol error closed with its
//! code; the JSON commands (`subscribe`, `unsubscribe`, `close`, and `error` for a bad
//! one), tokens, pings as heartbeats that close a silent peer, no `--stream-max-age`, the
//! shutdown's `reconnect` then 1001, and slow consumers. Spoken by a raw client here
//! (so every byte is checked); clients this project did not write are in
//! `ws_clients.rs`, Chromium in `browser.rs`, the Autobahn|Testsuite in `autobahn.rs`.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use util::ws::{
    closed_with, command, event, frame, handshake, is_noop, open, send, sync, ACCEPT, KEY,
};
use util::TestServer;

#[test]
fn a_websocket_subscriber_gets_hello_and_messages_as_text_frames_and_pongs() {
    let g = TestServer::start(|_| {});
    let (mut s, head) = handshake(g.public, "channel=news", "Sec-WebSocket-Version: 13\r\n");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
        "{head}"
    );
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions"),
        "{head}"
    );
    let hello = event(&mut s);
    assert_eq!(hello["type"], "hello");
    let seq = g.publish_seq("news", "one");
    let data = event(&mut s);
    assert_eq!(
        (data["seq"].as_u64(), data["data"].as_str()),
        (Some(seq), Some("one"))
    );
    send(&mut s, 0x89, b"hi");
    loop {
        let (op, p) = frame(&mut s);
        if op == 0x9 {
            continue;
        }
        assert_eq!(
            (op, p.as_slice()),
            (0xA, &b"hi"[..]),
            "a pong with the ping's payload"
        );
        break;
    }
    // The closing handshake: our close comes back, then the connection ends.
    send(&mut s, 0x88, &1000u16.to_be_bytes());
    let (op, p) = frame(&mut s);
    assert_eq!((op, &p[..2]), (0x8, &1000u16.to_be_bytes()[..]));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    g.wait_subscribers("news", 0);
}

#[test]
fn a_protocol_error_is_closed_with_1002_and_a_resumed_cursor_gets_what_it_missed() {
    let g = TestServer::start(|_| {});
    let first = g.publish_seq("news", "one");
    g.publish_seq("news", "two");
    let (mut s, _) = handshake(
        g.public,
        &format!("channel=news&seq={first}"),
        "Sec-WebSocket-Version: 13\r\n",
    );
    assert_eq!(event(&mut s)["type"], "hello");
    assert_eq!(event(&mut s)["data"], "one");
    assert_eq!(event(&mut s)["data"], "two");
    // An unmasked frame from a client breaks the protocol.
    s.write_all(&[0x81, 0x01, b'x']).unwrap();
    let (op, p) = frame(&mut s);
    assert_eq!((op, &p[..2]), (0x8, &1002u16.to_be_bytes()[..]));
}

#[test]
fn handshakes_that_are_refused() {
    let g = TestServer::start(|c| c.allow_origin = vec!["https://good.example".into()]);
    let (_, head) = handshake(g.public, "channel=news", "");
    assert!(
        head.starts_with("HTTP/1.1 426 Upgrade Required"),
        "no version: {head}"
    );
    assert!(head.contains("Sec-WebSocket-Version: 13\r\n"), "{head}");
    let (_, head) = handshake(
        g.public,
        "channel=news",
        "Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 403 "), "another site: {head}");
    let (_, head) = handshake(
        g.public,
        "channel=news",
        "Sec-WebSocket-Version: 13\r\nOrigin: https://good.example\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let r = util::get(g.public, "/ws?channel=news");
    assert_eq!(r.status, 426, "a plain GET");
}

#[test]
fn subscribe_and_unsubscribe_over_the_socket() {
    let g = TestServer::start(|_| {});
    let mut s = open(&g, "channel=a");
    let first = g.publish_seq("b", "b-old");
    // Subscribe with a cursor: the history comes first, then what is published.
    command(
        &mut s,
        &format!(r#"{{"type":"subscribe","channel":"b","seq":"{first}"}}"#),
    );
    let got = sync(&mut s);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0]["channel"].as_str(), got[0]["data"].as_str()),
        (Some("b"), Some("b-old"))
    );
    g.wait_subscribers("b", 1);
    g.publish_seq("b", "b-new");
    assert_eq!(event(&mut s)["data"], "b-new");
    // Arrays work too, "from now on" without seq.
    command(&mut s, r#"{"type":"subscribe","channel":["c"]}"#);
    assert!(sync(&mut s).is_empty());
    g.publish_seq("c", "c-1");
    assert_eq!(event(&mut s)["data"], "c-1");
    // Unsubscribed: b's messages stop, a's still come.
    command(&mut s, r#"{"type":"unsubscribe","channel":"b,c"}"#);
    assert!(sync(&mut s).is_empty());
    g.wait_subscribers("b", 0);
    g.publish_seq("b", "not for us");
    g.publish_seq("c", "not for us");
    g.publish_seq("a", "a-1");
    let e = event(&mut s);
    assert_eq!(
        (e["channel"].as_str(), e["data"].as_str()),
        (Some("a"), Some("a-1"))
    );
    // With no channel left, the socket stays open for the next subscribe.
    command(&mut s, r#"{"type":"unsubscribe","channel":"a"}"#);
    assert!(sync(&mut s).is_empty());
    command(&mut s, r#"{"type":"subscribe","channel":"a","seq":0}"#);
    let got = sync(&mut s);
    assert_eq!(
        got.iter()
            .map(|e| e["data"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["a-1"]
    );
    // close: each channel gets `close`, then close 1000.
    command(&mut s, r#"{"type":"close"}"#);
    let (code, events) = closed_with(&mut s);
    assert_eq!(code, 1000);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["type"].as_str(), events[0]["channel"].as_str()),
        (Some("close"), Some("a"))
    );
    g.wait_subscribers("a", 0);
}

#[test]
fn a_bad_command_gets_an_error_event_and_the_connection_stays() {
    let g = TestServer::start(|c| c.max_channels_per_subscriber = 3);
    let mut s = open(&g, "channel=a");
    for (cmd, why) in [
        ("not json", "a command is a JSON object"),
        (
            r#"{"type":"publish","channel":"a"}"#,
            "unknown command type",
        ),
        (r#"{"type":"subscribe"}"#, "missing channel"),
        (
            r#"{"type":"subscribe","channel":"no spaces"}"#,
            "bad channel name",
        ),
        (
            r#"{"type":"subscribe","channel":"x","seq":"1,2"}"#,
            "more seqs than channels",
        ),
        (r#"{"type":"subscribe","channel":"b,c,d"}"#, "channels"),
        (
            r#"{"type":"unsubscribe","seq":"1"}"#,
            "unsubscribe takes no field",
        ),
    ] {
        command(&mut s, cmd);
        let got = sync(&mut s);
        assert_eq!(got.len(), 1, "{cmd}: {got:?}");
        assert_eq!(got[0]["type"], "error", "{cmd}");
        let msg = got[0]["message"].as_str().unwrap();
        assert!(msg.contains(why), "{cmd}: {msg}");
    }
    // Still subscribed, still delivered.
    g.publish_seq("a", "still here");
    assert_eq!(event(&mut s)["data"], "still here");
    // A binary message is not a command: 1003.
    send(&mut s, 0x82, b"\x01\x02");
    assert_eq!(closed_with(&mut s).0, 1003);
    // A message over the cap (4 KiB): 1009.
    let mut s = open(&g, "channel=a");
    let big = format!(r#"{{"type":"subscribe","channel":"{}"}}"#, "x".repeat(5000));
    send(&mut s, 0x81, big.as_bytes());
    assert_eq!(closed_with(&mut s).0, 1009);
    // Text that is not UTF-8: 1007.
    let mut s = open(&g, "channel=a");
    send(&mut s, 0x81, b"{\"type\":\"\xff\"}");
    assert_eq!(closed_with(&mut s).0, 1007);
}

fn sign(g: &TestServer, channel: &str, ttl: u64) -> String {
    let r = util::request(
        g.admin,
        &format!("POST /sign?channel={channel}&ttl={ttl} HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["token"].as_str().unwrap().to_string()
}

#[test]
fn tokens_guard_the_handshake_and_every_subscribe_and_end_the_socket_when_they_expire() {
    let g = TestServer::start(|c| c.auth_secret = Some("s3cret".into()));
    let (_, head) = handshake(g.public, "channel=a", "Sec-WebSocket-Version: 13\r\n");
    assert!(head.starts_with("HTTP/1.1 403 "), "no token: {head}");
    let forged = sign(&g, "a", 600).replace(|c: char| c.is_ascii_digit(), "7");
    let (_, head) = handshake(
        g.public,
        &format!("channel=a&token={forged}"),
        "Sec-WebSocket-Version: 13\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 403 "), "forged: {head}");
    let mut s = open(&g, &format!("channel=a&token={}", sign(&g, "a", 600)));
    // A subscribe without a token, or with one for another channel, is refused.
    command(&mut s, r#"{"type":"subscribe","channel":"b"}"#);
    assert_eq!(sync(&mut s)[0]["message"], "missing token");
    let other = sign(&g, "a", 600);
    command(
        &mut s,
        &format!(r#"{{"type":"subscribe","channel":"b","token":"{other}"}}"#),
    );
    assert_eq!(
        sync(&mut s)[0]["message"],
        "token does not cover this channel"
    );
    assert_eq!(g.subscribers("b"), 0);
    // A token that expires soon: the socket ends then, with `reconnect` and 1008.
    let short = sign(&g, "b", 1);
    command(
        &mut s,
        &format!(r#"{{"type":"subscribe","channel":"b","token":"{short}"}}"#),
    );
    assert!(sync(&mut s).is_empty());
    g.publish_seq("b", "b-1");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let (code, events) = closed_with(&mut s);
    assert_eq!(code, 1008);
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["data", "reconnect"], "{events:?}");
}

#[test]
fn pings_close_a_silent_peer_but_not_one_that_answers_and_no_max_age_applies() {
    let g = TestServer::start(|c| {
        c.heartbeat = Duration::from_millis(100);
        c.stream_max_age = Duration::from_millis(300);
    });
    let mut silent = open(&g, "channel=a");
    // This one answers every ping, past many heartbeats and the stream max age, until
    // it gets a message.
    let mut answering = open(&g, "channel=a");
    let answerer = std::thread::spawn(move || {
        let mut pings = 0;
        loop {
            match frame(&mut answering) {
                (0x9, p) => {
                    pings += 1;
                    send(&mut answering, 0x8A, &p);
                }
                (op, p) if is_noop(op, &p) => {}
                (0x1, p) => {
                    let e: serde_json::Value = serde_json::from_slice(&p).unwrap();
                    return (pings, e["data"].as_str().unwrap().to_string());
                }
                (op, p) => panic!("unexpected frame {op:#x} {p:?}"),
            }
        }
    });
    // The silent one sends nothing: two heartbeats later it is closed (without a close
    // frame: the peer is presumed gone), having had heartbeats only (a ping, then `noop`
    // for pages, which see no ping).
    let mut got = Vec::new();
    silent.read_to_end(&mut got).unwrap();
    assert!(!got.is_empty(), "no heartbeat before the close");
    let heartbeat = b"\x89\x00\x81\x0f{\"type\":\"noop\"}";
    assert!(
        got.chunks(heartbeat.len()).all(|c| c == heartbeat),
        "{got:?}"
    );
    g.wait_subscribers("a", 1);
    // Many heartbeats later (and past the 300 ms stream max age) the other is still
    // there, and gets what is published.
    std::thread::sleep(Duration::from_millis(1000));
    g.publish_seq("a", "alive");
    let (pings, data) = answerer.join().unwrap();
    assert_eq!(data, "alive");
    // More pings than a silent peer is allowed to leave unanswered.
    assert!(pings >= 3, "{pings} pings");
}

#[test]
fn a_websocket_that_will_not_read_is_dropped_while_others_get_everything() {
    let g = TestServer::start(|c| c.max_pending_bytes = 64 * 1024);
    let (mut stuck, _) = {
        let mut s = TcpStream::connect(g.public).unwrap();
        // A tiny receive window so the gateway's output piles up.
        socket2::SockRef::from(&s)
            .set_recv_buffer_size(4096)
            .unwrap();
        write!(
            s,
            "GET /ws?channel=a HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        (s, ())
    };
    let mut reader = open(&g, "channel=a");
    g.wait_subscribers("a", 2);
    let body = "x".repeat(8000);
    let read = std::thread::spawn(move || {
        let mut seqs = Vec::new();
        loop {
            let e = event(&mut reader);
            if e["data"] == "end" {
                return (seqs, reader);
            }
            seqs.push(e["seq"].as_u64().unwrap());
        }
    });
    let dropped = || util::get(g.admin, "/stats").json()["slow_consumers_dropped"].as_u64();
    // Published until the one that does not read is dropped (kernel buffers on loopback
    // take megabytes first), at most 4,000 messages (32 MB).
    let mut seqs = Vec::new();
    while dropped() == Some(0) {
        assert!(seqs.len() < 4000, "the stuck reader was never dropped");
        for _ in 0..50 {
            seqs.push(g.publish_seq("a", &body));
        }
    }
    g.publish_seq("a", "end");
    let (got, _reader) = read.join().unwrap();
    assert_eq!(got, seqs, "the reader got every message, in order");
    g.wait_subscribers("a", 1);
    // The stuck one reads at last: it ends (an `error` event may or may not have fit).
    stuck
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut all = Vec::new();
    let _ = stuck.read_to_end(&mut all);
    assert!(all.len() < seqs.len() * 8000, "it was cut off");
}

#[test]
fn head_of_ws_is_answered_like_the_get_without_an_upgrade() {
    let g = TestServer::start(|_| {});
    let mut c = util::Conn::open(g.public);
    c.send("HEAD /ws?channel=a HTTP/1.1\r\nHost: t\r\n\r\nGET /ws?channel=a HTTP/1.1\r\nHost: t\r\n\r\n");
    let head = c.head_only();
    assert_eq!(head.status, 426);
    assert_eq!(head.header("sec-websocket-version"), Some("13"));
    // No body after the HEAD's head: the next bytes are the GET's answer.
    let get = c.response();
    assert_eq!(get.status, 426);
    assert_eq!(get.header("sec-websocket-version"), Some("13"));
}

#[test]
fn sigterm_sends_reconnect_with_the_cursor_then_1001() {
    let mut gw = util::ChildGateway::spawn(None, &["--shutdown-timeout", "5s"]);
    let (public, admin) = (gw.public, gw.admin);
    let (mut s, head) = handshake(public, "channel=a", "Sec-WebSocket-Version: 13\r\n");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert_eq!(event(&mut s)["type"], "hello");
    let r = util::request(
        admin,
        "POST /pub?channel=a HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_eq!(r.status, 200);
    let seq = r.json()["seq"].as_u64().unwrap();
    assert_eq!(event(&mut s)["seq"].as_u64(), Some(seq));
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let (code, events) = closed_with(&mut s);
    assert_eq!(code, 1001);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "reconnect");
    assert_eq!(events[0]["cursor"], format!("a:{}", seq + 1));
    assert!(gw.child.wait().unwrap().success());
}

/// A gateway on the Redis engine (history reads come later).
fn redis_gateway(
    redis: &util::Redis,
    tweak: impl FnOnce(&mut comet_gateway::Config),
) -> TestServer {
    use comet_gateway::engine::redis::RedisEngine;
    let mut c = comet_gateway::Config::ephemeral();
    tweak(&mut c);
    let limits = comet_gateway::engine::Limits::of(&c);
    let engine = RedisEngine::connect(redis.addr(), "comet:", limits).expect("connects");
    TestServer::start_with_engine(move |x| *x = c, Box::new(engine))
}

/// Text events until one satisfies `last` (pings skipped).
fn events_until(
    s: &mut TcpStream,
    last: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    loop {
        let e = event(s);
        let done = last(&e);
        out.push(e);
        if done {
            return out;
        }
    }
}

#[test]
fn a_subscribe_command_on_redis_gets_its_history_then_live_messages_once_each() {
    let redis = util::Redis::start();
    let g = redis_gateway(&redis, |_| {});
    let first = g.publish_seq("b", "b-1");
    g.publish_seq("b", "b-2");
    let mut s = open(&g, "channel=a");
    command(
        &mut s,
        &format!(r#"{{"type":"subscribe","channel":"b","seq":{first}}}"#),
    );
    // Published while the history read may still be in flight: merged, never twice.
    g.publish_seq("b", "b-3");
    let got = events_until(&mut s, |e| e["data"] == "b-3");
    let data: Vec<&str> = got.iter().map(|e| e["data"].as_str().unwrap()).collect();
    assert_eq!(data, ["b-1", "b-2", "b-3"]);
    g.publish_seq("b", "b-4");
    assert_eq!(event(&mut s)["data"], "b-4");
}

#[test]
fn a_subscribe_command_that_redis_does_not_answer_in_time_is_dropped_and_told() {
    let redis = util::Redis::start();
    let g = redis_gateway(&redis, |c| c.engine_timeout = Duration::from_millis(300));
    g.publish_seq("c", "c-old");
    let mut s = open(&g, "channel=a");
    // Redis holds every script for 1.5 s: the read of `c` waits.
    redis.cli(&["CLIENT", "PAUSE", "1500", "WRITE"]);
    command(&mut s, r#"{"type":"subscribe","channel":"c","seq":0}"#);
    // One waiting subscribe per socket: the next is refused until it is done.
    command(&mut s, r#"{"type":"subscribe","channel":"d"}"#);
    let e = event(&mut s);
    assert_eq!(e["type"], "error");
    assert!(
        e["message"].as_str().unwrap().contains("still waiting"),
        "{e}"
    );
    // --engine-timeout passes: `c` is dropped and the client told to subscribe again.
    let e = event(&mut s);
    assert_eq!(e["message"], "engine unavailable: subscribe again", "{e}");
    // Once Redis answers again, the same subscribe works, history included.
    wait_until_redis_writes(&redis);
    command(&mut s, r#"{"type":"subscribe","channel":"c","seq":0}"#);
    let got = events_until(&mut s, |e| e["data"] == "c-old");
    assert_eq!(got.len(), 1, "{got:?}");
    g.publish_seq("c", "c-new");
    assert_eq!(event(&mut s)["data"], "c-new");
}

fn wait_until_redis_writes(redis: &util::Redis) {
    util::wait_until("Redis takes writes again", || {
        redis.cli(&["SET", "probe", "1"]).contains("OK")
    });
}

#[test]
fn control_requests_by_client_id_steer_a_websocket_too() {
    let g = TestServer::start(|_| {});
    let (mut s, head) = handshake(g.public, "channel=a", "Sec-WebSocket-Version: 13\r\n");
    let id = head
        .lines()
        .find_map(|l| l.strip_prefix("X-Comet-Client: "))
        .expect("the client id in the 101")
        .to_string();
    let hello = event(&mut s);
    assert_eq!(hello["client"], id.as_str());
    let control = |action: &str, query: &str| {
        util::request(
            g.public,
            &format!("POST /clients/{id}/{action}?{query} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"),
        )
        .status
    };
    let first = g.publish_seq("b", "b-1");
    assert_eq!(control("subscribe", &format!("channel=b&seq={first}")), 204);
    assert_eq!(event(&mut s)["data"], "b-1");
    assert_eq!(control("unsubscribe", "channel=a"), 204);
    g.publish_seq("a", "not for us");
    g.publish_seq("b", "b-2");
    assert_eq!(event(&mut s)["data"], "b-2");
    assert_eq!(control("close", ""), 204);
    let (code, events) = closed_with(&mut s);
    assert_eq!(code, 1000);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["channel"], "b");
}
