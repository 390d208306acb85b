//! The hub: this process's subscribers. Which connection or long-poll session follows
//! which channel at which cursor, the client ids that name them, and the fan-out of a
//! message to them.
//!
//! The hub keeps a record per channel that has local subscribers (its subscriber slots
//! and how many sessions hold it) and tells the engine when such a record comes and goes
//! (`watch`/`unwatch`). A subscriber's own memberships and cursors live in its
//! connection's state (a [`Follower`], so an idle subscriber costs no extra allocation);
//! the hub reaches them through [`Followers`], which the reactor implements over its
//! connection slab and tests over a plain slab. The hub never touches a socket, a
//! transport or the reactor's timers; its own deadlines (session expiry) are on its own
//! wheel, driven by `advance(now)`.
//!
//! Children: `follower` (a subscriber's memberships), `sessions` (long-poll sessions
//! between polls), `poll` (merging a session with a poll, reading what is due),
//! `control` (subscribe/unsubscribe on a session or a connection).

mod control;
mod follower;
mod poll;
mod sessions;
pub mod sync;

use std::collections::HashMap;
use std::sync::Arc;

use slab::Slab;

use crate::clock::Now;
use crate::engine::{Engine, Message, Read, Reply};
use crate::handle::{GenSlab, Key};
use crate::http::HttpError;
use crate::server::Conn;
use crate::subscription::ClientId;
use crate::timer::TimerWheel;

pub use follower::{Follower, Followers, Mode, Sub, Subs};
pub use poll::{merge_poll, PollChannel, PollRead};
pub use sessions::{Session, SessionSub};

/// What a client id names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientRef {
    /// A connection: a stream, or a parked poll.
    Conn(Key<Conn>),
    /// A long-poll session between polls.
    Session(Key<Session>),
}

/// A channel with local subscribers.
#[derive(Debug)]
pub struct Channel {
    /// Shared with the index, the sessions that hold it and the engine.
    name: Arc<str>,
    /// Connections waiting on it. A connection remembers its slot so it can leave in
    /// O(1); a slot holds the (generation-checked) key of the connection that owns it.
    subs: Slab<Key<Conn>>,
    /// Long-poll sessions between polls that hold it.
    holders: u32,
    /// It has had a message (a session holding one that has not is capped).
    published: bool,
}

/// Per-subscriber limits.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Most channels one subscriber follows (`--max-channels-per-subscriber`).
    pub max_channels: usize,
    /// Most sessions, and most channels nobody published to that sessions hold
    /// (`--max-sessions`).
    pub max_sessions: u64,
    /// How long a session waits for its next poll, ms.
    pub session_timeout_ms: u64,
}

impl Limits {
    /// The limits the flags give.
    pub fn of(config: &crate::Config) -> Limits {
        Limits {
            max_channels: config.max_channels_per_subscriber as usize,
            max_sessions: config.max_sessions,
            session_timeout_ms: config.session_timeout().as_millis().min(u64::MAX as u128) as u64,
        }
    }
}

/// The hub's counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct HubStats {
    /// Messages handed to subscribers: in a catch-up or a fan-out, one per subscriber
    /// and message.
    pub delivered: u64,
    /// Sessions forgotten at `--max-sessions`.
    pub sessions_evicted: u64,
}

/// Who gets a published message, and how: a parked poll is answered, a stream sent it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// The subscriber's connection.
    pub conn: Key<Conn>,
    /// Parked poll or stream.
    pub mode: Mode,
}

/// The live messages kept for memberships whose history read is in flight.
type Kept = HashMap<(Key<Conn>, Key<Channel>), sync::Syncing>;

/// This process's subscribers.
pub struct Hub {
    limits: Limits,
    by_name: HashMap<Arc<str>, Key<Channel>>,
    channels: GenSlab<Channel>,
    /// Channels nobody published to that sessions hold (capped at `--max-sessions`).
    held_unpublished: u64,
    /// Every live client id.
    clients: HashMap<ClientId, ClientRef>,
    sessions: sessions::Sessions,
    /// Session expiry.
    wheel: TimerWheel<Key<Session>>,
    /// Memberships whose history read is in flight, with the live messages kept for them.
    syncing: Kept,
    /// The last sync token handed out (`begin_sync`).
    sync_tokens: u64,
    stats: HubStats,
}

