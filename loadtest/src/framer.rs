//! Turns the bytes of one subscriber connection into event texts: the HTTP response head,
//! then a `Content-Length` body (a poll answer), a chunked body in one of the three
//! stream formats, or WebSocket frames after a 101 (decoded by [`crate::websocket`]; the
//! pongs they call for are handed back to the caller to send). Pure: bytes in, events
//! out; it owns one connection's framing state and never touches its socket, an account or
//! an error count.

use crate::scan;
use crate::websocket;

/// The transport a subscriber uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Transport {
    /// `GET /poll`, re-polled on the same keep-alive connection.
    Poll,
    /// `GET /stream` (ndjson).
    Stream,
    /// `GET /iframe` (script chunks).
    Iframe,
    /// `GET /events` (EventSource).
    Events,
    /// `GET /ws` (WebSocket: one text frame per event).
    Ws,
}

impl Transport {
    /// Path and fixed query of the subscribe request.
    pub fn path(self) -> &'static str {
        match self {
            Transport::Poll => "/poll?",
            Transport::Stream => "/stream?",
            Transport::Iframe => "/iframe?cb=f&",
            Transport::Events => "/events?",
            Transport::Ws => "/ws?",
        }
    }
}

/// What a feed found besides events.
#[derive(Debug, PartialEq, Eq)]
pub enum Status {
    /// More to come.
    Open,
    /// A poll answer is complete: poll again.
    Answered,
    /// The stream's body ended.
    Ended,
    /// The server answered with this non-200 status.
    Refused(u16),
    /// The bytes made no sense.
    Broken(&'static str),
}

/// Framing state of one connection.
#[derive(Debug)]
pub struct Framer {
    transport: Transport,
    buf: Vec<u8>,
    /// Body bytes of a stream, decoded from chunks, not yet split into events.
    body: Vec<u8>,
    head_done: bool,
    content_length: usize,
    prelude_done: bool,
    /// The response body is chunked (else it runs raw until the connection ends).
    chunked: bool,
    /// Bodies are raw payloads (Nchan), not gateway JSON events.
    raw: bool,
    /// `Last-Modified` and `Etag` of the last answer (Nchan long-poll cursor).
    pub last_modified: Option<String>,
    /// See `last_modified`.
    pub etag: Option<String>,
    /// WebSocket: the connection's state after the 101 (None for other transports).
    ws: Option<Box<websocket::Client>>,
}

impl Framer {
    /// A framer for a new response.
    pub fn new(transport: Transport) -> Framer {
        Framer {
            transport,
            buf: Vec::new(),
            body: Vec::new(),
            head_done: false,
            content_length: 0,
            prelude_done: false,
            chunked: false,
            raw: false,
            last_modified: None,
            etag: None,
            ws: None,
        }
    }

    /// A framer for a WebSocket opened with `key` (`raw`: Nchan's frames carry the raw
    /// payloads); `seed` drives the masks of its pongs.
    pub fn websocket(key: &str, seed: u64, raw: bool) -> Framer {
        Framer {
            raw,
            ws: Some(Box::new(websocket::Client::new(key, seed))),
            ..Framer::new(Transport::Ws)
        }
    }

    /// Masked frames (pongs) this connection owes the server since the last call.
    pub fn take_reply(&mut self) -> Option<Vec<u8>> {
        self.ws.as_mut().and_then(|w| w.take_reply())
    }

    /// A framer for Nchan, whose bodies are the raw payloads.
    pub fn raw(transport: Transport) -> Framer {
        Framer {
            raw: true,
            ..Framer::new(transport)
        }
    }

