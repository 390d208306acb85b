//! A hierarchical, non-cascading timer wheel (after Linux's `kernel/time/timer.c`).
//!
//! Every timeout of the server sits in one of three wheels: the reactor's (parked
//! long-polls, header and idle keep-alive timeouts, stream heartbeats, accept retries),
//! the hub's (session expiry) and the memory engine's (channel expiry). A wheel never
//! reads the clock: its owner passes `now` (milliseconds since the reactor started) to [`TimerWheel::advance`]
//! and sleeps until [`TimerWheel::next_expiration`].
//!
//! # Layout
//!
//! There are [`LEVELS`] levels of [`SLOTS`] buckets. A tick is one millisecond. Level `L`
//! has a granularity of `8^L` ticks, so level 0 covers the next 63 ms exactly, level 1 the
//! next ~0.5 s in 8 ms buckets, level 3 the next ~32 s in 512 ms buckets, and level 7 the
//! next ~36 hours in ~35 min buckets.
//!
//! A timer is placed once, in the finest level whose range holds it, in the bucket of its
//! deadline *rounded up* to that level's granularity. It stays there until its bucket comes
//! due: nothing cascades. So a timer fires at most one bucket late and never early. A
//! deadline beyond the last level's range is parked in the last reachable bucket and placed
//! again when that bucket comes due, so far deadlines are never fired early either.
//!
//! This suits network timeouts, which are nearly always cancelled before they fire:
//! insert and cancel are O(1) (entries live in a `Slab`, linked by index into per-bucket
//! doubly linked lists), and a stale [`TimerKey`] (one whose timer fired or was cancelled,
//! even if its slot was reused) is recognised by its generation stamp and ignored.
//!
//! Owns only its entries; the reactor, the hub and the engine each have their own wheel.

use slab::Slab;

/// Number of levels in the wheel.
pub const LEVELS: usize = 8;
/// Buckets per level.
pub const SLOTS: usize = 64;
/// log2 of the granularity ratio between two adjacent levels.
const LEVEL_SHIFT: u32 = 3;
/// Marks the end of a bucket's list.
const NIL: u32 = u32::MAX;

/// Names one timer in the wheel. Stale keys are harmless: cancelling them does nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerKey {
    index: u32,
    gen: u32,
}

struct Entry<T> {
    deadline: u64,
    gen: u32,
    /// `level * SLOTS + slot`, to unlink in O(1).
    bucket: u16,
    prev: u32,
    next: u32,
    value: T,
}

#[derive(Clone, Copy)]
struct Level {
    heads: [u32; SLOTS],
    /// Bit `s` is set when bucket `s` is non-empty.
    occupied: u64,
}

/// The timer wheel. `T` is what a timer carries back when it fires.
pub struct TimerWheel<T> {
    entries: Slab<Entry<T>>,
    levels: [Level; LEVELS],
    /// Every tick up to and including this one has been processed.
    elapsed: u64,
    next_gen: u32,
    /// Reused buffer for the timers of one `advance`, sorted by deadline before delivery.
    fired: Vec<(u64, T)>,
}

impl<T> Default for TimerWheel<T> {
    fn default() -> Self {
        Self::new(0)
    }
}

fn granularity_shift(level: usize) -> u32 {
    LEVEL_SHIFT * level as u32
}

impl<T> TimerWheel<T> {
    /// A wheel whose clock starts at `now` (in ticks).
    pub fn new(now: u64) -> Self {
        TimerWheel {
            entries: Slab::new(),
            levels: [Level {
                heads: [NIL; SLOTS],
                occupied: 0,
            }; LEVELS],
            elapsed: now,
            next_gen: 0,
            fired: Vec::new(),
        }
    }

