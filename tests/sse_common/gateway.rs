//! The gateway binary as a child process on fixed ports (so that a restart comes back on
//! them), and the raw HTTP it is spoken to with: publishing, signing, admin reads,
//! counting heartbeats. Shared with the WebSocket client-library tests (tests/ws_common/).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::WAIT;

/// Two distinct ports that were free a moment ago (bound to 127.0.0.1:0 together, then
/// released), for the gateway to take and to take again after a restart.
pub(super) fn free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    (port(&a), port(&b))
}

pub(super) struct Gateway {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    /// Starts `comet-gateway` on `public` and `admin` with `--heartbeat 200ms --buffer 100`.
    pub(super) fn start(public: u16, admin: u16) -> Gateway {
        Gateway::start_with(public, admin, &["--heartbeat", "200ms", "--buffer", "100"])
    }

    /// Starts `comet-gateway` on `public` and `admin` with `flags` and waits until it says
    /// it listens. Retries (boundedly) when it exits at once, e.g. while a port is still
    /// held.
    pub(super) fn start_with(public: u16, admin: u16, flags: &[&str]) -> Gateway {
        let deadline = Instant::now() + WAIT;
        let mut last_log = Vec::new();
        while Instant::now() < deadline {
            let mut child = Command::new(env!("CARGO_BIN_EXE_comet-gateway"))
                .args(["--listen", &format!("127.0.0.1:{public}")])
                .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
                .args(flags)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn comet-gateway");
            let stderr = child.stderr.take().unwrap();
            let log = Arc::new(Mutex::new(Vec::new()));
            let (tx, rx) = mpsc::channel();
            let sink = log.clone();
            // Drains the log for the gateway's whole life (a full pipe would block it).
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("listening:") {
                        let _ = tx.send(());
                    }
                    sink.lock().unwrap().push(line);
                }
            });
            loop {
                if rx.recv_timeout(Duration::from_millis(20)).is_ok() {
                    return Gateway { child, log };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: try again shortly
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the gateway did not start on 127.0.0.1:{public} within {WAIT:?}:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            }
            let _ = child.wait();
            last_log = log.lock().unwrap().clone();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the gateway kept exiting at start on 127.0.0.1:{public}:\n{}",
            last_log.join("\n")
        );
    }

    /// SIGKILL, and waits for the process to be gone.
    pub(super) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub(super) fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        let from = log.len().saturating_sub(20);
        log[from..].join("\n")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.1 request with an exact body (`Content-Length`); returns status and body.
fn http(port: u16, method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut sock = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    sock.write_all(&req).expect("send request");
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let (head_end, status, content_length, chunked) = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_string();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line: {head}"));
            let header = |name: &str| {
                head.lines().skip(1).find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_string())
                })
            };
            let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
            let chunked = header("transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
            break (p + 4, status, length, chunked);
        }
        let n = sock.read(&mut tmp).expect("read response");
        assert!(n > 0, "connection closed before a response to {target}");
        buf.extend_from_slice(&tmp[..n]);
    };
    let mut body = buf.split_off(head_end);
    if let Some(len) = content_length {
        while body.len() < len {
            let n = sock.read(&mut tmp).expect("read body");
            assert!(n > 0, "body of {target} cut short");
            body.extend_from_slice(&tmp[..n]);
        }
        body.truncate(len);
    } else {
        // Connection: close: the body runs to the end.
        sock.read_to_end(&mut body).expect("read body");
        if chunked {
            body = dechunk(&body);
        }
    }
    (status, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(p) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..p]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        if size == 0 || raw.len() < p + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[p + 2..p + 2 + size]);
        raw = &raw[(p + 4 + size).min(raw.len())..];
    }
    out
}

/// Publishes `payload` (its exact bytes) to `channel`; returns the seq.
pub(super) fn publish(admin: u16, channel: &str, payload: &str) -> u64 {
    let (status, body) = http(
        admin,
        "POST",
        &format!("/pub?channel={channel}"),
        payload.as_bytes(),
    );
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "publish {payload:?}: HTTP {status}: {text}");
    let answer: Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("publish answer ({e}): {text}"));
    answer["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("publish answer without seq: {text}"))
}

/// `POST /sign?channel=CHANNEL&ttl=600`: the token.
pub(super) fn sign(admin: u16, channel: &str) -> String {
    let (status, body) = http(
        admin,
        "POST",
        &format!("/sign?channel={channel}&ttl=600"),
        b"",
    );
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "sign: HTTP {status}: {text}");
    let answer: Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("sign answer ({e}): {text}"));
    answer["token"]
        .as_str()
        .unwrap_or_else(|| panic!("sign answer without token: {text}"))
        .to_string()
}

/// `GET target` on the admin listener: the status and the JSON body (`null` if none).
pub(super) fn admin_get(admin: u16, target: &str) -> (u16, Value) {
    let (status, body) = http(admin, "GET", target, b"");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Reads `/events` raw for `period` and counts the heartbeat comments (`:hb`) it sees.
pub(super) fn heartbeats_seen_by_raw_reader(public: u16, channel: &str, period: Duration) -> usize {
    let addr = SocketAddr::from(([127, 0, 0, 1], public));
    let mut sock = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    sock.write_all(
        format!("GET /events?channel={channel} HTTP/1.1\r\nHost: 127.0.0.1:{public}\r\n\r\n")
            .as_bytes(),
    )
    .expect("send");
    let end = Instant::now() + period;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        sock.set_read_timeout(Some((end - now).max(Duration::from_millis(1))))
            .unwrap();
        match sock.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    buf.windows(3).filter(|w| w == b":hb").count()
}
