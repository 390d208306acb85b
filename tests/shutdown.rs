//! Graceful shutdown: the gateway runs as a child with open streams and a parked poll;
//! SIGTERM makes every stream end with `reconnect` carrying a cursor that resumes with no
//! gap, answers the poll, and the process exits 0; a second signal exits at once.

mod util;

use std::time::{Duration, Instant};

use util::{cursor_query, send_poll, ChildGateway, Conn, StreamClient, TRANSPORTS};

fn signal(pid: u32, sig: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

fn wait_exit(gw: &mut ChildGateway) -> std::process::ExitStatus {
    let deadline = Instant::now() + util::WAIT;
    loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the gateway did not exit");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn sigterm_ends_streams_with_a_resumable_cursor_answers_polls_and_exits_zero() {
    let mut gw = ChildGateway::spawn(None, &["--shutdown-timeout", "5s"]);
    let publish = |body: &str| {
        let r = util::request(
            gw.admin,
            &format!(
                "POST /pub?channel=bye HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        r.json()["seq"].as_u64().unwrap()
    };
    let first = publish("one");
    let mut streams: Vec<StreamClient> = TRANSPORTS
        .iter()
        .map(|t| StreamClient::open(gw.public, *t, "channel=bye&seq=0", ""))
        .collect();
    for s in &mut streams {
        assert_eq!(s.next_event().unwrap()["type"], "hello");
        assert_eq!(s.data(1)[0]["seq"], first);
    }
    let mut poll = Conn::open(gw.public);
    send_poll(&mut poll, &format!("channel=bye&seq={}", first + 1));
    util::wait_until("the poll parked", || {
        util::get(gw.admin, "/channels/bye").json()["subscribers"] == 4
    });
    signal(gw.pid(), "-TERM");
    for s in &mut streams {
        let end = s.next_non_noop().expect("a reconnect event");
        assert_eq!(end["type"], "reconnect", "{:?}: {end}", s.transport);
        // The cursor is exactly past the last message delivered: no gap, no repeat.
        assert_eq!(end["cursor"], format!("bye:{}", first + 1));
        assert_eq!(
            cursor_query(end["cursor"].as_str().unwrap()),
            format!("channel=bye&seq={}", first + 1)
        );
        assert!(
            s.next_event().is_none(),
            "{:?}: the stream ends",
            s.transport
        );
    }
    let r = poll.response();
    assert_eq!(r.events(), [serde_json::json!({"type": "noop"})]);
    assert_eq!(r.header("Connection"), Some("close"));
    let status = wait_exit(&mut gw);
    assert_eq!(status.code(), Some(0), "exit status");
    util::wait_until("the shutdown was logged", || gw.logged("shutting down"));
}

#[test]
fn a_second_signal_exits_at_once() {
    // A stream whose client never reads, with megabytes queued, keeps the first shutdown
    // from finishing within its (long) timeout.
    let mut gw = ChildGateway::spawn(
        None,
        &["--shutdown-timeout", "10m", "--max-pending-bytes", "100m"],
    );
    let mut stuck = StreamClient::open(gw.public, TRANSPORTS[0], "channel=stuck", "");
    assert_eq!(stuck.next_event().unwrap()["type"], "hello");
    util::wait_until("the stream is subscribed", || {
        util::get(gw.admin, "/channels/stuck").json()["subscribers"] == 1
    });
    let payload = "x".repeat(60_000);
    let mut admin = Conn::open(gw.admin);
    for _ in 0..200 {
        admin.send(&format!(
            "POST /pub?channel=stuck HTTP/1.1\r\nContent-Length: {}\r\n\r\n{payload}",
            payload.len()
        ));
        assert_eq!(admin.response().status, 200);
    }
    signal(gw.pid(), "-TERM");
    util::wait_until("shutdown began", || gw.logged("shutting down"));
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "still draining the stuck stream"
    );
    signal(gw.pid(), "-INT");
    let status = wait_exit(&mut gw);
    assert_eq!(status.code(), Some(0));
    util::wait_until("the second signal was logged", || {
        gw.logged("second signal")
    });
    drop(stuck);
}
