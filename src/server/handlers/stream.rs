//! The streaming transports: `GET /stream` (ndjson), `GET /iframe` (script chunks) and
//! `GET /events` (EventSource). A stream starts with `hello`, replays what its cursor has
//! due, then receives every message as it is published; it gets heartbeats while idle and
//! ends with `reconnect` after `--stream-max-age` (or when a subscriber token it used
//! expires). Heartbeat and end of life share the connection's one timer: it fires at
//! whichever comes first, and writes only move a timestamp, so a busy stream never
//! touches the wheel. The bytes are the transport's (`StreamOut`); this file decides when.
//!
//! A subscriber whose unsent bytes pass `--max-pending-bytes` is sent `error` (as far as
//! its socket takes it) and closed; nobody else waits for it.

use bytes::Bytes;

use crate::engine::{Read, Reply, Ticket};
use crate::event;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::{Head, Method};
use crate::http::response::{self, Cors};
use crate::http::HttpError;
use crate::hub::{Channel, Follower, Sub, Subs};
use crate::server::conn::{Conn, Phase, Stream};
use crate::server::fanout::queue_message;
use crate::server::waiting::{Call, StreamSetup, Waiting};
use crate::server::{after, ms, Server};
use crate::subscription::{self, ClientId};
use crate::transport::{websocket, Format, Input, StreamRequest};

impl Server {
    /// Handles `GET /stream`, `GET /iframe` and `GET /events` (and `HEAD`: checked,
    /// answered with the head alone, nothing subscribed).
    pub(in crate::server) fn handle_stream(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        q: &Query,
        cors: Cors,
        format: Format,
    ) {
        let result = if head.method == Method::Head && format == Format::WebSocket {
            // What the GET would get without its upgrade: 426 (or 400).
            ws_handshake(head, cors)
                .and_then(|_| Err(HttpError::new(400, "a WebSocket handshake is a GET")))
        } else if head.method == Method::Head {
            StreamRequest::parse(format, head.http10, q, head.last_event_id.as_deref(), None)
                .and_then(|_| self.check_subscribe_params(q, false))
                .map(|_| {
                    let h = response::head_without_length(
                        format.content_type(),
                        head.keep_alive,
                        self.cors.lines(cors),
                        "X-Accel-Buffering: no\r\n",
                    );
                    self.respond(key, 200, [h], head.keep_alive);
                })
        } else {
            self.try_stream(key, head, q, cors, format)
        };
        if let Err(e) = result {
            let extra = match format {
                Format::WebSocket => ws_refusal_headers(&e),
                _ => "",
            };
            self.respond_error(key, head, e, cors, extra);
        }
    }

    fn try_stream(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        q: &Query,
        cors: Cors,
        format: Format,
    ) -> Result<(), HttpError> {
        let ws_key = match format {
            Format::WebSocket => Some(ws_handshake(head, cors)?),
            _ => None,
        };
        let mut wanted = subscription::parse_channels(q, self.hub.max_channels())?;
        let names: Vec<&str> = wanted.iter().map(|w| w.channel.as_str()).collect();
        let expires = self.authorize(q, &names)?;
        let request = StreamRequest::parse(
            format,
            head.http10,
            q,
            head.last_event_id.as_deref(),
            ws_key,
        )?;
        for (name, seq) in request.resume {
            if let Some(w) = wanted.iter_mut().find(|w| w.channel == name) {
                w.seq = Some(seq);
            }
        }
        if self.conns.get(key).is_some_and(|c| c.peer_closed) {
            // The client hung up right after asking: nobody to stream to.
            self.close(key);
            return Ok(());
        }
        let (engine, now) = (&mut *self.engine, self.now);
        let names: Vec<&str> = wanted.iter().map(|w| w.channel.as_str()).collect();
        let keys = self.hub.open(engine, &names, now);
        let client = match ClientId::random() {
            Ok(c) => c,
            Err(e) => {
                self.hub.release_unused(engine, keys, now);
                return Err(e);
            }
        };
        let mut reads = Vec::with_capacity(keys.len());
        let mut tickets = Vec::new();
        let mut subs = Vec::with_capacity(keys.len());
        for (w, &ch) in wanted.iter().zip(&keys) {
            match self.hub.read(engine, ch, w.seq, now) {
                None => continue,
                Some(Reply::Now(read)) => {
                    subs.push(Sub::detached(ch, read.start.seq));
                    reads.push((Some(read), true));
                }
                Some(Reply::Later(t)) => {
                    tickets.push((t, reads.len()));
                    subs.push(Sub::detached(ch, 0));
                    reads.push((None, false));
                }
            }
        }
        self.hub.attach(key, &mut subs);
        let max_age = if request.out.ages() {
            after(now.ms, self.config.stream_max_age)
        } else {
            u64::MAX
        };
        let end_ms = max_age.min(now.ms_of_unix(expires));
        let setup = StreamSetup {
            follower: Follower {
                client,
                subs: Subs::from_vec(subs),
            },
            out: request.out,
            end_ms,
            reads,
            tickets,
        };
        if setup.tickets.is_empty() {
            self.open_stream(key, setup, cors, false);
            return Ok(());
        }
        // The history reads are in flight: live messages are kept for this stream until
        // they are answered, then merged with them.
        for sub in setup.follower.subs.as_slice() {
            self.hub.begin_sync(key, sub.channel);
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return Ok(());
        };
        let tickets: Vec<Ticket> = setup.tickets.iter().map(|t| t.0).collect();
        conn.phase = Phase::Waiting(Box::new(Waiting {
            ticket: tickets[0],
            deadline: after(now.ms, self.config.engine_timeout),
            keep_alive: head.keep_alive,
            cors,
            call: Call::Stream(Box::new(setup)),
        }));
        for t in tickets {
            self.waiting.insert(t, key);
        }
        self.arm(key);
        Ok(())
    }

