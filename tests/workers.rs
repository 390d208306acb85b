//! `--workers N`: the parent runs N reactor processes on shared ports (SO_REUSEPORT),
//! replaces one that dies, and passes SIGTERM on for the drain. With the memory engine
//! N > 1 refuses to start, saying why.

mod util;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::{get, refused_to_start, wait_until, Redis};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

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
