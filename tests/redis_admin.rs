//! The admin API and control requests on the Redis engine: `GET /channels/NAME`,
//! `GET /channels`, `DELETE /channels/NAME` (which closes the channel's subscribers on
//! every process) and `POST /clients/ID/subscribe`, whose history reads come back from
//! Redis later while the subscriber's live messages are kept.

mod util;

use comet_gateway::engine::redis::RedisEngine;
use comet_gateway::engine::Limits;
use comet_gateway::Config;
use util::{get, request, wait_until, Conn, Redis, StreamClient, TestServer, Transport};

fn gateway(redis: &Redis) -> TestServer {
    let limits = Limits::of(&Config::ephemeral());
    let engine = RedisEngine::connect(redis.addr(), "comet:", limits).expect("connects");
    TestServer::start_with_engine(|_| {}, Box::new(engine))
}

fn delete(addr: std::net::SocketAddr, name: &str) -> u16 {
    request(
        addr,
        &format!("DELETE /channels/{name} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"),
    )
    .status
}

fn control(g: &TestServer, client: &str, action: &str, query: &str) -> u16 {
    request(
        g.public,
        &format!("POST /clients/{client}/{action}?{query} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"),
    )
    .status
}

#[test]
fn channel_info_and_list_come_from_redis_whichever_process_published() {
    let redis = Redis::start();
    let (a, b) = (gateway(&redis), gateway(&redis));
    assert!(b.channel("news").is_none(), "no such channel yet");
    let first = a.publish_seq("news", "one");
    a.publish_seq("news", "two");
    a.publish_seq("newt", "x");
    a.publish_seq("sport", "y");
    let info = b.channel("news").expect("b sees a's channel");
    assert_eq!(info["first_seq"].as_u64(), Some(first));
    assert_eq!(info["oldest_seq"].as_u64(), Some(first));
    assert_eq!(info["next_seq"].as_u64(), Some(first + 2));
    assert_eq!(info["buffered"].as_u64(), Some(2));
    let list = get(b.admin, "/channels?prefix=new").json();
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["channel"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["news", "newt"]);
    assert_eq!(list[0]["next_seq"].as_u64(), Some(first + 2));
    let all = get(b.admin, "/channels?limit=2").json();
    assert_eq!(all.as_array().unwrap().len(), 2);
    // A channel whose keys expired (--channel-ttl) leaves the list too.
    redis.cli(&["DEL", "comet:{newt}:m", "comet:{newt}:h"]);
    let list = get(b.admin, "/channels?prefix=new").json();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[test]
fn a_delete_on_one_process_closes_the_channels_subscribers_on_every_process() {
    let redis = Redis::start();
    let (a, b) = (gateway(&redis), gateway(&redis));
    let first = a.publish_seq("news", "one");
    let mut on_b = StreamClient::open(b.public, Transport::Events, "channel=news&seq=0", "");
    assert_eq!(on_b.next_event().unwrap()["type"], "hello");
    assert_eq!(on_b.data(1)[0]["seq"].as_u64(), Some(first));
    assert_eq!(delete(a.admin, "news"), 204);
    let close = on_b.next_non_noop().expect("close on b");
    assert_eq!(
        (close["type"].as_str(), close["channel"].as_str()),
        (Some("close"), Some("news"))
    );
    assert_eq!(delete(a.admin, "news"), 404, "gone");
    assert!(b.channel("news").is_none());
    // Its next life starts past every seq of the old one, on every process.
    assert!(b.publish_seq("news", "again") > first);
    b.wait_subscribers("news", 0);
}

#[test]
fn a_control_subscribe_adds_a_channel_to_a_stream_from_redis_history() {
    let redis = Redis::start();
    let (a, b) = (gateway(&redis), gateway(&redis));
    let first = a.publish_seq("sport", "old");
    let mut s = StreamClient::open(b.public, Transport::Stream, "channel=news", "");
    let hello = s.next_event().unwrap();
    let client = hello["client"].as_str().unwrap().to_string();
    // With a cursor: what Redis holds from it, then live ones from any process.
    assert_eq!(
        control(
            &b,
            &client,
            "subscribe",
            &format!("channel=sport&seq={first}")
        ),
        204
    );
    assert_eq!(s.data(1)[0]["data"], "old");
    let next = a.publish_seq("sport", "new");
    let got = s.data(1);
    assert_eq!(
        (got[0]["seq"].as_u64(), got[0]["data"].as_str()),
        (Some(next), Some("new"))
    );
    // From now on: nothing old, the next live one.
    assert_eq!(control(&b, &client, "subscribe", "channel=chat"), 204);
    let chat = a.publish_seq("chat", "hi");
    let got = s.data(1);
    assert_eq!(
        (got[0]["channel"].as_str(), got[0]["seq"].as_u64()),
        (Some("chat"), Some(chat))
    );
    // Redis gone: the subscribe is refused, the stream stays.
    drop(redis);
    wait_until("b notices", || get(b.admin, "/healthz").status == 503);
    assert_eq!(control(&b, &client, "subscribe", "channel=other"), 503);
}

#[test]
fn a_control_subscribe_answers_a_parked_poll_and_a_session_follows_from_now_on() {
    let redis = Redis::start();
    let (a, b) = (gateway(&redis), gateway(&redis));
    let first = a.publish_seq("sport", "old");
    let n0 = a.publish_seq("news", "n0");
    // A first poll (answered at once) gets the client id.
    let r = get(b.public, "/poll?channel=news&seq=0");
    let client = r.header("x-comet-client").expect("client id").to_string();
    let mut poll = Conn::open(b.public);
    util::send_poll(
        &mut poll,
        &format!("channel=news&seq={}&client={client}", n0 + 1),
    );
    wait_until("parked", || b.subscribers("news") == 1);
    assert_eq!(
        control(
            &b,
            &client,
            "subscribe",
            &format!("channel=sport&seq={first}")
        ),
        204
    );
    let events = poll.response().events();
    assert!(
        events
            .iter()
            .any(|e| e["data"] == "old" && e["seq"].as_u64() == Some(first)),
        "{events:?}"
    );
    // The session now holds sport from past `old`; a message published on a arrives
    // in the next poll.
    let next = a.publish_seq("sport", "new");
    let query = format!(
        "channel=news,sport&seq={},{}&client={client}",
        n0 + 1,
        first + 1
    );
    let events = get(b.public, &format!("/poll?{query}")).events();
    assert!(
        events.iter().any(|e| e["seq"].as_u64() == Some(next)),
        "{events:?}"
    );
}

#[test]
fn a_local_stream_has_a_message_before_its_publisher_has_the_seq() {
    use std::io::{Read, Write};
    let redis = Redis::start();
    let b = gateway(&redis);
    let mut sock = std::net::TcpStream::connect(b.public).unwrap();
    sock.write_all(b"GET /stream?channel=news HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    while !String::from_utf8_lossy(&got).contains("hello") {
        let n = sock.read(&mut buf).unwrap();
        assert!(n > 0, "stream ended");
        got.extend_from_slice(&buf[..n]);
    }
    // The stream's frame is written before the publish's answer: once the answer is
    // here, the frame is in the stream's socket already.
    for i in 0..200 {
        let body = format!("m{i}-end");
        b.publish_seq("news", &body);
        sock.set_nonblocking(true).unwrap();
        let mut seen = String::new();
        loop {
            match sock.read(&mut buf) {
                Ok(0) => panic!("stream ended"),
                Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
                Err(_) => break,
            }
        }
        sock.set_nonblocking(false).unwrap();
        assert!(seen.contains(&body), "message {i} not there yet: {seen:?}");
    }
}

#[test]
fn scripts_flushed_from_redis_are_loaded_again() {
    let redis = Redis::start();
    let a = gateway(&redis);
    let first = a.publish_seq("news", "one");
    redis.cli(&["SCRIPT", "FLUSH"]);
    let publish = || {
        request(
            a.admin,
            "POST /pub?channel=news HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\ntwo",
        )
    };
    // The call that meets NOSCRIPT fails; the gateway loads its scripts again.
    let r = publish();
    assert!(r.status == 503 || r.status == 200, "{}", r.status);
    wait_until("publishes work again", || publish().status == 200);
    assert!(a.channel("news").unwrap()["next_seq"].as_u64().unwrap() > first + 1);
}
