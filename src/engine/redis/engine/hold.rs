//! The ordering contract of `Ticket` on Redis: a publish's answer (its seqs) comes on the
//! command connection, its live message on the pub/sub connection, in either order. The
//! answer is held until this process has handed out the live message of every channel
//! it watches in step (so a local subscriber has its message before the publisher has
//! its seq, as with the memory engine); a channel not watched here, or whose live stream
//! is being repaired or lost, holds nothing back.

use std::sync::Arc;

use super::RedisEngine;
use crate::engine::{Answer, EngineEvent, Ticket};

/// A publish answer waiting for its live messages.
pub(super) struct Held {
    ticket: Ticket,
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
            self.held.push(Held { ticket, seqs, due });
        }
    }

    /// Answers the held publishes whose live messages have come out (or will not).
    pub(super) fn release_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let mut held = std::mem::take(&mut self.held);
        held.retain_mut(|h| {
            h.due.retain(|(n, s)| self.awaited(n, *s));
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
