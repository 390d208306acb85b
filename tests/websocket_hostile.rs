//! What a hostile or careless WebSocket client can do, and what it may not make the
//! gateway do: stall other connections, grow memory without bound, leave state behind,
//! get a reset instead of a close, or go unnoticed when silent. Written as an adversarial
//! review of the transport; the tests that first failed ("was: …" in their doc comments)
//! show what was fixed, the others pin down properties that held.

mod util;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use util::ws::{
    close_frame, command, event, frame, handshake_on, masked, open, open_at, send, sync, try_frame,
};
use util::TestServer;

// ---------------------------------------------------------------------------------------
// A raw client (as in tests/websocket.rs).

/// A socket whose receive buffer is tiny (the server's output backs up at once).
fn tiny(addr: SocketAddr) -> TcpStream {
    util::tiny_reader(addr)
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap()
}

/// A request on a fresh connection that must be answered within `limit` (None: not
/// answered at all in time).
fn timed_get(addr: SocketAddr, path: &str, limit: Duration) -> Option<Duration> {
    let t = Instant::now();
    let mut s = TcpStream::connect_timeout(&addr, limit).ok()?;
    s.set_read_timeout(Some(limit)).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut b = [0u8; 12];
    s.read_exact(&mut b).ok()?;
    Some(t.elapsed())
}

// ---------------------------------------------------------------------------------------
// 1. Reactor fairness.

