//! The connections against a real redis-server, started per test on a free loopback port
//! and driven by a private mio `Poll` (every wait bounded by a 10 s deadline).

use std::net::{SocketAddr, TcpListener, TcpStream as StdStream};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use bytes::Bytes;
use mio::{Events, Poll, Token};

use super::{CommandConn, Mode, Pass, PubSubConn, Reply, RespConn, RespError, Tag};

const MAX: usize = super::DEFAULT_MAX_REPLY;

/// A redis-server of our own, killed when dropped.
struct Redis {
    child: Child,
    addr: SocketAddr,
}

impl Redis {
    fn start() -> Redis {
        // A port the kernel just handed out and we gave back: free unless raced.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let spawned = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot start redis-server ({e}): these tests need it; run `bash tests/setup.sh`"
            ),
        };
        let mut redis = Redis {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        // Nothing to wait on but the port itself: try it until it answers.
        while StdStream::connect(redis.addr).is_err() {
            if let Ok(Some(status)) = redis.child.try_wait() {
                panic!("redis-server on port {port} exited: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen in 10 s"
            );
            sleep(Duration::from_millis(5));
        }
        redis
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What the loop needs of a connection, whatever its mode.
trait Pump {
    fn flush(&mut self);
    fn ready(&mut self, writable: bool, readable: bool) -> bool;
}

impl<M: Mode> Pump for RespConn<M> {
    fn flush(&mut self) {
        let _ = RespConn::flush(self);
    }
    fn ready(&mut self, writable: bool, readable: bool) -> bool {
        self.on_ready(writable, readable) == Ok(Pass::More)
    }
}

/// A private reactor: the connection at index i has `Token(i)`.
struct Reactor {
    poll: Poll,
    events: Events,
    /// Connections whose read budget ran out: read again next turn, no event will come.
    more: [bool; 2],
    deadline: Instant,
}

impl Reactor {
    fn new() -> Reactor {
        Reactor {
            poll: Poll::new().unwrap(),
            events: Events::with_capacity(16),
            more: [false; 2],
            deadline: Instant::now() + Duration::from_secs(10),
        }
    }

    fn command_conn(&self, redis: &Redis, token: usize) -> CommandConn {
        let mut c = CommandConn::connect(redis.addr, MAX).unwrap();
        c.register(self.poll.registry(), Token(token)).unwrap();
        c
    }

    /// One loop turn, as the server's: finish deferred reads, flush, wait, dispatch.
    fn turn(&mut self, conns: &mut [&mut dyn Pump]) {
        for (i, c) in conns.iter_mut().enumerate() {
            if std::mem::take(&mut self.more[i]) {
                self.more[i] = c.ready(false, true);
            }
            c.flush();
        }
        let left = (self.deadline.checked_duration_since(Instant::now()))
            .expect("test timed out after 10 s");
        let wait = if self.more.contains(&true) {
            Duration::ZERO
        } else {
            left
        };
        self.poll.poll(&mut self.events, Some(wait)).unwrap();
        for ev in self.events.iter() {
            let readable = ev.is_readable() || ev.is_read_closed() || ev.is_error();
            self.more[ev.token().0] = conns[ev.token().0].ready(ev.is_writable(), readable);
        }
    }

    /// Turns until `n` answers are in `out`.
    fn answers(
        &mut self,
        c: &mut CommandConn,
        out: &mut Vec<(Tag, Result<Reply, RespError>)>,
        n: usize,
    ) {
        while out.len() < n {
            self.turn(&mut [c]);
            c.take_replies(out);
        }
    }
}

fn ok(reply: &[u8]) -> Result<Reply, RespError> {
    Ok(Reply::Simple(Bytes::copy_from_slice(reply)))
}

#[test]
fn ping_gets_pong() {
    let redis = Redis::start();
    let mut r = Reactor::new();
    let mut c = r.command_conn(&redis, 0);
    c.send(7, &[b"PING"]).unwrap();
    assert_eq!(
        (c.in_flight(), c.pending_out()),
        (1, 14),
        "queued while connecting"
    );
    let mut got = Vec::new();
    r.answers(&mut c, &mut got, 1);
    assert_eq!(got, vec![(7, ok(b"PONG"))]);
    assert_eq!((c.in_flight(), c.pending_out(), c.dead()), (0, 0, None));
}

#[test]
fn a_1_mib_value_comes_back_exact_through_many_reads() {
    let redis = Redis::start();
    let mut r = Reactor::new();
    let mut c = r.command_conn(&redis, 0);
    // Every byte value, CRLFs included; 16 reads of READ_CHUNK at the very least.
    let value: Vec<u8> = (0..1u32 << 20).map(|i| (i * 7 % 256) as u8).collect();
    c.send(1, &[b"SET", b"big", &value]).unwrap();
    c.send(2, &[b"GET", b"big"]).unwrap();
    c.send(3, &[b"GET", b"missing"]).unwrap();
    let mut got = Vec::new();
    r.answers(&mut c, &mut got, 3);
    assert_eq!(got[0], (1, ok(b"OK")));
    let (2, Ok(Reply::Bulk(Some(back)))) = &got[1] else {
        panic!(
            "GET answered {:?}",
            got[1].1.as_ref().map(|_| "not a bulk string")
        );
    };
    assert!(back[..] == value[..], "the value came back different");
    assert_eq!(got[2], (3, Ok(Reply::Bulk(None))));
}

#[test]
fn a_thousand_pipelined_incrs_answer_their_tags_in_order() {
    let redis = Redis::start();
    let mut r = Reactor::new();
    let mut c = r.command_conn(&redis, 0);
    for tag in 0..1000 {
        c.send(10_000 + tag, &[b"INCR", b"n"]).unwrap();
    }
    assert_eq!(c.in_flight(), 1000);
    let mut got = Vec::new();
    r.answers(&mut c, &mut got, 1000);
    let want: Vec<_> = (0..1000)
        .map(|i| (10_000 + i, Ok(Reply::Integer(i as i64 + 1))))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn an_error_reply_in_raw_bytes_leaves_the_connection_working() {
    let redis = Redis::start();
    let mut r = Reactor::new();
    let mut c = r.command_conn(&redis, 0);
    c.send(1, &[b"\xff\xfeNOPE"]).unwrap();
    c.send(2, &[b"PING"]).unwrap();
    let mut got = Vec::new();
    r.answers(&mut c, &mut got, 2);
    let (1, Ok(Reply::Error(text))) = &got[0] else {
        panic!("not an error reply: {:?}", got[0]);
    };
    assert!(
        text.starts_with(b"ERR unknown command '\xff\xfeNOPE'"),
        "{text:?}"
    );
    assert_eq!(got[1], (2, ok(b"PONG")));
}

#[test]
fn a_subscriber_gets_the_exact_payload_published_from_another_connection() {
    let redis = Redis::start();
    let mut r = Reactor::new();
    let mut publisher = r.command_conn(&redis, 0);
    let mut sub = PubSubConn::connect(redis.addr, MAX).unwrap();
    sub.register(r.poll.registry(), Token(1)).unwrap();
    sub.subscribe(b"P{news}:l").unwrap();
    sub.ping().unwrap();
    let mut confirmed = Vec::new();
    while confirmed.is_empty() || sub.pongs() == 0 {
        r.turn(&mut [&mut publisher, &mut sub]);
        sub.take_confirmed(&mut confirmed);
    }
    assert_eq!(confirmed, vec![Bytes::from_static(b"P{news}:l")]);
    assert!(sub.subscribed(b"P{news}:l") && !sub.subscribed(b"other"));

    let payload = b"7:{\"a\":\"\r\n\xff\x00\"}";
    publisher
        .send(1, &[b"PUBLISH", b"P{news}:l", payload])
        .unwrap();
    let (mut messages, mut replies) = (Vec::new(), Vec::new());
    while messages.is_empty() || replies.is_empty() {
        r.turn(&mut [&mut publisher, &mut sub]);
        sub.take_messages(&mut messages);
        publisher.take_replies(&mut replies);
    }
    assert_eq!(
        replies,
        vec![(1, Ok(Reply::Integer(1)))],
        "one subscriber got it"
    );
    assert_eq!(
        messages,
        vec![(
            Bytes::from_static(b"P{news}:l"),
            Bytes::from_static(payload)
        )]
    );

    // Unsubscribed: Redis confirms, and the channel has no subscriber any more.
    sub.unsubscribe(b"P{news}:l").unwrap();
    while sub.in_flight() > 0 {
        r.turn(&mut [&mut publisher, &mut sub]);
    }
    assert!(!sub.subscribed(b"P{news}:l"));
    publisher
        .send(2, &[b"PUBLISH", b"P{news}:l", b"x"])
        .unwrap();
    r.answers(&mut publisher, &mut replies, 2);
    assert_eq!(replies[1], (2, Ok(Reply::Integer(0))));
}

#[test]
fn redis_killed_mid_stream_fails_every_pending_tag() {
    let mut redis = Redis::start();
    let mut r = Reactor::new();
    let mut c = r.command_conn(&redis, 0);
    // BLPOP on an empty list blocks; the GETs queue behind it on the server.
    c.send(1, &[b"PING"]).unwrap();
    c.send(2, &[b"BLPOP", b"empty", b"0"]).unwrap();
    c.send(3, &[b"GET", b"a"]).unwrap();
    c.send(4, &[b"GET", b"b"]).unwrap();
    let mut got = Vec::new();
    r.answers(&mut c, &mut got, 1);
    assert_eq!(got, vec![(1, ok(b"PONG"))]);
    assert_eq!(c.in_flight(), 3);

    redis.kill();
    while c.dead().is_none() {
        r.turn(&mut [&mut c]);
    }
    let why = c.dead().unwrap();
    assert!(
        matches!(
            why,
            RespError::Closed | RespError::Io(std::io::ErrorKind::ConnectionReset)
        ),
        "{why:?}"
    );
    c.take_replies(&mut got);
    assert_eq!(got[1..], [(2, Err(why)), (3, Err(why)), (4, Err(why))]);
    assert_eq!((c.in_flight(), c.pending_out()), (0, 0));
    assert_eq!(
        c.send(5, &[b"PING"]),
        Err(why),
        "a dead connection refuses at once"
    );
    assert_eq!(c.on_ready(true, true), Err(why), "and stays dead");
}

#[test]
fn a_refused_connect_is_dead_with_its_queue_failed() {
    // Bound and closed: nothing listens there (no redis-server needed). On an address
    // no other test listens on: a port closed on 127.0.0.1 could be taken at once by a
    // test running beside this one (seen once), and the connect would succeed.
    let addr = TcpListener::bind("127.0.0.77:0")
        .and_then(|l| l.local_addr())
        .unwrap();
    let mut r = Reactor::new();
    let mut c = CommandConn::connect(addr, MAX).unwrap();
    c.register(r.poll.registry(), Token(0)).unwrap();
    c.send(1, &[b"PING"]).unwrap();
    while c.dead().is_none() {
        r.turn(&mut [&mut c]);
    }
    let refused = RespError::Io(std::io::ErrorKind::ConnectionRefused);
    assert_eq!(c.dead(), Some(refused));
    let mut got = Vec::new();
    c.take_replies(&mut got);
    assert_eq!(got, vec![(1, Err(refused))]);
}

#[test]
fn a_reply_over_the_limit_kills_the_connection() {
    let redis = Redis::start();
    let mut r = Reactor::new();
    let mut c = CommandConn::connect(redis.addr, 1000).unwrap();
    c.register(r.poll.registry(), Token(0)).unwrap();
    c.send(1, &[b"SET", b"k", &[b'x'; 2000]]).unwrap();
    c.send(2, &[b"GET", b"k"]).unwrap();
    c.send(3, &[b"PING"]).unwrap();
    while c.dead().is_none() {
        r.turn(&mut [&mut c]);
    }
    let mut got = Vec::new();
    c.take_replies(&mut got);
    let big = RespError::TooBig;
    assert_eq!(got, vec![(1, ok(b"OK")), (2, Err(big)), (3, Err(big))]);
}
