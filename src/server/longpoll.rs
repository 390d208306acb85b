//! `GET /poll`: resolves the cursor of every channel named, answers at once with what is
//! buffered (and any `lost`/`reset` notice), or parks the request on each channel until a
//! message is published or `--poll-timeout` passes (then `noop`).
//!
//! A parked poll costs its connection entry, one timer and one subscriber slot per
//! channel; it holds no read or write buffer.

use bytes::Bytes;

use super::clients::{ClientRef, Cursors};
use super::conn::{Parked, Phase, Sub, Subs};
use super::{ms, Server, TimerKind};
use crate::event;
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
        let max = self.config.max_channels_per_subscriber;
        let requested = if q.get("channel").is_some() {
            subscription::parse_channels(q, max)?
        } else {
            Vec::new()
        };
        let cb = subscription::parse_callback(q)?;
        let names: Vec<&str> = requested.iter().map(|w| w.channel.as_str()).collect();
        if !names.is_empty() {
            self.authorize(q, &names)?;
        }
        // The session: resumed from `client=`, or new.
        let (client, mut channels) = match q.get("client") {
            Some(text) => {
                let id = ClientId::parse(text)
                    .ok_or(HttpError::new(400, "bad client id (32 hex digits)"))?;
                self.resume_session(id)?
            }
            None => (ClientId::random()?, Vec::new()),
        };
        // The request's cursors win over the session's; channels it adds join it.
        for w in requested {
            match channels.iter_mut().find(|(n, _)| **n == *w.channel) {
                Some(entry) => entry.1 = w.seq.or(entry.1),
                None => channels.push((w.channel.into(), w.seq)),
            }
        }
        if channels.is_empty() {
            return Err(HttpError::new(400, "missing channel"));
        }
        if channels.len() > max {
            return Err(HttpError::new(400, "too many channels in one request"));
        }
        let keys = self.open_channels(channels.iter().map(|(n, _)| &**n))?;
        let ttl = ms(self.config.message_ttl);
        let mut events = Vec::new();
        let mut subs = Vec::with_capacity(keys.len());
        for ((_, seq), &ck) in channels.iter().zip(&keys) {
            let Some(ch) = self.channels.get_mut(ck) else {
                continue;
            };
            self.stats.evicted += ch.expire_messages(self.now, ttl) as u64;
            let start = ch.start(*seq);
            if let Some(n) = start.notice {
                events.push(ch.notice_event(n));
            }
            events.extend(ch.messages_from(start.seq).map(|m| m.json.clone()));
            // After this answer (or while parked) the cursor is at the channel's head.
            subs.push(Sub {
                channel: ck,
                slot: u32::MAX,
                next: ch.next_seq(),
            });
        }
        if !events.is_empty() {
            self.write_poll_answer(key, &events, cb.as_deref(), client, cors, head.keep_alive);
            self.detach_session(client, &subs);
            return Ok(());
        }
        for sub in &mut subs {
            if let Some(ch) = self.channels.get_mut(sub.channel) {
                sub.slot = ch.subs.insert(key) as u32;
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
        self.clients.insert(client, ClientRef::Conn(key));
        self.set_conn_timer(key, self.config.poll_timeout);
        Ok(())
    }

    /// The channels of the session `id` names, taken over by the poll now arriving. An
    /// unknown or expired id starts a new session under a new id; a poll still parked
    /// under the same id is answered with `noop` first (superseded).
    fn resume_session(&mut self, id: ClientId) -> Result<(ClientId, Cursors), HttpError> {
        if let Some(ClientRef::Conn(ck)) = self.clients.get(&id).copied() {
            match self.conns.get(ck).map(|c| &c.phase) {
                Some(Phase::Parked(_)) => {
                    self.answer_poll(ck, &[Bytes::from_static(event::NOOP)], false)
                }
                _ => return Err(HttpError::new(400, "client id names a stream")),
            }
        }
        match self.clients.get(&id).copied() {
            Some(ClientRef::Session(sk)) => {
                let s = self
                    .take_session(sk)
                    .map(|s| s.channels)
                    .unwrap_or_default();
                Ok((id, s))
            }
            _ => Ok((ClientId::random()?, Vec::new())),
        }
    }

    /// Answers a parked poll with `events` and frees its place in every channel. With
    /// `forget`, its session ends too (a control `close`); otherwise it waits for the next
    /// poll, carrying the cursors of the parked request.
    pub(super) fn answer_poll(&mut self, key: Key, events: &[Bytes], forget: bool) {
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
        self.clients.remove(&p.client);
        if !forget {
            self.detach_session(p.client, p.subs.as_slice());
        }
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

    /// Answers a parked poll with everything buffered on its channels: each cursor moves
    /// to its channel's head first.
    pub(super) fn answer_poll_caught_up(&mut self, key: Key, events: &[Bytes]) {
        let Some(Phase::Parked(p)) = self.conns.get_mut(key).map(|c| &mut c.phase) else {
            return;
        };
        let heads: Vec<u64> = p
            .subs
            .as_slice()
            .iter()
            .map(|s| {
                self.channels
                    .get(s.channel)
                    .map_or(s.next, |c| c.next_seq())
            })
            .collect();
        let mut v = std::mem::replace(&mut p.subs, Subs::from_vec(Vec::new()))
            .as_slice()
            .to_vec();
        for (s, h) in v.iter_mut().zip(heads) {
            s.next = h;
        }
        p.subs = Subs::from_vec(v);
        self.answer_poll(key, events, false);
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
