//! The one place the server reads the clocks. The reactor takes a [`Now`] once per loop
//! turn and passes it down; the engine, the hub and the timer wheel never read a clock,
//! so tests drive them with a made-up one.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// The time of one loop turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    /// Milliseconds since the reactor started (monotonic): every deadline.
    pub ms: u64,
    /// Microseconds since the Unix epoch (wall clock): first seqs of channels, token
    /// expiry, `POST /sign`.
    pub unix_us: u64,
}

impl Now {
    /// A made-up time, for tests.
    pub fn at(ms: u64, unix_us: u64) -> Now {
        Now { ms, unix_us }
    }

    /// The wall clock in seconds since the Unix epoch (token expiry).
    pub fn unix_secs(self) -> u64 {
        self.unix_us / 1_000_000
    }

    /// A Unix time in seconds as reactor ms (`u64::MAX` stays "never"; a time already
    /// past is now).
    pub fn ms_of_unix(self, unix_secs: u64) -> u64 {
        if unix_secs == u64::MAX {
            return u64::MAX;
        }
        let wall_ms = self.unix_us / 1000;
        self.ms
            .saturating_add(unix_secs.saturating_mul(1000).saturating_sub(wall_ms))
    }
}

/// The reactor's clocks.
#[derive(Debug)]
pub struct Clock {
    start: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock {
            start: Instant::now(),
        }
    }
}

impl Clock {
    /// Reads both clocks.
    pub fn now(&self) -> Now {
        Now {
            ms: self.mono_ms(),
            unix_us: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_micros() as u64),
        }
    }

    /// Only the monotonic clock (how long the loop may sleep).
    pub fn mono_ms(&self) -> u64 {
        self.start.elapsed().as_millis().min(u64::MAX as u128) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_times_become_reactor_ms() {
        let now = Now::at(500, 10_000_000);
        assert_eq!(now.unix_secs(), 10);
        assert_eq!(now.ms_of_unix(12), 2500);
        assert_eq!(now.ms_of_unix(3), 500, "the past is now");
        assert_eq!(now.ms_of_unix(u64::MAX), u64::MAX);
    }
}
