//! The wire formats of the HTTP streaming transports: newline-delimited JSON
//! (`/stream`), `<script>` chunks for a hidden iframe (`/iframe`) and EventSource frames
//! (`/events`), each inside an HTTP/1.1 chunked body, or written raw for an HTTP/1.0
//! client (whose body ends when the connection closes). Pure functions that build
//! `Bytes`; which parts are shared between subscribers and which are per subscriber is
//! decided here. Touches no connection and no subscriber state.
//!
//! EventSource framing: every blank-line-terminated block carries a `data:` line,
//! because several popular clients (fetch-event-source, httpx-sse) turn a block without
//! data into an empty message. So the `retry:` hint rides in the first event's block,
//! and heartbeats are a comment line with no blank line after it.
//! Touches no connection and no subscriber state.

use bytes::{BufMut, Bytes, BytesMut};

use super::Format;
use crate::engine::Message;
use crate::event;

/// The chunk that ends a chunked body.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// How long an EventSource waits before reconnecting, sent as `retry:` (ms).
pub const SSE_RETRY_MS: u64 = 2000;
/// The heartbeat of an EventSource stream: a comment line, no blank line after it.
pub const SSE_HEARTBEAT: &[u8] = b":hb\n";
/// The iframe's closing of one script (and of its chunk, when chunked).
const IFRAME_SUFFIX: &[u8] = b");</script>\n";
const IFRAME_SUFFIX_CHUNKED: &[u8] = b");</script>\n\r\n";

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

fn framed(body: BytesMut, chunked: bool) -> Bytes {
    if chunked {
        chunk(&body)
    } else {
        body.freeze()
    }
}

/// Appends one event, unframed: an ndjson line, a script, or an EventSource block
/// (with the `retry:` hint first when `retry`).
fn put_event(out: &mut BytesMut, format: Format, json: &[u8], cursor: &str, cb: &str, retry: bool) {
    match format {
        // A WebSocket's events are framed by `StreamOut` (transport/websocket), never
        // here; the JSON alone if one ever were.
        Format::Ndjson | Format::WebSocket => {
            out.put_slice(json);
            if format == Format::Ndjson {
                out.put_u8(b'\n');
            }
        }
        Format::Iframe => {
            out.put_slice(b"<script>");
            out.put_slice(cb.as_bytes());
            out.put_u8(b'(');
            out.put_slice(json);
            out.put_slice(IFRAME_SUFFIX);
        }
        Format::Sse => {
            if retry {
                use std::fmt::Write;
                let _ = writeln!(out, "retry: {SSE_RETRY_MS}");
            }
            out.put_slice(b"id: ");
            out.put_slice(cursor.as_bytes());
            out.put_slice(b"\ndata: ");
            out.put_slice(json);
            out.put_slice(b"\n\n");
        }
    }
}

/// The bytes that carry one event (any JSON event) to one subscriber. `cursor` is the
/// subscriber's cursor after the event (EventSource `id:`), `cb` the iframe callback.
pub fn frame(format: Format, json: &[u8], cursor: &str, cb: &str, chunked: bool) -> Bytes {
    let mut body = BytesMut::with_capacity(json.len() + cursor.len() + cb.len() + 40);
    put_event(&mut body, format, json, cursor, cb, false);
    framed(body, chunked)
}

/// The iframe document's start, padded past 1 KiB (browsers render nothing of a streamed
/// document before about that much): the same bytes for every iframe stream.
fn iframe_prelude(chunked: bool) -> Bytes {
    static PRELUDE: std::sync::LazyLock<[Bytes; 2]> = std::sync::LazyLock::new(|| {
        let mut body = BytesMut::with_capacity(1200);
        body.put_slice(b"<!DOCTYPE html><html><head><meta charset=\"utf-8\"></head><body>\n<!--");
        body.put_bytes(b' ', 1024);
        body.put_slice(b"-->\n");
        [chunk(&body), body.freeze()]
    });
    PRELUDE[usize::from(!chunked)].clone()
}

