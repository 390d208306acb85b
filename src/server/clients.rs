//! Client ids and what they name: a stream, a parked long-poll, or a long-poll session
//! between two polls. And the control requests that steer them from a separate short
//! request: `POST /clients/ID/close|subscribe|unsubscribe`.
//!
//! A long-poll session's state travels with its parked request while one is parked, and
//! sits in a small `Session` record only between polls, for `--session-timeout`. A
//! session holds its channels (so a channel nobody published to outlives the gap between
//! two polls), remembers when its subscriber tokens expire, and there are at most
//! `--max-sessions` of them: past that, the one idle longest is forgotten.

use std::sync::Arc;

use bytes::Bytes;

use super::conn::{Phase, Sub};
use super::{after, Server, TimerKind};
use crate::channel::valid_name;
use crate::event;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::Head;
use crate::http::response::{self, Cors};
use crate::http::HttpError;
use crate::subscription::{self, ClientId};
use crate::timer::TimerKey;

/// What a client id names.
#[derive(Clone, Copy, Debug)]
pub enum ClientRef {
    /// A connection: a stream, or a parked poll.
    Conn(Key),
    /// A long-poll session between polls.
    Session(Key),
}

/// One channel a session holds.
#[derive(Clone, Debug)]
pub struct SessionSub {
    /// The channel (holding it keeps it alive; a stale key means it was deleted).
    pub channel: Key,
    /// Its name (shared with the channel), to tell the client when it was deleted.
    pub name: Arc<str>,
    /// The next seq the client wants (`None`: from now on).
    pub next: Option<u64>,
}

/// A long-poll session between two polls.
#[derive(Debug)]
pub struct Session {
    /// Its id.
    pub id: ClientId,
    /// Its channels, each with the next seq it wants.
    pub channels: Vec<SessionSub>,
    /// Its `--session-timeout` timer.
    pub timer: Option<TimerKey>,
    /// When its subscriber tokens expire (Unix seconds; `u64::MAX` without auth).
    pub auth_expires: u64,
}

/// A control action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// End the subscriber.
    Close,
    /// Add channels.
    Subscribe,
    /// Remove channels.
    Unsubscribe,
}

impl Action {
    /// Parses the last path segment.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "close" => Some(Action::Close),
            "subscribe" => Some(Action::Subscribe),
            "unsubscribe" => Some(Action::Unsubscribe),
            _ => None,
        }
    }
}

impl Server {
    /// Stores the session of a poll that was answered or whose connection went away: it
    /// holds the poll's channels at the poll's cursors until the client polls again.
    pub(super) fn detach_session(&mut self, id: ClientId, subs: &[Sub], auth_expires: u64) {
        let channels = self.session_subs(subs);
        if channels.is_empty() {
            return;
        }
        for c in &channels {
            self.channels.hold(c.channel);
        }
        let key = self.sessions.insert(Session {
            id,
            channels,
            timer: None,
            auth_expires,
        });
        let at = after(self.now, self.config.session_timeout());
        let timer = self.wheel.insert(at, TimerKind::Session(key));
        if let Some(s) = self.sessions.get_mut(key) {
            s.timer = Some(timer);
        }
        self.clients.insert(id, ClientRef::Session(key));
        self.session_order.push_back(key);
        self.enforce_session_caps();
        // Stale keys (sessions resumed or expired) are dropped in bulk, now and then.
        if self.session_order.len() > 2 * self.sessions.len() + 1024 {
            let sessions = &self.sessions;
            self.session_order.retain(|k| sessions.get(*k).is_some());
        }
    }

    /// At most `--max-sessions` sessions, and at most as many channels nobody published
    /// to kept only by sessions (what a flood of sessions naming new channels costs):
    /// past either, the sessions idle longest go.
    fn enforce_session_caps(&mut self) {
        let max = self.config.max_sessions;
        while self.sessions.len() as u64 > max || self.channels.held_unpublished() as u64 > max {
            if !self.evict_oldest_session() {
                break;
            }
        }
    }

    /// A subscriber's memberships as a session holds them (deleted channels left out).
    pub(super) fn session_subs(&self, subs: &[Sub]) -> Vec<SessionSub> {
        subs.iter()
            .filter_map(|s| {
                let ch = self.channels.get(s.channel)?;
                Some(SessionSub {
                    channel: s.channel,
                    name: ch.shared_name(),
                    next: Some(s.next),
                })
            })
            .collect()
    }

    /// Forgets the session idle longest; its client starts a new one (keeping its
    /// cursor). False if there is none.
    fn evict_oldest_session(&mut self) -> bool {
        while let Some(k) = self.session_order.pop_front() {
            if self.sessions.get(k).is_some() {
                self.stats.sessions_evicted += 1;
                self.forget_session(k);
                return true;
            }
        }
        false
    }

    /// Takes a session between polls out of the store (the poll that resumes it holds it
    /// from now on). Its channels stay held until `release_session`.
    pub(super) fn take_session(&mut self, key: Key) -> Option<Session> {
        let mut s = self.sessions.remove(key)?;
        if let Some(t) = s.timer.take() {
            self.wheel.cancel(t);
        }
        self.clients.remove(&s.id);
        Some(s)
    }