impl Hub {
    /// An empty hub.
    pub fn new(limits: Limits) -> Hub {
        Hub {
            limits,
            by_name: HashMap::new(),
            channels: GenSlab::default(),
            held_unpublished: 0,
            clients: HashMap::new(),
            sessions: sessions::Sessions::default(),
            wheel: TimerWheel::new(0),
            syncing: HashMap::new(),
            sync_tokens: 0,
            stats: HubStats::default(),
        }
    }

    /// The hub's counters.
    pub fn stats(&self) -> HubStats {
        self.stats
    }

    /// Sessions between polls.
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The channels a subscriber may follow at most.
    pub fn max_channels(&self) -> usize {
        self.limits.max_channels
    }

    /// The per-subscriber channel cap, the one place it is checked: `n` channels.
    pub fn check_cap(&self, n: usize) -> Result<(), HttpError> {
        if n > self.limits.max_channels {
            return Err(HttpError::new(400, "too many channels for this client"));
        }
        Ok(())
    }

    /// What client id `id` names.
    pub fn client(&self, id: &ClientId) -> Option<ClientRef> {
        self.clients.get(id).copied()
    }

    /// Client `id` is the connection `conn` (a stream, or a parked poll).
    pub fn register(&mut self, id: ClientId, conn: Key<Conn>) {
        self.clients.insert(id, ClientRef::Conn(conn));
    }

    /// Client `id` is gone (a stream ended, a parked poll was answered).
    pub fn unregister(&mut self, id: &ClientId) {
        self.clients.remove(id);
    }

    /// The channel `name`, if it has local subscribers.
    pub fn find(&self, name: &str) -> Option<Key<Channel>> {
        self.by_name.get(name).copied()
    }

    /// The name of channel `ch` (`None`: it was deleted or has no subscriber left).
    pub fn name(&self, ch: Key<Channel>) -> Option<&Arc<str>> {
        self.channels.get(ch).map(|c| &c.name)
    }

    /// Connections waiting on channel `name`, and sessions holding it.
    pub fn counts(&self, name: &str) -> (usize, u32) {
        self.find(name)
            .and_then(|k| self.channels.get(k))
            .map_or((0, 0), |c| (c.subs.len(), c.holders))
    }

    /// Finds or makes the record of every named channel (the engine creates its log and
    /// fixes its first seq). Records nobody ends up holding go with `release_unused`.
    pub fn open(&mut self, engine: &mut dyn Engine, names: &[&str], now: Now) -> Vec<Key<Channel>> {
        names
            .iter()
            .map(|name| match self.find(name) {
                Some(k) => k,
                None => {
                    let published = engine.watch(name, now);
                    let name: Arc<str> = (*name).into();
                    let k = self.channels.insert(Channel {
                        name: name.clone(),
                        subs: Slab::new(),
                        holders: 0,
                        published,
                    });
                    self.by_name.insert(name, k);
                    k
                }
            })
            .collect()
    }

    /// Drops the records among `keys` that no connection and no session uses any more.
    pub fn release_unused(
        &mut self,
        engine: &mut dyn Engine,
        keys: impl IntoIterator<Item = Key<Channel>>,
        now: Now,
    ) {
        for k in keys {
            let unused = self
                .channels
                .get(k)
                .is_some_and(|c| c.subs.is_empty() && c.holders == 0);
            if unused {
                if let Some(c) = self.channels.remove(k) {
                    self.by_name.remove(&c.name);
                    engine.unwatch(&c.name, now);
                }
            }
        }
    }

    /// The one subscribe pipeline: what `cursor` has due on channel `ch` (expired
    /// messages dropped first; a `lost`/`reset` notice; the buffered messages), counted
    /// as delivered. The subscriber's cursor once it has them is `head`. `None`: the
    /// channel has no log. An engine that answers later gives a ticket instead: the
    /// caller syncs the membership (`begin_sync`) until the answer comes.
    pub fn read(
        &mut self,
        engine: &mut dyn Engine,
        ch: Key<Channel>,
        cursor: Option<u64>,
        now: Now,
    ) -> Option<Reply<Read>> {
        let c = self.channels.get(ch)?;
        match engine.read(&c.name, cursor, now) {
            Reply::Now(read) => {
                let read = read?;
                self.stats.delivered += read.messages.len() as u64;
                Some(Reply::Now(read))
            }
            Reply::Later(t) => Some(Reply::Later(t)),
        }
    }

