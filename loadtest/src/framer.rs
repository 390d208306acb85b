//! Turns the bytes of one subscriber connection into event texts: the HTTP response head,
//! then a `Content-Length` body (a poll answer) or a chunked body in one of the three
//! stream formats. Pure: bytes in, events out; it owns one connection's framing state and
//! never touches its socket, an account or an error count.

use crate::scan;

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
}

impl Transport {
    /// Path and fixed query of the subscribe request.
    pub fn path(self) -> &'static str {
        match self {
            Transport::Poll => "/poll?",
            Transport::Stream => "/stream?",
            Transport::Iframe => "/iframe?cb=f&",
            Transport::Events => "/events?",
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
        }
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
            if code != 200 {
                return Status::Refused(code);
            }
            let header = |name: &str| {
                resp.headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case(name))
                    .and_then(|h| std::str::from_utf8(h.value).ok())
                    .map(|v| v.trim().to_string())
            };
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
        while let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
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
            Transport::Poll => return,
        };
        if self.transport == Transport::Iframe && !self.prelude_done {
            let Some(p) = self.body.windows(4).position(|w| w == b"-->\n") else {
                return;
            };
            self.body.drain(..p + 4);
            self.prelude_done = true;
        }
        let mut start = 0;
        while let Some(p) = self.body[start..].windows(sep.len()).position(|w| w == sep) {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
