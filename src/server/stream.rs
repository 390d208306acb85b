//! The streaming transports: `GET /stream` (ndjson), `GET /iframe` (script chunks) and
//! `GET /events` (EventSource). A stream starts with `hello`, replays what its cursor has
//! due, then receives every message as it is published; it gets heartbeats while idle and
//! ends with `reconnect` after `--stream-max-age` (or when a subscriber token it used
//! expires). Heartbeat and end of life share the connection's one timer: it fires at
//! whichever comes first, and writes only move a timestamp, so a busy stream never
//! touches the wheel. An HTTP/1.0 client gets the same bytes unchunked, ended by the close.
//!
//! A subscriber whose unsent bytes pass `--max-pending-bytes` is sent `error` (as far as
//! its socket takes it) and closed; nobody else waits for it.

use bytes::Bytes;

use super::clients::ClientRef;
use super::conn::{Conn, Phase, Stream, Sub, Subs};
use super::{after, ms, Server};
use crate::channel::{Message, Start};
use crate::channels::Channels;
use crate::event;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::{Head, Method};
use crate::http::response::{self, Cors};
use crate::http::HttpError;
use crate::subscription::{self, ClientId};
use crate::transport::{self, Format};

/// The cursor of a subscriber: `news:9,chat:3`.
pub(super) fn cursor_of(channels: &Channels, subs: &[Sub]) -> String {
    let mut out = String::new();
    for s in subs {
        if let Some(ch) = channels.get(s.channel) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(ch.name());
            out.push(':');
            out.push_str(&s.next.to_string());
        }
    }
    out
}

/// Queues a published message on a stream that wants it. Returns false if the stream
/// already had it (or does not receive that channel).
pub(super) fn deliver(
    conn: &mut Conn,
    channels: &Channels,
    ck: Key,
    msg: &Message,
    now: u64,
) -> bool {
    let Phase::Streaming(st) = &mut conn.phase else {
        return false;
    };
    let single = st.subs.as_slice().len() == 1;
    let Some(sub) = st.subs.find_mut(ck) else {
        return false;
    };
    if msg.seq < sub.next {
        return false;
    }
    debug_assert_eq!(msg.seq, sub.next, "stream skipped seqs on channel {ck:?}");
    sub.next = msg.seq + 1;
    let Some(ch) = channels.get(ck) else {
        return false;
    };
    let mut parts = Vec::with_capacity(3);
    let subs = st.subs.as_slice();
    transport::message_parts(
        st.format,
        st.chunked,
        msg,
        ch.name(),
        single,
        || cursor_of(channels, subs),
        &st.cb,
        &mut parts,
    );
    st.last_write_ms = now;
    for p in parts {
        conn.queue(p);
    }
    true
}

impl Server {
    /// Handles `GET /stream`, `GET /iframe` and `GET /events` (and `HEAD`: checked,
    /// answered with the head alone, nothing subscribed).
    pub(super) fn handle_stream(
        &mut self,
        key: Key,
        head: &Head,
        q: &Query,
        cors: Cors,
        format: Format,
    ) {
        let result = if head.method == Method::Head {
            let cb_needed = format == Format::Iframe && q.get("cb").is_none();
            if cb_needed {
                Err(HttpError::new(400, "missing cb"))
            } else {
                self.check_subscribe_params(q, false).map(|_| {
                    let h = response::head_without_length(
                        format.content_type(),
                        head.keep_alive,
                        self.cors.lines(cors),
                        "X-Accel-Buffering: no\r\n",
                    );
                    self.respond(key, [h], head.keep_alive);
                })
            }
        } else {
            self.try_stream(key, head, q, cors, format)
        };
        if let Err(e) = result {
            self.respond_error(key, head, e, cors, "");
        }
    }

    fn try_stream(
        &mut self,
        key: Key,
        head: &Head,
        q: &Query,
        cors: Cors,
        format: Format,
    ) -> Result<(), HttpError> {
        let max = self.config.max_channels_per_subscriber as usize;
        let mut wanted = subscription::parse_channels(q, max)?;
        let names: Vec<&str> = wanted.iter().map(|w| w.channel.as_str()).collect();
        let expires = self.authorize(q, &names)?;
        let cb = subscription::parse_callback(q)?;
        let cb: Box<str> = match (format, cb) {
            (Format::Iframe, None) => return Err(HttpError::new(400, "missing cb")),
            (Format::Iframe, Some(cb)) => cb,
            _ => "".into(),
        };
        if format == Format::Sse {
            // The browser's resume point overrides the seqs of the URL; polyfills that
            // cannot set the header send it as `lastEventId=` (the header wins).
            let last = head.last_event_id.as_deref().or(q.get("lastEventId"));
            if let Some(last) = last {
                for (name, seq) in transport::parse_cursor(last) {
                    if let Some(w) = wanted.iter_mut().find(|w| w.channel == name) {
                        w.seq = Some(seq);
                    }
                }
            }
        }
        if self.conns.get(key).is_some_and(|c| c.peer_closed) {
            // The client hung up right after asking: nobody to stream to.
            self.close(key);
            return Ok(());
        }
        let keys = self.open_channels(wanted.iter().map(|w| w.channel.as_str()), false)?;
        let client = match ClientId::random() {
            Ok(c) => c,
            Err(e) => {
                self.release_unused(keys);
                return Err(e);
            }
        };
        let mut starts = Vec::with_capacity(keys.len());
        let mut subs = Vec::with_capacity(keys.len());
        for (w, &ck) in wanted.iter().zip(&keys) {
            if let Some((sub, start)) = self.join_channel(key, ck, w.seq) {
                subs.push(sub);
                starts.push((ck, start));
            }
        }
        let cursor = cursor_of(&self.channels, &subs);
        let chunked = !head.http10;
        let end_ms =
            after(self.now, self.config.stream_max_age).min(self.reactor_ms_of_unix(expires));
        let extra = format!("X-Comet-Client: {client}\r\n");
        let stream_head = response::stream_head(
            format.content_type(),
            chunked,
            self.cors.lines(cors),
            &extra,
        );
        let hello = event::hello(&client.to_string(), &cursor);
        let mut opening = Vec::with_capacity(2);
        transport::opening(format, &hello, &cursor, &cb, chunked, &mut opening);
        let Some(conn) = self.conns.get_mut(key) else {
            self.leave_channels(&subs);
            return Ok(());
        };
        conn.queue(stream_head);
        for part in opening {
            conn.queue(part);
        }
        self.kinds.swap(
            conn,
            Phase::Streaming(Stream {
                format,
                chunked,
                subs: Subs::from_vec(subs),
                client,
                cb,
                end_ms,
                last_write_ms: self.now,
            }),
        );
        conn.clear_input();
        conn.shrink();
        self.clients.insert(client, ClientRef::Conn(key));
        for (ck, start) in starts {
            self.stream_catch_up(key, ck, start);
        }
        self.arm(key);
        self.flush(key);
        Ok(())
    }

