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
    pub buf: Vec<u8>,
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

    /// Reads more; 0 at EOF or reset.
    pub fn try_fill(&mut self) -> usize {
        let mut tmp = [0u8; 16384];
        match self.sock.read(&mut tmp) {
            Ok(n) => {
                self.buf.extend_from_slice(&tmp[..n]);
                n
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("read: {e} (timed out?)"),
        }
    }

    /// Reads a response head only (for streaming responses).
    pub fn head_only(&mut self) -> Response {
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p + 4;
            }
            assert!(self.fill() > 0, "connection closed before a response");
        };
        let head = String::from_utf8(self.buf[..head_end].to_vec()).expect("ascii head");
        self.buf.drain(..head_end);
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines
            .filter(|l| !l.is_empty())
            .map(|l| {
                let (k, v) = l.split_once(':').expect("header line");
                (k.trim().to_string(), v.trim().to_string())
            })
            .collect();
        Response {
            status,
            headers,
            body: Vec::new(),
        }
    }

    fn fill(&mut self) -> usize {
        let mut tmp = [0u8; 16384];
        let n = self.sock.read(&mut tmp).expect("read (timed out?)");
        self.buf.extend_from_slice(&tmp[..n]);
        n
    }

    /// Reads one whole response (body framed by Content-Length; none for 204/100).
    pub fn response(&mut self) -> Response {
        let mut r = self.head_only();
        let len: usize = r.header("content-length").map_or(0, |v| v.parse().unwrap());
        while self.buf.len() < len {
            assert!(self.fill() > 0, "connection closed inside a body");
        }
        r.body = self.buf.drain(..len).collect();
        r
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

    /// Reads to the end: true for a clean close (FIN), false for a reset. Bytes before
    /// the end are kept in `buf`.
    pub fn ends_cleanly(&mut self) -> bool {
        let mut tmp = [0u8; 16384];
        loop {
            match self.sock.read(&mut tmp) {
                Ok(0) => return true,
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return false,
                Err(e) => panic!("read: {e}"),
            }
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

/// `GET /stats` on the admin listener.
pub fn stats(admin: SocketAddr) -> serde_json::Value {
    let r = get(admin, "/stats");
    assert_eq!(r.status, 200, "stats: {}", r.text());
    r.json()
}

/// A connection whose receive buffer is tiny, so a client that never reads fills it at
/// once and the server's output backs up.
pub fn tiny_reader(addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None).expect("socket");
    s.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    s.connect(&addr.into()).expect("connect");
    s.into()
}

/// Writes as much of `data` as the socket takes without blocking; returns how much.
pub fn write_what_fits(sock: &mut TcpStream, data: &[u8]) -> usize {
    sock.set_nonblocking(true).unwrap();
    let mut done = 0;
    while done < data.len() {
        match sock.write(&data[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("write: {e}"),
        }
    }
    sock.set_nonblocking(false).unwrap();
    done
}

/// Runs the gateway binary with `args`, expecting it to refuse to start: returns its
/// exit code and what it printed. Fails if it starts listening instead.
pub fn refused_to_start(args: &[&str]) -> (i32, String) {
    let bin = env!("CARGO_BIN_EXE_comet-gateway");
    let mut child = std::process::Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.code().unwrap_or(-1), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway started with {args:?}; it should have refused");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
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

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
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

/// Which streaming transport a test client speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Stream,
    Iframe,
    Events,
}

pub const TRANSPORTS: [Transport; 3] = [Transport::Stream, Transport::Iframe, Transport::Events];

impl Transport {
    pub fn path(self) -> &'static str {
        match self {
            Transport::Stream => "/stream",
            Transport::Iframe => "/iframe",
            Transport::Events => "/events",
        }
    }
}

/// A client of a streaming response: decodes the chunked body and splits it into events.
pub struct StreamClient {
    pub conn: Conn,
    pub transport: Transport,
    pub head: Response,
    /// Decoded body bytes not yet turned into events.
    body: Vec<u8>,
    /// Everything decoded so far (for checks on the raw bytes).
    pub raw: Vec<u8>,
    /// The last EventSource `id:` seen.
    pub last_id: Option<String>,
    /// The `data:` of the EventSource block being read.
    sse_data: Option<String>,
    prelude_done: bool,
    pub ended: bool,
}

impl StreamClient {
    /// Opens `path?query` (`cb=f` is added for the iframe) with extra header lines.
    pub fn open(
        addr: SocketAddr,
        transport: Transport,
        query: &str,
        headers: &str,
    ) -> StreamClient {
        let mut conn = Conn::open(addr);
        let cb = if transport == Transport::Iframe {
            "&cb=f"
        } else {
            ""
        };
        conn.send(&format!(
            "GET {}?{query}{cb} HTTP/1.1\r\nHost: t\r\n{headers}\r\n",
            transport.path()
        ));
        let head = conn.head_only();
        StreamClient {
            conn,
            transport,
            head,
            body: Vec::new(),
            raw: Vec::new(),
            last_id: None,
            sse_data: None,
            prelude_done: false,
            ended: false,
        }
    }

    /// Reads one more chunk into `body`; false at the end of the stream.
    fn read_chunk(&mut self) -> bool {
        if self.ended {
            return false;
        }
        loop {
            if let Some(p) = self.conn.buf.windows(2).position(|w| w == b"\r\n") {
                let size_text = String::from_utf8_lossy(&self.conn.buf[..p]).to_string();
                let len = usize::from_str_radix(size_text.trim(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size {size_text:?}"));
                let need = p + 2 + len + 2;
                while self.conn.buf.len() < need {
                    if self.conn.try_fill() == 0 {
                        self.ended = true;
                        return false;
                    }
                }
                assert_eq!(&self.conn.buf[need - 2..need], b"\r\n", "chunk trailer");
                let data = self.conn.buf[p + 2..p + 2 + len].to_vec();
                self.conn.buf.drain(..need);
                if len == 0 {
                    self.ended = true;
                    return false;
                }
                self.raw.extend_from_slice(&data);
                self.body.extend_from_slice(&data);
                return true;
            }
            if self.conn.try_fill() == 0 {
                self.ended = true;
                return false;
            }
        }
    }

    /// The next event (SSE comments come back as `{"type":"noop"}`), or `None` once the
    /// stream has ended.
    pub fn next_event(&mut self) -> Option<serde_json::Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no whole event within {WAIT:?}");
            if let Some(ev) = self.take_event() {
                return Some(ev);
            }
            if !self.read_chunk() {
                return None;
            }
        }
    }

    fn take_event(&mut self) -> Option<serde_json::Value> {
        match self.transport {
            Transport::Stream => {
                let p = self.body.iter().position(|b| *b == b'\n')?;
                let line: Vec<u8> = self.body.drain(..=p).collect();
                Some(serde_json::from_slice(&line[..p]).expect("ndjson line"))
            }
            Transport::Iframe => {
                if !self.prelude_done {
                    let p = self.body.windows(4).position(|w| w == b"-->\n")?;
                    self.body.drain(..p + 4);
                    self.prelude_done = true;
                }
                let end = b");</script>\n";
                let p = self.body.windows(end.len()).position(|w| w == end)?;
                let seg: Vec<u8> = self.body.drain(..p + end.len()).collect();
                let text = String::from_utf8(seg).unwrap();
                let inner = text
                    .strip_prefix("<script>f(")
                    .and_then(|t| t.strip_suffix(");</script>\n"))
                    .unwrap_or_else(|| panic!("bad script chunk {text:?}"));
                Some(serde_json::from_str(inner).expect("script JSON"))
            }
            // EventSource, line by line as its parsers read it: a comment line is a
            // heartbeat; a blank line ends a block, which must carry `data:`.
            Transport::Events => loop {
                let p = self.body.iter().position(|b| *b == b'\n')?;
                let line: Vec<u8> = self.body.drain(..=p).collect();
                let line = String::from_utf8(line[..p].to_vec()).unwrap();
                if line.starts_with(':') {
                    return Some(serde_json::json!({"type": "noop"}));
                } else if line.is_empty() {
                    let data = self.sse_data.take().expect("an SSE block without data");
                    return Some(serde_json::from_str(&data).expect("SSE data JSON"));
                } else if let Some(id) = line.strip_prefix("id: ") {
                    self.last_id = Some(id.to_string());
                } else if let Some(d) = line.strip_prefix("data: ") {
                    assert!(self.sse_data.is_none(), "one data line per event");
                    self.sse_data = Some(d.to_string());
                } else {
                    assert!(line.starts_with("retry: "), "unknown SSE line {line:?}");
                }
            },
        }
    }

    /// The next event that is not a heartbeat.
    pub fn next_non_noop(&mut self) -> Option<serde_json::Value> {
        loop {
            let e = self.next_event()?;
            if e["type"] != "noop" {
                return Some(e);
            }
        }
    }

    /// Reads `n` data events (skipping heartbeats), failing on anything else.
    pub fn data(&mut self, n: usize) -> Vec<serde_json::Value> {
        (0..n)
            .map(|i| {
                let e = self
                    .next_non_noop()
                    .unwrap_or_else(|| panic!("stream ended at {i}/{n}"));
                assert_eq!(e["type"], "data", "expected data, got {e}");
                e
            })
            .collect()
    }
}

/// Turns a cursor (`a:1,b:2`) into `channel=a,b&seq=1,2`.
pub fn cursor_query(cursor: &str) -> String {
    let (names, seqs): (Vec<&str>, Vec<&str>) = cursor
        .split(',')
        .map(|p| p.rsplit_once(':').expect("cursor item"))
        .unzip();
    format!("channel={}&seq={}", names.join(","), seqs.join(","))
}
