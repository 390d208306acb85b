//! The wire formats of the streaming transports, all inside HTTP/1.1 chunked bodies:
//! newline-delimited JSON (`/stream`), `<script>` chunks for a hidden iframe (`/iframe`)
//! and EventSource frames (`/events`). Pure functions that build `Bytes`; which parts are
//! shared between subscribers and which are per subscriber is decided here.

use bytes::{BufMut, Bytes, BytesMut};

use crate::channel::Message;
use crate::event;

/// A streaming transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/x-ndjson`, one event per line.
    Ndjson,
    /// `text/html`, one `<script>CB(event);</script>` per event.
    Iframe,
    /// `text/event-stream`.
    Sse,
}

impl Format {
    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => "application/x-ndjson",
            Format::Iframe => "text/html; charset=utf-8",
            Format::Sse => "text/event-stream",
        }
    }
}

/// The chunk that ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// How long an EventSource waits before reconnecting, sent as `retry:` (ms).
pub const SSE_RETRY_MS: u64 = 2000;
/// The heartbeat of an EventSource stream: a comment, in its chunk.
pub const SSE_HEARTBEAT: &[u8] = b"5\r\n:hb\n\n\r\n";
/// The iframe's closing of one script chunk.
const IFRAME_SUFFIX: &[u8] = b");</script>\n\r\n";

/// Wraps `body` into one chunk.
pub fn chunk(body: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(body.len() + 12);
    put_chunk_head(&mut out, body.len());
    out.put_slice(body);
    out.put_slice(b"\r\n");
    out.freeze()
}

fn put_chunk_head(out: &mut BytesMut, len: usize) {
    use std::fmt::Write;
    // Writing into a BytesMut cannot fail.
    let _ = write!(out, "{len:x}\r\n");
}

/// What a stream sends before its first event: the iframe's padding (browsers render
/// nothing of a streamed document before about 1 KiB), the EventSource `retry:` hint.
pub fn prelude(format: Format) -> Option<Bytes> {
    match format {
        Format::Ndjson => None,
        Format::Iframe => {
            let mut body = String::from(
                "<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>\n<!--",
            );
            body.push_str(&" ".repeat(1024));
            body.push_str("-->\n");
            Some(chunk(body.as_bytes()))
        }
        Format::Sse => Some(chunk(format!("retry: {SSE_RETRY_MS}\n\n").as_bytes())),
    }
}

/// The parts that carry one event (any JSON event) to one subscriber. `cursor` is the
/// subscriber's cursor after the event (EventSource `id:`), `cb` the iframe callback.
pub fn frame(format: Format, json: &[u8], cursor: &str, cb: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(json.len() + cursor.len() + cb.len() + 40);
    match format {
        Format::Ndjson => {
            put_chunk_head(&mut out, json.len() + 1);
            out.put_slice(json);
            out.put_slice(b"\n\r\n");
        }
        Format::Iframe => {
            put_chunk_head(
                &mut out,
                json.len() + cb.len() + 9 + IFRAME_SUFFIX.len() - 2,
            );
            out.put_slice(b"<script>");
            out.put_slice(cb.as_bytes());
            out.put_u8(b'(');
            out.put_slice(json);
            out.put_slice(IFRAME_SUFFIX);
        }
        Format::Sse => {
            put_chunk_head(&mut out, cursor.len() + json.len() + 13);
            out.put_slice(b"id: ");
            out.put_slice(cursor.as_bytes());
            out.put_slice(b"\ndata: ");
            out.put_slice(json);
            out.put_slice(b"\n\n\r\n");
        }
    }
    out.freeze()
}

/// The parts that carry a published message to one subscriber, sharing every byte that
/// other subscribers of the same format receive too. `single` says the subscriber has
/// only this channel, so its EventSource cursor is the channel's own and the whole frame
/// is shared.
pub fn message_parts(
    format: Format,
    msg: &Message,
    channel: &str,
    single: bool,
    cursor: impl FnOnce() -> String,
    cb: &str,
    out: &mut Vec<Bytes>,
) {
    match format {
        Format::Ndjson => out.push(
            msg.ndjson
                .get_or_init(|| frame(Format::Ndjson, &msg.json, "", ""))
                .clone(),
        ),
        Format::Iframe => {
            let mut head = BytesMut::with_capacity(cb.len() + 24);
            put_chunk_head(
                &mut head,
                msg.json.len() + cb.len() + 9 + IFRAME_SUFFIX.len() - 2,
            );
            head.put_slice(b"<script>");
            head.put_slice(cb.as_bytes());
            head.put_u8(b'(');
            out.push(head.freeze());
            out.push(msg.json.clone());
            out.push(Bytes::from_static(IFRAME_SUFFIX));
        }
        Format::Sse if single => out.push(
            msg.sse_single
                .get_or_init(|| {
                    let c = format!("{channel}:{}", msg.seq + 1);
                    frame(Format::Sse, &msg.json, &c, "")
                })
                .clone(),
        ),
        Format::Sse => {
            let data = msg.sse_data.get_or_init(|| {
                let mut d = BytesMut::with_capacity(msg.json.len() + 12);
                d.put_slice(b"\ndata: ");
                d.put_slice(&msg.json);
                d.put_slice(b"\n\n\r\n");
                d.freeze()
            });
            let cursor = cursor();
            let mut head = BytesMut::with_capacity(cursor.len() + 16);
            put_chunk_head(&mut head, cursor.len() + 4 + data.len() - 2);
            head.put_slice(b"id: ");
            head.put_slice(cursor.as_bytes());
            out.push(head.freeze());
            out.push(data.clone());
        }
    }
}

