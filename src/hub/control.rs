//! What control requests (`POST /clients/ID/subscribe|unsubscribe`) change in the hub:
//! a session's channels, or a subscriber connection's memberships. What the connection
//! is then sent (a catch-up, an answer to a parked poll) is the reactor's business.

use std::sync::Arc;

use super::{Channel, Followers, Hub, Mode, Session, SessionSub, Sub};
use crate::clock::Now;
use crate::engine::{Engine, Read, Reply};
use crate::handle::Key;
use crate::http::HttpError;
use crate::server::Conn;
use crate::subscription::Wanted;

/// Session channels added "from now on" whose head the engine did not know yet.
pub type Unpinned = Vec<(Key<Channel>, Arc<str>)>;

/// A channel a connection joined, with what its cursor has due.
#[derive(Debug)]
pub struct Joined {
    /// The channel.
    pub channel: Key<Channel>,
    /// What is due on it; or, from an engine that answers later, the ticket of the read
    /// (the membership is attached and syncing: its live messages are kept until then).
    pub read: Reply<Read>,
    /// The sync's token (`Hub::sync_token`) when the read comes later.
    pub sync: u64,
}

impl Hub {
    /// Adds channels to session `sk` (whose new tokens expire at `expires`). A channel
    /// without a cursor is followed from this request on, not from the next poll: at the
    /// engine's head, or, if the engine does not know it yet (it answers reads later),
    /// once `pin_session` gives it. Returns those channels.
    pub fn session_subscribe(
        &mut self,
        engine: &mut dyn Engine,
        sk: Key<Session>,
        wanted: &[Wanted],
        expires: u64,
        now: Now,
    ) -> Result<Unpinned, HttpError> {
        let s = self
            .sessions
            .get(sk)
            .ok_or(HttpError::new(404, "unknown client"))?;
        let fresh = wanted
            .iter()
            .filter(|w| !s.channels.iter().any(|c| *c.name == *w.channel))
            .count();
        self.check_cap(s.channels.len() + fresh)?;
        let names: Vec<&str> = wanted.iter().map(|w| w.channel.as_str()).collect();
        let keys = self.open(engine, &names, now);
        // A channel the engine knows no head of yet (a shared engine that has not read
        // it) is followed from the session's next poll.
        let heads: Vec<(Key<Channel>, Option<u64>, Arc<str>)> = keys
            .iter()
            .filter_map(|&k| {
                let name = self.name(k)?.clone();
                Some((k, engine.head(&name), name))
            })
            .collect();
        let mut added = Vec::new();
        let mut unpinned = Vec::new();
        if let Some(s) = self.session_mut(sk) {
            s.auth_expires = s.auth_expires.min(expires);
            for (w, (k, head, name)) in wanted.iter().zip(heads) {
                if w.seq.is_none() && head.is_none() {
                    unpinned.push((k, name.clone()));
                }
                let fresh = SessionSub {
                    channel: k,
                    name,
                    next: w.seq.or(head),
                };
                match s.channels.iter_mut().find(|c| *c.name == *w.channel) {
                    // Held and alive: a new cursor, if given.
                    Some(c) if c.channel == k => c.next = w.seq.or(c.next),
                    // Held, but deleted since: follow the new life.
                    Some(c) => {
                        *c = fresh;
                        added.push(k);
                    }
                    None => {
                        s.channels.push(fresh);
                        added.push(k);
                    }
                }
            }
        }
        for k in added {
            self.hold(k);
        }
        self.release_unused(engine, keys, now);
        self.enforce_session_caps(engine, now);
        Ok(unpinned)
    }

    /// Session `sk` follows channel `ch` from seq `head` on, if it still holds it "from
    /// now on" (no cursor yet).
    pub fn pin_session(&mut self, sk: Key<Session>, ch: Key<Channel>, head: u64) {
        if let Some(s) = self.session_mut(sk) {
            if let Some(c) = s.channels.iter_mut().find(|c| c.channel == ch) {
                c.next = c.next.or(Some(head));
            }
        }
    }

