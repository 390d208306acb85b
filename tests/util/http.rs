//! Raw HTTP/1.1 on loopback: `Response`, the keep-alive client `Conn`, one-shot
//! `request`/`get`/`stats`/`send_poll`, and socket tricks for backpressure tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

use super::WAIT;

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

/// Sends a poll request on `conn` without waiting for the answer.
pub fn send_poll(conn: &mut Conn, query: &str) {
    conn.send(&format!("GET /poll?{query} HTTP/1.1\r\nHost: t\r\n\r\n"));
}
