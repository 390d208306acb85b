//! A `Slab` whose keys carry a generation, so a key kept past its entry's removal (by a
//! timer, a channel's subscriber list or a control request) finds nothing instead of
//! whatever reused the slot.

use slab::Slab;

/// A generation-checked key into a [`GenSlab`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    index: u32,
    gen: u32,
}

impl Key {
    /// The slot index (also used as the mio `Token` of a connection).
    pub fn index(self) -> usize {
        self.index as usize
    }
}

struct Slot<T> {
    gen: u32,
    value: T,
}

/// A slab of `T` addressed by generation-checked [`Key`]s.
pub struct GenSlab<T> {
    slab: Slab<Slot<T>>,
    next_gen: u32,
}

impl<T> Default for GenSlab<T> {
    fn default() -> Self {
        GenSlab {
            slab: Slab::new(),
            next_gen: 1,
        }
    }
}

impl<T> GenSlab<T> {
    /// Stores `value` and returns its key.
    pub fn insert(&mut self, value: T) -> Key {
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1);
        let index = self.slab.insert(Slot { gen, value });
        debug_assert!(index <= u32::MAX as usize, "slab index overflow: {index}");
        Key {
            index: index as u32,
            gen,
        }
    }

    /// The key of the live entry at `index`, if any.
    pub fn key_at(&self, index: usize) -> Option<Key> {
        self.slab.get(index).map(|s| Key {
            index: index as u32,
            gen: s.gen,
        })
    }

    /// The entry `key` names, unless it was removed.
    pub fn get(&self, key: Key) -> Option<&T> {
        match self.slab.get(key.index as usize) {
            Some(s) if s.gen == key.gen => Some(&s.value),
            _ => None,
        }
    }

    /// The entry `key` names, mutably, unless it was removed.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        match self.slab.get_mut(key.index as usize) {
            Some(s) if s.gen == key.gen => Some(&mut s.value),
            _ => None,
        }
    }

    /// Removes and returns the entry `key` names, unless it was already removed.
    pub fn remove(&mut self, key: Key) -> Option<T> {
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
    pub fn iter(&self) -> impl Iterator<Item = (Key, &T)> {
        self.slab.iter().map(|(i, s)| {
            (
                Key {
                    index: i as u32,
                    gen: s.gen,
                },
                &s.value,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_find_nothing_after_reuse() {
        let mut s = GenSlab::default();
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
