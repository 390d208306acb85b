//! Client ids and what they name: a stream, a parked long-poll, or a long-poll session
//! between two polls. And the control requests that steer them from a separate short
//! request: `POST /clients/ID/close|subscribe|unsubscribe`.
//!
//! A long-poll session's state travels with its parked request while one is parked, and
//! sits in a small `Session` record only between polls, for `--session-timeout`.

use bytes::Bytes;

use super::conn::{Phase, Sub};
use super::{ms, Server, TimerKind};
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

/// A session's channels, each with the next seq it wants (`None`: from now on).
pub type Cursors = Vec<(Box<str>, Option<u64>)>;

/// A long-poll session between two polls.
#[derive(Debug)]
pub struct Session {
    /// Its id.
    pub id: ClientId,
    /// Its channels, each with the next seq it wants (`None`: from now on).
    pub channels: Cursors,
    /// Its `--session-timeout` timer.
    pub timer: Option<TimerKey>,
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
    /// Stores the session of a poll that was answered or whose connection went away.
    pub(super) fn detach_session(&mut self, id: ClientId, subs: &[Sub]) {
        let channels = subs
            .iter()
            .filter_map(|s| {
                let ch = self.channels.get(s.channel)?;
                Some((Box::<str>::from(ch.name()), Some(s.next)))
            })
            .collect();
        let key = self.sessions.insert(Session {
            id,
            channels,
            timer: None,
        });
        let at = self.now + ms(self.config.session_timeout());
        let timer = self.wheel.insert(at, TimerKind::Session(key));
        if let Some(s) = self.sessions.get_mut(key) {
            s.timer = Some(timer);
        }
        self.clients.insert(id, ClientRef::Session(key));
    }

    /// Takes a session between polls out of the store (the poll that resumes it holds it
    /// from now on).
    pub(super) fn take_session(&mut self, key: Key) -> Option<Session> {
        let mut s = self.sessions.remove(key)?;
        if let Some(t) = s.timer.take() {
            self.wheel.cancel(t);
        }
        self.clients.remove(&s.id);
        Some(s)
    }

    pub(super) fn session_expired(&mut self, key: Key) {
        if let Some(s) = self.sessions.remove(key) {
            log::debug!("session {} expired", s.id);
            self.clients.remove(&s.id);
        }
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
                let h = response::head(204, "", 0, head.keep_alive, &cors, "");
                self.respond(key, [h], head.keep_alive);
            }
            Err(e) => self.respond_error(key, head, e, &cors, ""),
        }
    }

    fn control(&mut self, target: ClientRef, q: &Query, action: Action) -> Result<(), HttpError> {
        match (target, action) {
            (ClientRef::Session(sk), Action::Close) => {
                self.take_session(sk);
            }
            (ClientRef::Conn(ck), Action::Close) => {
                let closes = self.close_events(ck);
                match self.conns.get(ck).map(|c| &c.phase) {
                    Some(Phase::Parked(_)) => self.answer_poll(ck, &closes, true),
                    Some(Phase::Streaming(_)) => self.end_stream(ck, &closes),
                    _ => {}
                }
            }
            (target, Action::Subscribe) => {
                let wanted =
                    subscription::parse_channels(q, self.config.max_channels_per_subscriber)?;
                let names: Vec<&str> = wanted.iter().map(|w| w.channel.as_str()).collect();
                self.authorize(q, &names)?;
                match target {
                    ClientRef::Session(sk) => {
                        // "From now on" means from this request, not from the next poll:
                        // pin it to the channel's head.
                        let keys = self.open_channels(names.iter().copied())?;
                        let heads: Vec<Option<u64>> = keys
                            .iter()
                            .map(|k| self.channels.get(*k).map(|c| c.next_seq()))
                            .collect();
                        let max = self.config.max_channels_per_subscriber;
                        let s = self
                            .sessions
                            .get_mut(sk)
                            .ok_or(HttpError::new(404, "unknown client"))?;
                        for (w, head) in wanted.iter().zip(heads) {
                            let seq = w.seq.or(head);
                            match s.channels.iter_mut().find(|(n, _)| **n == *w.channel) {
                                Some(entry) => entry.1 = w.seq.or(entry.1),
                                None => s.channels.push((w.channel.as_str().into(), seq)),
                            }
                        }
                        if s.channels.len() > max {
                            s.channels.truncate(max);
                            return Err(HttpError::new(400, "too many channels for this client"));
                        }
                    }
                    ClientRef::Conn(ck) => {
                        let keys = self.open_channels(names.iter().copied())?;
                        let cursors: Vec<(Key, Option<u64>)> =
                            keys.into_iter().zip(wanted.iter().map(|w| w.seq)).collect();
                        self.subscribe_conn(ck, &cursors)?;
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
                        if let Some(s) = self.sessions.get_mut(sk) {
                            s.channels.retain(|(n, _)| !names.contains(&&**n));
                        }
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

    /// Adds channels to a stream or a parked poll. A stream is sent what each new
    /// channel's cursor has due; a parked poll is answered if anything is due.
    fn subscribe_conn(&mut self, ck: Key, cursors: &[(Key, Option<u64>)]) -> Result<(), HttpError> {
        let max = self.config.max_channels_per_subscriber;
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
            self.flush_stream(ck);
        } else {
            let mut events = Vec::new();
            for (chk, start) in &due {
                let Some(ch) = self.channels.get(*chk) else {
                    continue;
                };
                if let Some(n) = start.notice {
                    events.push(ch.notice_event(n));
                }
                events.extend(ch.messages_from(start.seq).map(|m| m.json.clone()));
            }
            if !events.is_empty() {
                self.answer_poll_caught_up(ck, &events);
            }
        }
        Ok(())
    }

    /// Removes channels from a stream or a parked poll. A parked poll left with no channel
    /// is answered with `noop`.
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
}
