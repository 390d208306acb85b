//! The registry of channels: lookup by name, creation, the published channels (counted
//! under `--max-channels`, and kept in name order so a listing costs what it returns),
//! and the seq of a new channel's first message. A channel's name is allocated once and
//! shared by the index, the channel and the sessions that hold it.
//!
//! A channel's first seq is the wall-clock time of its creation in microseconds, and never
//! less than one past any seq this process has issued, so a channel created again (after
//! a delete or expiry) never reuses a seq of its earlier life. Across restarts that holds
//! while a channel's lifetime average stays under one message per microsecond.
//!
//! Only published channels (those that have had a message) count against the cap: a
//! channel that subscribers named and nobody published to is bounded by its subscribers
//! (the server frees it when the last one leaves). Expiry timers are armed by the server,
//! which owns the timer wheel; this module only answers whether a channel may go.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use crate::channel::{Channel, Message};
use crate::handle::{GenSlab, Key};

/// All channels.
#[derive(Default)]
pub struct Channels {
    /// Every channel by name (SipHash: names come from anonymous clients).
    by_name: HashMap<Arc<str>, Key>,
    slab: GenSlab<Channel>,
    /// The channels that have had a message, in name order. Channels only subscribers
    /// named come and go with them and are not listed.
    published: BTreeSet<Arc<str>>,
    /// Channels nobody published to that sessions between polls hold (their memory is
    /// bounded by this count, which the server caps).
    held_unpublished: usize,
    /// One past the highest seq any channel of this process could have issued so far.
    floor: u64,
}

/// What a publish did to its channel.
pub struct Published<'a> {
    /// The new message.
    pub msg: &'a Message,
    /// Messages evicted from the buffer to make room.
    pub evicted: usize,
    /// This was the channel's first message: it now counts as published.
    pub first: bool,
}

impl Channels {
    /// Number of channels.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Number of channels that have had a message (what `--max-channels` caps).
    pub fn published(&self) -> usize {
        self.published.len()
    }

    /// Number of channels nobody published to that only sessions between polls keep.
    pub fn held_unpublished(&self) -> usize {
        self.held_unpublished
    }

    /// A session between polls holds channel `key`.
    pub fn hold(&mut self, key: Key) {
        if let Some(ch) = self.slab.get_mut(key) {
            ch.set_holders(ch.holders() + 1);
            if ch.holders() == 1 && !ch.is_published() {
                self.held_unpublished += 1;
            }
        }
    }

    /// A session lets go of channel `key` (which stays until `remove_if_unused`).
    pub fn unhold(&mut self, key: Key, now_ms: u64) {
        if let Some(ch) = self.slab.get_mut(key) {
            debug_assert!(ch.holders() > 0, "unhold of {} with no holder", ch.name());
            ch.set_holders(ch.holders().saturating_sub(1));
            if ch.holders() == 0 {
                if !ch.is_published() {
                    self.held_unpublished -= 1;
                }
                if ch.is_unsubscribed() {
                    ch.last_active_ms = now_ms;
                }
            }
        }
    }

    /// The key of channel `name`, if it exists.
    pub fn find(&self, name: &str) -> Option<Key> {
        self.by_name.get(name).copied()
    }

    /// Creates channel `name`, which must not exist. Caps are the caller's business.
    pub fn create(&mut self, name: &str, now_ms: u64, wall_us: u64) -> Key {
        debug_assert!(self.find(name).is_none(), "channel {name} exists");
        let first = wall_us.max(self.floor).max(1);
        let ch = Channel::new(name, first, now_ms);
        let name = ch.shared_name();
        let key = self.slab.insert(ch);
        self.by_name.insert(name, key);
        key
    }

    /// The channel `key` names.
    pub fn get(&self, key: Key) -> Option<&Channel> {
        self.slab.get(key)
    }

