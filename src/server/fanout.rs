//! What the engine reports, delivered: each message to the local subscribers the hub
//! names, a parked poll answered with it, a stream sent it in its format. Also the
//! reactor's side of [`Followers`]: the hub finds a subscriber's memberships in its
//! connection's phase.

use super::conn::{Conn, Phase};
use super::Server;
use std::sync::Arc;

use crate::engine::{EngineEvent, Message, Notice};
use crate::handle::{GenSlab, Key};
use crate::hub::{Follower, Followers, Hub, Mode};

impl Followers for GenSlab<Conn> {
    fn follower_mut(&mut self, conn: Key<Conn>) -> Option<(&mut Follower, Mode)> {
        match &mut self.get_mut(conn)?.phase {
            Phase::Parked(p) => Some((&mut p.follower, Mode::Poll)),
            Phase::Streaming(st) => Some((&mut st.follower, Mode::Stream)),
            _ => None,
        }
    }

    fn poll_auth_expires(&self, conn: Key<Conn>) -> Option<u64> {
        match &self.get(conn)?.phase {
            Phase::Parked(p) => Some(p.auth_expires),
            _ => None,
        }
    }
}

/// Queues a published message of `channel` on a stream (whose cursor has already moved
/// past it), sharing every byte other subscribers get.
pub(super) fn queue_message(conn: &mut Conn, hub: &Hub, channel: &str, msg: &Message, now: u64) {
    let Phase::Streaming(st) = &mut conn.phase else {
        return;
    };
    let subs = st.follower.subs.as_slice();
    let mut parts = Vec::with_capacity(3);
    st.out.message(
        msg,
        channel,
        subs.len() == 1,
        || hub.cursor(subs),
        &mut parts,
    );
    st.wrote(now);
    for p in parts {
        conn.queue(p);
    }
}

impl Server {
    /// Delivers everything the engine has reported since the last call.
    pub(super) fn fan_out(&mut self) {
        let mut events = std::mem::take(&mut self.engine_events);
        self.engine.drain_events(&mut events);
        for e in events.drain(..) {
            match e {
                EngineEvent::Message { channel, msg } => self.deliver(&channel, &msg),
                EngineEvent::Gap { channel, notice } => self.deliver_gap(&channel, notice),
                EngineEvent::Answered { ticket, answer } => self.engine_answered(ticket, answer),
                EngineEvent::Deleted { channel } => self.close_deleted(&channel),
            }
        }
        self.engine_events = events;
    }

    /// A gap in a channel's live stream: every subscriber it concerns is told (`lost` or
    /// `reset`), a parked poll answered with it.
    fn deliver_gap(&mut self, channel: &str, notice: Notice) {
        let mut out = std::mem::take(&mut self.deliveries);
        self.hub.gap(channel, notice, &mut self.conns, &mut out);
        let json = notice.event(channel);
        for d in &out {
            match d.mode {
                Mode::Poll => self.answer_poll(d.conn, std::slice::from_ref(&json), false),
                Mode::Stream => {
                    let Some(conn) = self.conns.get_mut(d.conn) else {
                        continue;
                    };
                    let Phase::Streaming(st) = &mut conn.phase else {
                        continue;
                    };
                    let frame = st
                        .out
                        .event(&json, &self.hub.cursor(st.follower.subs.as_slice()));
                    st.wrote(self.now.ms);
                    conn.queue(frame);
                    self.flush(d.conn);
                }
            }
        }
        out.clear();
        self.deliveries = out;
    }

    /// One message to every local subscriber of its channel: streams are sent it, parked
    /// polls answered with it.
    fn deliver(&mut self, channel: &str, msg: &Arc<Message>) {
        let mut out = std::mem::take(&mut self.deliveries);
        self.hub.fan_out(channel, msg, &mut self.conns, &mut out);
        for d in &out {
            match d.mode {
                Mode::Poll => self.batch_for_poll(d.conn, msg.json.clone()),
                Mode::Stream => {
                    // Queued now, written once at the end of the turn (`write_turn`): one
                    // slab lookup per delivery.
                    if let Some(conn) = self.conns.get_mut(d.conn) {
                        queue_message(conn, &self.hub, channel, msg, self.now.ms);
                        super::coalesce::mark(conn, d.conn, &mut self.dirty);
                    }
                }
            }
        }
        // A large list is not kept: a fan-out to many streams allocates and frees a write
        // buffer per stream, and freeing a block of 64 KiB or more is what lets the
        // allocator (glibc) coalesce those small freed blocks and return the memory;
        // keeping the list would keep ~250 bytes per stream resident after a burst.
        if out.capacity() * std::mem::size_of::<crate::hub::Delivery>() < 64 * 1024 {
            self.deliveries = out;
        }
    }
}
