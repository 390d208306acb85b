//! The streaming transports: `GET /stream` (ndjson), `GET /iframe` (script chunks) and
//! `GET /events` (EventSource). A stream starts with `hello`, replays what its cursor has
//! due, then receives every message as it is published; it gets heartbeats while idle and
//! ends with `reconnect` after `--stream-max-age`. Heartbeat and end of life share the
//! connection's one timer: it fires at whichever comes first, and writes only move a
//! timestamp, so a busy stream never touches the wheel.
//!
//! A subscriber whose unsent bytes pass `--max-pending-bytes` is sent `error` (as far as
//! its socket takes it) and closed; nobody else waits for it.

use bytes::Bytes;

use super::clients::ClientRef;
use super::conn::{Conn, Phase, Stream, Sub, Subs};
use super::{ms, Server};
use crate::channel::{Message, Start};
use crate::channels::Channels;
use crate::event;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::Head;
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
    /// Handles `GET /stream`, `GET /iframe` and `GET /events`.
    pub(super) fn handle_stream(
        &mut self,
        key: Key,
        head: &Head,
        q: &Query,
        cors: Cors,
        format: Format,
    ) {
        if let Err(e) = self.try_stream(key, head, q, &cors, format) {
            self.respond_error(key, head, e, &cors, "");
        }
    }

    fn try_stream(
        &mut self,
        key: Key,
        head: &Head,
        q: &Query,
        cors: &Cors,
        format: Format,
    ) -> Result<(), HttpError> {
        let mut wanted = subscription::parse_channels(q, self.config.max_channels_per_subscriber)?;
        let names: Vec<&str> = wanted.iter().map(|w| w.channel.as_str()).collect();
        self.authorize(q, &names)?;
        let cb = subscription::parse_callback(q)?;
        let cb: Box<str> = match (format, cb) {
            (Format::Iframe, None) => return Err(HttpError::new(400, "missing cb")),
            (Format::Iframe, Some(cb)) => cb,
            _ => "".into(),
        };
        if format == Format::Sse {
            // The browser's resume point overrides the seqs of the URL.
            if let Some(last) = head.last_event_id.as_deref() {
                for (name, seq) in transport::parse_cursor(last) {
                    if let Some(w) = wanted.iter_mut().find(|w| w.channel == name) {
                        w.seq = Some(seq);
                    }
                }
            }
        }
        let keys = self.open_channels(wanted.iter().map(|w| w.channel.as_str()))?;
        let client = ClientId::random()?;
        let mut starts = Vec::with_capacity(keys.len());
        let mut subs = Vec::with_capacity(keys.len());
        for (w, &ck) in wanted.iter().zip(&keys) {
            if let Some((sub, start)) = self.join_channel(key, ck, w.seq) {
                subs.push(sub);
                starts.push((ck, start));
            }
        }
        let cursor = cursor_of(&self.channels, &subs);
        let Some(conn) = self.conns.get_mut(key) else {
            self.leave_channels(&subs);
            return Ok(());
        };
        let extra = format!("X-Comet-Client: {client}\r\n");
        conn.queue(response::stream_head(format.content_type(), cors, &extra));
        if let Some(p) = transport::prelude(format) {
            conn.queue(p);
        }
        let hello = event::hello(&client.to_string(), &cursor);
        conn.queue(transport::frame(format, &hello, &cursor, &cb));
        conn.phase = Phase::Streaming(Stream {
            format,
            subs: Subs::from_vec(subs),
            client,
            cb,
            started_ms: self.now,
            last_write_ms: self.now,
        });
        conn.clear_input();
        conn.shrink();
        self.clients.insert(client, ClientRef::Conn(key));
        for (ck, start) in starts {
            self.stream_catch_up(key, ck, start);
        }
        self.arm_stream_timer(key);
        self.flush_stream(key);
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
    /// buffered message from `start.seq`.
    pub(super) fn stream_catch_up(&mut self, key: Key, ck: Key, start: Start) {
        let Some(ch) = self.channels.get(ck) else {
            return;
        };
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(n) = start.notice {
            let Phase::Streaming(st) = &mut conn.phase else {
                return;
            };
            let cursor = cursor_of(&self.channels, st.subs.as_slice());
            let f = transport::frame(st.format, &ch.notice_event(n), &cursor, &st.cb);
            conn.queue(f);
        }
        for msg in ch.messages_from(start.seq) {
            deliver(conn, &self.channels, ck, msg, self.now);
        }
    }

    /// Writes what a stream has queued; closes it on error or when it has fallen more than
    /// `--max-pending-bytes` behind.
    pub(super) fn flush_stream(&mut self, key: Key) {
        let max = self.config.max_pending_bytes;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match conn.flush() {
            Ok(n) => self.stats.bytes_out += n as u64,
            Err(_) => return self.close(key),
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.pending() > max {
            self.stats.slow_consumers += 1;
            if let Phase::Streaming(st) = &conn.phase {
                let e = event::error_event("too slow: output buffer full");
                let f = transport::frame(st.format, &e, "", &st.cb);
                conn.queue(f);
                // Where the socket still takes it, the client learns why.
                let _ = conn.flush();
            }
            log::debug!("closing a slow consumer ({} bytes unsent)", conn.pending());
            self.close(key);
        }
    }

    /// The stream's timer: a heartbeat, or the end of its life.
    pub(super) fn stream_tick(&mut self, key: Key) {
        let max_age = ms(self.config.stream_max_age);
        let hb = ms(self.config.heartbeat);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Streaming(st) = &mut conn.phase else {
            return;
        };
        if self.now >= st.started_ms + max_age {
            let cursor = cursor_of(&self.channels, st.subs.as_slice());
            return self.end_stream(key, &[event::reconnect(&cursor)]);
        }
        if self.now >= st.last_write_ms + hb {
            let f = transport::heartbeat(st.format, &st.cb);
            st.last_write_ms = self.now;
            conn.queue(f);
        }
        self.arm_stream_timer(key);
        self.flush_stream(key);
    }

    fn arm_stream_timer(&mut self, key: Key) {
        let Some(Phase::Streaming(st)) = self.conns.get(key).map(|c| &c.phase) else {
            return;
        };
        let at = (st.last_write_ms + ms(self.config.heartbeat))
            .min(st.started_ms + ms(self.config.stream_max_age));
        let after = std::time::Duration::from_millis(at.saturating_sub(self.now));
        self.set_conn_timer(key, after);
    }

    /// Ends a stream with `events` (each framed in its format) and the last chunk.
    pub(super) fn end_stream(&mut self, key: Key, events: &[Bytes]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Streaming(st) = std::mem::replace(&mut conn.phase, Phase::Closing) else {
            return;
        };
        let cursor = cursor_of(&self.channels, st.subs.as_slice());
        for e in events {
            conn.queue(transport::frame(st.format, e, &cursor, &st.cb));
        }
        conn.queue(Bytes::from_static(transport::LAST_CHUNK));
        self.leave_channels(st.subs.as_slice());
        self.clients.remove(&st.client);
        self.set_conn_timer(key, self.config.idle_timeout);
        self.flush(key);
    }
}
