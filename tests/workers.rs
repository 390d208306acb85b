//! `--workers N`: the parent runs N reactor processes on shared ports (SO_REUSEPORT),
//! replaces one that dies (its clients resume on any worker with their cursor), and
//! passes SIGTERM on for the drain. With the memory engine N > 1 refuses to start,
//! saying why.

mod util;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{free_port, get, refused_to_start, wait_until, Redis};

/// The pids of `worker i started (pid N)` lines, in order.
fn started(log: &str, i: usize) -> Vec<u32> {
    let needle = format!("worker {i} started (pid ");
    log.lines()
        .filter_map(|l| l.split_once(&needle).map(|(_, rest)| rest))
        .filter_map(|rest| rest.trim_end_matches(')').parse().ok())
        .collect()
}

#[test]
fn workers_need_a_shared_engine() {
    let (code, err) = refused_to_start(&["--workers", "2"]);
    assert_ne!(code, 0);
    assert!(err.contains("shared engine"), "{err}");
}

#[test]
fn workers_share_the_ports_are_replaced_when_they_die_and_drain_on_sigterm() {
    let redis = Redis::start();
    let (public, admin) = (free_port(), free_port());
    let log_path = std::env::temp_dir().join(format!("comet-workers-{public}.log"));
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut parent = Command::new(env!("CARGO_BIN_EXE_comet-gateway"))
        .args([
            "--workers",
            "2",
            "--engine",
            &format!("redis://127.0.0.1:{}", redis.port),
        ])
        .args(["--listen", &format!("127.0.0.1:{public}")])
        .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let admin_addr: SocketAddr = ([127, 0, 0, 1], admin).into();
    wait_until("both workers started", || {
        started(&log(), 0).len() == 1 && started(&log(), 1).len() == 1
    });
    wait_until("the admin port answers", || {
        std::net::TcpStream::connect(admin_addr).is_ok()
            && get(admin_addr, "/healthz").status == 200
    });
    // Kill worker 0: the parent starts another.
    let first = started(&log(), 0)[0];
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    wait_until("worker 0 replaced", || started(&log(), 0).len() == 2);
    let second = started(&log(), 0)[1];
    assert_ne!(first, second);
    wait_until("publishes work through the workers", || {
        util::request(
            admin_addr,
            "POST /pub?channel=w HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
        )
        .status
            == 200
    });
    // SIGTERM to the parent: the workers drain and it exits 0.
    unsafe { libc::kill(parent.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = parent.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the parent did not exit: {}",
            log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}: {}", log());
    let worker1 = started(&log(), 1)[0];
    for pid in [second, worker1] {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z"),
            "worker {pid} still running"
        );
    }
    let _ = std::fs::remove_file(&log_path);
}

fn publish(admin: SocketAddr, body: &str) -> util::Response {
    util::request(
        admin,
        &format!(
            "POST /pub?channel=wk HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    )
}

/// Publishes once the workers can (503 while a worker's engine is still connecting).
fn publish_seq(admin: SocketAddr, body: &str) -> u64 {
    let mut seq = None;
    wait_until("a publish is accepted", || {
        let r = publish(admin, body);
        assert!(matches!(r.status, 200 | 503), "{}: {}", r.status, r.text());
        seq = (r.status == 200).then(|| r.json()["seq"].as_u64().unwrap());
        seq.is_some()
    });
    seq.unwrap()
}

#[test]
fn the_clients_of_a_killed_worker_resume_on_any_worker_with_exactly_what_they_missed() {
    let redis = Redis::start();
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let mut w = util::Workers::spawn(2, &["--engine", &url]);
    wait_until("both workers started", || {
        w.started(0).len() == 1 && w.started(1).len() == 1
    });
    wait_until("the admin port answers", || {
        std::net::TcpStream::connect(w.admin).is_ok() && get(w.admin, "/healthz").status == 200
    });
    let mut s = util::StreamClient::open(w.public, util::Transport::Events, "channel=wk", "");
    assert_eq!(s.next_non_noop().unwrap()["type"], "hello");
    let first = publish_seq(w.admin, "one");
    assert_eq!(s.briefs(1), [format!("d{first}")]);
    let cursor = s.last_id.clone().unwrap();
    assert_eq!(cursor, format!("wk:{}", first + 1));
    let (i, pid) = w.serving(&s.conn.sock).expect("a worker holds the stream");

    // SAFETY: kill(2) on a worker of the gateway this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    while let Some(e) = s.next_event() {
        assert_eq!(e["type"], "noop", "from a killed worker: {e}");
    }
    wait_until("the parent saw it die", || {
        w.log().contains(&format!("worker {i} exited"))
    });
    // Published meanwhile, through the admin port: the surviving worker serves it.
    let missed: Vec<u64> = ["two", "three", "four"]
        .iter()
        .map(|m| publish_seq(w.admin, m))
        .collect();
    assert_eq!(missed, [first + 1, first + 2, first + 3]);
    wait_until("the worker replaced", || w.started(i).len() == 2);
    assert_ne!(w.started(i)[1], pid);
    // The client comes back (EventSource: Last-Event-ID) to whichever worker the kernel
    // picks; a few clients, so both workers are likely to take some.
    let header = format!("Last-Event-ID: {cursor}\r\n");
    let mut back: Vec<util::StreamClient> = (0..4)
        .map(|_| util::StreamClient::open(w.public, util::Transport::Events, "channel=wk", &header))
        .collect();
    for c in &mut back {
        let hello = c.next_non_noop().unwrap();
        assert_eq!(hello["cursor"], cursor.as_str(), "{hello}");
        assert_eq!(c.briefs(3), util::data_briefs(first + 1..=first + 3));
    }
    let live = publish_seq(w.admin, "five");
    assert_eq!(live, first + 4);
    for c in &mut back {
        assert_eq!(c.briefs(1), [format!("d{live}")]);
    }
    assert!(w.stop().success(), "{}", w.log());
}

#[test]
fn workers_set_in_the_environment_start_no_workers_of_their_own() {
    let redis = Redis::start();
    let (public, admin) = (free_port(), free_port());
    let log_path = std::env::temp_dir().join(format!("comet-workers-env-{public}.log"));
    let log_file = std::fs::File::create(&log_path).unwrap();
    let mut parent = Command::new(env!("CARGO_BIN_EXE_comet-gateway"))
        .env("COMET_WORKERS", "2")
        .env("COMET_ENGINE", format!("redis://127.0.0.1:{}", redis.port))
        .env("COMET_LISTEN", format!("127.0.0.1:{public}"))
        .env("COMET_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let admin_addr: SocketAddr = ([127, 0, 0, 1], admin).into();
    wait_until("both workers started", || {
        started(&log(), 0).len() == 1 && started(&log(), 1).len() == 1
    });
    wait_until("the admin port answers", || {
        std::net::TcpStream::connect(admin_addr).is_ok()
            && get(admin_addr, "/healthz").status == 200
    });
    // A worker that read COMET_WORKERS would be a parent itself, with children.
    for i in 0..2 {
        let pid = started(&log(), i)[0];
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        assert_eq!(children.trim(), "", "worker {i} has children:\n{}", log());
    }
    unsafe { libc::kill(parent.id() as i32, libc::SIGTERM) };
    parent.wait().unwrap();
    let _ = std::fs::remove_file(&log_path);
}