    /// Number of pending timers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no timer is pending.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last tick the wheel has processed.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Adds a timer that fires once `advance` reaches `deadline` (never earlier). A deadline
    /// in the past fires on the next `advance` past the current tick.
    pub fn insert(&mut self, deadline: u64, value: T) -> TimerKey {
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1);
        let index = self.entries.insert(Entry {
            deadline,
            gen,
            bucket: 0,
            prev: NIL,
            next: NIL,
            value,
        });
        debug_assert!(index < NIL as usize, "timer slab overflow: {index}");
        self.place(index as u32);
        TimerKey {
            index: index as u32,
            gen,
        }
    }

    /// Removes a pending timer and returns its value; `None` for a stale key.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        match self.entries.get(key.index as usize) {
            Some(e) if e.gen == key.gen => {}
            _ => return None,
        }
        self.unlink(key.index);
        Some(self.entries.remove(key.index as usize).value)
    }

    /// The deadline a pending timer was given; `None` for a stale key.
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        self.entries
            .get(key.index as usize)
            .filter(|e| e.gen == key.gen)
            .map(|e| e.deadline)
    }

    /// The tick at which the next bucket comes due, if any timer is pending. Sleeping until
    /// then and calling `advance` fires it; nothing is due before it.
    pub fn next_expiration(&self) -> Option<u64> {
        let mut best: Option<u64> = None;
        for (l, level) in self.levels.iter().enumerate() {
            if level.occupied == 0 {
                continue;
            }
            let shift = granularity_shift(l);
            let clk = self.elapsed >> shift;
            let start = ((clk + 1) % SLOTS as u64) as u32;
            let offset = level.occupied.rotate_right(start).trailing_zeros() as u64;
            let at = (clk + 1 + offset) << shift;
            best = Some(best.map_or(at, |b| b.min(at)));
        }
        best
    }

    /// Moves the clock to `now` and appends the values of every timer whose deadline is at
    /// or before `now` to `out`, earliest deadline first.
    pub fn advance(&mut self, now: u64, out: &mut Vec<T>) {
        if now <= self.elapsed {
            return;
        }
        let old = self.elapsed;
        self.elapsed = now;
        let mut reinsert: Vec<u32> = Vec::new();
        for l in 0..LEVELS {
            let shift = granularity_shift(l);
            let (c0, c1) = (old >> shift, now >> shift);
            if c0 == c1 {
                // A coarser level's clock cannot move when this one's did not.
                break;
            }
            let steps = (c1 - c0).min(SLOTS as u64);
            for k in 1..=steps {
                let slot = ((c0 + k) % SLOTS as u64) as usize;
                if self.levels[l].occupied & (1 << slot) == 0 {
                    continue;
                }
                let mut cur = self.levels[l].heads[slot];
                self.levels[l].heads[slot] = NIL;
                self.levels[l].occupied &= !(1 << slot);
                while cur != NIL {
                    let e = &self.entries[cur as usize];
                    let next = e.next;
                    if e.deadline <= now {
                        let e = self.entries.remove(cur as usize);
                        self.fired.push((e.deadline, e.value));
                    } else {
                        // Only a deadline past the wheel's range can be here early.
                        debug_assert_eq!(
                            l,
                            LEVELS - 1,
                            "timer due at {} found in level {l} at {now}",
                            e.deadline
                        );
                        reinsert.push(cur);
                    }
                    cur = next;
                }
            }
        }
        for index in reinsert {
            self.place(index);
        }
        self.fired.sort_by_key(|(deadline, _)| *deadline);
        out.extend(self.fired.drain(..).map(|(_, v)| v));
    }

    /// Links entry `index` into the bucket its deadline belongs to, relative to `elapsed`.
    fn place(&mut self, index: u32) {
        let deadline = self.entries[index as usize].deadline.max(self.elapsed + 1);
        let mut level = LEVELS - 1;
        let mut due = (self.elapsed >> granularity_shift(level)) + SLOTS as u64 - 1;
        for l in 0..LEVELS {
            let shift = granularity_shift(l);
            // Saturating: a deadline at the end of time (`u64::MAX`, "never") must not wrap.
            let rounded_up = deadline.saturating_add((1 << shift) - 1) >> shift;
            if rounded_up - (self.elapsed >> shift) < SLOTS as u64 {
                level = l;
                due = rounded_up;
                break;
            }
        }
        debug_assert!(due > self.elapsed >> granularity_shift(level));
        let slot = (due % SLOTS as u64) as usize;
        let head = self.levels[level].heads[slot];
        {
            let e = &mut self.entries[index as usize];
            e.bucket = (level * SLOTS + slot) as u16;
            e.prev = NIL;
            e.next = head;
        }
        if head != NIL {
            self.entries[head as usize].prev = index;
        }
        self.levels[level].heads[slot] = index;
        self.levels[level].occupied |= 1 << slot;
    }

    fn unlink(&mut self, index: u32) {
        let (bucket, prev, next) = {
            let e = &self.entries[index as usize];
            (e.bucket as usize, e.prev, e.next)
        };
        let (level, slot) = (bucket / SLOTS, bucket % SLOTS);
        if prev == NIL {
            debug_assert_eq!(self.levels[level].heads[slot], index);
            self.levels[level].heads[slot] = next;
            if next == NIL {
                self.levels[level].occupied &= !(1 << slot);
            }
        } else {
            self.entries[prev as usize].next = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
    }
}

#[cfg(test)]
mod tests;
