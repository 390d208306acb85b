//! Measures the gateway's user-space memory per parked long-poll: starts the binary as a
//! child, parks N polls (default 10,000; `COMET_MEM_POLLS` to change), and divides the
//! growth of its resident set by N. A measurement, not a pass/fail check of speed, so it
//! is ignored in the normal run:
//!
//! `cargo test --release --test memory -- --ignored --nocapture --test-threads=1`
//!
//! `rss_per_idle_stream` does the same for open streams (`COMET_MEM_PATH`: `/stream`,
//! `/iframe?cb=f` or `/events`; default all three in turn), each past its hello and
//! buffered replay, idle.

mod util;

use std::net::SocketAddr;

use util::{send_poll, wait_until, ChildGateway, Conn};

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn subscribers(admin: SocketAddr, name: &str) -> u64 {
    let r = util::get(admin, &format!("/channels/{name}"));
    if r.status == 404 {
        return 0;
    }
    r.json()["subscribers"].as_u64().unwrap()
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn rss_per_parked_poll() {
    let n: usize = std::env::var("COMET_MEM_POLLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let gw = ChildGateway::spawn(None, &["--poll-timeout", "10m"]);
    let (public, admin) = (gw.public, gw.admin);
    // Warm up: create the channel, park and answer a few polls, so the measured growth is
    // the polls and not first-use allocations.
    let mut warm: Vec<Conn> = (0..100).map(|_| Conn::open(public)).collect();
    for c in &mut warm {
        send_poll(c, "channel=mem");
    }
    wait_until("warm-up parked", || subscribers(admin, "mem") == 100);
    let r = util::request(
        admin,
        "POST /pub?channel=mem HTTP/1.1\r\nContent-Length: 1\r\n\r\nw",
    );
    assert_eq!(r.status, 200);
    drop(warm);
    wait_until("warm-up gone", || subscribers(admin, "mem") == 0);
    let before = rss_kib(gw.pid());
    // Spread the client ends over several source addresses so ports never run short.
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let src: SocketAddr = format!("127.0.0.{}:0", 2 + i % 8).parse().unwrap();
        let sock = socket_from(src, public);
        let mut c = Conn::from_stream(sock);
        send_poll(&mut c, "channel=mem");
        conns.push(c);
    }
    wait_until("all polls parked", || subscribers(admin, "mem") == n as u64);
    let after = rss_kib(gw.pid());
    let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
    println!(
        "parked polls: {n}; gateway RSS before {before} KiB, after {after} KiB; {per:.0} bytes per parked poll"
    );
    // Every poll is still answered.
    let r = util::request(
        admin,
        "POST /pub?channel=mem HTTP/1.1\r\nContent-Length: 1\r\n\r\nz",
    );
    assert_eq!(r.status, 200);
    for c in &mut conns {
        assert_eq!(c.response().events()[0]["data"], "z");
    }
}

/// Connects from a chosen source address (bind before connect).
fn socket_from(src: SocketAddr, dst: SocketAddr) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(dst), Type::STREAM, None).expect("socket");
    s.bind(&src.into())
        .unwrap_or_else(|e| panic!("bind {src}: {e}"));
    s.connect(&dst.into())
        .unwrap_or_else(|e| panic!("connect {dst}: {e}"));
    s.into()
}

