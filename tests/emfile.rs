//! Descriptor exhaustion: the gateway runs as a child under a low `ulimit -n`, is driven
//! past EMFILE, keeps serving the connections it has, and accepts again once descriptors
//! free up.

mod util;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use util::{get, send_poll, wait_until, Conn};

/// Kills the child when the test ends, however it ends.
struct Gateway {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Gateway {
    fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    f.get(11).and_then(|u| u.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0)
}

fn start_with_fd_limit(limit: u32) -> (Gateway, SocketAddr, SocketAddr) {
    let bin = env!("CARGO_BIN_EXE_comet-gateway");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n {limit} && exec '{bin}' --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0"
        ))
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening:") {
                let _ = tx.send(line.clone());
            }
            sink.lock().unwrap().push(line);
        }
    });
    let gw = Gateway { child, log };
    let line = rx.recv_timeout(util::WAIT).expect("gateway did not start");
    let addrs: Vec<SocketAddr> = line
        .split("http://")
        .skip(1)
        .map(|a| a.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    (gw, addrs[0], addrs[1])
}

#[test]
fn running_out_of_descriptors_pauses_accepting_until_some_free_up() {
    let (mut gw, public, admin) = start_with_fd_limit(40);
    // A message to poll for, published while descriptors remain.
    let r = util::request(
        admin,
        "POST /pub?channel=fd HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
    );
    assert_eq!(r.status, 200);
    // Far more connections than the server has descriptors; the rest wait in the backlog.
    let mut conns: Vec<Conn> = (0..80).map(|_| Conn::open(public)).collect();
    for c in &mut conns {
        send_poll(c, "channel=fd&seq=0");
    }
    wait_until("the gateway reports EMFILE", || gw.logged("accept paused"));
    // It keeps serving the connections it already has.
    let r = conns[0].response();
    assert_eq!(r.status, 200);
    assert_eq!(r.events()[0]["data"], "x");
    // While starved it must not spin: show the CPU it used over a second.
    let before = cpu_ticks(gw.child.id());
    std::thread::sleep(std::time::Duration::from_secs(1));
    let used = cpu_ticks(gw.child.id()) - before;
    eprintln!("gateway CPU while out of descriptors: {used} ticks in 1 s");
    assert!(gw.child.try_wait().unwrap().is_none(), "gateway died");
    // Descriptors free up: it accepts again, on both listeners.
    drop(conns);
    wait_until("admin listener serves again", || {
        get(admin, "/healthz").status == 200
    });
    let r = get(public, "/poll?channel=fd&seq=0");
    assert_eq!(r.status, 200);
    assert!(gw.logged("accept resumed"));
    assert!(gw.child.try_wait().unwrap().is_none(), "gateway died");
}