    /// Puts connection `conn` in the subscriber lists of its memberships.
    pub fn attach(&mut self, conn: Key<Conn>, subs: &mut [Sub]) {
        for sub in subs {
            if let Some(c) = self.channels.get_mut(sub.channel) {
                debug_assert_eq!(sub.slot, Sub::DETACHED, "attached twice");
                sub.slot = c.subs.insert(conn) as u32;
            }
        }
    }

    /// Takes connection `conn` out of the subscriber lists of `subs`; a channel nobody
    /// uses any more goes. A slot is only freed for the connection that owns it.
    pub fn leave(&mut self, engine: &mut dyn Engine, conn: Key<Conn>, subs: &[Sub], now: Now) {
        for sub in subs {
            if let Some(c) = self.channels.get_mut(sub.channel) {
                let owned = c.subs.get(sub.slot as usize) == Some(&conn);
                debug_assert!(
                    owned || sub.slot == Sub::DETACHED,
                    "{conn:?} leaves slot {} of {} it does not own",
                    sub.slot,
                    c.name
                );
                if owned {
                    c.subs.remove(sub.slot as usize);
                }
                if !self.syncing.is_empty() {
                    self.syncing.remove(&(conn, sub.channel));
                }
            }
        }
        self.release_unused(engine, subs.iter().map(|s| s.channel), now);
    }

    /// A subscriber's cursor: `news:9,chat:3` (deleted channels left out).
    pub fn cursor(&self, subs: &[Sub]) -> String {
        let mut out = String::new();
        for s in subs.iter().filter(|s| s.next != Sub::UNKNOWN) {
            if let Some(name) = self.name(s.channel) {
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(name);
                out.push(':');
                out.push_str(&s.next.to_string());
            }
        }
        out
    }

    /// A message was appended to `channel`: moves the cursor of every local subscriber
    /// that has not had it yet, and lists them in `out` with how each gets it. Generic
    /// over `followers` (not `dyn`): it is called once per subscriber on the hot path.
    pub fn fan_out<F: Followers + ?Sized>(
        &mut self,
        channel: &str,
        msg: &Arc<Message>,
        followers: &mut F,
        out: &mut Vec<Delivery>,
    ) {
        out.clear();
        let Some(k) = self.find(channel) else {
            return;
        };
        let Some(c) = self.channels.get_mut(k) else {
            return;
        };
        if !c.published {
            c.published = true;
            if c.holders > 0 {
                self.held_unpublished -= 1;
            }
        }
        for (_, &conn) in c.subs.iter() {
            if !self.syncing.is_empty() {
                if let Some(kept) = self.syncing.get_mut(&(conn, k)) {
                    kept.keep(msg);
                    continue;
                }
            }
            let Some((f, mode)) = followers.follower_mut(conn) else {
                debug_assert!(false, "{conn:?} in the list of {channel} is no subscriber");
                continue;
            };
            let Some(sub) = f.subs.find_mut(k) else {
                continue;
            };
            // A stream whose catch-up already carried it.
            if msg.seq < sub.next {
                continue;
            }
            debug_assert!(
                mode != Mode::Stream || msg.seq == sub.next,
                "stream skipped seqs on {channel}"
            );
            sub.next = msg.seq + 1;
            out.push(Delivery { conn, mode });
        }
        self.stats.delivered += out.len() as u64;
    }

    /// Channel `name` was deleted: its record goes (sessions holding it learn it at their
    /// next poll), and its connections are returned, to be told `close`.
    pub fn delete(&mut self, name: &str) -> Option<(Key<Channel>, Vec<Key<Conn>>)> {
        let k = self.by_name.remove(name)?;
        let c = self.channels.remove(k)?;
        if c.holders > 0 && !c.published {
            self.held_unpublished -= 1;
        }
        Some((k, c.subs.iter().map(|(_, &conn)| conn).collect()))
    }

    /// When `advance` next has work (reactor ms).
    pub fn next_deadline(&self) -> Option<u64> {
        self.wheel.next_expiration()
    }

    /// Forgets the sessions whose `--session-timeout` has passed.
    pub fn advance(&mut self, engine: &mut dyn Engine, now: Now) {
        let mut due = Vec::new();
        self.wheel.advance(now.ms, &mut due);
        for key in due {
            if let Some(s) = self.sessions.get(key) {
                log::debug!("session {} expired", s.id);
            }
            self.forget_session(engine, key, now);
        }
    }
}

#[cfg(test)]
mod tests;
