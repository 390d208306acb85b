//! The Redis engine as far as it goes (in progress): gateways that share one Redis share
//! one seq space per channel, whichever admin listener a publish reaches, because the
//! seq comes from the script in Redis, not from the process.

mod util;

use comet_gateway::engine::redis::RedisEngine;
use comet_gateway::engine::Limits;
use comet_gateway::Config;
use util::{Redis, StreamClient, TestServer, Transport};

fn gateway(redis: &Redis) -> TestServer {
    let limits = Limits::of(&Config::ephemeral());
    let engine = RedisEngine::connect(redis.addr(), "comet:", limits).expect("connects");
    TestServer::start_with_engine(|_| {}, Box::new(engine))
}

#[test]
fn two_gateways_on_one_redis_share_each_channels_seqs() {
    let redis = Redis::start();
    let (a, b) = (gateway(&redis), gateway(&redis));
    let first = a.publish_seq("news", "from a");
    assert_eq!(b.publish_seq("news", "from b"), first + 1);
    assert_eq!(a.publish_seq("news", "from a again"), first + 2);
    // A publish to several channels gets a seq in each.
    let both = b.publish("news,chat", "to both");
    assert_eq!(both[0]["seq"].as_u64(), Some(first + 3));
    assert!(both[1]["seq"].as_u64().is_some());
    // The history in Redis holds what both wrote, in order.
    assert_eq!(redis.cli(&["XLEN", "comet:{news}:h"]), "4");
    let ids = redis.cli(&["XRANGE", "comet:{news}:h", "-", "+"]);
    assert!(ids.contains("from a") && ids.contains("from b"), "{ids}");
}

#[test]
fn a_publish_to_a_redis_that_is_gone_answers_503() {
    let redis = Redis::start();
    let a = gateway(&redis);
    a.publish_seq("news", "while up");
    assert_eq!(util::get(a.admin, "/healthz").status, 200);
    drop(redis);
    let r = util::request(
        a.admin,
        "POST /pub?channel=news HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["error"], "engine unavailable");
    // Health checks see it too (the pub/sub connection's death may take a turn).
    util::wait_until("/healthz says 503", || {
        util::get(a.admin, "/healthz").status == 503
    });
}

#[test]
fn a_gateway_reconnects_to_a_redis_that_came_back() {
    let redis = Redis::start();
    let port = redis.port;
    let a = gateway(&redis);
    let before = a.publish_seq("news", "before");
    drop(redis);
    util::wait_until("/healthz says 503", || {
        util::get(a.admin, "/healthz").status == 503
    });
    // Back on the same port, without its data: the gateway reconnects by itself.
    let _redis = Redis::start_on(port);
    util::wait_until("/healthz says 200 again", || {
        util::get(a.admin, "/healthz").status == 200
    });
    // The channel starts a new life at the server clock: past every seq of the old one.
    let after = a.publish_seq("news", "after");
    assert!(after > before, "{after} > {before}");
}

#[test]
fn a_message_published_on_one_gateway_reaches_streams_on_another_with_its_seq() {
    let redis = Redis::start();
    let (a, b) = (gateway(&redis), gateway(&redis));
    let mut on_b = StreamClient::open(b.public, Transport::Events, "channel=news", "");
    assert_eq!(on_b.next_event().unwrap()["type"], "hello");
    let seq = a.publish_seq("news", "from a");
    let got = on_b.data(1);
    assert_eq!(
        (got[0]["seq"].as_u64(), got[0]["data"].as_str()),
        (Some(seq), Some("from a"))
    );
    assert_eq!(
        on_b.last_id.as_deref(),
        Some(format!("news:{}", seq + 1).as_str())
    );
}

#[test]
fn a_client_resumes_on_another_gateway_from_its_cursor() {
    let redis = Redis::start();
    let (a, b) = (gateway(&redis), gateway(&redis));
    let first = a.publish_seq("news", "one");
    a.publish_seq("news", "two");
    a.publish_seq("news", "three");
    // It had "one" from a; it comes back on b with its cursor.
    let query = format!("channel=news&seq={}", first + 1);
    let mut on_b = StreamClient::open(b.public, Transport::Stream, &query, "");
    let hello = on_b.next_event().unwrap();
    assert_eq!(hello["cursor"], format!("news:{}", first + 1));
    let got: Vec<(u64, String)> = on_b
        .data(2)
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["data"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [(first + 1, "two".into()), (first + 2, "three".into())]
    );
    // And from then on, live, whoever publishes.
    let four = b.publish_seq("news", "four");
    assert_eq!(four, first + 3);
    assert_eq!(on_b.data(1)[0]["seq"].as_u64(), Some(four));
}

#[test]
fn a_poll_on_another_gateway_catches_up_from_redis_and_then_waits_for_live_ones() {
    let redis = Redis::start();
    let (a, b) = (gateway(&redis), gateway(&redis));
    let first = a.publish_seq("news", "one");
    a.publish_seq("news", "two");
    let r = util::get(b.public, &format!("/poll?channel=news&seq={first}"));
    let seqs: Vec<u64> = r
        .events()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [first, first + 1]);
    // On b again (parked, or still reading: its session's cursor has it either way);
    // published on a.
    let id = r.header("X-Comet-Client").unwrap().to_string();
    let mut poll = util::Conn::open(b.public);
    util::send_poll(&mut poll, &format!("client={id}"));
    let three = a.publish_seq("news", "three");
    let events = poll.response().events();
    assert_eq!(events[0]["seq"].as_u64(), Some(three));
    assert_eq!(three, first + 2);
}

