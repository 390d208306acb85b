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

#[test]
fn a_whole_request_waiting_behind_unread_answers_is_not_timed_out() {
    let s = TestServer::start(|c| c.header_timeout = Duration::from_millis(300));
    // A poll with a large answer (about 6 MB) the client does not read for a while,
    // and a second request that arrives in two pieces behind it.
    let payload = "y".repeat(60 * 1024);
    for _ in 0..100 {
        s.publish_seq("big", &payload);
    }
    let mut c = Conn::open(s.public);
    c.send("GET /poll?channel=big&seq=0 HTTP/1.1\r\n\r\nGET /comet.js HTT");
    std::thread::sleep(Duration::from_millis(100));
    c.send("P/1.1\r\n\r\n");
    // Not reading for longer than the header timeout: the second request is whole, so
    // only the (60 s) stall clock applies to this connection.
    std::thread::sleep(Duration::from_millis(900));
    let r = c.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.events().len(), 100);
    let r = c.response();
    assert_eq!(r.status, 200);
    assert!(r.text().contains("Comet.prototype"));
}

#[test]
fn every_pipelining_client_is_served_in_turn() {
    // A short header timeout: a connection left waiting with a whole request must not
    // be mistaken for a slow client.
    let s = TestServer::start(|c| c.header_timeout = Duration::from_millis(200));
    // Far more pipelined requests than one loop turn handles, from many clients at
    // once: each client must be served, none starved behind the others.
    let clients = 60;
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let addr = s.public;
            std::thread::spawn(move || {
                let mut c = Conn::open(addr);
                let burst = "GET /nope HTTP/1.1\r\n\r\n".repeat(2000);
                let mut writer = c.sock.try_clone().unwrap();
                let t = std::thread::spawn(move || writer.write_all(burst.as_bytes()));
                for j in 0..2000 {
                    assert_eq!(c.response().status, 404, "client {i}, answer {j}");
                }
                t.join().unwrap().unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn sessions_hold_a_bounded_number_of_channels_nobody_published_to() {
    let s = TestServer::start(|c| c.max_sessions = 10);
    // Sessions of 4 fresh channels each: at most 10 such channels are kept in all, so
    // at most 2 of these sessions (their 8 channels) survive.
    for i in 0..20 {
        let names: Vec<String> = (0..4).map(|j| format!("h{i}x{j}")).collect();
        let r = get(
            s.public,
            &format!("/poll?channel={}&seq=1", names.join(",")),
        );
        assert_eq!(r.status, 200);
    }
    let st = stats(s.admin);
    assert!(st["channels"].as_u64().unwrap() <= 10, "{st}");
    assert_eq!(st["sessions"], 2, "{st}");
    // Sessions on published channels are bounded by --max-sessions alone.
    s.publish_seq("shared", "x");
    for _ in 0..10 {
        assert_eq!(get(s.public, "/poll?channel=shared&seq=0").status, 200);
    }
    assert_eq!(stats(s.admin)["sessions"], 10);
}

#[test]
fn refused_connections_read_their_503() {
    let s = TestServer::start(|c| c.max_conns = 2);
    let held: Vec<Conn> = (0..2)
        .map(|_| {
            let mut c = Conn::open(s.public);
            send_poll(&mut c, "channel=full");
            c
        })
        .collect();
    s.wait_subscribers("full", 2);
    for i in 0..30 {
        let mut c = Conn::open(s.public);
        // The request may arrive before or after the gateway refuses the connection.
        if i % 2 == 1 {
            std::thread::sleep(Duration::from_millis(5));
        }
        c.send("GET /comet.js HTTP/1.1\r\n\r\n");
        let r = c.response();
        assert_eq!(r.status, 503, "attempt {i}");
        assert!(c.ends_cleanly(), "attempt {i}: a reset after the 503");
    }
    drop(held);
}

#[test]
fn a_parked_poll_whose_client_leaves_behind_a_full_buffer_is_freed() {
    let s = TestServer::start(|_| {});
    let mut c = Conn::open(s.public);
    send_poll(&mut c, "channel=gone");
    s.wait_subscribers("gone", 1);
    // More pipelined bytes than the input buffer takes, then the client hangs up.
    let junk = "GET /comet.js HTTP/1.1\r\n\r\n".repeat(1000);
    write_what_fits(&mut c.sock, junk.as_bytes());
    drop(c);
    wait_until("the parked poll is freed", || {
        stats(s.admin)["connections"]["parked_polls"] == 0
    });
    // Its session waits for the next poll, as for any client that went away.
    assert_eq!(s.channel("gone").unwrap()["subscribers"], 0);
}

/// At the descriptor limit, subscribers coming and going one at a time: one pause
/// episode, logged once, not once per freed descriptor.
#[test]
fn accepting_at_the_limit_logs_one_episode() {
    let gw = ChildGateway::spawn(Some(64), &[]);
    let (public, admin) = (gw.public, gw.admin);
    let parked = || {
        stats(admin)["connections"]["parked_polls"]
            .as_u64()
            .unwrap()
    };
    let mut held = std::collections::VecDeque::new();
    // Fill up, one at a time, until one has to wait in the backlog.
    while !gw.logged("accept paused") {
        assert!(held.len() < 64, "never paused");
        let mut c = Conn::open(public);
        send_poll(&mut c, "channel=churn");
        held.push_back(c);
        let n = held.len() as u64;
        wait_until("parked or paused", || {
            parked() == n || gw.logged("accept paused")
        });
    }
    for _ in 0..30 {
        // One leaves, the one waiting gets in; another comes and waits.
        held.pop_front();
        let n = held.len() as u64;
        wait_until("the waiting one got in", || parked() == n);
        let mut c = Conn::open(public);
        send_poll(&mut c, "channel=churn");
        held.push_back(c);
    }
    held.clear();
    wait_until("accepting resumed", || gw.logged("accept resumed"));
    let lines = gw.log_lines();
    let count = |needle: &str| lines.iter().filter(|l| l.contains(needle)).count();
    assert_eq!(count("accept paused"), 1, "{lines:#?}");
    assert_eq!(count("accept resumed"), 1, "{lines:#?}");
}
