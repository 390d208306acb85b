//! Shared helpers for integration tests: start a real server on ephemeral loopback ports,
//! speak raw HTTP/1.1 to it, and wait (boundedly) for observable state.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use comet_gateway::{Config, Server, ShutdownHandle};

/// Longest any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// A server running on its own thread; stopped when dropped.
pub struct TestServer {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with the defaults, ephemeral ports, and `tweak` applied.
    pub fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::ephemeral();
        tweak(&mut config);
        let mut server = Server::bind(config).expect("bind");
        let public = server.public_addr().unwrap();
        let admin = server.admin_addr().unwrap();
        let handle = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run().expect("reactor"));
        TestServer {
            public,
            admin,
            handle,
            thread: Some(thread),
        }
    }

    /// Publishes `body` to `channels` (comma list); returns the JSON answer.
    pub fn publish(&self, channels: &str, body: &str) -> serde_json::Value {
        let r = request(
            self.admin,
            &format!(
                "POST /pub?channel={channels} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert_eq!(r.status, 200, "publish failed: {}", r.text());
        r.json()
    }

    /// Publishes and returns the seq (single channel).
    pub fn publish_seq(&self, channel: &str, body: &str) -> u64 {
        self.publish(channel, body)["seq"].as_u64().expect("seq")
    }

    /// `GET /channels/NAME`: the info JSON, or `None` on 404.
    pub fn channel(&self, name: &str) -> Option<serde_json::Value> {
        let r = get(self.admin, &format!("/channels/{name}"));
        match r.status {
            200 => Some(r.json()),
            404 => None,
            s => panic!("channel info: status {s}"),
        }
    }

    /// Subscriber count of a channel (0 if it does not exist).
    pub fn subscribers(&self, name: &str) -> u64 {
        self.channel(name)
            .map_or(0, |c| c["subscribers"].as_u64().unwrap())
    }

    /// Waits until the channel has exactly `n` subscribers.
    pub fn wait_subscribers(&self, name: &str, n: u64) {
        wait_until(&format!("{name} has {n} subscribers"), || {
            self.subscribers(name) == n
        });
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Polls `cond` until it holds, failing the test after `WAIT`.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("utf-8 body")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("bad JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
    /// The events of a poll answer.
    pub fn events(&self) -> Vec<serde_json::Value> {
        match self.json() {
            serde_json::Value::Array(v) => v,
            other => panic!("not an array: {other}"),
        }
    }
}

/// A client connection that reads responses one after another (keep-alive, pipelining).
pub struct Conn {
    pub sock: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    pub fn open(addr: SocketAddr) -> Conn {
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(WAIT)).unwrap();
        Conn {
            sock,
            buf: Vec::new(),
        }
    }

    /// Wraps an already connected socket.
    pub fn from_stream(sock: TcpStream) -> Conn {
        sock.set_read_timeout(Some(WAIT)).unwrap();
        Conn {
            sock,
            buf: Vec::new(),
        }
    }

    pub fn send(&mut self, raw: &str) {
        self.sock.write_all(raw.as_bytes()).expect("send");
    }

    pub fn send_bytes(&mut self, raw: &[u8]) {
        self.sock.write_all(raw).expect("send");
    }

    fn fill(&mut self) -> usize {
        let mut tmp = [0u8; 16384];
        let n = self.sock.read(&mut tmp).expect("read (timed out?)");
        self.buf.extend_from_slice(&tmp[..n]);
        n
    }

    /// Reads one whole response (body framed by Content-Length; none for 204/100).
    pub fn response(&mut self) -> Response {
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            assert!(self.fill() > 0, "connection closed before a response");
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("ascii head");
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').expect("header line");
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        while self.buf.len() < head_end + len {
            assert!(self.fill() > 0, "connection closed inside a body");
        }
        let body = self.buf[head_end..head_end + len].to_vec();
        self.buf.drain(..head_end + len);
        Response {
            status,
            headers,
            body,
        }
    }

    /// True once the server has closed the connection (reads EOF or a reset).
    pub fn closed_by_server(&mut self) -> bool {
        let mut tmp = [0u8; 1024];
        match self.sock.read(&mut tmp) {
            Ok(0) => true,
            Ok(n) => panic!("unexpected bytes: {:?}", String::from_utf8_lossy(&tmp[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => true,
            Err(e) => panic!("read: {e}"),
        }
    }

    /// True when nothing more is waiting to be read right now.
    pub fn nothing_pending(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        self.sock.set_nonblocking(true).unwrap();
        let mut tmp = [0u8; 64];
        let r = self.sock.read(&mut tmp);
        self.sock.set_nonblocking(false).unwrap();
        matches!(r, Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// One request on a fresh connection.
pub fn request(addr: SocketAddr, raw: &str) -> Response {
    let mut c = Conn::open(addr);
    c.send(raw);
    c.response()
}

/// `GET path` on a fresh connection.
pub fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, &format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"))
}

/// Sends a poll request on `conn` without waiting for the answer.
pub fn send_poll(conn: &mut Conn, query: &str) {
    conn.send(&format!("GET /poll?{query} HTTP/1.1\r\nHost: t\r\n\r\n"));
}

/// The gateway binary running as a child process (killed when dropped), with its stderr
/// collected line by line.
pub struct ChildGateway {
    pub child: std::process::Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ChildGateway {
    /// Starts `comet-gateway` on ephemeral ports with `args`, under `ulimit -n` when given.
    pub fn spawn(fd_limit: Option<u32>, args: &[&str]) -> ChildGateway {
        use std::io::BufRead;
        let bin = env!("CARGO_BIN_EXE_comet-gateway");
        let mut cmd = String::new();
        if let Some(n) = fd_limit {
            cmd.push_str(&format!("ulimit -n {n} && "));
        }
        cmd.push_str(&format!(
            "exec '{bin}' --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 {}",
            args.join(" ")
        ));
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn gateway");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("listening:") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let line = match rx.recv_timeout(WAIT) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("gateway did not start");
            }
        };
        let addrs: Vec<SocketAddr> = line
            .split("http://")
            .skip(1)
            .map(|a| a.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        ChildGateway {
            child,
            public: addrs[0],
            admin: addrs[1],
            log,
        }
    }

    /// True once a log line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ChildGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
