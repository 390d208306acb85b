//! A subscriber's memberships: the channels a connection follows, each with its cursor
//! and its slot in the channel's subscriber list. Kept in the connection's own state (a
//! parked poll with one channel needs no heap block for it); the hub reaches it through
//! [`Followers`].

use super::Channel;
use crate::handle::Key;
use crate::server::Conn;
use crate::subscription::ClientId;

/// Membership of a subscriber connection in one channel.
#[derive(Clone, Copy, Debug)]
pub struct Sub {
    /// The channel.
    pub channel: Key<Channel>,
    /// The connection's slot in the channel's subscriber list (`DETACHED`: not in it).
    pub slot: u32,
    /// The next seq this subscriber wants from the channel (its cursor).
    pub next: u64,
}

impl Sub {
    /// The slot of a membership that is not in its channel's list (yet).
    pub const DETACHED: u32 = u32::MAX;

    /// The cursor of a membership whose history read is in flight and whose start is not
    /// known yet (a control subscribe "from now on" on an engine that answers later):
    /// left out of cursors, and a session stores it as "from now on".
    pub const UNKNOWN: u64 = u64::MAX;

    /// A membership at cursor `next`, not yet in the channel's list.
    pub fn detached(channel: Key<Channel>, next: u64) -> Sub {
        Sub {
            channel,
            slot: Sub::DETACHED,
            next,
        }
    }
}

/// The channels a subscriber follows. Most follow one, kept inline.
#[derive(Debug)]
pub enum Subs {
    /// One channel.
    One(Sub),
    /// Several channels (or none, after unsubscribing from all).
    Many(Box<[Sub]>),
}

impl Subs {
    /// From a list of memberships.
    pub fn from_vec(mut v: Vec<Sub>) -> Subs {
        if v.len() == 1 {
            Subs::One(v.remove(0))
        } else {
            Subs::Many(v.into_boxed_slice())
        }
    }

    /// All memberships.
    pub fn as_slice(&self) -> &[Sub] {
        match self {
            Subs::One(s) => std::slice::from_ref(s),
            Subs::Many(v) => v,
        }
    }

    /// All memberships, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [Sub] {
        match self {
            Subs::One(s) => std::slice::from_mut(s),
            Subs::Many(v) => v,
        }
    }

    /// The membership in `channel`.
    pub fn find_mut(&mut self, channel: Key<Channel>) -> Option<&mut Sub> {
        self.as_mut_slice()
            .iter_mut()
            .find(|s| s.channel == channel)
    }

    /// Adds a membership.
    pub fn push(&mut self, sub: Sub) {
        let mut v = std::mem::replace(self, Subs::Many(Box::new([]))).into_vec();
        v.push(sub);
        *self = Subs::from_vec(v);
    }

    /// Removes the membership in `channel`, if any.
    pub fn remove(&mut self, channel: Key<Channel>) -> Option<Sub> {
        let mut v = std::mem::replace(self, Subs::Many(Box::new([]))).into_vec();
        let removed = v
            .iter()
            .position(|s| s.channel == channel)
            .map(|i| v.remove(i));
        *self = Subs::from_vec(v);
        removed
    }

    fn into_vec(self) -> Vec<Sub> {
        match self {
            Subs::One(s) => vec![s],
            Subs::Many(v) => v.into_vec(),
        }
    }
}

/// A subscriber connection as the hub sees it: its client id and memberships.
#[derive(Debug)]
pub struct Follower {
    /// Its id for control requests (`X-Comet-Client`, `hello`).
    pub client: ClientId,
    /// The channels it follows, each with its cursor.
    pub subs: Subs,
}

/// How a subscriber connection receives messages. One byte, so a fan-out's list of
/// deliveries costs 12 bytes per subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// A parked long-poll: answered with the first message, then a session.
    Poll,
    /// A stream: sent every message.
    Stream,
}

/// Where the hub finds the follower of a connection: the reactor's connection slab, or
/// a plain slab in tests.
pub trait Followers {
    /// The follower of connection `conn` and how it receives, if it is a subscriber.
    fn follower_mut(&mut self, conn: Key<Conn>) -> Option<(&mut Follower, Mode)>;

    /// When the subscriber tokens of parked poll `conn` expire (Unix seconds), if it is
    /// one: the session it becomes keeps that.
    fn poll_auth_expires(&self, conn: Key<Conn>) -> Option<u64>;
}
