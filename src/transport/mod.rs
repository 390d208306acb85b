//! The transport seam: how events become bytes on a subscriber's connection. A long-poll
//! is answered once (`poll`); a stream (`stream`: ndjson, iframe, EventSource) has an
//! opening, a frame per event, heartbeats, an end, and a rule for what the client sends
//! on it. [`StreamOut`] is a stream's whole transport state; the reactor keeps it in the
//! connection and calls it, never matching on the format itself.
//!
//! A new stream transport (WebSocket next: frames instead of chunks, pings as heartbeats,
//! commands read from the client) is one more [`Format`] arm here and one more file
//! beside `stream.rs`. Transports build bytes only: they touch no socket, no subscriber
//! list and no engine.

pub mod poll;
pub mod stream;
pub mod websocket;

use bytes::Bytes;

use crate::engine::Message;
use crate::http::query::Query;
use crate::http::response::{self, ctype};
use crate::http::HttpError;
use crate::subscription;
pub use stream::parse_cursor;

/// A streaming transport.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `application/x-ndjson`, one event per line.
    Ndjson,
    /// `text/html`, one `<script>CB(event);</script>` per event.
    Iframe,
    /// `text/event-stream`.
    Sse,
    /// WebSocket (RFC 6455): one text frame per event, pings as heartbeats.
    WebSocket,
}

impl Format {
    /// Every stream format, in the order `/stats` lists them.
    pub const ALL: [Format; 4] = [
        Format::Ndjson,
        Format::Iframe,
        Format::Sse,
        Format::WebSocket,
    ];

    /// Its place in `ALL` (per-format counters are arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The endpoint that serves it, which is also its name in `/stats` and `/metrics`
    /// without the slash.
    pub fn path(self) -> &'static str {
        match self {
            Format::Ndjson => "/stream",
            Format::Iframe => "/iframe",
            Format::Sse => "/events",
            Format::WebSocket => "/ws",
        }
    }

    /// The format served at `path`.
    pub fn from_path(path: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.path() == path)
    }

    /// The response's content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Ndjson => ctype::NDJSON,
            Format::Iframe => ctype::HTML,
            Format::Sse => ctype::SSE,
            // Never sent: a WebSocket's body is frames after a 101.
            Format::WebSocket => ctype::JSON,
        }
    }
}

/// What a stream request asks of its transport, checked: the transport's state, and
/// the cursors the request carries in a transport-specific way (EventSource's
/// `Last-Event-ID`), which override the `seq=` of the URL.
#[derive(Debug)]
pub struct StreamRequest<'a> {
    /// The stream's transport state.
    pub out: StreamOut,
    /// `(channel, seq)` pairs to resume from.
    pub resume: Vec<(&'a str, u64)>,
}

impl<'a> StreamRequest<'a> {
    /// Checks what a request for a stream of `format` carries for its transport: the
    /// iframe's callback `cb=` (required), EventSource's resume point (the
    /// `Last-Event-ID` header, or `lastEventId=` from polyfills that cannot set it; the
    /// header wins).
    pub fn parse(
        format: Format,
        http10: bool,
        q: &'a Query,
        last_event_id: Option<&'a str>,
        ws_key: Option<&str>,
    ) -> Result<StreamRequest<'a>, HttpError> {
        let cb = subscription::parse_callback(q)?;
        let cb: Box<str> = match (format, cb) {
            (Format::Iframe, None) => return Err(HttpError::new(400, "missing cb")),
            (Format::Iframe, Some(cb)) => cb,
            // The handshake's key, checked by the caller: the 101 answers it.
            (Format::WebSocket, _) => ws_key.unwrap_or("").into(),
            _ => "".into(),
        };
        let resume = match format {
            Format::Sse => last_event_id
                .or(q.get("lastEventId"))
                .map(parse_cursor)
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        Ok(StreamRequest {
            out: StreamOut::new(format, http10, cb),
            resume,
        })
    }
}

/// What the reactor does with bytes a client sends on an open stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Input {
    /// Read and drop them (HTTP streams take no input after the request; reading keeps
    /// a client that is still sending from seeing a reset).
    Discard,
    /// WebSocket frames: parsed (`websocket::frame::Parser`) and acted on.
    WebSocket,
}

/// A stream's transport state: its format, its framing and, for the iframe, the
/// callback. 24 bytes, kept in the connection.
#[derive(Debug)]
pub struct StreamOut {
    /// The callback of `/iframe`, the handshake key of `/ws` (empty for the others).
    cb: Box<str>,
    /// A WebSocket's frame parser (8 bytes; idle for the other formats).
    pub parser: websocket::Parser,
    /// Its wire format.
    format: Format,
    /// Chunked body (HTTP/1.1), or raw until the close (HTTP/1.0).
    chunked: bool,
    /// A WebSocket's pings sent since the peer last sent a frame (liveness).
    unanswered: u8,
    /// The test-only echo endpoint (`--ws-echo`): messages are echoed, not commands.
    echo: bool,
}