    /// Lets go of the channels a taken session held.
    pub(super) fn release_session(&mut self, s: Session) {
        for sub in &s.channels {
            self.channels.unhold(sub.channel, self.now);
        }
        self.release_unused(s.channels.iter().map(|c| c.channel));
    }

    /// Ends a session between polls and frees what it held.
    fn forget_session(&mut self, key: Key) {
        if let Some(s) = self.take_session(key) {
            self.release_session(s);
        }
    }

    pub(super) fn session_expired(&mut self, key: Key) {
        if let Some(s) = self.sessions.get(key) {
            log::debug!("session {} expired", s.id);
        }
        self.forget_session(key);
    }

    /// Handles `POST /clients/ID/ACTION`.
    pub(super) fn handle_control(
        &mut self,
        key: Key,
        head: &Head,
        q: &Query,
        cors: Cors,
        id: &str,
        action: Action,
    ) {
        let result = match ClientId::parse(id).and_then(|id| self.clients.get(&id).copied()) {
            None => Err(HttpError::new(404, "unknown client")),
            Some(target) => self.control(target, q, action),
        };
        match result {
            Ok(()) => {
                let h = response::head(204, "", 0, head.keep_alive, self.cors.lines(cors), "");
                self.respond(key, [h], head.keep_alive);
            }
            Err(e) => self.respond_error(key, head, e, cors, ""),
        }
    }

    fn control(&mut self, target: ClientRef, q: &Query, action: Action) -> Result<(), HttpError> {
        match (target, action) {
            (ClientRef::Session(sk), Action::Close) => self.forget_session(sk),
            (ClientRef::Conn(ck), Action::Close) => {
                let closes = self.close_events(ck);
                match self.conns.get(ck).map(|c| &c.phase) {
                    Some(Phase::Parked(_)) => self.answer_poll(ck, &closes, true),
                    Some(Phase::Streaming(_)) => self.end_stream(ck, &closes),
                    _ => {}
                }
            }
            (target, Action::Subscribe) => {
                let max = self.config.max_channels_per_subscriber as usize;
                let wanted = subscription::parse_channels(q, max)?;
                let names: Vec<&str> = wanted.iter().map(|w| w.channel.as_str()).collect();
                let expires = self.authorize(q, &names)?;
                match target {
                    ClientRef::Session(sk) => {
                        let s = self
                            .sessions
                            .get(sk)
                            .ok_or(HttpError::new(404, "unknown client"))?;
                        let fresh = wanted
                            .iter()
                            .filter(|w| !s.channels.iter().any(|c| *c.name == *w.channel))
                            .count();
                        if s.channels.len() + fresh > max {
                            return Err(HttpError::new(400, "too many channels for this client"));
                        }
                        // "From now on" means from this request, not from the next poll:
                        // pin it to the channel's head.
                        let keys = self.open_channels(names.iter().copied(), false)?;
                        let heads: Vec<(Key, u64, Arc<str>)> = keys
                            .iter()
                            .filter_map(|k| {
                                let c = self.channels.get(*k)?;
                                Some((*k, c.next_seq(), c.shared_name()))
                            })
                            .collect();
                        let mut added = Vec::new();
                        if let Some(s) = self.sessions.get_mut(sk) {
                            s.auth_expires = s.auth_expires.min(expires);
                            for (w, (k, head, name)) in wanted.iter().zip(heads) {
                                match s.channels.iter_mut().find(|c| *c.name == *w.channel) {
                                    // Held and alive: a new cursor, if given.
                                    Some(c) if c.channel == k => c.next = w.seq.or(c.next),
                                    // Held, but deleted since: subscribe to the new life.
                                    Some(c) => {
                                        *c = SessionSub {
                                            channel: k,
                                            name,
                                            next: Some(w.seq.unwrap_or(head)),
                                        };
                                        added.push(k);
                                    }
                                    None => {
                                        s.channels.push(SessionSub {
                                            channel: k,
                                            name,
                                            next: Some(w.seq.unwrap_or(head)),
                                        });
                                        added.push(k);
                                    }
                                }
                            }
                        }
                        for k in added {
                            self.channels.hold(k);
                        }
                        self.release_unused(keys);
                        self.enforce_session_caps();
                    }
                    ClientRef::Conn(ck) => {
                        let keys = self.open_channels(names.iter().copied(), false)?;
                        let cursors: Vec<(Key, Option<u64>)> = keys
                            .iter()
                            .copied()
                            .zip(wanted.iter().map(|w| w.seq))
                            .collect();
                        let result = self.subscribe_conn(ck, &cursors, expires);
                        self.release_unused(keys);
                        result?;
                    }
                }
            }
            (target, Action::Unsubscribe) => {
                let mut names = Vec::new();
                for n in q.list("channel") {
                    if !valid_name(n) {
                        return Err(HttpError::new(400, "bad channel name"));
                    }
                    names.push(n);
                }
                if names.is_empty() {
                    return Err(HttpError::new(400, "missing channel"));
                }
                match target {
                    ClientRef::Session(sk) => {
                        let mut gone = Vec::new();
                        if let Some(s) = self.sessions.get_mut(sk) {
                            s.channels.retain(|c| {
                                let keep = !names.contains(&&*c.name);
                                if !keep {
                                    gone.push(c.channel);
                                }
                                keep
                            });
                        }
                        for k in &gone {
                            self.channels.unhold(*k, self.now);
                        }
                        self.release_unused(gone);
                    }
                    ClientRef::Conn(ck) => {
                        let keys: Vec<Key> =
                            names.iter().filter_map(|n| self.channels.find(n)).collect();
                        self.unsubscribe_conn(ck, &keys);
                    }
                }
            }
        }
        Ok(())
    }