    /// The channel `key` names, mutably.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut Channel> {
        self.slab.get_mut(key)
    }

    /// Appends a message to channel `key`, evicting the oldest past `capacity`.
    pub fn publish(
        &mut self,
        key: Key,
        payload: &str,
        now_ms: u64,
        capacity: usize,
    ) -> Option<Published<'_>> {
        let ch = self.slab.get_mut(key)?;
        let first = !ch.is_published();
        if first {
            self.published.insert(ch.shared_name());
            if ch.holders() > 0 {
                self.held_unpublished -= 1;
            }
        }
        let (msg, evicted) = ch.publish(payload, now_ms, capacity);
        Some(Published {
            msg,
            evicted,
            first,
        })
    }

    /// Removes a channel, remembering its seqs so a new life starts past them.
    pub fn remove(&mut self, key: Key) -> Option<Channel> {
        let ch = self.slab.remove(key)?;
        self.by_name.remove(ch.name());
        if ch.is_published() {
            self.published.remove(ch.name());
        } else if ch.holders() > 0 {
            self.held_unpublished -= 1;
        }
        self.floor = self.floor.max(ch.next_seq() + 1);
        Some(ch)
    }

    /// Removes channel `key` if nobody ever published to it and nothing subscribes to
    /// it any more. Returns true if it went.
    pub fn remove_if_unused(&mut self, key: Key) -> bool {
        let unused = self
            .slab
            .get(key)
            .is_some_and(|c| !c.is_published() && c.is_unsubscribed());
        unused && self.remove(key).is_some()
    }

    /// Published channels whose names start with `prefix`, in name order: costs what
    /// it yields.
    pub fn with_prefix<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Channel> + 'a {
        self.published
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(move |name| name.starts_with(prefix))
            .filter_map(|name| self.by_name.get(name).and_then(|k| self.slab.get(*k)))
    }

    /// Every channel with its key.
    pub fn iter(&self) -> impl Iterator<Item = (Key, &Channel)> {
        self.slab.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recreation_never_reuses_seqs() {
        let mut chs = Channels::default();
        let a = chs.create("a", 0, 5000);
        for _ in 0..100 {
            chs.publish(a, "x", 0, 10).unwrap();
        }
        let last = chs.get(a).unwrap().next_seq() - 1;
        chs.remove(a);
        assert_eq!(chs.find("a"), None);
        // Same clock reading as before: the new life still starts past the old one.
        let a2 = chs.create("a", 0, 5000);
        assert!(chs.get(a2).unwrap().first_seq() > last);
        assert!(chs.get(a).is_none(), "old key is stale");
    }

    #[test]
    fn only_published_channels_count_and_unused_ones_go() {
        let mut chs = Channels::default();
        let a = chs.create("a", 0, 1);
        let b = chs.create("b", 0, 1);
        assert_eq!((chs.len(), chs.published()), (2, 0));
        assert!(chs.publish(a, "x", 0, 10).unwrap().first);
        assert!(!chs.publish(a, "y", 0, 10).unwrap().first);
        assert_eq!(chs.published(), 1);
        // A published channel stays (its ttl decides); an unused unpublished one goes.
        assert!(!chs.remove_if_unused(a));
        chs.hold(b);
        chs.hold(b);
        assert_eq!(chs.held_unpublished(), 1);
        assert!(!chs.remove_if_unused(b), "a session holds it");
        chs.unhold(b, 0);
        assert!(!chs.remove_if_unused(b), "another session holds it");
        chs.unhold(b, 0);
        assert_eq!(chs.held_unpublished(), 0);
        assert!(chs.remove_if_unused(b));
        // Held, then published: it no longer counts as held-unpublished.
        let c = chs.create("c", 0, 1);
        chs.hold(c);
        assert_eq!(chs.held_unpublished(), 1);
        chs.publish(c, "x", 0, 1);
        assert_eq!(chs.held_unpublished(), 0);
        chs.unhold(c, 0);
        assert_eq!(chs.held_unpublished(), 0);
        // Held and deleted.
        let d = chs.create("d", 0, 1);
        chs.hold(d);
        chs.remove(d);
        assert_eq!(chs.held_unpublished(), 0);
        chs.remove(c);
        assert_eq!((chs.len(), chs.published()), (1, 1));
        chs.remove(a);
        assert_eq!((chs.len(), chs.published()), (0, 0));
    }

    #[test]
    fn prefix_listing_is_ordered_and_bounded() {
        let mut chs = Channels::default();
        for n in ["b.2", "a", "b.1", "b", "c", "b.10"] {
            let k = chs.create(n, 0, 1);
            chs.publish(k, "x", 0, 1);
        }
        // Not listed: nobody published to it.
        chs.create("b.3", 0, 1);
        let names = |p: &str| {
            chs.with_prefix(p)
                .map(|c| c.name().to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(names("b."), ["b.1", "b.10", "b.2"]);
        assert_eq!(names(""), ["a", "b", "b.1", "b.10", "b.2", "c"]);
        assert!(names("d").is_empty());
        assert_eq!(chs.with_prefix("").take(2).count(), 2);
    }
}