    /// Opens a stream whose reads are all answered: head, `hello` with the cursor at
    /// the start of each read, then each channel's catch-up (merged with the live
    /// messages kept while a read was in flight, with `synced`).
    pub(in crate::server) fn open_stream(
        &mut self,
        key: Key<Conn>,
        setup: StreamSetup,
        cors: Cors,
        synced: bool,
    ) {
        let StreamSetup {
            mut follower,
            mut out,
            end_ms,
            reads,
            ..
        } = setup;
        let (engine, now) = (&mut *self.engine, self.now);
        // A channel without a log (gone meanwhile) is not followed.
        let mut kept = Vec::with_capacity(reads.len());
        let mut gone = Vec::new();
        for (sub, (read, counted)) in follower.subs.as_mut_slice().iter_mut().zip(reads) {
            match read {
                Some(read) => {
                    sub.next = read.start.seq;
                    kept.push((sub.channel, read, counted));
                }
                None => gone.push(*sub),
            }
        }
        for sub in &gone {
            follower.subs.remove(sub.channel);
            self.hub.end_sync(key, sub.channel);
        }
        self.hub.leave(engine, key, &gone, now);
        let cursor = self.hub.cursor(follower.subs.as_slice());
        let id = follower.client.to_string();
        let stream_head = out.head(self.cors.lines(cors), &id);
        out.headed();
        out.heard(now.ms);
        let mut opening = Vec::with_capacity(2);
        out.opening(&event::hello(&id, &cursor), &cursor, &mut opening);
        let client = follower.client;
        let Some(conn) = self.conns.get_mut(key) else {
            let subs = follower.subs.as_slice().to_vec();
            self.hub.leave(&mut *self.engine, key, &subs, now);
            return;
        };
        conn.queue(stream_head);
        for part in opening {
            conn.queue(part);
        }
        let stream = Stream {
            follower,
            out,
            end_ms,
            last_write_ms: now.ms,
        };
        let ws = stream.out.input() == Input::WebSocket;
        self.kinds.swap(conn, Phase::Streaming(stream));
        if !ws {
            conn.clear_input();
        }
        conn.shrink();
        self.hub.register(client, key);
        if self.conns.get(key).is_some_and(|c| c.peer_closed) {
            // Its client hung up while the reads were in flight.
            return self.close(key);
        }
        for (ch, read, counted) in kept {
            if synced {
                self.stream_merge(key, ch, &read, counted);
            } else {
                self.stream_catch_up(key, ch, &read);
            }
        }
        self.arm(key);
        self.flush(key);
        if ws {
            // Frames that came right behind the handshake.
            self.ws_input(key);
        }
    }

    /// Queues on a stream what `read` has due on channel `ch`: the notice, then every
    /// buffered message from its start, moving the stream's cursor. The replay does not
    /// count against `--max-pending-bytes` (it shares the channel's buffer; a client
    /// resuming with a large backlog must not be dropped before it could read it).
    pub(in crate::server) fn stream_catch_up(
        &mut self,
        key: Key<Conn>,
        ch: Key<Channel>,
        read: &Read,
    ) {
        let Some(name) = self.hub.name(ch).cloned() else {
            return;
        };
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let before = conn.pending();
        if let Some(notice) = &read.notice {
            let Phase::Streaming(st) = &conn.phase else {
                return;
            };
            let f = st
                .out
                .event(notice, &self.hub.cursor(st.follower.subs.as_slice()));
            conn.queue(f);
        }
        for msg in &read.messages {
            let Phase::Streaming(st) = &mut conn.phase else {
                return;
            };
            let Some(sub) = st.follower.subs.find_mut(ch) else {
                return;
            };
            if msg.seq < sub.next {
                continue;
            }
            sub.next = msg.seq + 1;
            queue_message(conn, &self.hub, &name, msg, self.now.ms);
        }
        let replay = conn.pending() - before;
        conn.add_grace(replay);
    }

