//! `GET /poll`: resolves the cursor of every channel named (and of the session resumed
//! with `client=`), answers at once with what is buffered (and any `lost`/`reset`
//! notice), or parks the request on each channel until a message is published or
//! `--poll-timeout` passes (then `noop`).
//!
//! A parked poll costs its connection entry, one timer and one subscriber slot per
//! channel; it holds no read or write buffer.

use std::sync::Arc;

use bytes::Bytes;

use super::clients::{ClientRef, SessionSub};
use super::conn::{Parked, Phase, Sub, Subs};
use super::{after, Server};
use crate::event;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::{Head, Method};
use crate::http::response::{self, ctype, Cors};
use crate::http::HttpError;
use crate::subscription::{self, ClientId};

/// One channel of a poll, merged from the session and the request.
struct Wanted {
    name: Arc<str>,
    /// The channel the session held (to tell a deleted one from a live one).
    held: Option<Key>,
    seq: Option<u64>,
    /// The request named it (its token covers it).
    named: bool,
}

impl Server {
    /// Finds or creates every named channel. A publish may not make the published
    /// channels more than `--max-channels` (503); subscribers create channels freely,
    /// bounded by their own caps, and those go when their last subscriber leaves.
    pub(super) fn open_channels<'a, I>(
        &mut self,
        names: I,
        publishing: bool,
    ) -> Result<Vec<Key>, HttpError>
    where
        I: Iterator<Item = &'a str> + Clone,
    {
        if publishing {
            let fresh = names
                .clone()
                .filter(|n| {
                    self.channels
                        .find(n)
                        .and_then(|k| self.channels.get(k))
                        .is_none_or(|c| !c.is_published())
                })
                .count() as u64;
            if self.channels.published() as u64 + fresh > self.config.max_channels {
                return Err(HttpError::new(503, "too many channels"));
            }
        }
        let wall = Self::wall_us();
        Ok(names
            .map(|name| match self.channels.find(name) {
                Some(k) => k,
                None => self.channels.create(name, self.now, wall),
            })
            .collect())
    }

    /// Drops the channels among `keys` that nobody published to and nothing subscribes
    /// to any more.
    pub(super) fn release_unused(&mut self, keys: impl IntoIterator<Item = Key>) {
        for k in keys {
            self.channels.remove_if_unused(k);
        }
    }

    /// Handles `GET /poll` (and `HEAD /poll`: checked, answered without a body, nothing
    /// subscribed).
    pub(super) fn handle_poll(&mut self, key: Key, head: &Head, q: &Query, cors: Cors) {
        let result = if head.method == Method::Head {
            self.check_subscribe_params(q, true).map(|_| {
                let t = if q.get("cb").is_some() {
                    ctype::JS
                } else {
                    ctype::JSON
                };
                let h =
                    response::head_without_length(t, head.keep_alive, self.cors.lines(cors), "");
                self.respond(key, [h], head.keep_alive);
            })
        } else {
            self.try_poll(key, head, q, cors)
        };
        if let Err(e) = result {
            self.respond_error(key, head, e, cors, "");
        }
    }

    /// The parameters of a subscribe request, checked (for `HEAD`).
    pub(super) fn check_subscribe_params(
        &mut self,
        q: &Query,
        poll: bool,
    ) -> Result<(), HttpError> {
        let max = self.config.max_channels_per_subscriber as usize;
        subscription::parse_callback(q)?;
        if poll
            && q.get("client")
                .is_some_and(|c| ClientId::parse(c).is_none())
        {
            return Err(HttpError::new(400, "bad client id (32 hex digits)"));
        }
        if poll && q.get("channel").is_none() {
            return Ok(());
        }
        let wanted = subscription::parse_channels(q, max)?;
        let names: Vec<&str> = wanted.iter().map(|w| w.channel.as_str()).collect();
        self.authorize(q, &names).map(|_| ())
    }

    /// What the session `id` holds, without taking it: its channels (each with the
    /// channel key it holds) and when its tokens expire. `None` for an unknown id.
    fn session_view(&self, id: ClientId) -> Result<Option<(Vec<SessionSub>, u64)>, HttpError> {
        match self.clients.get(&id).copied() {
            None => Ok(None),
            Some(ClientRef::Session(sk)) => Ok(self
                .sessions
                .get(sk)
                .map(|s| (s.channels.clone(), s.auth_expires))),
            Some(ClientRef::Conn(ck)) => match self.conns.get(ck).map(|c| &c.phase) {
                Some(Phase::Parked(p)) => {
                    Ok(Some((self.session_subs(p.subs.as_slice()), p.auth_expires)))
                }
                _ => Err(HttpError::new(400, "client id names a stream")),
            },
        }
    }

    fn try_poll(&mut self, key: Key, head: &Head, q: &Query, cors: Cors) -> Result<(), HttpError> {
        let max = self.config.max_channels_per_subscriber as usize;
        let requested = if q.get("channel").is_some() {
            subscription::parse_channels(q, max)?
        } else {
            Vec::new()
        };
        let cb = subscription::parse_callback(q)?;
        let names: Vec<&str> = requested.iter().map(|w| w.channel.as_str()).collect();
        let mut auth_expires = if names.is_empty() {
            u64::MAX
        } else {
            self.authorize(q, &names)?
        };
        let resume = match q.get("client") {
            Some(text) => Some(
                ClientId::parse(text)
                    .ok_or(HttpError::new(400, "bad client id (32 hex digits)"))?,
            ),
            None => None,
        };
        // Everything is checked against the session before it is taken, so a refused
        // poll leaves the session as it was.
        let held = match resume {
            Some(id) => self.session_view(id)?,
            None => None,
        };
        let mut wanted: Vec<Wanted> = Vec::new();
        if let Some((subs, _)) = &held {
            for s in subs {
                wanted.push(Wanted {
                    name: s.name.clone(),
                    held: Some(s.channel),
                    seq: s.next,
                    named: false,
                });
            }
        }
        // The request's cursors win over the session's; channels it adds join it.
        for w in requested {
            match wanted.iter_mut().find(|e| *e.name == *w.channel) {
                Some(e) => {
                    e.seq = w.seq.or(e.seq);
                    e.named = true;
                }
                None => wanted.push(Wanted {
                    name: w.channel.into(),
                    held: None,
                    seq: w.seq,
                    named: true,
                }),
            }
        }
        if wanted.is_empty() {
            return Err(HttpError::new(400, "missing channel"));
        }
        if wanted.len() > max {
            return Err(HttpError::new(400, "too many channels for this client"));
        }
        if let Some((_, expires)) = held {
            // Channels carried over from the session are only as good as its tokens.
            if self.config.auth_secret.is_some() && wanted.iter().any(|w| !w.named) {
                if expires <= Self::unix_now() {
                    self.stats.auth_failures += 1;
                    return Err(HttpError::new(
                        403,
                        "session token expired: poll again with a fresh token and your cursor",
                    ));
                }
                auth_expires = auth_expires.min(expires);
            }
        }
        // Commit: take the session (a poll still parked under the id is answered first,
        // superseded), keep holding its channels until this poll holds them.
        let (client, taken) = match (resume, held.is_some()) {
            (Some(id), true) => {
                if let Some(ClientRef::Conn(ck)) = self.clients.get(&id).copied() {
                    self.answer_poll(ck, &[Bytes::from_static(event::NOOP)], false);
                }
                let taken = match self.clients.get(&id).copied() {
                    Some(ClientRef::Session(sk)) => self.take_session(sk),
                    _ => None,
                };
                (id, taken)
            }
            _ => (ClientId::random()?, None),
        };
        let mut events = Vec::new();
        // A channel the session held that was deleted meanwhile: tell the client.
        wanted.retain(|w| {
            let deleted = !w.named && w.held.is_some_and(|k| self.channels.get(k).is_none());
            if deleted {
                events.push(event::close(&w.name));
            }
            !deleted
        });
        let keys = self.open_channels(wanted.iter().map(|w| &*w.name), false)?;
        let mut subs = Vec::with_capacity(keys.len());
        let mut delivered = 0;
        for (w, &ck) in wanted.iter().zip(&keys) {
            let Some(ch) = self.channels.get_mut(ck) else {
                continue;
            };
            self.stats.evicted +=
                ch.expire_messages(self.now, super::ms(self.config.message_ttl)) as u64;
            let start = ch.start(w.seq);
            if let Some(n) = start.notice {
                events.push(ch.notice_event(n));
            }
            for m in ch.messages_from(start.seq) {
                events.push(m.json.clone());
                delivered += 1;
            }
            // After this answer (or while parked) the cursor is at the channel's head.
            subs.push(Sub {
                channel: ck,
                slot: u32::MAX,
                next: ch.next_seq(),
            });
        }
        self.stats.delivered += delivered;
        // A client that has already hung up (its request and FIN came together) is not
        // parked: it gets its answer, `noop` if nothing is due, at once.
        let hung_up = self.conns.get(key).is_some_and(|c| c.peer_closed);
        if !events.is_empty() || subs.is_empty() || hung_up {
            if events.is_empty() {
                events.push(Bytes::from_static(event::NOOP));
            }
            self.detach_session(client, &subs, auth_expires);
            self.write_poll_answer(key, &events, cb.as_deref(), client, cors, head.keep_alive);
        } else {
            for sub in &mut subs {
                if let Some(ch) = self.channels.get_mut(sub.channel) {
                    sub.slot = ch.subs.insert(key) as u32;
                }
            }
            let parked = Parked {
                subs: Subs::from_vec(subs),
                client,
                cb,
                deadline: after(self.now, self.config.poll_timeout),
                auth_expires,
                cors,
                keep_alive: head.keep_alive,
            };
            if let Some(conn) = self.conns.get_mut(key) {
                self.kinds.swap(conn, Phase::Parked(parked));
                conn.shrink();
                self.clients.insert(client, ClientRef::Conn(key));
                self.arm(key);
            }
        }
        if let Some(s) = taken {
            self.release_session(s);
        }
        self.release_unused(keys);
        Ok(())
    }

    /// Answers a parked poll with `events` and frees its place in every channel. With
    /// `forget`, its session ends too (a control `close`); otherwise it waits for the next
    /// poll, carrying the cursors of the parked request.
    pub(super) fn answer_poll(&mut self, key: Key, events: &[Bytes], forget: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !matches!(conn.phase, Phase::Parked(_)) {
            debug_assert!(false, "answer_poll on a connection that is not parked");
            return;
        }
        let Phase::Parked(p) = self.kinds.swap(conn, Phase::Ready) else {
            return;
        };
        self.clients.remove(&p.client);
        if !forget {
            // The session holds the channels before the poll lets go of them.
            self.detach_session(p.client, p.subs.as_slice(), p.auth_expires);
        }
        self.leave_channels(p.subs.as_slice());
        self.write_poll_answer(key, events, p.cb.as_deref(), p.client, p.cors, p.keep_alive);
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

    /// Removes a subscriber from the lists of its channels; a channel nobody published
    /// to goes with its last subscriber.
    pub(super) fn leave_channels(&mut self, subs: &[Sub]) {
        for sub in subs {
            if let Some(ch) = self.channels.get_mut(sub.channel) {
                ch.subs.try_remove(sub.slot as usize);
                if ch.subs.is_empty() {
                    ch.last_active_ms = self.now;
                }
            }
        }
        self.release_unused(subs.iter().map(|s| s.channel));
    }

    /// Queues `[e1,e2,…]` (or `cb([…]);`) as the answer to a poll.
    fn write_poll_answer(
        &mut self,
        key: Key,
        events: &[Bytes],
        cb: Option<&str>,
        client: ClientId,
        cors: Cors,
        keep_alive: bool,
    ) {
        let (open, close, ctype) = match cb {
            Some(cb) => (
                Bytes::from(format!("/**/{cb}([")),
                Bytes::from_static(b"]);"),
                ctype::JS,
            ),
            None => (
                Bytes::from_static(b"["),
                Bytes::from_static(b"]"),
                ctype::JSON,
            ),
        };
        let comma = Bytes::from_static(b",");
        let len = open.len()
            + close.len()
            + events.iter().map(Bytes::len).sum::<usize>()
            + events.len().saturating_sub(1);
        let extra = format!("X-Comet-Client: {client}\r\n");
        let h = response::head(200, ctype, len, keep_alive, self.cors.lines(cors), &extra);
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
