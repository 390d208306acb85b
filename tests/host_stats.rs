//! `/stats` and `/metrics` over real sockets: under `--workers 2` they describe the whole
//! host whichever worker a scrape lands on (sums, a `workers` array with distinct pids,
//! one `worker="i"` series per worker), and they show the engine's state: the Redis
//! engine down while its redis-server is killed or stopped (its PING unanswered), and up
//! again with a reconnection counted once it is back. Numbers are polled until they
//! converge (workers write their counts once a second); nothing asserts on timings.

mod util;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use comet_gateway::engine::redis::RedisEngine;
use comet_gateway::engine::Limits;
use comet_gateway::Config;
use serde_json::Value;
use util::{
    free_port, get, request, stats, wait_until, Redis, StreamClient, TestServer, Transport,
};

/// `comet-gateway --workers 2` on `redis`; SIGTERM and reaped when dropped.
struct Parent(Child);

impl Drop for Parent {
    fn drop(&mut self) {
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.0.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn workers(redis: &Redis) -> (Parent, SocketAddr, SocketAddr) {
    let (public, admin) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_comet-gateway"))
        .args(["--workers", "2", "--log-level", "warn"])
        .args(["--engine", &format!("redis://127.0.0.1:{}", redis.port)])
        .args(["--listen", &format!("127.0.0.1:{public}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
    (Parent(child), addr(public), addr(admin))
}

/// `/stats`, or `None` while nothing answers on `admin` yet.
fn try_stats(admin: SocketAddr) -> Option<Value> {
    std::net::TcpStream::connect(admin).ok()?;
    let r = get(admin, "/stats");
    (r.status == 200).then(|| r.json())
}

/// The sum of every sample of `name` (any labels) in a `/metrics` text.
fn metric_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum()
}

fn publish(admin: SocketAddr, channel: &str, body: &str) {
    let r = request(
        admin,
        &format!(
            "POST /pub?channel={channel} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}

/// What the host view must show once every worker's counts are in.
fn converged(st: &Value, published: u64, streams: u64) -> bool {
    let w = st["workers"].as_array().cloned().unwrap_or_default();
    let sum = |f: &dyn Fn(&Value) -> &Value| w.iter().filter_map(|x| f(x).as_u64()).sum::<u64>();
    w.len() == 2
        && st["messages"]["published"] == published
        && st["messages"]["delivered"] == published * streams
        && st["connections"]["streams"]["stream"] == streams
        && sum(&|x| &x["messages"]["published"]) == published
        && sum(&|x| &x["connections"]["streams"]["stream"]) == streams
        && st["engine"]["state"] == "up"
}

#[test]
fn under_workers_stats_and_metrics_describe_the_whole_host() {
    let redis = Redis::start();
    let (parent, public, admin) = workers(&redis);
    wait_until("/stats lists both workers", || {
        try_stats(admin).is_some_and(|st| st["workers"].as_array().is_some_and(|w| w.len() == 2))
    });
    let st = stats(admin);
    let pids: HashSet<u64> = (st["workers"].as_array().unwrap().iter())
        .map(|w| w["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(pids.len(), 2, "distinct pids: {st}");
    assert!(!pids.contains(&u64::from(parent.0.id())), "{st}");
    let indexes: Vec<u64> = (st["workers"].as_array().unwrap().iter())
        .map(|w| w["worker"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, [0, 1]);
    assert_eq!(st["engine"]["kind"], "redis");
    // Subscribers and publishes on fresh connections: the kernel spreads them over the
    // workers (SO_REUSEPORT).
    let (n_streams, n_messages) = (6u64, 10u64);
    let mut streams: Vec<StreamClient> = (0..n_streams)
        .map(|_| {
            let mut s = StreamClient::open(public, Transport::Stream, "channel=host", "");
            assert_eq!(s.next_event().unwrap()["type"], "hello");
            s
        })
        .collect();
    for i in 0..n_messages {
        publish(admin, "host", &format!("m{i}"));
    }
    for s in &mut streams {
        assert_eq!(s.data(n_messages as usize).len(), n_messages as usize);
    }
    // Whichever worker answers, the host-wide numbers are the same once every worker
    // wrote its counts since: ten scrapes in a row agree.
    wait_until("every scrape shows the host-wide counts", || {
        (0..10).all(|_| converged(&stats(admin), n_messages, n_streams))
    });
    wait_until("/metrics has every worker's series", || {
        let m = get(admin, "/metrics").text();
        metric_sum(&m, "comet_messages_published_total") == n_messages
            && metric_sum(&m, "comet_messages_delivered_total") == n_messages * n_streams
    });
    let m = get(admin, "/metrics").text();
    assert!(m.contains("\ncomet_workers 2\n"), "{m}");
    assert!(
        m.contains("comet_engine_up{worker=\"1\",kind=\"redis\"} 1"),
        "{m}"
    );
    let samples: Vec<&str> = m.lines().filter(|l| !l.starts_with('#')).collect();
    let series: HashSet<&str> = samples
        .iter()
        .map(|l| l.rsplit_once(' ').unwrap().0)
        .collect();
    assert_eq!(series.len(), samples.len(), "a series twice: {m}");
    let types: Vec<&str> = m.lines().filter(|l| l.starts_with("# TYPE ")).collect();
    assert_eq!(
        types.iter().collect::<HashSet<_>>().len(),
        types.len(),
        "{m}"
    );
    assert!(types.contains(&"# TYPE comet_messages_published_total counter"));
    assert!(types.contains(&"# TYPE comet_connections gauge"));
}

fn gateway(redis: &Redis) -> TestServer {
    let limits = Limits::of(&Config::ephemeral());
    let engine = RedisEngine::connect(redis.addr(), "comet:", limits).expect("connects");
    TestServer::start_with_engine(|_| {}, Box::new(engine))
}

fn engine(admin: SocketAddr) -> Value {
    stats(admin)["engine"].clone()
}

/// Up, answering PINGs, with at least `reconnects` reconnections behind it.
fn up(admin: SocketAddr, reconnects: u64) -> bool {
    let e = engine(admin);
    e["state"] == "up"
        && e["rtt_us"].is_u64()
        && e["reconnects"].as_u64() >= Some(reconnects)
        && get(admin, "/healthz").status == 200
}

fn down(admin: SocketAddr) -> bool {
    let e = engine(admin);
    e["state"] == "down" && e.get("rtt_us").is_none() && get(admin, "/healthz").status == 503
}

#[test]
fn stats_show_the_redis_engine_down_while_redis_is_gone_and_up_again_after() {
    let redis = Redis::start();
    let port = redis.port;
    let a = gateway(&redis);
    wait_until("the engine is up and measured", || up(a.admin, 0));
    let e = engine(a.admin);
    assert_eq!(
        (e["kind"].as_str(), e["reconnects"].as_u64()),
        (Some("redis"), Some(0))
    );
    assert!(
        stats(a.admin).get("workers").is_none(),
        "no workers array without --workers"
    );
    drop(redis);
    wait_until("the engine is down", || down(a.admin));
    let m = get(a.admin, "/metrics").text();
    assert!(m.contains("comet_engine_up{kind=\"redis\"} 0"), "{m}");
    assert!(!m.contains("comet_engine_rtt_seconds"), "{m}");
    // Still down a little later: failed attempts are no reconnections.
    std::thread::sleep(Duration::from_millis(300));
    assert!(down(a.admin));
    assert_eq!(engine(a.admin)["reconnects"], 0);
    let _redis = Redis::start_on(port);
    wait_until("the engine is up again", || up(a.admin, 1));
    let m = get(a.admin, "/metrics").text();
    assert!(m.contains("comet_engine_up{kind=\"redis\"} 1"), "{m}");
    assert!(m.contains("\ncomet_engine_reconnects_total 1\n"), "{m}");
    assert!(m.contains("\ncomet_engine_rtt_seconds 0."), "{m}");
}

/// The pid of the test's redis-server.
fn pid(redis: &Redis) -> i32 {
    let info = redis.cli(&["INFO", "server"]);
    (info.lines())
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|p| p.trim().parse().ok())
        .expect("redis pid")
}

/// `kill -STOP`/`-CONT` on the test's redis-server: its sockets stay open, only its
/// answers stop, so only the PING can tell.
fn signal(pid: i32, sig: i32) {
    assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
}

#[test]
fn a_redis_that_stops_answering_is_found_by_its_ping_and_reconnected() {
    let redis = Redis::start();
    let a = gateway(&redis);
    wait_until("the engine is up and measured", || up(a.admin, 0));
    let pid = pid(&redis);
    signal(pid, libc::SIGSTOP);
    // The PING times out after 10 s: longer than `wait_until` allows, so a loop of our own.
    let deadline = Instant::now() + Duration::from_secs(40);
    while !down(a.admin) {
        if Instant::now() > deadline {
            signal(pid, libc::SIGCONT);
            panic!("the engine never went down: {}", engine(a.admin));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(pid, libc::SIGCONT);
    wait_until("the engine is up again", || up(a.admin, 1));
}

#[test]
fn the_memory_engine_is_always_up() {
    let s = TestServer::start(|_| {});
    let st = stats(s.admin);
    assert_eq!(
        st["engine"],
        serde_json::json!({"kind": "memory", "state": "up", "reconnects": 0})
    );
    assert!(st.get("workers").is_none());
    let m = get(s.admin, "/metrics").text();
    assert!(m.contains("\ncomet_engine_up{kind=\"memory\"} 1\n"), "{m}");
    assert!(m.contains("\ncomet_engine_reconnects_total 0\n"), "{m}");
}