/// Was: one anonymous WebSocket that keeps its socket full of tiny frames (unsolicited
/// pongs: no output, no state) keeps the reactor inside `ws_input`, which reads again
/// whenever the read buffer filled (`read_paused`) with no per-turn budget: every other
/// connection, the admin listener included, stalls while it sends.
#[test]
fn a_frame_flood_on_one_socket_does_not_stall_the_others() {
    let g = TestServer::start(|_| {});
    let flood = open(&g, "channel=a");
    // Sanity: the gateway answers quickly when nobody floods.
    assert!(timed_get(g.admin, "/healthz", Duration::from_secs(2)).is_some());
    let stop = Arc::new(AtomicBool::new(false));
    let buf: Vec<u8> = (0..20_000).flat_map(|_| masked(0x8A, b"")).collect();
    let flooder = {
        let stop = stop.clone();
        let mut s = flood.try_clone().unwrap();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if s.write_all(&buf).is_err() {
                    return;
                }
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    // While it floods (for as long as these take), the admin listener is answered. (Not
    // a timing: the flood never ends by itself, so an answer comes only if the reactor
    // leaves the flooder for its other connections.)
    let mut unanswered = 0;
    for _ in 0..3 {
        if timed_get(g.admin, "/healthz", Duration::from_secs(10)).is_none() {
            unanswered += 1;
        }
    }
    let still_flooding = !flooder.is_finished();
    stop.store(true, Ordering::Relaxed);
    let _ = flood.shutdown(Shutdown::Both);
    flooder.join().unwrap();
    assert!(still_flooding, "the flooder stopped early (dropped?)");
    assert_eq!(
        unanswered, 0,
        "while one WebSocket floods frames, /healthz went unanswered {unanswered}/3 times"
    );
}

// ---------------------------------------------------------------------------------------
// 2. What an anonymous client can make the gateway hold.

/// Was: commands are parsed with no back-pressure (HTTP pipelining stops at a 4 KiB
/// window of unsent answers; `/ws` commands never stop). A client that never reads sends
/// `subscribe seq=0` / `unsubscribe` pairs: each subscribe queues the whole history of
/// its channels again and adds the same amount to the slow-consumer grace, so
/// `--max-pending-bytes` never fires. ~250 bytes of commands hold 1,600 more queue
/// entries (the message bytes are shared, the queue is not), and the queue keeps
/// messages alive after the channel evicted them. Nothing bounds it but `--idle-timeout`
/// (60 s of no progress, and a client that reads a byte now and then resets that).
#[test]
fn a_subscribe_unsubscribe_loop_without_reading_stays_bounded() {
    let gw = util::ChildGateway::spawn(None, &["--max-pending-bytes", "65536"]);
    let channels: Vec<String> = (0..15).map(|i| format!("h{i:02}")).collect();
    // 100 buffered messages (the default --buffer) on each of 15 channels (with the
    // socket's own, 16: the default --max-channels-per-subscriber) (publishing
    // to several channels at once: batch publishing is not on this branch).
    let list = channels.join(",");
    for i in 0..100 {
        let d = format!("message {i}");
        let r = util::request(
            gw.admin,
            &format!(
                "POST /pub?channel={list} HTTP/1.1\r\nContent-Length: {}\r\n\r\n{d}",
                d.len()
            ),
        );
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let (mut s, _) = {
        let (mut s, head) = handshake_on(tiny(gw.public), "channel=z");
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        let _ = &mut s;
        (s, ())
    };
    std::thread::sleep(Duration::from_millis(200));
    let before = rss_kib(gw.pid());
    let seqs = vec!["0"; 15].join(",");
    let sub = masked(
        0x81,
        format!(r#"{{"type":"subscribe","channel":"{list}","seq":"{seqs}"}}"#).as_bytes(),
    );
    let unsub = masked(
        0x81,
        format!(r#"{{"type":"unsubscribe","channel":"{list}"}}"#).as_bytes(),
    );
    let mut pairs = Vec::new();
    for _ in 0..200 {
        pairs.extend_from_slice(&sub);
        pairs.extend_from_slice(&unsub);
    }
    // 4,000 pairs (about 1.2 MB of commands), never reading a byte.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    let mut grown = 0;
    while sent < 20 && Instant::now() < deadline {
        if s.write_all(&pairs).is_err() {
            break; // dropped: that would be the right outcome
        }
        sent += 1;
        grown = rss_kib(gw.pid()).saturating_sub(before);
    }
    // Let the reactor catch up with what it has read.
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        grown = grown.max(rss_kib(gw.pid()).saturating_sub(before));
    }
    let dropped = util::stats(gw.admin)["slow_consumers_dropped"].as_u64();
    assert!(
        grown < 64 * 1024,
        "one non-reading WebSocket sending {} KB of commands grew the gateway by {} MiB \
         (--max-pending-bytes 64 KiB; slow consumers dropped: {dropped:?})",
        sent * pairs.len() / 1000,
        grown / 1024
    );
}

/// a ping flood from a client that does not read is bounded: frames are not
/// read on while more than the pipelining window (4 KiB) of output waits, so the client
/// holds at most a read buffer and that window before TCP pushes back; its output no
/// longer moving, `--idle-timeout` closes it (counted as stalled).
#[test]
fn a_ping_flood_without_reading_is_pushed_back_and_closed() {
    let g = TestServer::start(|c| {
        c.max_pending_bytes = 64 * 1024;
        c.idle_timeout = Duration::from_millis(500);
    });
    let (mut s, head) = handshake_on(tiny(g.public), "channel=a");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let ping = masked(0x89, &[b'p'; 125]);
    let burst: Vec<u8> = (0..1000).flat_map(|_| ping.clone()).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    s.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
    // The writes stop going through (TCP back-pressure) or fail (closed).
    loop {
        assert!(
            Instant::now() < deadline,
            "a ping flood was never pushed back"
        );
        if s.write_all(&burst).is_err() {
            break;
        }
    }
    util::wait_until("the flooder is closed", || {
        util::stats(g.admin)["stalled_dropped"].as_u64() == Some(1)
    });
    g.wait_subscribers("a", 0);
}

/// fragments are capped all together (4 KiB): many small continuation
/// frames of one message end in 1009, the assembly buffer never grows past the cap.
#[test]
fn fragments_are_capped_in_total() {
    let g = TestServer::start(|_| {});
    let mut s = open(&g, "channel=a");
    send(&mut s, 0x01, &[b' '; 1000]); // text, not final
    for _ in 0..3 {
        send(&mut s, 0x00, &[b' '; 1000]); // continuation, not final
    }
    // Interleaved control frames are fine mid-message.
    send(&mut s, 0x89, b"mid");
    assert_eq!(frame(&mut s), (0xA, b"mid".to_vec()));
    send(&mut s, 0x00, &[b' '; 200]); // 4,200 bytes in all: over the cap
    assert_eq!(close_frame(&mut s).0, 1009);
    g.wait_subscribers("a", 0);
}

/// a subscribe past --max-channels-per-subscriber counts the channels
/// the socket already has (one socket cannot collect an unbounded number of channels).
#[test]
fn subscribe_commands_cannot_exceed_the_per_subscriber_cap() {
    let g = TestServer::start(|c| c.max_channels_per_subscriber = 4);
    let mut s = open(&g, "channel=c0");
    for i in 1..10 {
        command(
            &mut s,
            &format!(r#"{{"type":"subscribe","channel":"c{i}"}}"#),
        );
        let got = sync(&mut s);
        if i < 4 {
            assert!(got.is_empty(), "c{i}: {got:?}");
        } else {
            assert_eq!(got.len(), 1, "c{i}: {got:?}");
            assert_eq!(got[0]["type"], "error");
        }
    }
    let channels = util::stats(g.admin)["channels"].as_u64();
    assert_eq!(channels, Some(4));
}

// ---------------------------------------------------------------------------------------
// 3. Close codes and the closing handshake.

/// Was: `POST /clients/ID/close` on a WebSocket ends it with 1001 ("going away", the
/// code PROTOCOL.md reserves for shutdown) where the `close` command gives 1000 for the
/// very same thing (`control` calls `end_stream`, whose ending is `GOING_AWAY`).
#[test]
fn a_control_close_ends_a_websocket_with_1000_like_the_close_command() {
    let g = TestServer::start(|_| {});
    let (mut s, hello) = open_at(g.public, "channel=a");
    let id = hello["client"].as_str().unwrap();
    let r = util::request(
        g.public,
        &format!("POST /clients/{id}/close HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"),
    );
    assert_eq!(r.status, 204);
    let (code, events) = close_frame(&mut s);
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "close");
    assert_eq!(code, 1000, "a control close is not the server going away");
}

/// Was: a client that starts the closing handshake and half-closes its side (a
/// legitimate TCP pattern; some clients shut down writing after their close frame) gets
/// no close frame back but a reset: `conn_ready` closes a `Streaming` connection at once
/// on `is_read_closed()`, without reading the close frame still in the socket (so the
/// kernel answers with RST). The same swallows a `{"type":"close"}` command (no `close`
/// events) or any last command sent just before FIN.
#[test]
fn a_close_frame_followed_by_fin_is_still_answered() {
    let g = TestServer::start(|_| {});
    let mut s = open(&g, "channel=a");
    let mut bytes = masked(0x88, &1000u16.to_be_bytes());
    bytes.extend(masked(0x88, b"")); // nothing after a close is parsed; harmless
    s.write_all(&bytes[..8]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    match try_frame(&mut s) {
        Ok((op, p)) => assert_eq!((op, &p[..2]), (0x8, &1000u16.to_be_bytes()[..])),
        Err(e) => panic!("no close frame came back, the connection just ended: {e}"),
    }
}

/// Was (on Linux it shows as a reset after the close frame; on other stacks the
/// close frame itself can be lost): a connection failed for a protocol reason while the
/// client is still sending (here a 1009: a frame declared at 1 MiB) is closed with
/// unread input, which makes the kernel send RST instead of FIN. HTTP errors linger for
/// exactly this reason (`Closing { linger: true }`); `end_stream_with` always passes
/// `linger: false`.
#[test]
fn a_1009_while_the_client_still_sends_ends_with_fin_not_reset() {
    let g = TestServer::start(|_| {});
    let mut s = open(&g, "channel=a");
    let big = masked(0x81, &vec![b'x'; 1 << 20]);
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(&big);
    });
    let (code, _) = close_frame(&mut s);
    assert_eq!(code, 1009);
    let mut rest = Vec::new();
    let end = s.read_to_end(&mut rest);
    writer.join().unwrap();
    assert!(
        end.is_ok(),
        "the connection was reset after the 1009 close frame: {end:?}"
    );
}

/// every protocol violation gets its code (1002/1003/1007/1009), a
/// client close code is echoed, and a subscriber is left behind by none of them.
#[test]
fn close_codes() {
    let g = TestServer::start(|_| {});
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (vec![0x81, 0x01, b'x'], 1002),               // unmasked
        (masked(0xC1, b"x"), 1002),                   // RSV1 without an extension
        (masked(0x83, b"x"), 1002),                   // reserved opcode
        (masked(0x09, b"x"), 1002),                   // fragmented ping
        (masked(0x80, b"x"), 1002),                   // continuation with nothing open
        (masked(0x88, &[0x03]), 1002),                // close payload of 1 byte
        (masked(0x88, &1005u16.to_be_bytes()), 1002), // a code a peer may not send
        (masked(0x88, &999u16.to_be_bytes()), 1002),  // below 1000
        (masked(0x82, b"\x00"), 1003),                // binary
        (masked(0x81, b"\xff"), 1007),                // not UTF-8
        (masked(0x88, b"\x03\xe8\xff"), 1007),        // close reason not UTF-8
        (masked(0x81, &[b' '; 4097]), 1009),          // over the cap
        (masked(0x88, &4001u16.to_be_bytes()), 4001), // echoed
        (masked(0x88, b""), 1000),                    // no code: 1000
    ];
    for (bytes, want) in cases {
        let mut s = open(&g, "channel=a");
        s.write_all(&bytes).unwrap();
        let (code, _) = close_frame(&mut s);
        assert_eq!(code, want, "{bytes:x?}");
    }
    g.wait_subscribers("a", 0);
}

// ---------------------------------------------------------------------------------------
// 4. Liveness.

/// a half-open peer (it neither reads nor sends; its socket takes our
/// pings) is closed after two unanswered pings, and one that trickles a frame a byte at
/// a time without ever completing it is not kept alive by that either.
#[test]
fn a_peer_that_trickles_an_incomplete_frame_is_still_closed() {
    let g = TestServer::start(|c| c.heartbeat = Duration::from_millis(200));
    let mut s = open(&g, "channel=a");
    let f = masked(0x81, &[b' '; 100]);
    let t = Instant::now();
    let mut sent = 0;
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut buf = [0u8; 64];
    loop {
        assert!(t.elapsed() < Duration::from_secs(10), "never closed");
        if sent < f.len() && s.write_all(&f[sent..sent + 1]).is_ok() {
            sent += 1;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
    }
    // Closed before the frame was ever complete: the trickle did not count as life.
    assert!(
        sent < f.len(),
        "closed only after the whole frame ({sent} bytes)"
    );
    g.wait_subscribers("a", 0);
}

// ---------------------------------------------------------------------------------------
// 5. Events across subscribe/unsubscribe, and the cursor of `reconnect`.

/// unsubscribe then subscribe again with the seq after the last message
/// received resumes exactly: nothing lost, nothing twice; the shutdown's `reconnect`
/// cursor names exactly the next seq of each channel the socket still follows.
#[test]
fn resubscribe_with_a_cursor_resumes_exactly_and_reconnect_names_it() {
    let mut gw = util::ChildGateway::spawn(None, &["--shutdown-timeout", "5s"]);
    let publish = |ch: &str, d: &str| -> u64 {
        let r = util::request(
            gw.admin,
            &format!(
                "POST /pub?channel={ch} HTTP/1.1\r\nContent-Length: {}\r\n\r\n{d}",
                d.len()
            ),
        );
        r.json()["seq"].as_u64().unwrap()
    };
    let (mut s, _) = open_at(gw.public, "channel=a,b");
    let a1 = publish("a", "a1");
    assert_eq!(event(&mut s)["seq"].as_u64(), Some(a1));
    command(&mut s, r#"{"type":"unsubscribe","channel":"a"}"#);
    assert!(sync(&mut s).is_empty());
    let a2 = publish("a", "a2");
    let a3 = publish("a", "a3");
    command(
        &mut s,
        &format!(r#"{{"type":"subscribe","channel":"a","seq":{}}}"#, a1 + 1),
    );
    let got: Vec<u64> = sync(&mut s)
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(got, [a2, a3]);
    let b1 = publish("b", "b1");
    assert_eq!(event(&mut s)["seq"].as_u64(), Some(b1));
    let ok = std::process::Command::new("kill")
        .args(["-TERM", &gw.pid().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let (code, events) = close_frame(&mut s);
    assert_eq!(code, 1001);
    let cursor = events.last().unwrap()["cursor"]
        .as_str()
        .unwrap()
        .to_string();
    let mut parts: Vec<&str> = cursor.split(',').collect();
    parts.sort();
    assert_eq!(parts, [format!("a:{}", a3 + 1), format!("b:{}", b1 + 1)]);
    let _ = gw.child.wait();
}

// ---------------------------------------------------------------------------------------
// 6. Redis: subscribe commands whose reads come later.

fn redis_gateway(redis: &util::Redis, tweak: impl Fn(&mut comet_gateway::Config)) -> TestServer {
    util::redis_gateway(redis.addr(), tweak)
}

/// a subscribe whose read is in flight, then unsubscribed, then the read
/// comes back: nothing of that channel is delivered, the membership (and its sync) is
/// gone, and the socket can subscribe again and gets the history once.
#[test]
fn redis_unsubscribe_while_the_read_is_in_flight() {
    let redis = util::Redis::start();
    let g = redis_gateway(&redis, |c| c.engine_timeout = Duration::from_secs(5));
    g.publish_seq("c", "c-old");
    let mut s = open(&g, "channel=a");
    redis.cli(&["CLIENT", "PAUSE", "700", "WRITE"]);
    command(&mut s, r#"{"type":"subscribe","channel":"c","seq":0}"#);
    command(&mut s, r#"{"type":"unsubscribe","channel":"c"}"#);
    // Everything before the pong is handled; the read is still out.
    assert!(sync(&mut s).is_empty());
    assert_eq!(g.subscribers("c"), 0);
    std::thread::sleep(Duration::from_millis(1200));
    g.publish_seq("a", "a-1");
    let e = event(&mut s);
    assert_eq!(
        (e["channel"].as_str(), e["data"].as_str()),
        (Some("a"), Some("a-1")),
        "{e}"
    );
    command(&mut s, r#"{"type":"subscribe","channel":"c","seq":0}"#);
    let mut got = Vec::new();
    while got.is_empty() {
        got = sync(&mut s);
    }
    let data: Vec<&str> = got.iter().map(|e| e["data"].as_str().unwrap()).collect();
    assert_eq!(data, ["c-old"]);
    g.publish_seq("c", "c-new");
    assert_eq!(event(&mut s)["data"], "c-new");
}

/// a socket that goes while its subscribe waits leaves nothing behind:
/// the channel it was joining has no subscriber, and the answer, when it comes, finds
/// nobody (no panic: the reactor still serves).
#[test]
fn redis_socket_gone_while_the_read_is_in_flight() {
    let redis = util::Redis::start();
    let g = redis_gateway(&redis, |c| c.engine_timeout = Duration::from_millis(500));
    g.publish_seq("c", "c-old");
    for _ in 0..3 {
        let mut s = open(&g, "channel=a");
        redis.cli(&["CLIENT", "PAUSE", "300", "WRITE"]);
        command(&mut s, r#"{"type":"subscribe","channel":"c","seq":0}"#);
        std::thread::sleep(Duration::from_millis(50));
        drop(s);
        g.wait_subscribers("a", 0);
        g.wait_subscribers("c", 0);
        std::thread::sleep(Duration::from_millis(800));
    }
    let mut s = open(&g, "channel=c&seq=0");
    assert_eq!(event(&mut s)["data"], "c-old");
}

/// Was (minor, spec wording): PROTOCOL.md says "no frame or pong for two heartbeats
/// closes the connection"; a silent peer was closed at the third heartbeat tick, after
/// two pings. Now it is closed at the first tick two heartbeats after its last frame (the
/// hello here), so it sees one heartbeat at most (a ping and its `noop`), never two.
#[test]
fn a_silent_peer_is_closed_after_two_heartbeats() {
    let g = TestServer::start(|c| c.heartbeat = Duration::from_millis(300));
    let mut s = open(&g, "channel=a");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let pings = got.windows(2).filter(|w| w == b"\x89\x00").count();
    assert!(pings <= 1, "{pings} pings before the close: {got:?}");
}
