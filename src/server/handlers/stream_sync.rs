//! A stream whose history reads are answered later (a networked engine): each answer
//! as it comes, the stream's opening once all are in (each channel's read merged with
//! the live messages kept meanwhile), or its abandonment (timeout, client gone).

use crate::engine::{Read, Ticket};
use crate::handle::Key;
use crate::hub::sync::{self, Item};
use crate::hub::Channel;
use crate::server::conn::{Conn, Phase};
use crate::server::fanout::queue_message;
use crate::server::waiting::{Call, StreamSetup, Waiting};
use crate::server::Server;

impl Server {
    /// A stream's read on channel `ch` came back while live messages were kept: sends
    /// the merge (history, then the kept ones past it, gaps told as `lost`).
    pub(in crate::server) fn stream_merge(
        &mut self,
        key: Key<Conn>,
        ch: Key<Channel>,
        read: &Read,
        counted: bool,
    ) {
        let kept = self.hub.end_sync(key, ch);
        let Some(name) = self.hub.name(ch).cloned() else {
            return;
        };
        let (items, next) = sync::merge(&name, read, &kept);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let before = conn.pending();
        let mut delivered = 0;
        for item in items {
            let Phase::Streaming(st) = &mut conn.phase else {
                return;
            };
            match item {
                Item::Notice(n) => {
                    let f = st
                        .out
                        .event(&n, &self.hub.cursor(st.follower.subs.as_slice()));
                    conn.queue(f);
                }
                Item::Message(m) => {
                    let Some(sub) = st.follower.subs.find_mut(ch) else {
                        return;
                    };
                    sub.next = m.seq + 1;
                    queue_message(conn, &self.hub, &name, &m, self.now.ms);
                    delivered += 1;
                }
            }
        }
        if let Phase::Streaming(st) = &mut conn.phase {
            if let Some(sub) = st.follower.subs.find_mut(ch) {
                sub.next = next;
            }
        }
        let replay = conn.pending() - before;
        conn.add_grace(replay);
        let already = if counted { read.messages.len() } else { 0 };
        self.hub.count_delivered(delivered - already.min(delivered));
    }

    /// The engine answered one of a waiting stream's reads; the stream opens once all
    /// are in.
    pub(in crate::server) fn stream_read_answered(
        &mut self,
        key: Key<Conn>,
        ticket: Ticket,
        read: Option<Read>,
    ) {
        let Some(w) = self.record_read(key, ticket, read) else {
            return;
        };
        let Call::Stream(setup) = w.call else {
            return;
        };
        self.open_stream(key, *setup, w.cors, true);
    }

    /// Records one of a waiting subscriber's (stream's or poll's) reads; once all of its
    /// reads are in, takes it out of its wait and returns it.
    pub(in crate::server) fn record_read(
        &mut self,
        key: Key<Conn>,
        ticket: Ticket,
        read: Option<Read>,
    ) -> Option<Box<Waiting>> {
        self.waiting.remove(&ticket);
        let conn = self.conns.get_mut(key)?;
        let Phase::Waiting(w) = &mut conn.phase else {
            return None;
        };
        let take = |tickets: &mut Vec<(Ticket, usize)>| {
            let pos = tickets.iter().position(|t| t.0 == ticket)?;
            Some(tickets.remove(pos).1)
        };
        let next = match &mut w.call {
            Call::Stream(setup) => {
                if let Some(index) = take(&mut setup.tickets) {
                    setup.reads[index] = (read, false);
                }
                setup.tickets.first().map(|t| t.0)
            }
            Call::Poll(p) => {
                if let Some(index) = take(&mut p.tickets) {
                    p.reads[index] = read;
                }
                p.tickets.first().map(|t| t.0)
            }
            _ => return None,
        };
        if let Some(t) = next {
            w.ticket = t;
            return None;
        }
        match std::mem::replace(&mut conn.phase, Phase::Ready) {
            Phase::Waiting(w) => Some(w),
            _ => None,
        }
    }

    /// A waiting stream is given up (its reads took too long, or its client left): its
    /// tickets, kept messages and memberships go.
    pub(in crate::server) fn abandon_stream(&mut self, key: Key<Conn>, setup: &StreamSetup) {
        for (t, _) in &setup.tickets {
            if self.waiting.get(t) == Some(&key) {
                self.waiting.remove(t);
            }
        }
        let subs = setup.follower.subs.as_slice().to_vec();
        for s in &subs {
            self.hub.end_sync(key, s.channel);
        }
        self.hub.leave(&mut *self.engine, key, &subs, self.now);
    }
}
