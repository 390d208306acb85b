//! A hierarchical, non-cascading timer wheel (after Linux's `kernel/time/timer.c`).
//!
//! The wheel owns every timeout of the server: parked long-polls, header and idle
//! keep-alive timeouts, channel expiry, accept retries. It never reads the clock: the
//! reactor passes `now` (milliseconds since the reactor started) to [`TimerWheel::advance`]
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
            let rounded_up = (deadline + (1 << shift) - 1) >> shift;
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
mod tests {
    use super::*;

    /// A small deterministic generator so the tests need no extra crate.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self) -> u64 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            self.0 >> 33
        }
    }

    /// The latest a timer with `delta` ticks to go may fire: one bucket of the level it was
    /// placed in (the granularity of the finest level whose range holds it).
    fn slack(delta: u64) -> u64 {
        for l in 0..LEVELS {
            let g = 1u64 << granularity_shift(l);
            if delta + g <= (SLOTS as u64 - 1) * g {
                return g;
            }
        }
        1 << granularity_shift(LEVELS - 1)
    }

    /// Advances one tick at a time and returns the tick at which `key`'s value fired.
    fn fire_time(w: &mut TimerWheel<u64>, limit: u64) -> Vec<(u64, u64)> {
        let mut out = Vec::new();
        let mut fired = Vec::new();
        let start = w.elapsed();
        for t in start + 1..=start + limit {
            w.advance(t, &mut out);
            fired.extend(out.drain(..).map(|v| (v, t)));
            if w.is_empty() {
                break;
            }
        }
        fired
    }

    #[test]
    fn every_delta_in_a_whole_range_fires_on_time() {
        for start in [0u64, 5, 63, 64, 511, 4095, 1 << 20, (1 << 32) + 17] {
            let mut w = TimerWheel::new(start);
            for delta in 0..=5000u64 {
                w.insert(start + delta, start + delta);
            }
            for (deadline, at) in fire_time(&mut w, 10_000) {
                assert!(at >= deadline, "fired early: deadline {deadline} at {at}");
                let delta = deadline.saturating_sub(start);
                assert!(
                    at <= deadline.max(start + 1) + slack(delta),
                    "fired too late: deadline {deadline} at {at} (start {start})"
                );
            }
            assert!(w.is_empty());
        }
    }

    #[test]
    fn fires_exactly_at_deadline_on_level_zero() {
        let mut w = TimerWheel::new(1000);
        for d in 1001..1064 {
            w.insert(d, d);
        }
        for (deadline, at) in fire_time(&mut w, 100) {
            assert_eq!(deadline, at);
        }
    }

    #[test]
    fn expiry_order_is_deadline_order_in_one_big_advance() {
        let mut w = TimerWheel::new(0);
        let mut rng = Lcg(7);
        let mut deadlines: Vec<u64> = (0..2000).map(|_| 1 + rng.next() % 100_000).collect();
        for &d in &deadlines {
            w.insert(d, d);
        }
        let mut out = Vec::new();
        w.advance(200_000, &mut out);
        deadlines.sort();
        assert_eq!(out, deadlines);
    }

    #[test]
    fn expiry_order_when_stepping() {
        let mut w = TimerWheel::new(0);
        let mut rng = Lcg(11);
        for _ in 0..3000 {
            let d = 1 + rng.next() % 40_000;
            w.insert(d, d);
        }
        let fired = fire_time(&mut w, 50_000);
        assert_eq!(fired.len(), 3000);
        for (deadline, at) in &fired {
            assert!(at >= deadline);
            assert!(*at <= deadline + slack(*deadline));
        }
        // Fire times never go backwards.
        assert!(fired.windows(2).all(|p| p[0].1 <= p[1].1));
    }

    #[test]
    fn cancel_removes_and_stale_keys_do_nothing() {
        let mut w = TimerWheel::new(0);
        let keys: Vec<_> = (0..1000u64).map(|i| w.insert(10 + i * 37, i)).collect();
        for (i, k) in keys.iter().enumerate() {
            if i % 2 == 0 {
                assert_eq!(w.cancel(*k), Some(i as u64));
            }
        }
        assert_eq!(w.len(), 500);
        // Cancelling twice, or after the slot was reused, is a no-op.
        let reused = w.insert(5, 9999);
        assert_eq!(w.cancel(keys[0]), None);
        assert_eq!(w.deadline(reused), Some(5));
        let fired = fire_time(&mut w, 100_000);
        let mut values: Vec<u64> = fired.iter().map(|(v, _)| *v).collect();
        values.sort();
        let mut expect: Vec<u64> = (0..1000).filter(|i| i % 2 == 1).collect();
        expect.push(9999);
        expect.sort();
        assert_eq!(values, expect);
        assert_eq!(w.cancel(keys[1]), None, "fired timers cannot be cancelled");
    }

    #[test]
    fn cancel_every_position_in_a_bucket() {
        // Heads, middles and tails of one bucket's list.
        for victim in 0..5u64 {
            let mut w = TimerWheel::new(0);
            let keys: Vec<_> = (0..5u64).map(|i| w.insert(20, i)).collect();
            w.cancel(keys[victim as usize]);
            let mut out = Vec::new();
            w.advance(20, &mut out);
            out.sort();
            let expect: Vec<u64> = (0..5).filter(|i| *i != victim).collect();
            assert_eq!(out, expect);
            assert_eq!(w.next_expiration(), None);
        }
    }

    #[test]
    fn far_deadlines_never_fire_early() {
        let mut w = TimerWheel::new(0);
        let day = 24 * 3600 * 1000u64;
        let deadlines = [36 * 3600 * 1000, 3 * day, 40 * day, 400 * day];
        for &d in &deadlines {
            w.insert(d, d);
        }
        let mut out = Vec::new();
        let mut now = 0;
        let mut fired = Vec::new();
        while !w.is_empty() {
            now = w
                .next_expiration()
                .expect("pending timers have a next expiration");
            w.advance(now, &mut out);
            for v in out.drain(..) {
                assert!(now >= v, "fired early: {v} at {now}");
                assert!(now <= v + (1 << granularity_shift(LEVELS - 1)));
                fired.push(v);
            }
        }
        assert_eq!(fired, deadlines);
        assert!(now >= 400 * day);
    }

    #[test]
    fn wrap_around_of_slots_and_levels() {
        // Start just before every level's slot index wraps, insert across the wrap.
        for l in 0..LEVELS {
            let g = 1u64 << granularity_shift(l);
            let start = g * SLOTS as u64 * 3 - 2;
            let mut w = TimerWheel::new(start);
            for k in 1..=40u64 {
                w.insert(start + k * g, start + k * g);
            }
            let mut out = Vec::new();
            let mut now = start;
            while let Some(next) = w.next_expiration() {
                assert!(next > now, "next expiration must move forward");
                now = next;
                w.advance(now, &mut out);
                for v in out.drain(..) {
                    assert!(now >= v && now < v + g, "level {l}: {v} fired at {now}");
                }
            }
            assert!(w.is_empty());
        }
    }

    #[test]
    fn next_expiration_is_never_after_a_due_timer() {
        let mut rng = Lcg(3);
        let mut w = TimerWheel::new(0);
        let mut now = 0u64;
        for round in 0..2000 {
            for _ in 0..3 {
                let d = now + rng.next() % 200_000;
                w.insert(d, d);
            }
            let next = w.next_expiration().expect("timers pending");
            // Nothing fires before `next`...
            let mut out = Vec::new();
            w.advance(next - 1, &mut out);
            assert!(
                out.is_empty(),
                "round {round}: fired before next_expiration"
            );
            // ...and something fires at it.
            w.advance(next, &mut out);
            assert!(
                !out.is_empty(),
                "round {round}: nothing fired at next_expiration"
            );
            for v in out {
                assert!(v <= next);
            }
            now = next;
        }
    }

    #[test]
    fn past_deadlines_fire_on_next_advance() {
        let mut w = TimerWheel::new(1000);
        w.insert(10, 10u64);
        w.insert(1000, 1000);
        let mut out = Vec::new();
        w.advance(1000, &mut out);
        assert!(out.is_empty());
        assert_eq!(w.next_expiration(), Some(1001));
        w.advance(1001, &mut out);
        assert_eq!(out, vec![10, 1000]);
    }
}