    /// Feeds received bytes; pushes each complete event's JSON onto `out`.
    pub fn feed(&mut self, data: &[u8], out: &mut Vec<String>) -> Status {
        self.buf.extend_from_slice(data);
        if !self.head_done {
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut resp = httparse::Response::new(&mut headers);
            let len = match resp.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => len,
                Ok(httparse::Status::Partial) => return Status::Open,
                Err(_) => return Status::Broken("bad response head"),
            };
            let code = resp.code.unwrap_or(0);
            let want = if self.ws.is_some() { 101 } else { 200 };
            if code != want {
                return Status::Refused(code);
            }
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(|v| v.trim().to_string())
            };
            if let Some(ws) = &self.ws {
                if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
                    return Status::Broken("101 without Upgrade: websocket");
                }
                if header("sec-websocket-accept").as_deref() != Some(ws.accept.as_str()) {
                    return Status::Broken("wrong Sec-WebSocket-Accept");
                }
            }
            self.content_length = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            self.chunked =
                header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
            if self.raw {
                self.last_modified = header("last-modified");
                self.etag = header("etag");
            }
            self.buf.drain(..len);
            self.head_done = true;
        }
        if let Some(ws) = self.ws.as_mut() {
            return match ws.read(&mut self.buf, out) {
                websocket::Got::Open => Status::Open,
                websocket::Got::Closed(_) => Status::Ended,
                websocket::Got::Broken(why) => Status::Broken(why),
            };
        }
        if self.transport == Transport::Poll {
            if self.buf.len() < self.content_length {
                return Status::Open;
            }
            let body: Vec<u8> = self.buf.drain(..self.content_length).collect();
            let Ok(text) = std::str::from_utf8(&body) else {
                return Status::Broken("poll body not UTF-8");
            };
            if self.raw {
                out.push(text.to_owned());
            } else {
                out.extend(scan::split_array(text).into_iter().map(str::to_owned));
            }
            self.head_done = false;
            return Status::Answered;
        }
        if !self.chunked {
            self.body.append(&mut self.buf);
            self.split_stream(out);
            return Status::Open;
        }
        while let Some(p) = find(&self.buf, b"\r\n") {
            let Some(len) = std::str::from_utf8(&self.buf[..p])
                .ok()
                .and_then(|t| usize::from_str_radix(t.trim(), 16).ok())
            else {
                return Status::Broken("bad chunk size");
            };
            if self.buf.len() < p + 2 + len + 2 {
                break;
            }
            if len == 0 {
                self.split_stream(out);
                return Status::Ended;
            }
            self.body.extend_from_slice(&self.buf[p + 2..p + 2 + len]);
            self.buf.drain(..p + 2 + len + 2);
        }
        self.split_stream(out);
        Status::Open
    }

    fn split_stream(&mut self, out: &mut Vec<String>) {
        let (sep, prefix, suffix): (&[u8], &str, &str) = match self.transport {
            Transport::Stream => (b"\n", "", ""),
            Transport::Iframe => (b");</script>\n", "<script>f(", ""),
            Transport::Events => (b"\n\n", "", ""),
            Transport::Poll | Transport::Ws => return,
        };
        if self.transport == Transport::Iframe && !self.prelude_done {
            let Some(p) = find(&self.body, b"-->\n") else {
                return;
            };
            self.body.drain(..p + 4);
            self.prelude_done = true;
        }
        let mut start = 0;
        while let Some(p) = find(&self.body[start..], sep) {
            let piece = &self.body[start..start + p];
            start += p + sep.len();
            let Ok(text) = std::str::from_utf8(piece) else {
                continue;
            };
            let json = match self.transport {
                Transport::Events => text
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap_or(if text.starts_with(':') {
                        "{\"type\":\"noop\"}"
                    } else {
                        ""
                    }),
                _ => text
                    .strip_prefix(prefix)
                    .unwrap_or(text)
                    .trim_end_matches(suffix),
            };
            if !json.is_empty() {
                out.push(json.to_owned());
            }
        }
        self.body.drain(..start);
    }
}

