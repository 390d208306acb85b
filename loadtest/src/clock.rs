//! Time for the generator: the wall-clock microseconds that a payload's `t=` stamp carries
//! and that a subscriber compares it with on delivery, and the [`Schedule`] of a steady
//! publishing rate (when message `k` is due). Owns no state beyond a schedule's start;
//! touches no socket, no flag, no account, and imports nothing else of the crate, so the
//! publisher, the run and the flood (its random seed) use it without depending on each
//! other.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// A steady rate from a start: message `k` (from 0) is due at `start + k / rate`, both on
/// the monotonic clock (to sleep until) and on the wall clock (to stamp).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Schedule {
    start: Instant,
    start_us: u64,
    rate: u64,
}

impl Schedule {
    /// A schedule of `rate` (at least 1) messages per second starting now.
    pub(crate) fn starting_now(rate: u64) -> Schedule {
        Schedule {
            start: Instant::now(),
            start_us: now_us(),
            rate: rate.max(1),
        }
    }

    /// How long after the start message `k` is due (exact: no interval rounding that
    /// adds up over a long run).
    fn offset(&self, k: u64) -> Duration {
        let nanos = u128::from(k) * 1_000_000_000 / u128::from(self.rate);
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// When message `k` is due, on the monotonic clock.
    pub(crate) fn due(&self, k: u64) -> Instant {
        self.start + self.offset(k)
    }

    /// When message `k` is due, in wall-clock microseconds (what [`now_us`] would have read
    /// then).
    pub(crate) fn due_us(&self, k: u64) -> u64 {
        self.start_us + self.offset(k).as_micros() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_due_at_start_plus_k_intervals() {
        let s = Schedule::starting_now(3);
        assert_eq!(s.due(0), s.start);
        assert_eq!(s.due_us(0), s.start_us);
        // 1/3 s does not round: three intervals are exactly one second.
        assert_eq!(s.due(3) - s.start, Duration::from_secs(1));
        assert_eq!(s.due_us(3), s.start_us + 1_000_000);
        assert_eq!(s.due_us(1), s.start_us + 333_333);
        assert!(s.due(2) > s.due(1));
        // A schedule ahead of the clock stays ahead: the stamp is the due time, not now.
        let later = Schedule::starting_now(1);
        assert!(later.due_us(60) > now_us() + 59_000_000);
    }
}