    /// Removes the channels named from session `sk`.
    pub fn session_unsubscribe(
        &mut self,
        engine: &mut dyn Engine,
        sk: Key<Session>,
        names: &[&str],
        now: Now,
    ) {
        let mut gone = Vec::new();
        if let Some(s) = self.session_mut(sk) {
            s.channels.retain(|c| {
                let keep = !names.contains(&&*c.name);
                if !keep {
                    gone.push(c.channel);
                }
                keep
            });
        }
        for k in &gone {
            self.unhold(*k);
        }
        self.release_unused(engine, gone, now);
    }

    /// Adds channels to a subscriber connection, each at its cursor: the new memberships
    /// are in its lists, at the start of what is due. Returns what is due on each. Channels
    /// it already follows are left as they are.
    pub fn conn_subscribe(
        &mut self,
        engine: &mut dyn Engine,
        followers: &mut dyn Followers,
        conn: Key<Conn>,
        wanted: &[Wanted],
        now: Now,
    ) -> Result<Vec<Joined>, HttpError> {
        let Some((f, mode)) = followers.follower_mut(conn) else {
            return Ok(Vec::new());
        };
        let current = f.subs.as_slice();
        let fresh: Vec<&Wanted> = wanted
            .iter()
            .filter(|w| {
                !current
                    .iter()
                    .any(|s| self.name(s.channel).is_some_and(|n| **n == *w.channel))
            })
            .collect();
        self.check_cap(current.len() + fresh.len())?;
        let names: Vec<&str> = fresh.iter().map(|w| w.channel.as_str()).collect();
        let keys = self.open(engine, &names, now);
        let mut joined = Vec::new();
        for (w, &k) in fresh.iter().zip(&keys) {
            let read = match self.read(engine, k, w.seq, now) {
                None => continue,
                Some(Reply::Now(read)) => read,
                Some(Reply::Later(ticket)) => {
                    // Attached now, so no live message is missed; kept until the read
                    // returns and `sync::merge` orders them after the history.
                    let head = self.name(k).and_then(|n| engine.head(n));
                    let next = w.seq.or(head).unwrap_or(Sub::UNKNOWN);
                    let mut sub = [Sub::detached(k, next)];
                    self.attach(conn, &mut sub);
                    let sync = self.begin_sync(conn, k);
                    if let Some((f, _)) = followers.follower_mut(conn) {
                        f.subs.push(sub[0]);
                    }
                    joined.push(Joined {
                        channel: k,
                        read: Reply::Later(ticket),
                        sync,
                    });
                    continue;
                }
            };
            // A parked poll is answered with everything due, a stream sent it one message
            // at a time (moving its cursor as it goes).
            let next = match mode {
                Mode::Poll => read.head,
                Mode::Stream => read.start.seq,
            };
            let mut sub = [Sub::detached(k, next)];
            self.attach(conn, &mut sub);
            if let Some((f, _)) = followers.follower_mut(conn) {
                f.subs.push(sub[0]);
            }
            joined.push(Joined {
                channel: k,
                read: Reply::Now(read),
                sync: 0,
            });
        }
        self.release_unused(engine, keys, now);
        Ok(joined)
    }

    /// Removes the channels named from a subscriber connection. Returns how it receives
    /// and whether it follows nothing any more (`None` if it is no subscriber).
    pub fn conn_unsubscribe(
        &mut self,
        engine: &mut dyn Engine,
        followers: &mut dyn Followers,
        conn: Key<Conn>,
        names: &[&str],
        now: Now,
    ) -> Option<(Mode, bool)> {
        let keys: Vec<Key<Channel>> = names.iter().filter_map(|n| self.find(n)).collect();
        let (f, mode) = followers.follower_mut(conn)?;
        let removed: Vec<Sub> = keys.iter().filter_map(|k| f.subs.remove(*k)).collect();
        let empty = f.subs.as_slice().is_empty();
        self.leave(engine, conn, &removed, now);
        Some((mode, empty))
    }
}
