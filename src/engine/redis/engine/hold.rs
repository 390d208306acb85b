//! The ordering contract of `Ticket` on Redis: a publish's answer (its seqs) comes on the
//! command connection, its live message on the pub/sub connection, in either order. The
//! answer is held until this process has handed out the live message of every channel
//! it watches in step (so a local subscriber has its message before the publisher has
//! its seq, as with the memory engine); a channel not watched here, or whose live stream
//! is being repaired or lost, holds nothing back. An answer is never held longer than
//! `HOLD_MAX_MS` (a pub/sub connection far behind): the publish took effect, and its
//! publisher must not be told 503 for it.

use std::sync::Arc;

use super::RedisEngine;
use crate::engine::{Answer, EngineEvent, Ticket};

/// The longest a publish's answer waits for its live messages (ms).
const HOLD_MAX_MS: u64 = 1_000;

/// A publish answer waiting for its live messages.
pub(super) struct Held {
    ticket: Ticket,
    /// When it is answered anyway (reactor ms).
    until_ms: u64,
    seqs: Vec<u64>,
    /// `(channel, seq)` whose live message has not come out yet.
    due: Vec<(Arc<str>, u64)>,
}

impl RedisEngine {
    /// True while channel `name`'s live message `seq` may still come out in order.
    fn awaited(&self, name: &str, seq: u64) -> bool {
        !self.repairing.contains_key(name)
            && self.sub.dead().is_none()
            && self.expect.get(name).is_some_and(|&e| e <= seq)
    }

    /// A publish was answered with `seqs`: answered now, or held for its live messages.
    pub(super) fn answer_published(
        &mut self,
        ticket: Ticket,
        names: Vec<Arc<str>>,
        seqs: Vec<u64>,
    ) {
        let due: Vec<(Arc<str>, u64)> = names
            .into_iter()
            .zip(seqs.iter().copied())
            .filter(|(n, s)| self.awaited(n, *s))
            .collect();
        if due.is_empty() {
            self.events.push(EngineEvent::Answered {
                ticket,
                answer: Answer::Published(Ok(seqs)),
            });
        } else {
            let until_ms = self.last_ms + HOLD_MAX_MS;
            self.held.push(Held {
                ticket,
                until_ms,
                seqs,
                due,
            });
        }
    }

    /// Answers the held publishes whose live messages have come out (or will not).
    pub(super) fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let mut held = std::mem::take(&mut self.held);
        let now = self.last_ms;
        held.retain_mut(|h| {
            h.due.retain(|(n, s)| self.awaited(n, *s));
            if now >= h.until_ms {
                h.due.clear();
            }
            if !h.due.is_empty() {
                return true;
            }
            self.events.push(EngineEvent::Answered {
                ticket: h.ticket,
                answer: Answer::Published(Ok(std::mem::take(&mut h.seqs))),
            });
            false
        });
        self.held = held;
    }
}

impl RedisEngine {
    /// When the oldest held answer is due anyway.
    pub(super) fn held_deadline(&self) -> Option<u64> {
        self.held.iter().map(|h| h.until_ms).min()
    }
}