impl StreamOut {
    /// A stream of `format`; `http10` clients get an unchunked body.
    pub fn new(format: Format, http10: bool, cb: Box<str>) -> StreamOut {
        StreamOut {
            cb,
            parser: websocket::Parser::new(),
            format,
            chunked: !http10 && format != Format::WebSocket,
            unanswered: 0,
            echo: false,
        }
    }

    /// The WebSocket of the test-only echo endpoint (`--ws-echo`), answering the
    /// handshake `key`.
    pub fn ws_echo(key: Box<str>) -> StreamOut {
        StreamOut {
            echo: true,
            ..StreamOut::new(Format::WebSocket, false, key)
        }
    }

    /// Whether it echoes the messages it receives (`--ws-echo`).
    pub fn is_echo(&self) -> bool {
        self.echo
    }

    /// Heartbeats go out every `--heartbeat` even while messages flow (WebSocket pings,
    /// which also tell whether the peer is alive), not only after a silence.
    pub fn pings_on_schedule(&self) -> bool {
        self.format == Format::WebSocket
    }

    /// The peer sent a frame: it is alive.
    pub fn heard(&mut self) {
        self.unanswered = 0;
    }

    /// The heartbeat is due: the frame to send, or `None` when the peer has answered
    /// none of the last two (a WebSocket peer that sends nothing, not even a pong, is
    /// gone; HTTP streams have no way to answer, so this holds only for WebSockets).
    pub fn heartbeat_due(&mut self) -> Option<Bytes> {
        if self.format == Format::WebSocket {
            if self.unanswered >= 2 {
                return None;
            }
            self.unanswered += 1;
        }
        Some(self.heartbeat())
    }

    /// Whether `--stream-max-age` ends it (WebSockets last until their client or a
    /// token ends them).
    pub fn ages(&self) -> bool {
        self.format != Format::WebSocket
    }

    /// Its wire format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The response head, with the client id and the CORS lines the request earned.
    pub fn head(&self, cors: &[u8], client: &str) -> Bytes {
        let extra = format!("X-Comet-Client: {client}\r\n");
        if self.format == Format::WebSocket {
            return websocket::handshake::accept_key(&self.cb).response(&extra);
        }
        response::stream_head(self.format.content_type(), self.chunked, cors, &extra)
    }

    /// The head is written: what only it needed goes (a WebSocket's handshake key).
    pub fn headed(&mut self) {
        if self.format == Format::WebSocket {
            self.cb = Box::default();
        }
    }

    /// What the stream sends first: `hello`, with whatever the format needs before it.
    pub fn opening(&self, hello: &[u8], cursor: &str, out: &mut Vec<Bytes>) {
        if self.format == Format::WebSocket {
            return out.push(websocket::encode::text(hello));
        }
        stream::opening(self.format, hello, cursor, &self.cb, self.chunked, out);
    }

    /// One event (any JSON event but a published message), framed; `cursor` is the
    /// subscriber's cursor after it.
    pub fn event(&self, json: &[u8], cursor: &str) -> Bytes {
        if self.format == Format::WebSocket {
            return websocket::encode::text(json);
        }
        stream::frame(self.format, json, cursor, &self.cb, self.chunked)
    }

    /// A published message, sharing every byte other subscribers get too. `single`: the
    /// subscriber follows only `channel`.
    pub fn message(
        &self,
        msg: &Message,
        channel: &str,
        single: bool,
        cursor: impl FnOnce() -> String,
        out: &mut Vec<Bytes>,
    ) {
        if self.format == Format::WebSocket {
            let frame = msg.ws.get_or_init(|| websocket::encode::text(&msg.json));
            return out.push(frame.clone());
        }
        stream::message_parts(
            self.format,
            self.chunked,
            msg,
            channel,
            single,
            cursor,
            &self.cb,
            out,
        );
    }

    /// A heartbeat for an idle stream.
    pub fn heartbeat(&self) -> Bytes {
        if self.format == Format::WebSocket {
            return websocket::encode::heartbeat();
        }
        stream::heartbeat(self.format, &self.cb, self.chunked)
    }

    /// What ends the body, if anything.
    pub fn ending(&self) -> Option<Bytes> {
        if self.format == Format::WebSocket {
            return Some(websocket::encode::close(websocket::close::GOING_AWAY, ""));
        }
        stream::ending(self.chunked)
    }

    /// What to do with bytes the client sends.
    pub fn input(&self) -> Input {
        match self.format {
            Format::Ndjson | Format::Iframe | Format::Sse => Input::Discard,
            Format::WebSocket => Input::WebSocket,
        }
    }
}
