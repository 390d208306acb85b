//! A `Slab` whose keys carry a generation, so a key kept past its entry's removal (by a
//! timer, a channel's subscriber list or a control request) finds nothing instead of
//! whatever reused the slot. Keys are typed by what they name (`Key<Conn>`,
//! `Key<Channel>`, `Key<Session>`), so one kind of key cannot be used for another.
//!
//! Owns nothing but the slab mechanics; knows nothing of what it stores.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;

use slab::Slab;

/// A generation-checked key into a [`GenSlab`] of `T`s.
pub struct Key<T> {
    index: u32,
    gen: u32,
    of: PhantomData<fn() -> T>,
}

impl<T> Key<T> {
    /// The slot index (also used as the mio `Token` of a connection).
    pub fn index(self) -> usize {
        self.index as usize
    }

    fn new(index: u32, gen: u32) -> Self {
        Key {
            index,
            gen,
            of: PhantomData,
        }
    }
}

// Derives would demand `T: Clone` etc.; a key is two integers whatever it names.
impl<T> Clone for Key<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Key<T> {}
impl<T> PartialEq for Key<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.index, self.gen) == (other.index, other.gen)
    }
}
impl<T> Eq for Key<T> {}
impl<T> Hash for Key<T> {
    fn hash<H: Hasher>(&self, h: &mut H) {
        (self.index, self.gen).hash(h);
    }
}
impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({}v{})", self.index, self.gen)
    }
}

struct Slot<T> {
    gen: u32,
    value: T,
}

/// A slab of `T` addressed by generation-checked `Key<K>`s. `K` is what the keys name,
/// normally `T` itself; a test may store a stand-in under the keys of the real thing.
pub struct GenSlab<T, K = T> {
    slab: Slab<Slot<T>>,
    next_gen: u32,
    keys: PhantomData<fn() -> K>,
}

impl<T, K> Default for GenSlab<T, K> {
    fn default() -> Self {
        GenSlab {
            slab: Slab::new(),
            next_gen: 1,
            keys: PhantomData,
        }
    }
}

impl<T, K> GenSlab<T, K> {
    /// Stores `value` and returns its key.
    pub fn insert(&mut self, value: T) -> Key<K> {
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1);
        let index = self.slab.insert(Slot { gen, value });
        debug_assert!(index <= u32::MAX as usize, "slab index overflow: {index}");
        Key::new(index as u32, gen)
    }

    /// The key of the live entry at `index`, if any.
    pub fn key_at(&self, index: usize) -> Option<Key<K>> {
        self.slab.get(index).map(|s| Key::new(index as u32, s.gen))
    }

    /// The entry `key` names, unless it was removed.
    pub fn get(&self, key: Key<K>) -> Option<&T> {
        match self.slab.get(key.index as usize) {
            Some(s) if s.gen == key.gen => Some(&s.value),
            _ => None,
        }
    }

    /// The entry `key` names, mutably, unless it was removed.
    pub fn get_mut(&mut self, key: Key<K>) -> Option<&mut T> {
        match self.slab.get_mut(key.index as usize) {
            Some(s) if s.gen == key.gen => Some(&mut s.value),
            _ => None,
        }
    }

    /// Removes and returns the entry `key` names, unless it was already removed.
    pub fn remove(&mut self, key: Key<K>) -> Option<T> {
        match self.slab.get(key.index as usize) {
            Some(s) if s.gen == key.gen => Some(self.slab.remove(key.index as usize).value),
            _ => None,
        }
    }

    /// Number of live entries.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Every live entry with its key.
    pub fn iter(&self) -> impl Iterator<Item = (Key<K>, &T)> {
        self.slab
            .iter()
            .map(|(i, s)| (Key::new(i as u32, s.gen), &s.value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_find_nothing_after_reuse() {
        let mut s: GenSlab<&str> = GenSlab::default();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.index(), b.index(), "slot is reused");
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.key_at(b.index()), Some(b));
    }
}