/// What a stream sends first: for the iframe its shared prelude, then `hello` (for
/// EventSource, in one block with the `retry:` hint).
pub fn opening(
    format: Format,
    hello: &[u8],
    cursor: &str,
    cb: &str,
    chunked: bool,
    out: &mut Vec<Bytes>,
) {
    if format == Format::Iframe {
        out.push(iframe_prelude(chunked));
    }
    let mut body = BytesMut::with_capacity(hello.len() + cursor.len() + cb.len() + 40);
    put_event(&mut body, format, hello, cursor, cb, true);
    out.push(framed(body, chunked));
}

/// The parts that carry a published message to one subscriber, sharing every byte that
/// other subscribers of the same format receive too. `single` says the subscriber has
/// only this channel, so its EventSource cursor is the channel's own and the whole frame
/// is shared. Unchunked (HTTP/1.0) streams share the JSON and add their framing around it.
#[allow(clippy::too_many_arguments)]
pub fn message_parts(
    format: Format,
    chunked: bool,
    msg: &Message,
    channel: &str,
    single: bool,
    cursor: impl FnOnce() -> String,
    cb: &str,
    out: &mut Vec<Bytes>,
) {
    match (format, chunked) {
        (Format::WebSocket, _) => out.push(msg.json.clone()),
        (Format::Ndjson, true) => out.push(
            msg.ndjson
                .get_or_init(|| frame(Format::Ndjson, &msg.json, "", "", true))
                .clone(),
        ),
        (Format::Ndjson, false) => {
            out.push(msg.json.clone());
            out.push(Bytes::from_static(b"\n"));
        }
        (Format::Iframe, _) => {
            let mut head = BytesMut::with_capacity(cb.len() + 24);
            if chunked {
                put_chunk_head(
                    &mut head,
                    msg.json.len() + cb.len() + 9 + IFRAME_SUFFIX.len(),
                );
            }
            head.put_slice(b"<script>");
            head.put_slice(cb.as_bytes());
            head.put_u8(b'(');
            out.push(head.freeze());
            out.push(msg.json.clone());
            out.push(Bytes::from_static(if chunked {
                IFRAME_SUFFIX_CHUNKED
            } else {
                IFRAME_SUFFIX
            }));
        }
        (Format::Sse, true) if single => out.push(
            msg.sse_single
                .get_or_init(|| {
                    let c = format!("{channel}:{}", msg.seq + 1);
                    frame(Format::Sse, &msg.json, &c, "", true)
                })
                .clone(),
        ),
        (Format::Sse, true) => {
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
        (Format::Sse, false) => {
            let cursor = if single {
                format!("{channel}:{}", msg.seq + 1)
            } else {
                cursor()
            };
            let mut head = BytesMut::with_capacity(cursor.len() + 16);
            head.put_slice(b"id: ");
            head.put_slice(cursor.as_bytes());
            head.put_slice(b"\ndata: ");
            out.push(head.freeze());
            out.push(msg.json.clone());
            out.push(Bytes::from_static(b"\n\n"));
        }
    }
}

/// A heartbeat for `format`: a `noop` event, or an EventSource comment line.
pub fn heartbeat(format: Format, cb: &str, chunked: bool) -> Bytes {
    match (format, chunked) {
        (Format::Sse, true) => Bytes::from_static(b"4\r\n:hb\n\r\n"),
        (Format::Sse, false) => Bytes::from_static(SSE_HEARTBEAT),
        _ => frame(format, event::NOOP, "", cb, chunked),
    }
}

/// What ends a stream's body: the last chunk, or nothing (the close ends it).
pub fn ending(chunked: bool) -> Option<Bytes> {
    chunked.then(|| Bytes::from_static(LAST_CHUNK))
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
        for chunked in [true, false] {
            for (format, single) in [
                (Format::Ndjson, true),
                (Format::Iframe, true),
                (Format::Sse, true),
                (Format::Sse, false),
            ] {
                let mut parts = Vec::new();
                message_parts(
                    format,
                    chunked,
                    &m,
                    "news",
                    single,
                    || "news:42,chat:7".into(),
                    "cb",
                    &mut parts,
                );
                let raw = joined(&parts);
                let body = String::from_utf8(if chunked { dechunk(&raw) } else { raw }).unwrap();
                let expect = match (format, single) {
                    (Format::Ndjson, _) => format!("{json}\n"),
                    (Format::Iframe, _) => format!("<script>cb({json});</script>\n"),
                    (Format::Sse, true) => format!("id: news:42\ndata: {json}\n\n"),
                    (Format::Sse, false) => format!("id: news:42,chat:7\ndata: {json}\n\n"),
                    (Format::WebSocket, _) => unreachable!("framed by StreamOut"),
                };
                assert_eq!(body, expect, "{format:?} chunked={chunked}");
                // The same function for non-message events agrees.
                if format != Format::Sse || single {
                    let f = frame(format, json.as_bytes(), "news:42", "cb", chunked);
                    let f = if chunked { dechunk(&f) } else { f.to_vec() };
                    assert_eq!(String::from_utf8(f).unwrap(), expect);
                }
            }
        }
        for f in [Format::Ndjson, Format::Iframe, Format::Sse] {
            dechunk(&heartbeat(f, "cb", true));
            let mut o = Vec::new();
            opening(f, b"{}", "a:1", "cb", true, &mut o);
            dechunk(&joined(&o));
        }
        let mut o = Vec::new();
        opening(Format::Iframe, b"{}", "", "cb", true, &mut o);
        assert!(dechunk(&joined(&o)).len() >= 1024);
        let mut again = Vec::new();
        opening(Format::Iframe, b"{}", "", "cb", true, &mut again);
        assert_eq!(o[0].as_ptr(), again[0].as_ptr(), "the prelude is shared");
        assert_eq!(ending(true).as_deref(), Some(LAST_CHUNK));
        assert_eq!(ending(false), None);
    }

    /// Every blank-line-terminated EventSource block carries `data:`, so no client turns
    /// a block into an empty message; heartbeats are comment lines inside the next block.
    #[test]
    fn every_sse_block_carries_data() {
        let m = msg();
        let mut o = Vec::new();
        opening(
            Format::Sse,
            b"{\"type\":\"hello\"}",
            "news:41",
            "",
            true,
            &mut o,
        );
        let mut body = dechunk(&joined(&o));
        for _ in 0..3 {
            body.extend(dechunk(&heartbeat(Format::Sse, "", true)));
        }
        body.extend(dechunk(&joined(&single_parts(&m, Format::Sse, true, ""))));
        body.extend(heartbeat(Format::Sse, "", false).iter());
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with("retry: 2000\nid: news:41\ndata: {\"type\":\"hello\"}\n\n"));
        let blocks: Vec<&str> = text.split("\n\n").collect();
        // The last piece is a trailing heartbeat line, not yet a block.
        for b in &blocks[..blocks.len() - 1] {
            assert!(
                b.lines().any(|l| l.starts_with("data: ")),
                "block without data: {b:?}"
            );
        }
        assert_eq!(blocks[blocks.len() - 1], ":hb\n");
    }

    /// The parts of `m` for a subscriber of channel `news` alone.
    fn single_parts(m: &Message, format: Format, chunked: bool, cb: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        message_parts(format, chunked, m, "news", true, String::new, cb, &mut out);
        out
    }

    #[test]
    fn shared_encodings_are_made_once() {
        let m = msg();
        let a = single_parts(&m, Format::Ndjson, true, "");
        let b = single_parts(&m, Format::Ndjson, true, "");
        assert_eq!(a[0].as_ptr(), b[0].as_ptr(), "ndjson chunk is shared");
        let a = single_parts(&m, Format::Iframe, true, "f");
        assert_eq!(a[1].as_ptr(), m.json.as_ptr(), "iframe shares the JSON");
        let a = single_parts(&m, Format::Sse, false, "");
        assert_eq!(
            a[1].as_ptr(),
            m.json.as_ptr(),
            "raw EventSource shares the JSON"
        );
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
