//! Runs a small `comet-flood` mix in-process against a gateway on loopback and checks that
//! every attack did what it says and was counted: parked polls held and closed, polls
//! answered with `reset` events and sessions, bursts written by connections that never
//! read; then that the gateway still answers.

use std::io::{Read, Write};
use std::time::Duration;

use clap::Parser;
use comet_gateway::{Config as GatewayConfig, Server};
use comet_loadtest::flood::{run, FloodConfig};

#[test]
fn a_small_mix_is_counted_by_outcome() {
    let mut c = GatewayConfig::ephemeral();
    c.poll_timeout = Duration::from_secs(30);
    let mut s = Server::bind(c).unwrap();
    let public = s.public_addr().unwrap();
    let handle = s.shutdown_handle();
    let thread = std::thread::spawn(move || s.run().unwrap());

    let cfg = FloodConfig::parse_from([
        "comet-flood".to_string(),
        format!("--target={public}"),
        "--mode=mix".into(),
        "--duration=2s".into(),
        "--quiet".into(),
        "--source=127.0.0.2-127.0.0.3".into(),
        "--park-conns=10".into(),
        "--park-hold=200ms".into(),
        "--reset-conns=1".into(),
        "--session-conns=1".into(),
        "--pipeline=8".into(),
        "--hog-conns=4".into(),
        "--hog-requests=100".into(),
        "--name-len=20".into(),
    ]);
    let f = run(&cfg).expect("flood");
    let [park, reset, session, hog] = &f.attacks;
    let json = f.json();
    assert!(json.starts_with("{\"tool\":\"comet-flood\""), "{json}");

    // Parked polls: held and closed, replaced, never answered within the hold.
    assert!(park.held_and_closed >= 20, "{json}");
    assert!(park.connects >= park.held_and_closed, "{json}");
    assert_eq!(park.answers, 0, "{json}");
    // reset: every answer is a 200 with one `reset` per channel, and a session.
    assert!(reset.answers > 10, "{json}");
    assert_eq!(reset.with_status(200), reset.answers, "{json}");
    assert_eq!(reset.reset_events, reset.answers * 16, "{json}");
    assert_eq!(reset.sessions, reset.answers, "{json}");
    // session: one `reset` per answer, and one session each.
    assert!(session.answers > 10, "{json}");
    assert_eq!(session.reset_events, session.answers, "{json}");
    assert_eq!(session.sessions, session.answers, "{json}");
    assert!(session.requests >= session.answers, "{json}");
    // hog: the bursts went out and nothing was read.
    assert_eq!(hog.connected, 4, "{json}");
    assert_eq!(hog.bursts_completed, 4, "{json}");
    assert_eq!(hog.requests, 400, "{json}");
    assert_eq!(hog.bytes_received, 0, "{json}");
    for a in [park, reset, session] {
        assert_eq!(a.failures(), 0, "{json}");
    }
    assert_eq!(f.totals().open_at_end, 10 + 1 + 1 + 4, "{json}");
    assert!(!f.per_second.is_empty(), "{json}");

    // The gateway still answers.
    let mut sock = std::net::TcpStream::connect(public).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    sock.write_all(
        b"GET /poll?channel=after&seq=1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut answer = String::new();
    let _ = sock.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    handle.shutdown();
    let _ = thread.join();
}

#[test]
fn remote_targets_are_refused() {
    let cfg = FloodConfig::parse_from(["comet-flood", "--target", "192.0.2.1:80"]);
    assert!(run(&cfg).unwrap_err().to_string().contains("loopback"));
}
