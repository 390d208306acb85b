//! Long-poll sessions between two polls. A session's state travels with its parked
//! request while one is parked, and sits in a small [`Session`] record only between
//! polls, for `--session-timeout`. A session holds its channels (so a channel nobody
//! published to outlives the gap between two polls) and remembers when its subscriber
//! tokens expire. There are at most `--max-sessions` sessions, and at most as many
//! channels nobody published to held only by sessions: past either, the session idle
//! longest is forgotten (its client starts a new one, keeping its cursor).

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Channel, ClientRef, Followers, Hub, Mode, Sub};
use crate::clock::Now;
use crate::engine::Engine;
use crate::handle::{GenSlab, Key};
use crate::http::HttpError;
use crate::subscription::ClientId;
use crate::timer::TimerKey;

/// One channel a session holds.
#[derive(Clone, Debug)]
pub struct SessionSub {
    /// The channel (holding it keeps it alive; a stale key means it was deleted).
    pub channel: Key<Channel>,
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
    timer: Option<TimerKey>,
    /// When its subscriber tokens expire (Unix seconds; `u64::MAX` without auth).
    pub auth_expires: u64,
}

/// The session store, with the order sessions went idle in.
#[derive(Default)]
pub(super) struct Sessions {
    slab: GenSlab<Session>,
    /// Session keys, oldest first (stale keys are skipped).
    order: VecDeque<Key<Session>>,
}

impl Sessions {
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn get(&self, k: Key<Session>) -> Option<&Session> {
        self.slab.get(k)
    }
}

impl Hub {
    /// A subscriber's memberships as a session holds them (deleted channels left out).
    pub fn session_subs(&self, subs: &[Sub]) -> Vec<SessionSub> {
        subs.iter()
            .filter_map(|s| {
                Some(SessionSub {
                    channel: s.channel,
                    name: self.name(s.channel)?.clone(),
                    next: (s.next != Sub::UNKNOWN).then_some(s.next),
                })
            })
            .collect()
    }

    /// Stores the session of a poll that was answered or whose connection went away: it
    /// holds the poll's channels at the poll's cursors until the client polls again.
    /// Call before the poll leaves its channels, so they stay.
    pub fn detach(
        &mut self,
        engine: &mut dyn Engine,
        id: ClientId,
        subs: &[Sub],
        auth_expires: u64,
        now: Now,
    ) {
        let channels = self.session_subs(subs);
        if channels.is_empty() {
            return;
        }
        for c in &channels {
            self.hold(c.channel);
        }
        let at = now.ms.saturating_add(self.limits.session_timeout_ms);
        let key = self.sessions.slab.insert(Session {
            id,
            channels,
            timer: None,
            auth_expires,
        });
        let timer = self.wheel.insert(at, key);
        if let Some(s) = self.sessions.slab.get_mut(key) {
            s.timer = Some(timer);
        }
        self.clients.insert(id, ClientRef::Session(key));
        self.sessions.order.push_back(key);
        self.enforce_session_caps(engine, now);
        // Stale keys (sessions resumed or expired) are dropped in bulk, now and then.
        let live = self.sessions.slab.len();
        if self.sessions.order.len() > 2 * live + 1024 {
            let slab = &self.sessions.slab;
            self.sessions.order.retain(|k| slab.get(*k).is_some());
        }
    }

    /// Past `--max-sessions` sessions, or as many held channels nobody published to,
    /// the sessions idle longest go.
    pub(super) fn enforce_session_caps(&mut self, engine: &mut dyn Engine, now: Now) {
        let max = self.limits.max_sessions;
        while self.sessions.len() as u64 > max || self.held_unpublished > max {
            let Some(k) = self.oldest_session() else {
                break;
            };
            self.stats.sessions_evicted += 1;
            self.forget_session(engine, k, now);
        }
    }

    fn oldest_session(&mut self) -> Option<Key<Session>> {
        while let Some(k) = self.sessions.order.pop_front() {
            if self.sessions.slab.get(k).is_some() {
                return Some(k);
            }
        }
        None
    }

    /// What session `id` holds, without taking it: its channels and when its tokens
    /// expire (a parked poll's, if one is parked under the id). `None` for an unknown id.
    pub fn session_view(
        &self,
        id: ClientId,
        followers: &mut dyn Followers,
    ) -> Result<Option<(Vec<SessionSub>, u64)>, HttpError> {
        match self.client(&id) {
            None => Ok(None),
            Some(ClientRef::Session(sk)) => Ok(self
                .sessions
                .get(sk)
                .map(|s| (s.channels.clone(), s.auth_expires))),
            Some(ClientRef::Conn(ck)) => {
                let expires = followers.poll_auth_expires(ck);
                match (followers.follower_mut(ck), expires) {
                    (Some((f, Mode::Poll)), Some(expires)) => {
                        Ok(Some((self.session_subs(f.subs.as_slice()), expires)))
                    }
                    _ => Err(HttpError::new(400, "client id names a stream")),
                }
            }
        }
    }

    /// Takes session `key` out of the store (the poll that resumes it holds it from now
    /// on). Its channels stay held until `release_session`.
    pub fn take_session(&mut self, key: Key<Session>) -> Option<Session> {
        let s = self.sessions.slab.remove(key)?;
        if let Some(t) = s.timer {
            self.wheel.cancel(t);
        }
        self.clients.remove(&s.id);
        Some(s)
    }

    /// Lets go of the channels a taken session held.
    pub fn release_session(&mut self, engine: &mut dyn Engine, s: Session, now: Now) {
        for sub in &s.channels {
            self.unhold(sub.channel);
        }
        self.release_unused(engine, s.channels.iter().map(|c| c.channel), now);
    }

    /// Ends session `key` and frees what it held.
    pub fn forget_session(&mut self, engine: &mut dyn Engine, key: Key<Session>, now: Now) {
        if let Some(s) = self.take_session(key) {
            self.release_session(engine, s, now);
        }
    }

    pub(super) fn session_mut(&mut self, k: Key<Session>) -> Option<&mut Session> {
        self.sessions.slab.get_mut(k)
    }

    pub(super) fn hold(&mut self, k: Key<Channel>) {
        if let Some(c) = self.channels.get_mut(k) {
            c.holders += 1;
            if c.holders == 1 && !c.published {
                self.held_unpublished += 1;
            }
        }
    }

    pub(super) fn unhold(&mut self, k: Key<Channel>) {
        if let Some(c) = self.channels.get_mut(k) {
            debug_assert!(c.holders > 0, "unhold of {} with no holder", c.name);
            c.holders = c.holders.saturating_sub(1);
            if c.holders == 0 && !c.published {
                self.held_unpublished -= 1;
            }
        }
    }
}
