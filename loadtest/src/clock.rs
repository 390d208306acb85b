//! Time for the generator: the wall-clock microseconds that a payload's `t=` stamp carries
//! and that a subscriber compares it with on delivery. Owns no state; touches no socket,
//! no flag, no account, and imports nothing else of the crate, so the publisher, the run
//! and the flood (its random seed) use it without depending on each other.

use std::time::{SystemTime, UNIX_EPOCH};

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