#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn rss_per_idle_stream() {
    let n: usize = std::env::var("COMET_MEM_STREAMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let paths: Vec<String> = match std::env::var("COMET_MEM_PATH") {
        Ok(p) => vec![p],
        Err(_) => vec!["/stream".into(), "/iframe?cb=f".into(), "/events".into()],
    };
    for path in paths {
        let gw = ChildGateway::spawn(None, &[]);
        let (public, admin) = (gw.public, gw.admin);
        let sep = if path.contains('?') { '&' } else { '?' };
        let open = |i: usize| {
            let src: SocketAddr = format!("127.0.0.{}:0", 2 + i % 8).parse().unwrap();
            let mut c = Conn::from_stream(socket_from(src, public));
            c.send(&format!("GET {path}{sep}channel=mem HTTP/1.1\r\n\r\n"));
            c
        };
        // Warm up as for polls.
        let warm: Vec<Conn> = (0..100).map(open).collect();
        wait_until("warm-up streams", || subscribers(admin, "mem") == 100);
        drop(warm);
        wait_until("warm-up gone", || subscribers(admin, "mem") == 0);
        let before = rss_kib(gw.pid());
        let conns: Vec<Conn> = (0..n).map(open).collect();
        wait_until("all streams open", || subscribers(admin, "mem") == n as u64);
        let after = rss_kib(gw.pid());
        let per = (after.saturating_sub(before) * 1024) as f64 / n as f64;
        println!(
            "idle streams ({path}): {n}; gateway RSS before {before} KiB, after {after} KiB; {per:.0} bytes per idle stream"
        );
        drop(conns);
    }
}

/// Polls answered at once that name 16 128-byte channels each (new ones, or with
/// `shared`, the same 16 published ones), as fast as four pipelining connections go:
/// every answer leaves a session holding its 16 channels.
fn session_flood(public: SocketAddr, tag: &str, polls: usize, shared: bool) {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let tag = format!("{tag}{t}");
            std::thread::spawn(move || {
                let mut c = Conn::open(public);
                let window = 32;
                for batch in (0..polls / 4).step_by(window) {
                    let mut reqs = String::new();
                    for i in batch..batch + window {
                        let names: Vec<String> = (0..16)
                            .map(|j| match shared {
                                true => format!("shared{j}x{}", "n".repeat(100)),
                                false => format!("{tag}x{i}x{j}x{}", "n".repeat(100)),
                            })
                            .map(|n| n[..128.min(n.len())].to_string())
                            .collect();
                        reqs.push_str(&format!(
                            "GET /poll?channel={}&seq=1 HTTP/1.1\r\n\r\n",
                            names.join(",")
                        ));
                    }
                    c.send(&reqs);
                    for _ in 0..window {
                        assert_eq!(c.response().status, 200);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// What a flood of long-poll sessions costs, at `--max-sessions` (100,000) with 16
/// distinct 128-byte channels each (the most a session may hold), and whether the memory
/// freed as old sessions are dropped is used again: a second flood of as many new
/// sessions must leave RSS where the first left it.
#[test]
#[ignore = "a measurement; run with --ignored --nocapture"]
fn rss_of_session_floods() {
    let polls: usize = std::env::var("COMET_MEM_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(150_000);
    let gw = ChildGateway::spawn(None, &[]);
    let (public, admin) = (gw.public, gw.admin);
    let sessions = |admin| util::stats(admin)["sessions"].as_u64().unwrap();
    let before = rss_kib(gw.pid());
    session_flood(public, "a", polls, false);
    let first = rss_kib(gw.pid());
    let held = sessions(admin);
    let channels = util::stats(admin)["channels"].as_u64().unwrap();
    session_flood(public, "b", polls, false);
    let second = rss_kib(gw.pid());
    println!(
        "session floods of {polls} polls x 16 new channels: sessions held {held}, channels {channels}; \
         RSS before {before} KiB, after the first {first} KiB, after the second {second} KiB \
         ({:.0} bytes per session with its channels)",
        (first.saturating_sub(before) * 1024) as f64 / held as f64
    );
    assert_eq!(sessions(admin), held, "sessions are capped");
    // Sessions on 16 published channels each: the channels cost nothing more, so up to
    // --max-sessions of them are kept.
    for j in 0..16 {
        let name = format!("shared{j}x{}", "n".repeat(100));
        let name = &name[..128.min(name.len())];
        let r = util::request(
            admin,
            &format!("POST /pub?channel={name} HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"),
        );
        assert_eq!(r.status, 200);
    }
    session_flood(public, "c", polls, true);
    let third = rss_kib(gw.pid());
    println!(
        "then {polls} polls x the same 16 published channels: sessions held {}; RSS {third} KiB",
        sessions(admin)
    );
}
