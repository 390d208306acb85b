//! The registry of channels: lookup by name, creation under `--max-channels`, and the
//! seq of a new channel's first message.
//!
//! A channel's first seq is the wall-clock time of its creation in microseconds, and never
//! less than one past any seq this process has issued, so a channel created again (after
//! a delete or expiry) never reuses a seq of its earlier life. Across restarts that holds
//! while a channel's lifetime average stays under one message per microsecond. Expiry
//! timers are armed by the server, which owns the timer wheel; this module only answers
//! whether a channel may go.

use std::collections::HashMap;

use crate::channel::Channel;
use crate::handle::{GenSlab, Key};

/// Why a channel could not be created.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full;

/// All channels.
#[derive(Default)]
pub struct Channels {
    by_name: HashMap<Box<str>, Key>,
    slab: GenSlab<Channel>,
    /// One past the highest seq any channel of this process could have issued so far.
    floor: u64,
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

    /// The key of channel `name`, if it exists.
    pub fn find(&self, name: &str) -> Option<Key> {
        self.by_name.get(name).copied()
    }

    /// Creates channel `name` (which must not exist) unless `max` channels exist.
    pub fn create(
        &mut self,
        name: &str,
        max: usize,
        now_ms: u64,
        wall_us: u64,
    ) -> Result<Key, Full> {
        debug_assert!(self.find(name).is_none(), "channel {name} exists");
        if self.slab.len() >= max {
            return Err(Full);
        }
        let first = wall_us.max(self.floor).max(1);
        let key = self.slab.insert(Channel::new(name, first, now_ms));
        self.by_name.insert(name.into(), key);
        Ok(key)
    }

    /// The channel `key` names.
    pub fn get(&self, key: Key) -> Option<&Channel> {
        self.slab.get(key)
    }

    /// The channel `key` names, mutably.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut Channel> {
        self.slab.get_mut(key)
    }

    /// Removes a channel, remembering its seqs so a new life starts past them.
    pub fn remove(&mut self, key: Key) -> Option<Channel> {
        let ch = self.slab.remove(key)?;
        self.by_name.remove(ch.name());
        self.floor = self.floor.max(ch.next_seq() + 1);
        Some(ch)
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
    fn cap_and_recreation_never_reuse_seqs() {
        let mut chs = Channels::default();
        let a = chs.create("a", 2, 0, 5000).unwrap();
        chs.create("b", 2, 0, 5000).unwrap();
        assert_eq!(chs.create("c", 2, 0, 5000), Err(Full));
        for _ in 0..100 {
            chs.get_mut(a).unwrap().publish("x", 0, 10);
        }
        let last = chs.get(a).unwrap().next_seq() - 1;
        chs.remove(a);
        assert_eq!(chs.find("a"), None);
        // Same clock reading as before: the new life still starts past the old one.
        let a2 = chs.create("a", 2, 0, 5000).unwrap();
        assert!(chs.get(a2).unwrap().first_seq() > last);
        assert!(chs.get(a).is_none(), "old key is stale");
    }
}