#[test]
fn the_binary_takes_engine_redis_and_two_processes_act_as_one_gateway() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let a = util::ChildGateway::spawn(None, &["--engine", &url, "--redis-prefix", "t1:"]);
    let b = util::ChildGateway::spawn(None, &["--engine", &url, "--redis-prefix", "t1:"]);
    let mut on_b = StreamClient::open(b.public, Transport::Stream, "channel=x", "");
    assert_eq!(on_b.next_event().unwrap()["type"], "hello");
    let r = util::request(
        a.admin,
        "POST /pub?channel=x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let seq = r.json()["seq"].as_u64().unwrap();
    let got = on_b.data(1);
    assert_eq!(
        (got[0]["seq"].as_u64(), got[0]["data"].as_str()),
        (Some(seq), Some("hi"))
    );
    assert_eq!(redis.cli(&["EXISTS", "t1:{x}:m"]), "1");
    let (code, err) = util::refused_to_start(&["--engine", "redis://nowhere"]);
    assert_ne!(code, 0);
    assert!(err.contains("redis://HOST:PORT"), "{err}");
}

fn gateway_with_buffer(redis: &Redis, buffer: u32) -> TestServer {
    let mut config = Config::ephemeral();
    config.buffer = buffer;
    let engine = RedisEngine::connect(redis.addr(), "comet:", Limits::of(&config)).unwrap();
    TestServer::start_with_engine(move |c| c.buffer = buffer, Box::new(engine))
}

#[test]
fn what_was_published_while_a_gateways_pubsub_was_down_is_delivered_after_it_reconnects() {
    let redis = Redis::start();
    let (a, b) = (gateway(&redis), gateway(&redis));
    let mut on_b = StreamClient::open(b.public, Transport::Stream, "channel=news", "");
    assert_eq!(on_b.next_event().unwrap()["type"], "hello");
    let one = a.publish_seq("news", "one");
    assert_eq!(on_b.data(1)[0]["seq"].as_u64(), Some(one));
    // Every pub/sub connection is cut; two messages go out while b's is down.
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    a.publish_seq("news", "two");
    a.publish_seq("news", "three");
    let got: Vec<(u64, String)> = on_b
        .data(2)
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["data"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, [(one + 1, "two".into()), (one + 2, "three".into())]);
}

#[test]
fn what_history_no_longer_holds_after_a_cut_is_told_as_lost() {
    let redis = Redis::start();
    let (a, b) = (
        gateway_with_buffer(&redis, 1),
        gateway_with_buffer(&redis, 1),
    );
    let mut on_b = StreamClient::open(b.public, Transport::Stream, "channel=news", "");
    assert_eq!(on_b.next_event().unwrap()["type"], "hello");
    let one = a.publish_seq("news", "one");
    assert_eq!(on_b.data(1)[0]["seq"].as_u64(), Some(one));
    redis.cli(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    for m in ["two", "three", "four"] {
        a.publish_seq("news", m);
    }
    let lost = on_b.next_non_noop().unwrap();
    assert_eq!(lost["type"], "lost", "{lost}");
    assert_eq!(
        (lost["from"].as_u64(), lost["to"].as_u64()),
        (Some(one + 1), Some(one + 2))
    );
    let four = on_b.data(1);
    assert_eq!(
        (four[0]["seq"].as_u64(), four[0]["data"].as_str()),
        (Some(one + 3), Some("four"))
    );
}