/// A heartbeat for `format`.
pub fn heartbeat(format: Format, cb: &str) -> Bytes {
    match format {
        Format::Sse => Bytes::from_static(SSE_HEARTBEAT),
        _ => frame(format, event::NOOP, "", cb),
    }
}

/// Parses an EventSource `Last-Event-ID` (a cursor, `news:8,chat:3`) into pairs.
/// Malformed entries are skipped: the header comes from the browser, not the user.
pub fn parse_cursor(text: &str) -> Vec<(&str, u64)> {
    text.split(',')
        .filter_map(|item| {
            let (name, seq) = item.trim().rsplit_once(':')?;
            Some((name, seq.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes a chunked body (whole chunks only).
    fn dechunk(mut b: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let line_end = b.windows(2).position(|w| w == b"\r\n").unwrap();
            let len =
                usize::from_str_radix(std::str::from_utf8(&b[..line_end]).unwrap(), 16).unwrap();
            let start = line_end + 2;
            out.extend_from_slice(&b[start..start + len]);
            assert_eq!(&b[start + len..start + len + 2], b"\r\n", "chunk trailer");
            b = &b[start + len + 2..];
        }
        out
    }

    fn joined(parts: &[Bytes]) -> Vec<u8> {
        parts.iter().flat_map(|p| p.iter().copied()).collect()
    }

    fn msg() -> Message {
        Message::new(41, 0, event::data("news", 41, "</script>\"x\""))
    }

    #[test]
    fn chunks_frame_exactly() {
        let m = msg();
        let json = std::str::from_utf8(&m.json).unwrap().to_string();
        for (format, single) in [
            (Format::Ndjson, true),
            (Format::Iframe, true),
            (Format::Sse, true),
            (Format::Sse, false),
        ] {
            let mut parts = Vec::new();
            message_parts(
                format,
                &m,
                "news",
                single,
                || "news:42,chat:7".into(),
                "cb",
                &mut parts,
            );
            let body = String::from_utf8(dechunk(&joined(&parts))).unwrap();
            let expect = match (format, single) {
                (Format::Ndjson, _) => format!("{json}\n"),
                (Format::Iframe, _) => format!("<script>cb({json});</script>\n"),
                (Format::Sse, true) => format!("id: news:42\ndata: {json}\n\n"),
                (Format::Sse, false) => format!("id: news:42,chat:7\ndata: {json}\n\n"),
            };
            assert_eq!(body, expect, "{format:?}");
            // The same function for non-message events agrees.
            if format != Format::Sse || single {
                let f = frame(format, json.as_bytes(), "news:42", "cb");
                assert_eq!(String::from_utf8(dechunk(&f)).unwrap(), expect);
            }
        }
        for f in [Format::Ndjson, Format::Iframe, Format::Sse] {
            dechunk(&heartbeat(f, "cb"));
            if let Some(p) = prelude(f) {
                dechunk(&p);
            }
        }
        assert!(dechunk(&prelude(Format::Iframe).unwrap()).len() >= 1024);
    }

    #[test]
    fn shared_encodings_are_made_once() {
        let m = msg();
        let mut a = Vec::new();
        let mut b = Vec::new();
        message_parts(Format::Ndjson, &m, "news", true, String::new, "", &mut a);
        message_parts(Format::Ndjson, &m, "news", true, String::new, "", &mut b);
        assert_eq!(a[0].as_ptr(), b[0].as_ptr(), "ndjson chunk is shared");
        a.clear();
        message_parts(Format::Iframe, &m, "news", true, String::new, "f", &mut a);
        assert_eq!(a[1].as_ptr(), m.json.as_ptr(), "iframe shares the JSON");
    }

    #[test]
    fn cursors_parse() {
        assert_eq!(
            parse_cursor("news:8,chat:3"),
            vec![("news", 8), ("chat", 3)]
        );
        assert_eq!(parse_cursor("a:x,b:2,,c"), vec![("b", 2)]);
    }
}