    /// One `close` event per channel of a subscriber connection.
    fn close_events(&self, ck: Key) -> Vec<Bytes> {
        let subs = match self.conns.get(ck).map(|c| &c.phase) {
            Some(Phase::Parked(p)) => p.subs.as_slice(),
            Some(Phase::Streaming(st)) => st.subs.as_slice(),
            _ => &[],
        };
        subs.iter()
            .filter_map(|s| self.channels.get(s.channel))
            .map(|ch| event::close(ch.name()))
            .collect()
    }

    /// Adds channels to a stream or a parked poll (whose tokens expire at `expires`). A
    /// stream is sent what each new channel's cursor has due; a parked poll is answered
    /// if anything is due.
    fn subscribe_conn(
        &mut self,
        ck: Key,
        cursors: &[(Key, Option<u64>)],
        expires: u64,
    ) -> Result<(), HttpError> {
        let max = self.config.max_channels_per_subscriber as usize;
        let (current, streaming) = match self.conns.get(ck).map(|c| &c.phase) {
            Some(Phase::Parked(p)) => (p.subs.as_slice(), false),
            Some(Phase::Streaming(st)) => (st.subs.as_slice(), true),
            _ => return Ok(()),
        };
        let fresh: Vec<(Key, Option<u64>)> = cursors
            .iter()
            .copied()
            .filter(|(k, _)| !current.iter().any(|s| s.channel == *k))
            .collect();
        if current.len() + fresh.len() > max {
            return Err(HttpError::new(400, "too many channels for this client"));
        }
        let end = self.reactor_ms_of_unix(expires);
        match self.conns.get_mut(ck).map(|c| &mut c.phase) {
            Some(Phase::Parked(p)) => p.auth_expires = p.auth_expires.min(expires),
            Some(Phase::Streaming(st)) => st.end_ms = st.end_ms.min(end),
            _ => {}
        }
        let mut due = Vec::new();
        for (chk, seq) in fresh {
            let Some((sub, start)) = self.join_channel(ck, chk, seq) else {
                continue;
            };
            match self.conns.get_mut(ck).map(|c| &mut c.phase) {
                Some(Phase::Parked(p)) => p.subs.push(sub),
                Some(Phase::Streaming(st)) => st.subs.push(sub),
                _ => {}
            }
            due.push((chk, start));
        }
        if streaming {
            for (chk, start) in due {
                self.stream_catch_up(ck, chk, start);
            }
            // A token that expires sooner moves the stream's end.
            self.tighten(ck);
            self.flush(ck);
        } else {
            let mut events = Vec::new();
            let mut delivered = 0;
            for (chk, start) in &due {
                let Some(ch) = self.channels.get(*chk) else {
                    continue;
                };
                if let Some(n) = start.notice {
                    events.push(ch.notice_event(n));
                }
                for m in ch.messages_from(start.seq) {
                    events.push(m.json.clone());
                    delivered += 1;
                }
            }
            self.stats.delivered += delivered;
            if !events.is_empty() {
                self.answer_poll_caught_up(ck, &events);
            }
        }
        Ok(())
    }

    /// Removes channels from a stream or a parked poll. A parked poll left with no channel
    /// is answered with `noop`; a stream left with none stays open (for a control
    /// `subscribe`, or until its client closes it), as after `DELETE`.
    fn unsubscribe_conn(&mut self, ck: Key, keys: &[Key]) {
        let Some(conn) = self.conns.get_mut(ck) else {
            return;
        };
        let subs = match &mut conn.phase {
            Phase::Parked(p) => &mut p.subs,
            Phase::Streaming(st) => &mut st.subs,
            _ => return,
        };
        let removed: Vec<Sub> = keys.iter().filter_map(|k| subs.remove(*k)).collect();
        let now_empty = subs.as_slice().is_empty();
        let parked = matches!(conn.phase, Phase::Parked(_));
        self.leave_channels(&removed);
        if parked && now_empty {
            self.answer_poll(ck, &[Bytes::from_static(event::NOOP)], false);
        }
    }

    /// A Unix time in seconds as reactor ms (`u64::MAX` stays "never").
    pub(super) fn reactor_ms_of_unix(&self, unix: u64) -> u64 {
        if unix == u64::MAX {
            return u64::MAX;
        }
        let wall_ms = Self::wall_us() / 1000;
        self.now
            .saturating_add(unix.saturating_mul(1000).saturating_sub(wall_ms))
    }
}
