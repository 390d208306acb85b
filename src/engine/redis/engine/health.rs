//! The Redis engine's health: a PING every `PING_EVERY_MS` on the pub/sub connection (and
//! one at once on every new connection), the round trip of its PONG, and a connection
//! whose PING goes unanswered for `PING_TIMEOUT_MS` killed as dead (both connections, so
//! what waited on them fails at once and the reconnect with backoff in `conns.rs` takes
//! over). Counts the reconnections that worked: a new connection counts once it answered
//! its first PING, and until then the engine is not up (`/healthz` 503).

use super::RedisEngine;
use crate::clock::Now;
use crate::engine::redis::resp::RespError;
use crate::engine::EngineHealth;

/// How often the pub/sub connection is pinged once the last PING was answered.
pub(super) const PING_EVERY_MS: u64 = 2_000;
/// A PING unanswered this long means the connection (or Redis) is dead.
pub(super) const PING_TIMEOUT_MS: u64 = 10_000;

/// A PING sent and not yet answered.
#[derive(Clone, Copy, Debug)]
struct Ping {
    sent: Now,
    /// The connection's PONG count when it was sent.
    pongs: u64,
}

/// What the engine knows of its connection's health.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// The connection (the engine's count of connection attempts) this state is about.
    epoch: Option<u64>,
    ping: Option<Ping>,
    /// When the next PING is due (reactor ms; 0 = at once).
    next_ms: u64,
    /// The latest connection that answered a PING.
    confirmed: Option<u64>,
    /// Reconnections that answered a PING.
    reconnects: u64,
    /// The last round trip on the current connection, in µs.
    rtt_us: Option<u64>,
}

/// The round trip from `sent` to `now`, in µs: the wall clocks' difference (µs
/// resolution), trusted only where it agrees with the monotonic ms within 1 ms.
fn rtt_us(sent: Now, now: Now) -> u64 {
    let mono = now.ms.saturating_sub(sent.ms);
    let wall = now.unix_us.saturating_sub(sent.unix_us);
    let (lo, hi) = (mono.saturating_sub(1) * 1000, (mono + 1) * 1000);
    if (lo..=hi).contains(&wall) {
        wall
    } else {
        mono * 1000
    }
}

impl RedisEngine {
    /// True once the current connection answered a PING, or while the first connection
    /// has not yet been lost (start-up is not an outage).
    pub(super) fn answered(&self) -> bool {
        self.reconnects == 0 || self.health.confirmed == Some(self.reconnects)
    }

    /// When `ping_tick` next has work: a PING due, or the deadline of the one in flight.
    pub(super) fn ping_deadline(&self) -> Option<u64> {
        if self.down.is_some() || self.sub.dead().is_some() {
            return None;
        }
        if self.health.epoch != Some(self.reconnects) {
            return Some(0);
        }
        Some(match self.health.ping {
            Some(p) => p.sent.ms.saturating_add(PING_TIMEOUT_MS),
            None => self.health.next_ms,
        })
    }

    /// Takes a PONG that arrived (measuring the round trip), kills the connections if
    /// the PING in flight is too old, and sends the next PING when it is due.
    pub(super) fn ping_tick(&mut self, now: Now) {
        if self.down.is_some() || self.sub.dead().is_some() {
            return;
        }
        let h = &mut self.health;
        if h.epoch != Some(self.reconnects) {
            // A new connection: ping it at once; nothing measured on the old one counts.
            *h = Health {
                epoch: Some(self.reconnects),
                confirmed: h.confirmed,
                reconnects: h.reconnects,
                ..Health::default()
            };
        }
        if let Some(p) = h.ping {
            if self.sub.pongs() > p.pongs {
                h.ping = None;
                h.rtt_us = Some(rtt_us(p.sent, now));
                h.next_ms = now.ms.saturating_add(PING_EVERY_MS);
                if h.confirmed != h.epoch {
                    h.reconnects += u64::from(self.reconnects > 0);
                    h.confirmed = h.epoch;
                }
            } else if now.ms >= p.sent.ms.saturating_add(PING_TIMEOUT_MS) && !self.more[1] {
                log::warn!(
                    "redis at {} did not answer a PING for {} s; reconnecting",
                    self.addr,
                    PING_TIMEOUT_MS / 1000
                );
                let why = RespError::Io(std::io::ErrorKind::TimedOut);
                self.sub.kill(why);
                self.cmd.kill(why);
                // What waited on the command connection fails now, not at a timeout.
                self.replies();
                self.check_down(now.ms);
                return;
            }
        }
        let h = &mut self.health;
        if h.ping.is_none() && now.ms >= h.next_ms {
            let pongs = self.sub.pongs();
            if self.sub.ping().is_ok() {
                h.ping = Some(Ping { sent: now, pongs });
            }
        }
    }

    /// The engine's health for `/stats`.
    pub(super) fn health_report(&self, up: bool) -> EngineHealth {
        let current = self.health.epoch == Some(self.reconnects);
        EngineHealth {
            kind: "redis",
            up,
            reconnects: self.health.reconnects,
            rtt_us: self.health.rtt_us.filter(|_| up && current),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_use_the_wall_clock_only_where_it_agrees_with_the_monotonic_one() {
        let sent = Now::at(1_000, 5_000_000);
        assert_eq!(rtt_us(sent, Now::at(1_000, 5_000_250)), 250);
        assert_eq!(rtt_us(sent, Now::at(1_003, 5_003_400)), 3_400);
        // The wall clock stepped back, or far ahead: the monotonic ms.
        assert_eq!(rtt_us(sent, Now::at(1_002, 4_000_000)), 2_000);
        assert_eq!(rtt_us(sent, Now::at(1_002, 9_000_000)), 2_000);
    }
}
