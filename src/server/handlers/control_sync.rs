//! A control subscribe whose new channels' history reads are answered later (a networked
//! engine): the control request waits (`Call::Control`) while the subscriber's new
//! memberships are attached and syncing; each read, as it comes, is merged with the live
//! messages kept meanwhile and sent to the stream (or answers the parked poll); the
//! control request is answered 204 once all are in, 503 if one failed or
//! `--engine-timeout` passed (the memberships whose reads did not come back are removed).

use bytes::Bytes;

use std::sync::Arc;

use crate::engine::{Read, Reply, Ticket};
use crate::handle::Key;
use crate::http::response::{self, Cors};
use crate::hub::sync::{self, Item};
use crate::hub::{Channel, Session};
use crate::server::after;
use crate::server::conn::{Conn, Phase};
use crate::server::waiting::{Call, ControlSetup, Target, Waiting};
use crate::server::Server;

impl Server {
    /// The control request `key` waits for the reads in `setup`.
    pub(in crate::server) fn wait_for_subscribe(
        &mut self,
        key: Key<Conn>,
        keep_alive: bool,
        cors: Cors,
        setup: ControlSetup,
    ) {
        let deadline = after(self.now.ms, self.config.engine_timeout);
        for (t, _, _) in &setup.tickets {
            self.waiting.insert(*t, key);
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return self.abandon_control(key, &setup);
        };
        conn.phase = Phase::Waiting(Box::new(Waiting {
            ticket: setup.tickets[0].0,
            deadline,
            keep_alive,
            cors,
            call: Call::Control(Box::new(setup)),
        }));
        self.arm(key);
    }

    /// One of a control subscribe's reads came back: the subscriber gets the merge; the
    /// control request is answered once all are in.
    pub(in crate::server) fn control_read_answered(
        &mut self,
        key: Key<Conn>,
        ticket: Ticket,
        read: Option<Read>,
    ) {
        self.waiting.remove(&ticket);
        let Some(Phase::Waiting(w)) = self.conns.get_mut(key).map(|c| &mut c.phase) else {
            return;
        };
        let Call::Control(setup) = &mut w.call else {
            return;
        };
        let Some(pos) = setup.tickets.iter().position(|t| t.0 == ticket) else {
            return;
        };
        let (_, ch, sync) = setup.tickets.remove(pos);
        let target = setup.target;
        setup.failed |= read.is_none();
        let done = setup.tickets.is_empty();
        if let Some(t) = setup.tickets.first() {
            w.ticket = t.0;
        }
        match (target, read) {
            (Target::Conn(c), Some(read)) => self.joined_later(c, ch, sync, &read),
            (Target::Conn(c), None) => self.drop_membership(c, ch, sync),
            (Target::Session(sk), Some(read)) => self.hub.pin_session(sk, ch, read.head),
            // Not pinned: the session follows it from its next poll.
            (Target::Session(_), None) => {}
        }
        if !done {
            return;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Waiting(w) = std::mem::replace(&mut conn.phase, Phase::Ready) else {
            return;
        };
        let Call::Control(setup) = w.call else {
            return;
        };
        if setup.failed {
            let e = crate::http::HttpError::new(503, "engine unavailable");
            self.respond_error_with(key, w.keep_alive, e, w.cors, "");
        } else {
            let lines = self.cors.lines(w.cors);
            let h = response::head(204, "", 0, w.keep_alive, lines, "");
            self.respond(key, 204, [h], w.keep_alive);
        }
        self.pending_input.push(key);
    }

    /// The read of `target`'s new membership on `ch` came back: a stream is sent the
    /// merge, a parked poll answered with it if anything is due.
    pub(in crate::server) fn joined_later(
        &mut self,
        target: Key<Conn>,
        ch: Key<Channel>,
        sync: u64,
        read: &Read,
    ) {
        // The membership this read was sent for may be gone (the poll was answered, the
        // channel unsubscribed, perhaps subscribed again): then it is not ours to touch.
        if self.hub.sync_token(target, ch) != Some(sync) {
            return;
        }
        match self.conns.get(target).map(|c| &c.phase) {
            Some(Phase::Streaming(_)) => {
                self.stream_merge(target, ch, read, false);
                self.flush(target);
            }
            Some(Phase::Parked(_)) => {
                let kept = self.hub.end_sync(target, ch);
                let Some(name) = self.hub.name(ch).cloned() else {
                    return;
                };
                let (items, next) = sync::merge(&name, read, &kept);
                if let Some(Phase::Parked(p)) = self.conns.get_mut(target).map(|c| &mut c.phase) {
                    if let Some(sub) = p.follower.subs.find_mut(ch) {
                        sub.next = next;
                    }
                }
                let events: Vec<Bytes> = items
                    .into_iter()
                    .map(|i| match i {
                        Item::Notice(n) => n,
                        Item::Message(m) => m.json.clone(),
                    })
                    .collect();
                if !events.is_empty() {
                    let n = events.len();
                    self.answer_poll(target, &events, false);
                    self.hub.count_delivered(n);
                }
            }
            // Gone, or answered meanwhile: its memberships were released with it.
            _ => {
                self.hub.end_sync(target, ch);
            }
        }
    }

    /// A membership whose read failed is removed from its subscriber (if it is still the
    /// one the read was sent for).
    pub(in crate::server) fn drop_membership(
        &mut self,
        target: Key<Conn>,
        ch: Key<Channel>,
        sync: u64,
    ) {
        if self.hub.sync_token(target, ch) != Some(sync) {
            return;
        }
        self.hub.end_sync(target, ch);
        let removed = match self.conns.get_mut(target).map(|c| &mut c.phase) {
            Some(Phase::Streaming(st)) => st.follower.subs.remove(ch),
            Some(Phase::Parked(p)) => p.follower.subs.remove(ch),
            _ => None,
        };
        if let Some(sub) = removed {
            self.hub.leave(&mut *self.engine, target, &[sub], self.now);
        }
    }

    /// A waiting control subscribe is given up (timeout, or its client left): the
    /// memberships still syncing are removed from the subscriber.
    pub(in crate::server) fn abandon_control(&mut self, key: Key<Conn>, setup: &ControlSetup) {
        for &(t, ch, sync) in &setup.tickets {
            if self.waiting.get(&t) == Some(&key) {
                self.waiting.remove(&t);
            }
            if let Target::Conn(c) = setup.target {
                self.drop_membership(c, ch, sync);
            }
        }
    }

    /// Session channels added "from now on" whose head the engine does not know yet: it
    /// is read; the control request waits for it if the read comes later.
    pub(in crate::server) fn pin_session(
        &mut self,
        sk: Key<Session>,
        unpinned: Vec<(Key<Channel>, Arc<str>)>,
    ) -> Option<ControlSetup> {
        let mut tickets = Vec::new();
        for (ch, name) in unpinned {
            match self.engine.read(&name, None, self.now) {
                Reply::Now(Some(read)) => self.hub.pin_session(sk, ch, read.head),
                Reply::Now(None) => {}
                Reply::Later(t) => tickets.push((t, ch, 0)),
            }
        }
        (!tickets.is_empty()).then_some(ControlSetup {
            target: Target::Session(sk),
            tickets,
            failed: false,
        })
    }
}
