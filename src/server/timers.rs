//! Every connection's one timer. Its deadline is computed from the connection's state:
//! the deadline of its phase (header, idle, poll, heartbeat or end of a stream,
//! lingering) and, while output waits unsent, `--idle-timeout` after that output last
//! moved. A firing re-reads the state and does what is due, if anything, then arms the
//! next deadline; so a timer that fires early (the state moved on) costs one re-arm and
//! a busy stream, whose writes only move timestamps, never touches the wheel between
//! heartbeats.
//!
//! Owns the connection timers in the reactor's wheel; the hub's and the engine's
//! deadlines are on their own wheels.

use bytes::Bytes;

use super::conn::{Conn, Phase};
use super::{after, Server, TimerKind};
use crate::config::Config;
use crate::event;
use crate::handle::Key;

/// When a connection's timer must fire next, from its state.
fn deadline(conn: &Conn, config: &Config, now: u64) -> u64 {
    let waiting = conn.pending() > 0;
    let stall = conn
        .output_waiting_since()
        .map(|t| after(t, config.idle_timeout));
    let phase = match &conn.phase {
        Phase::Head { since } => Some(after(*since, config.header_timeout)),
        // The idle clock runs once the last answer is written.
        Phase::Idle { since } => (!waiting).then(|| after(*since, config.idle_timeout)),
        Phase::Ready | Phase::Closing { .. } => None,
        Phase::Parked(p) => Some(p.deadline),
        Phase::Waiting(w) => Some(w.deadline),
        // No heartbeat while output is still waiting: the stall clock watches it.
        Phase::Streaming(st) if waiting => Some(st.end_ms),
        Phase::Streaming(st) => Some(after(st.last_write_ms, config.heartbeat).min(st.end_ms)),
        Phase::Lingering { until } => Some(*until),
    };
    match (phase, stall) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        // Ready or Closing with nothing waiting does not last past this turn; a deadline
        // keeps the invariant anyway.
        (None, None) => after(now, config.idle_timeout),
    }
}

impl Server {
    /// Arms the connection's timer for the deadline its state gives (keeping the armed
    /// one if it is already right). Called whenever the phase changes.
    pub(super) fn arm(&mut self, key: Key<Conn>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let at = deadline(conn, &self.config, self.now.ms);
        if let Some(t) = conn.timer {
            if self.wheel.deadline(t) == Some(at) {
                return;
            }
            self.wheel.cancel(t);
        }
        conn.timer = Some(self.wheel.insert(at, TimerKind::Conn(key)));
    }

    /// Moves the timer earlier if the state now asks for an earlier deadline (output
    /// started waiting); a later one is left for the firing to pick up.
    pub(super) fn tighten(&mut self, key: Key<Conn>) {
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let at = deadline(conn, &self.config, self.now.ms);
        let armed = conn.timer.and_then(|t| self.wheel.deadline(t));
        if armed.is_none_or(|d| d > at) {
            self.arm(key);
        }
    }

    /// The connection's timer fired: close it if its output stalled, else do what its
    /// phase has due, then arm the next deadline.
    pub(super) fn conn_timer_fired(&mut self, key: Key<Conn>) {
        let now = self.now.ms;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        // Timers fired in one batch are handled one by one; if handling an earlier one
        // gave this connection a new timer, this firing is stale.
        if conn.timer.is_some_and(|t| self.wheel.deadline(t).is_some()) {
            return;
        }
        conn.timer = None;
        if conn
            .output_waiting_since()
            .is_some_and(|t| now >= after(t, self.config.idle_timeout))
        {
            log::debug!(
                "closing a connection whose {} unsent bytes did not move for {:?}",
                conn.pending(),
                self.config.idle_timeout
            );
            self.stats.stalled += 1;
            return self.close(key);
        }
        let waiting = conn.pending() > 0;
        match &conn.phase {
            // Slowloris: no whole request within the header timeout.
            Phase::Head { since } if now >= after(*since, self.config.header_timeout) => {
                return self.close(key)
            }
            Phase::Idle { since } if !waiting && now >= after(*since, self.config.idle_timeout) => {
                return self.close(key)
            }
            Phase::Parked(p) if now >= p.deadline => {
                let noop = Bytes::from_static(event::NOOP);
                self.answer_poll(key, &[noop], false);
            }
            Phase::Streaming(_) => self.stream_tick(key),
            Phase::Waiting(w) if now >= w.deadline => self.engine_timed_out(key),
            Phase::Lingering { until } if now >= *until => return self.close(key),
            _ => {}
        }
        if self.conns.get(key).is_some_and(|c| c.timer.is_none()) {
            self.arm(key);
        }
        self.debug_check_timer(key);
    }

    /// Debug builds check after each event that the connection has its timer.
    pub(super) fn debug_check_timer(&self, key: Key<Conn>) {
        if cfg!(debug_assertions) {
            if let Some(c) = self.conns.get(key) {
                debug_assert!(
                    c.timer.is_some_and(|t| self.wheel.deadline(t).is_some()),
                    "connection {key:?} in phase {:?} has no armed timer",
                    c.phase
                );
            }
        }
    }
}
