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
