//! `GET /poll`: resolves the cursor of every channel named, answers at once with what is
//! buffered (and any `lost`/`reset` notice), or parks the request on each channel until a
//! message is published or `--poll-timeout` passes (then `noop`).
//!
//! A parked poll costs its connection entry, one timer and one subscriber slot per
//! channel; it holds no read or write buffer.

use bytes::Bytes;

use super::conn::{Parked, Phase, Sub, Subs};
use super::{ms, Server, TimerKind};
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::Head;
use crate::http::response::{self, Cors};
use crate::http::HttpError;
use crate::subscription::{self, ClientId};

impl Server {
    /// Finds or creates every named channel; 503 if that would pass `--max-channels`.
    pub(super) fn open_channels<'a, I>(&mut self, names: I) -> Result<Vec<Key>, HttpError>
    where
        I: Iterator<Item = &'a str> + Clone,
    {
        let missing = names
            .clone()
            .filter(|n| self.channels.find(n).is_none())
            .count();
        if self.channels.len() + missing > self.config.max_channels {
            return Err(HttpError::new(503, "too many channels"));
        }
        let mut keys = Vec::new();
        for name in names {
            let key = match self.channels.find(name) {
                Some(k) => k,
                None => {
                    let k = self
                        .channels
                        .create(name, self.config.max_channels, self.now, Self::wall_us())
                        .map_err(|_| HttpError::new(503, "too many channels"))?;
                    let at = self.now + ms(self.config.channel_ttl);
                    self.wheel.insert(at, TimerKind::Channel(k));
                    k
                }
            };
            keys.push(key);
        }
        Ok(keys)
    }

    /// Handles `GET /poll`.
    pub(super) fn handle_poll(&mut self, key: Key, head: &Head, q: &Query, cors: Cors) {
        if let Err(e) = self.try_poll(key, head, q, &cors) {
            self.respond_error(key, head, e, &cors, "");
        }
    }

    fn try_poll(&mut self, key: Key, head: &Head, q: &Query, cors: &Cors) -> Result<(), HttpError> {
        let wanted = subscription::parse_channels(q, self.config.max_channels_per_subscriber)?;
        let cb = subscription::parse_callback(q)?;
        let client = match q.get("client") {
            Some(text) => {
                ClientId::parse(text).ok_or(HttpError::new(400, "bad client id (32 hex digits)"))?
            }
            None => ClientId::random()?,
        };
        let keys = self.open_channels(wanted.iter().map(|w| w.channel.as_str()))?;
        let ttl = ms(self.config.message_ttl);
        let mut events = Vec::new();
        for (w, &ck) in wanted.iter().zip(&keys) {
            let Some(ch) = self.channels.get_mut(ck) else {
                continue;
            };
            self.stats.evicted += ch.expire_messages(self.now, ttl) as u64;
            let start = ch.start(w.seq);
            if let Some(n) = start.notice {
                events.push(ch.notice_event(n));
            }
            events.extend(ch.messages_from(start.seq).map(|m| m.json.clone()));
        }
        if !events.is_empty() {
            self.write_poll_answer(key, &events, cb.as_deref(), client, cors, head.keep_alive);
            return Ok(());
        }
        let mut subs = Vec::with_capacity(keys.len());
        for ck in keys {
            if let Some(ch) = self.channels.get_mut(ck) {
                let slot = ch.subs.insert(key) as u32;
                subs.push(Sub { channel: ck, slot });
            }
        }
        let Some(conn) = self.conns.get_mut(key) else {
            self.leave_channels(&subs);
            return Ok(());
        };
        conn.phase = Phase::Parked(Parked {
            subs: Subs::from_vec(subs),
            client,
            cb,
            cors: cors.clone(),
            keep_alive: head.keep_alive,
        });
        conn.shrink();
        self.set_conn_timer(key, self.config.poll_timeout);
        Ok(())
    }

    /// Answers a parked poll with `events` and frees its place in every channel.
    pub(super) fn answer_poll(&mut self, key: Key, events: &[Bytes]) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Parked(p) = std::mem::replace(&mut conn.phase, Phase::Head) else {
            debug_assert!(false, "answer_poll on a connection that is not parked");
            return;
        };
        if let Some(t) = conn.timer.take() {
            self.wheel.cancel(t);
        }
        self.leave_channels(p.subs.as_slice());
        self.write_poll_answer(
            key,
            events,
            p.cb.as_deref(),
            p.client,
            &p.cors,
            p.keep_alive,
        );
        // Move on to Idle, or to a request that was pipelined behind the poll.
        self.pending_input.push(key);
    }

    /// Removes a request from the subscriber lists of its channels.
    pub(super) fn leave_channels(&mut self, subs: &[Sub]) {
        for sub in subs {
            if let Some(ch) = self.channels.get_mut(sub.channel) {
                ch.subs.try_remove(sub.slot as usize);
                if ch.subs.is_empty() {
                    ch.last_active_ms = self.now;
                }
            }
        }
    }

    /// Queues `[e1,e2,…]` (or `cb([…]);`) as the answer to a poll.
    fn write_poll_answer(
        &mut self,
        key: Key,
        events: &[Bytes],
        cb: Option<&str>,
        client: ClientId,
        cors: &Cors,
        keep_alive: bool,
    ) {
        let (open, close, ctype) = match cb {
            Some(cb) => (
                Bytes::from(format!("/**/{cb}([")),
                Bytes::from_static(b"]);"),
                "application/javascript",
            ),
            None => (
                Bytes::from_static(b"["),
                Bytes::from_static(b"]"),
                "application/json",
            ),
        };
        let comma = Bytes::from_static(b",");
        let len = open.len()
            + close.len()
            + events.iter().map(Bytes::len).sum::<usize>()
            + events.len().saturating_sub(1);
        let extra = format!("X-Comet-Client: {client}\r\n");
        let h = response::head(200, ctype, len, keep_alive, cors, &extra);
        let mut parts = Vec::with_capacity(events.len() * 2 + 3);
        parts.push(h);
        parts.push(open);
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                parts.push(comma.clone());
            }
            parts.push(e.clone());
        }
        parts.push(close);
        self.respond(key, parts, keep_alive);
    }
}
