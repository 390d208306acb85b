//! Streaming responses: the `Transport`s (`/stream`, `/iframe`, `/events`) and
//! `StreamClient`, which decodes a chunked stream into events; plus `cursor_query`.

use std::net::SocketAddr;
use std::time::Instant;

use super::http::{Conn, Response};
use super::WAIT;

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

    /// The next event that is not a heartbeat, within `WAIT` (however many heartbeats
    /// come meanwhile).
    pub fn next_non_noop(&mut self) -> Option<serde_json::Value> {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "only heartbeats for {WAIT:?}");
            let e = self.next_event()?;
            if e["type"] != "noop" {
                return Some(e);
            }
        }
    }

    /// The next `n` events that are not heartbeats, in short (see `brief`).
    pub fn briefs(&mut self, n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                let e = self.next_non_noop();
                super::brief(&e.unwrap_or_else(|| panic!("stream ended at {i}/{n}")))
            })
            .collect()
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