    /// A stream fell more than `--max-pending-bytes` behind: it is sent `error` where
    /// its socket still takes it, and closed.
    pub(in crate::server) fn drop_slow_consumer(&mut self, key: Key<Conn>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        self.stats.slow_consumers += 1;
        if let Phase::Streaming(st) = &conn.phase {
            let e = event::error_event("too slow: output buffer full");
            // The `id:` of an EventSource frame must stay the cursor, or the browser
            // would resume from nowhere.
            let f = st
                .out
                .event(&e, &self.hub.cursor(st.follower.subs.as_slice()));
            let ws = st.out.input() == Input::WebSocket;
            conn.queue(f);
            if ws {
                use crate::transport::websocket::{close, encode};
                conn.queue(encode::close(close::POLICY, "too slow"));
            }
            // Where the socket still takes it, the client learns why; a failure here
            // changes nothing, the connection closes anyway.
            let _ = conn.flush(self.now.ms);
        }
        log::debug!("closing a slow consumer ({} bytes unsent)", conn.pending());
        self.close(key);
    }

    /// The stream's timer: a heartbeat, or the end of its life.
    pub(in crate::server) fn stream_tick(&mut self, key: Key<Conn>) {
        let hb = ms(self.config.heartbeat);
        let now = self.now.ms;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let idle = conn.pending() == 0;
        let Phase::Streaming(st) = &mut conn.phase else {
            return;
        };
        if now >= st.end_ms {
            let cursor = self.hub.cursor(st.follower.subs.as_slice());
            // A WebSocket has no maximum age: its end is a token's expiry.
            let last = (!st.out.ages())
                .then(|| websocket::encode::close(websocket::close::POLICY, "token expired"));
            return self.end_stream_with(key, &[event::reconnect(&cursor)], last);
        }
        if idle && now >= st.last_write_ms.saturating_add(hb) {
            let Some(f) = st.out.heartbeat_due(now, hb) else {
                // A WebSocket peer silent through two pings is gone.
                log::debug!("closing a WebSocket that answered no ping");
                return self.close(key);
            };
            st.last_write_ms = now;
            conn.queue(f);
        }
        self.arm(key);
        self.flush(key);
    }

    /// Ends a stream with `events` (each framed in its format) and the end of its body.
    pub(in crate::server) fn end_stream(&mut self, key: Key<Conn>, events: &[Bytes]) {
        self.end_stream_with(key, events, None);
    }

    /// `end_stream`, with `last` (a WebSocket close frame) instead of the transport's
    /// usual ending.
    pub(in crate::server) fn end_stream_with(
        &mut self,
        key: Key<Conn>,
        events: &[Bytes],
        last: Option<Bytes>,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Streaming(st) = &conn.phase else {
            return;
        };
        // A WebSocket's close frame is its half of the closing handshake: what the
        // client still sends (its own close, the rest of a message) is read and dropped
        // for a while, so it reads our close rather than a reset.
        let linger = st.out.input() == Input::WebSocket;
        let Phase::Streaming(st) = self.kinds.swap(conn, Phase::Closing { linger }) else {
            return;
        };
        let subs = st.follower.subs.as_slice();
        let cursor = self.hub.cursor(subs);
        for e in events {
            conn.queue(st.out.event(e, &cursor));
        }
        if let Some(end) = last.or_else(|| st.out.ending()) {
            conn.queue(end);
        }
        self.hub.leave(&mut *self.engine, key, subs, self.now);
        self.hub.unregister(&st.follower.client);
        self.ws_forget(key);
        self.arm(key);
        self.flush(key);
    }
}

/// The headers a refused WebSocket upgrade carries: a 426 names the version this server
/// speaks.
pub(in crate::server) fn ws_refusal_headers(e: &HttpError) -> &'static str {
    if e.status == 426 {
        "Sec-WebSocket-Version: 13\r\nUpgrade: websocket\r\n"
    } else {
        ""
    }
}

/// Checks a WebSocket opening handshake: GET over HTTP/1.1 with `Upgrade: websocket`,
/// the `upgrade` token in `Connection`, version 13 and a key (426/400 otherwise), and
/// an `Origin`, if sent, that `--allow-origin` allows (403 otherwise: browsers apply no
/// CORS to WebSockets, so any site could subscribe with its visitors' cookies). Returns
/// the key the 101 answers.
pub(in crate::server) fn ws_handshake(head: &Head, cors: Cors) -> Result<&str, HttpError> {
    use crate::transport::websocket::handshake;
    let Some(h) = head.websocket.as_deref() else {
        return Err(HttpError::new(426, "WebSocket upgrade required"));
    };
    if head.method != Method::Get || head.http10 {
        return Err(HttpError::new(
            400,
            "a WebSocket handshake is a GET over HTTP/1.1",
        ));
    }
    let req = handshake::Request {
        upgrade: h[0].as_deref(),
        connection: h[1].as_deref(),
        version: h[2].as_deref(),
        key: h[3].as_deref(),
    };
    handshake::check(&req).map_err(|r| HttpError::new(r.status, r.message))?;
    if head.origin.is_some() && cors == Cors::Omit {
        return Err(HttpError::new(403, "origin not allowed"));
    }
    Ok(h[3].as_deref().unwrap_or(""))
}
