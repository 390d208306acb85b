//! What an anonymous client can make the gateway hold, and for how long: channels that
//! only subscribers name (they live while subscribed and never count against
//! publishing), long-poll sessions (capped, the one idle longest goes), connections that
//! never read (closed once their output stops moving), and the admin listener, which
//! the public side can never lock out.

mod util;

use std::io::Write;
use std::time::Duration;

use util::{
    get, request, send_poll, stats, tiny_reader, wait_until, write_what_fits, ChildGateway, Conn,
    TestServer,
};

/// 16 fresh channel names.
fn names(prefix: &str, i: usize) -> String {
    (0..16)
        .map(|j| format!("{prefix}{i}x{j}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn publish_status(admin: std::net::SocketAddr, channel: &str) -> u16 {
    request(
        admin,
        &format!("POST /pub?channel={channel} HTTP/1.1\r\nContent-Length: 1\r\n\r\nx"),
    )
    .status
}

#[test]
fn subscribers_cannot_fill_the_channel_table() {
    let s = TestServer::start(|c| {
        c.max_channels = 10;
        c.session_timeout = Some(Duration::from_millis(300));
    });
    // Parked polls on 16 new channels each: 320 channels, 32 times the cap.
    let mut parked: Vec<Conn> = (0..20)
        .map(|i| {
            let mut c = Conn::open(s.public);
            send_poll(&mut c, &format!("channel={}", names("p", i)));
            c
        })
        .collect();
    // Polls answered at once (`reset`): their sessions hold their channels.
    for i in 0..20 {
        let r = get(s.public, &format!("/poll?channel={}&seq=1", names("r", i)));
        assert_eq!(r.status, 200);
        assert_eq!(r.events()[0]["type"], "reset");
    }
    wait_until("the parked polls hold their channels", || {
        stats(s.admin)["connections"]["parked_polls"] == 20
    });
    let st = stats(s.admin);
    assert_eq!(st["channels"], 640, "{st}");
    assert_eq!(st["published_channels"], 0, "{st}");
    // Publishing to new channels still works, up to --max-channels published ones.
    for i in 0..10 {
        assert_eq!(publish_status(s.admin, &format!("pub{i}")), 200);
    }
    assert_eq!(publish_status(s.admin, "pub10"), 503);
    // A channel a subscriber created would count once a message is published to it.
    assert_eq!(publish_status(s.admin, "p0x0"), 503, "the cap is reached");
    assert_eq!(
        publish_status(s.admin, "pub0"),
        200,
        "existing ones still take messages"
    );
    // The subscribers go: their channels go with them (the sessions' when they expire).
    parked.clear();
    wait_until("subscriber-only channels are freed", || {
        let st = stats(s.admin);
        st["channels"] == 10 && st["sessions"] == 0
    });
    assert_eq!(stats(s.admin)["published_channels"], 10);
}

#[test]
fn a_channel_nobody_published_to_lives_while_its_session_does() {
    let s = TestServer::start(|c| c.session_timeout = Some(Duration::from_millis(500)));
    let r = get(s.public, "/poll?channel=quiet&seq=1");
    let id = r.header("X-Comet-Client").unwrap().to_string();
    let reset = r.events()[0]["seq"].as_u64().unwrap();
    // Between polls the session holds the channel: the next poll parks at the same
    // place, with no new `reset`, and gets what is published meanwhile.
    assert_eq!(s.channel("quiet").unwrap()["sessions"], 1);
    let mut c = Conn::open(s.public);
    send_poll(&mut c, &format!("client={id}"));
    s.wait_subscribers("quiet", 1);
    let seq = s.publish_seq("quiet", "now");
    assert_eq!(seq, reset, "the channel kept its first seq");
    assert_eq!(c.response().events()[0]["seq"], seq);
}

#[test]
fn sessions_are_capped_and_the_idle_longest_goes() {
    let s = TestServer::start(|c| c.max_sessions = 5);
    let ids: Vec<String> = (0..20)
        .map(|i| {
            let r = get(s.public, &format!("/poll?channel=s{i}&seq=1"));
            assert_eq!(r.status, 200);
            r.header("X-Comet-Client").unwrap().to_string()
        })
        .collect();
    let st = stats(s.admin);
    assert_eq!(st["sessions"], 5, "{st}");
    assert_eq!(st["sessions_evicted"], 15, "{st}");
    // Only the five newest sessions' channels are still held.
    assert_eq!(st["channels"], 5, "{st}");
    // The newest session resumes under its id; the oldest was dropped: its client gets
    // a new session (and keeps its cursor, which it sends itself).
    let r = get(
        s.public,
        &format!("/poll?client={}&channel=s19&seq=1", ids[19]),
    );
    assert_eq!(r.header("X-Comet-Client"), Some(ids[19].as_str()));
    let r = get(
        s.public,
        &format!("/poll?client={}&channel=s0&seq=1", ids[0]),
    );
    assert_ne!(r.header("X-Comet-Client"), Some(ids[0].as_str()));
    assert_eq!(stats(s.admin)["sessions"], 5);
}

#[test]
fn a_client_that_never_reads_is_closed_once_its_output_stops_moving() {
    let s = TestServer::start(|c| {
        c.idle_timeout = Duration::from_millis(300);
        c.max_pending_bytes = 4096;
    });
    // Many pipelined requests whose answers (the browser client, ~10 KiB each) the
    // client never reads.
    let mut sock = tiny_reader(s.public);
    let burst = "GET /comet.js HTTP/1.1\r\nHost: t\r\n\r\n".repeat(2000);
    assert!(write_what_fits(&mut sock, burst.as_bytes()) > 0);
    wait_until("the stalled connection is closed", || {
        let st = stats(s.admin);
        st["connections"]["public"] == 0 && st["stalled_dropped"] == 1
    });
    drop(sock);
}

#[test]
fn a_pipelining_client_that_reads_late_gets_every_answer() {
    let s = TestServer::start(|c| c.max_pending_bytes = 4096);
    let mut c = Conn::open(s.public);
    // More requests than fit the read buffer, with answers far past the output limit:
    // the gateway stops reading and handling, then goes on as the client reads.
    let n = 600;
    let burst = "GET /comet.js HTTP/1.1\r\nHost: t\r\n\r\n".repeat(n);
    let mut writer = c.sock.try_clone().unwrap();
    let t = std::thread::spawn(move || writer.write_all(burst.as_bytes()).unwrap());
    std::thread::sleep(Duration::from_millis(200));
    for i in 0..n {
        let r = c.response();
        assert_eq!(r.status, 200, "answer {i}");
        assert!(r.text().contains("Comet.prototype"));
    }
    t.join().unwrap();
    assert!(c.nothing_pending());
}

/// The gateway under a descriptor limit of 64, with public connections that hold
/// every descriptor it will give them.
#[test]
fn the_public_side_cannot_lock_out_the_admin_listener() {
    let gw = ChildGateway::spawn(Some(64), &[]);
    let (public, admin) = (gw.public, gw.admin);
    let mut held: Vec<Conn> = (0..100)
        .map(|_| {
            let mut c = Conn::open(public);
            send_poll(&mut c, "channel=hold");
            c
        })
        .collect();
    wait_until("public accepting paused", || {
        gw.logged("accept paused on the public listener")
    });
    // Publishers and health checks get in at once, several at a time.
    let mut admins: Vec<Conn> = (0..4).map(|_| Conn::open(admin)).collect();
    for c in &mut admins {
        c.send("GET /healthz HTTP/1.1\r\n\r\n");
        assert_eq!(c.response().status, 200);
        c.send("POST /pub?channel=hold HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi");
        assert_eq!(c.response().status, 200);
    }
    drop(admins);
    // The subscribers go: every waiting connection is accepted and served, and the
    // pause is logged once, not once per freed descriptor.
    held.clear();
    wait_until("accepting resumed", || {
        gw.logged("accept resumed on the public listener")
    });
    assert_eq!(get(public, "/comet.js").status, 200);
    let lines = gw.log_lines();
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("accept paused"), 1, "{lines:#?}");
    assert_eq!(count("accept resumed"), 1, "{lines:#?}");
}

#[test]
fn the_admin_listener_has_its_own_connection_cap() {
    let s = TestServer::start(|c| c.max_admin_conns = 2);
    // Two admin connections, each known to be accepted (it was answered).
    let held: Vec<Conn> = (0..2)
        .map(|_| {
            let mut c = Conn::open(s.admin);
            c.send("GET /healthz HTTP/1.1\r\n\r\n");
            assert_eq!(c.response().status, 200);
            c
        })
        .collect();
    let r = get(s.admin, "/healthz");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("Retry-After"), Some("1"));
    // The public side is not affected.
    assert_eq!(get(s.public, "/comet.js").status, 200);
    drop(held);
    wait_until("an admin slot frees", || {
        get(s.admin, "/healthz").status == 200
    });
}