    /// Adds connection `conn` to channel `ck`'s subscribers at cursor `seq` (expired
    /// messages dropped first). Returns the membership and where delivery starts.
    pub(super) fn join_channel(
        &mut self,
        conn: Key,
        ck: Key,
        seq: Option<u64>,
    ) -> Option<(Sub, Start)> {
        let ttl = ms(self.config.message_ttl);
        let ch = self.channels.get_mut(ck)?;
        self.stats.evicted += ch.expire_messages(self.now, ttl) as u64;
        let start = ch.start(seq);
        let slot = ch.subs.insert(conn) as u32;
        let sub = Sub {
            channel: ck,
            slot,
            next: start.seq,
        };
        Some((sub, start))
    }

    /// Queues on a stream what `start` has due on channel `ck`: the notice, then every
    /// buffered message from `start.seq`. The replay does not count against
    /// `--max-pending-bytes` (it shares the channel's buffer; a client resuming with a
    /// large backlog must not be dropped before it could read it).
    pub(super) fn stream_catch_up(&mut self, key: Key, ck: Key, start: Start) {
        let Some(ch) = self.channels.get(ck) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let before = conn.pending();
        if let Some(n) = start.notice {
            let Phase::Streaming(st) = &mut conn.phase else {
                return;
            };
            let cursor = cursor_of(&self.channels, st.subs.as_slice());
            let f = transport::frame(st.format, &ch.notice_event(n), &cursor, &st.cb, st.chunked);
            conn.queue(f);
        }
        for msg in ch.messages_from(start.seq) {
            if deliver(conn, &self.channels, ck, msg, self.now) {
                self.stats.delivered += 1;
            }
        }
        let replay = conn.pending() - before;
        conn.add_grace(replay);
    }

    /// A stream fell more than `--max-pending-bytes` behind: it is sent `error` where
    /// its socket still takes it, and closed.
    pub(super) fn drop_slow_consumer(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        self.stats.slow_consumers += 1;
        if let Phase::Streaming(st) = &conn.phase {
            let e = event::error_event("too slow: output buffer full");
            // The `id:` of an EventSource frame must stay the cursor, or the browser
            // would resume from nowhere.
            let cursor = cursor_of(&self.channels, st.subs.as_slice());
            let f = transport::frame(st.format, &e, &cursor, &st.cb, st.chunked);
            conn.queue(f);
            // Where the socket still takes it, the client learns why.
            let _ = conn.flush(self.now);
        }
        log::debug!("closing a slow consumer ({} bytes unsent)", conn.pending());
        self.close(key);
    }

    /// The stream's timer: a heartbeat, or the end of its life.
    pub(super) fn stream_tick(&mut self, key: Key) {
        let hb = ms(self.config.heartbeat);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let idle = conn.pending() == 0;
        let Phase::Streaming(st) = &mut conn.phase else {
            return;
        };
        if self.now >= st.end_ms {
            let cursor = cursor_of(&self.channels, st.subs.as_slice());
            return self.end_stream(key, &[event::reconnect(&cursor)]);
        }
        if idle && self.now >= st.last_write_ms.saturating_add(hb) {
            let f = transport::heartbeat(st.format, &st.cb, st.chunked);
            st.last_write_ms = self.now;
            conn.queue(f);
        }
        self.arm(key);
        self.flush(key);
    }

    /// Ends a stream with `events` (each framed in its format) and the end of its body.
    pub(super) fn end_stream(&mut self, key: Key, events: &[Bytes]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !matches!(conn.phase, Phase::Streaming(_)) {
            return;
        }
        let Phase::Streaming(st) = self.kinds.swap(conn, Phase::Closing { linger: false }) else {
            return;
        };
        let cursor = cursor_of(&self.channels, st.subs.as_slice());
        for e in events {
            conn.queue(transport::frame(st.format, e, &cursor, &st.cb, st.chunked));
        }
        if let Some(end) = transport::ending(st.chunked) {
            conn.queue(end);
        }
        self.leave_channels(st.subs.as_slice());
        self.clients.remove(&st.client);
        self.arm(key);
        self.flush(key);
    }
}