/// Where `needle` (not empty) first occurs in `hay`: a plain scan for its first byte (which
/// the compiler vectorises), the rest compared only where that byte is. The obvious
/// `windows(n).position(|w| w == needle)` calls `memcmp` once per byte of the body, and was
/// the generator's top cost at 200,000 EventSource deliveries a second.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, rest) = needle.split_first()?;
    let mut from = 0;
    while let Some(p) = hay[from..].iter().position(|&b| b == first) {
        let at = from + p;
        if hay[at + 1..].starts_with(rest) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_agrees_with_the_obvious_search_everywhere() {
        let hay = b"data: a\n\nid: 1\n\n\n\ndata\n);</script>\n-->\n\nx\n";
        for needle in [
            &b"\n\n"[..],
            b"\n",
            b");</script>\n",
            b"-->\n",
            b"zz",
            b"x\n",
            b"d",
        ] {
            for start in 0..=hay.len() {
                for end in start..=hay.len() {
                    let h = &hay[start..end];
                    let obvious = h.windows(needle.len()).position(|w| w == needle);
                    assert_eq!(find(h, needle), obvious, "{:?} in {:?}", needle, h);
                }
            }
        }
        assert_eq!(find(b"abc", b""), None);
    }

    fn chunk(s: &str) -> String {
        format!("{:x}\r\n{s}\r\n", s.len())
    }

    #[test]
    fn frames_each_transport_byte_at_a_time() {
        let ev = r#"{"type":"data","channel":"a","seq":1,"data":"t=5;x"}"#;
        let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        let cases = [
            (
                Transport::Stream,
                format!(
                    "{head}{}{}0\r\n\r\n",
                    chunk(&format!("{ev}\n")),
                    chunk("{\"type\":\"noop\"}\n")
                ),
            ),
            (
                Transport::Iframe,
                format!(
                    "{head}{}{}0\r\n\r\n",
                    chunk("<html><!--  -->\n"),
                    chunk(&format!("<script>f({ev});</script>\n"))
                ),
            ),
            (
                Transport::Events,
                format!(
                    "{head}{}{}{}0\r\n\r\n",
                    chunk("retry: 2000\n\n"),
                    chunk(&format!("id: a:2\ndata: {ev}\n\n")),
                    chunk(":hb\n\n")
                ),
            ),
            // The gateway's framing since v2: `retry:` inside the first block,
            // heartbeats as comment lines with no blank line after them.
            (
                Transport::Events,
                format!(
                    "{head}{}{}{}{}0\r\n\r\n",
                    chunk(&format!("retry: 2000\nid: a:2\ndata: {ev}\n\n")),
                    chunk(":hb\n"),
                    chunk(":hb\n"),
                    chunk("id: a:2\ndata: {\"type\":\"noop\"}\n\n")
                ),
            ),
            (
                Transport::Poll,
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n[{ev}]",
                    ev.len() + 2
                ),
            ),
        ];
        for (t, wire) in cases {
            let mut f = Framer::new(t);
            let mut out = Vec::new();
            let mut last = Status::Open;
            for b in wire.as_bytes() {
                last = f.feed(std::slice::from_ref(b), &mut out);
            }
            assert_eq!(out[0], ev, "{t:?}");
            let expect_end = if t == Transport::Poll {
                Status::Answered
            } else {
                Status::Ended
            };
            assert_eq!(last, expect_end, "{t:?}");
            if t != Transport::Poll && t != Transport::Iframe {
                assert_eq!(out.len(), 2, "{t:?}: {out:?}");
            }
        }
        let mut f = Framer::new(Transport::Poll);
        assert_eq!(
            f.feed(
                b"HTTP/1.1 503 x\r\nContent-Length: 0\r\n\r\n",
                &mut Vec::new()
            ),
            Status::Refused(503)
        );
    }

    /// A server frame (unmasked, FIN set).
    fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x80 | opcode];
        match payload.len() {
            n @ 0..=125 => f.push(n as u8),
            n => {
                f.push(126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
        }
        f.extend_from_slice(payload);
        f
    }

    /// Unmasks a client frame of at most 125 bytes: (opcode, payload).
    fn unmask(f: &[u8]) -> (u8, Vec<u8>) {
        assert_eq!(f[1] & 0x80, 0x80, "client frames are masked");
        let len = (f[1] & 0x7f) as usize;
        let mask = &f[2..6];
        let p = f[6..6 + len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i % 4]);
        (f[0] & 0x0f, p.collect())
    }

    #[test]
    fn frames_websocket_byte_at_a_time_and_all_at_once() {
        let key = "dGhlIHNhbXBsZSBub25jZQ==";
        let hello = r#"{"type":"hello","client":"c","cursor":"a:1"}"#;
        let ev = format!(
            r#"{{"type":"data","channel":"a","seq":1,"data":"t=5;{}"}}"#,
            "x".repeat(200)
        );
        let mut wire = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
            Connection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
            .to_vec();
        wire.extend(ws_frame(0x1, hello.as_bytes()));
        wire.extend(ws_frame(0x9, b"hb"));
        // The event in two fragments, a ping between them.
        let (a, b) = ev.as_bytes().split_at(50);
        wire.extend([0x01, a.len() as u8]);
        wire.extend_from_slice(a);
        wire.extend(ws_frame(0x9, b""));
        let mut last = ws_frame(0x0, b);
        last[0] = 0x80;
        wire.extend(last);
        wire.extend(ws_frame(0x1, ev.as_bytes()));
        wire.extend(ws_frame(0x8, &1001u16.to_be_bytes()));
        for whole in [false, true] {
            let mut f = Framer::websocket(key, 7, false);
            let (mut out, mut replies, mut statuses) = (Vec::new(), Vec::new(), Vec::new());
            let pieces: Vec<&[u8]> = if whole {
                vec![&wire]
            } else {
                wire.chunks(1).collect()
            };
            for p in pieces {
                statuses.push(f.feed(p, &mut out));
                replies.extend(f.take_reply().unwrap_or_default());
            }
            assert_eq!(out, [hello, ev.as_str(), ev.as_str()], "whole={whole}");
            assert_eq!(statuses.pop(), Some(Status::Ended));
            assert!(statuses.iter().all(|s| *s == Status::Open), "{statuses:?}");
            // Two pongs, each echoing its ping's payload, masked.
            assert_eq!(unmask(&replies), (0xA, b"hb".to_vec()));
            assert_eq!(unmask(&replies[8..]), (0xA, Vec::new()));
            assert_eq!(replies.len(), 8 + 6);
        }
        // Nchan: raw payloads, taken as they come.
        let mut f = Framer::websocket(key, 7, true);
        let mut out = Vec::new();
        let mut w = wire[..wire.iter().position(|&b| b == 0x81).unwrap()].to_vec();
        w.extend(ws_frame(0x1, b"t=1;n=3;xx"));
        assert_eq!(f.feed(&w, &mut out), Status::Open);
        assert_eq!(out, ["t=1;n=3;xx"]);
        // A wrong accept value, or no upgrade at all.
        let mut f = Framer::websocket("AAAAAAAAAAAAAAAAAAAAAA==", 7, false);
        assert!(matches!(f.feed(&wire, &mut Vec::new()), Status::Broken(_)));
        let mut f = Framer::websocket(key, 7, false);
        let refused = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(f.feed(refused, &mut Vec::new()), Status::Refused(403));
    }
}
