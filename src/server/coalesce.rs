//! Writes coalesced per loop turn, as Redis writes its replies in `beforeSleep`
//! (`handleClientsWithPendingWrites`): a delivery queues its frame on the stream and
//! marks the connection dirty; a parked poll collects the turn's messages; and once the
//! turn's events, timers and engine events are handled, `write_turn` writes each dirty
//! stream once (one `writev` with everything queued for it), answers each poll with all
//! it collected, and only then the publishers (so a subscriber is written before the
//! publisher hears its message went out). Messages published in one turn (a batch,
//! several channels, pipelined publishes, engine messages read together) cost one write
//! per subscriber, not one per message.

use bytes::Bytes;

use super::conn::Phase;
use super::{Conn, Server};
use crate::handle::Key;

/// `conn` (under `key`) has output queued for the end of the turn: listed once in `list`.
pub(super) fn mark(conn: &mut Conn, key: Key<Conn>, list: &mut Vec<Key<Conn>>) {
    if !conn.dirty {
        conn.dirty = true;
        list.push(key);
    }
}

impl Server {
    /// An answer to a publisher (an admin connection) is queued: it is written at the end
    /// of the turn, after the subscribers.
    pub(super) fn mark_late(&mut self, key: Key<Conn>) {
        if let Some(conn) = self.conns.get_mut(key) {
            mark(conn, key, &mut self.late);
        }
    }

    /// A parked poll gets `event`: kept with the others of this turn, answered all at
    /// once at its end (or sooner, with whatever answers it first: `take_poll_batch`).
    pub(super) fn batch_for_poll(&mut self, key: Key<Conn>, event: Bytes) {
        match self.poll_batched.get(&key) {
            Some(&i) => self.poll_batch[i].1.push(event),
            None => {
                self.poll_batched.insert(key, self.poll_batch.len());
                self.poll_batch.push((key, vec![event]));
            }
        }
    }

    /// What this turn collected for a parked poll so far (its answer carries it first).
    pub(super) fn take_poll_batch(&mut self, key: Key<Conn>) -> Vec<Bytes> {
        match self.poll_batched.remove(&key) {
            Some(i) => std::mem::take(&mut self.poll_batch[i].1),
            None => Vec::new(),
        }
    }

    /// The end of the turn's work: every dirty stream written once, every poll answered
    /// with what it collected, then the publishers' answers; again while that work made
    /// more (requests handled behind an answer may publish).
    pub(super) fn write_turn(&mut self) {
        while !self.dirty.is_empty() || !self.poll_batch.is_empty() || !self.late.is_empty() {
            let mut dirty = std::mem::take(&mut self.dirty);
            for &key in &dirty {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.dirty = false;
                    self.flush(key);
                }
            }
            dirty.clear();
            if self.dirty.is_empty() {
                // The list keeps its allocation across turns (unless a huge fan-out
                // grew it).
                if dirty.capacity() <= 4096 {
                    self.dirty = dirty;
                }
            }
            let polls = std::mem::take(&mut self.poll_batch);
            self.poll_batched.clear();
            for (key, events) in polls {
                let parked = self
                    .conns
                    .get(key)
                    .is_some_and(|c| matches!(c.phase, Phase::Parked(_)));
                if parked && !events.is_empty() {
                    self.answer_poll(key, &events, false);
                }
            }
            let late = std::mem::take(&mut self.late);
            for key in late {
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.dirty = false;
                    self.flush(key);
                }
            }
            self.drain_pending_input();
        }
    }
}
