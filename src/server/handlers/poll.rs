//! `GET /poll`: resolves the cursor of every channel named (and of the session resumed
//! with `client=`), answers at once with what is buffered (and any `lost`/`reset`
//! notice), or parks the request on each channel until a message is published or
//! `--poll-timeout` passes (then `noop`).
//!
//! A parked poll costs its connection entry, one timer and one subscriber slot per
//! channel; it holds no read or write buffer.

use bytes::Bytes;

use crate::engine::{Read, Start, Ticket};
use crate::event;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::{Head, Method};
use crate::http::response::Cors;
use crate::http::HttpError;
use crate::hub::sync::{self, Item};
use crate::hub::{self, ClientRef, Follower, Subs};
use crate::server::conn::{Conn, Parked, Phase};
use crate::server::waiting::{Call, PollSetup, Waiting};
use crate::server::{after, Server};
use crate::subscription::{self, ClientId};
use crate::transport;

impl Server {
    /// Handles `GET /poll` (and `HEAD /poll`: checked, answered without a body, nothing
    /// subscribed).
    pub(in crate::server) fn handle_poll(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        q: &Query,
        cors: Cors,
    ) {
        let result = if head.method == Method::Head {
            self.check_subscribe_params(q, true).map(|_| {
                let jsonp = q.get("cb").is_some();
                let h = transport::poll::head_only(jsonp, self.cors.lines(cors), head.keep_alive);
                self.respond(key, 200, [h], head.keep_alive);
            })
        } else {
            self.try_poll(key, head, q, cors)
        };
        if let Err(e) = result {
            self.respond_error(key, head, e, cors, "");
        }
    }

    fn try_poll(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        q: &Query,
        cors: Cors,
    ) -> Result<(), HttpError> {
        let requested = if q.get("channel").is_some() {
            subscription::parse_channels(q, self.hub.max_channels())?
        } else {
            Vec::new()
        };
        let cb = subscription::parse_callback(q)?;
        let names: Vec<&str> = requested.iter().map(|w| w.channel.as_str()).collect();
        let mut auth_expires = if names.is_empty() {
            u64::MAX
        } else {
            self.authorize(q, &names)?
        };
        let resume = match q.get("client") {
            Some(text) => Some(
                ClientId::parse(text)
                    .ok_or(HttpError::new(400, "bad client id (32 hex digits)"))?,
            ),
            None => None,
        };
        // Everything is checked against the session before it is taken, so a refused
        // poll leaves the session as it was.
        let held = match resume {
            Some(id) => self.hub.session_view(id, &mut self.conns)?,
            None => None,
        };
        let held_subs = held.as_ref().map_or(&[][..], |(subs, _)| subs.as_slice());
        let wanted = hub::merge_poll(held_subs, requested);
        if wanted.is_empty() {
            return Err(HttpError::new(400, "missing channel"));
        }
        self.hub.check_cap(wanted.len())?;
        if let Some((_, expires)) = held {
            // Channels carried over from the session are only as good as its tokens.
            if self.config.auth_secret.is_some() && wanted.iter().any(|w| !w.named) {
                if expires <= self.now.unix_secs() {
                    self.stats.auth_failures += 1;
                    return Err(HttpError::new(
                        403,
                        "session token expired: poll again with a fresh token and your cursor",
                    ));
                }
                auth_expires = auth_expires.min(expires);
            }
        }
        // Commit: take the session (a poll still parked under the id is answered first,
        // superseded), keep holding its channels until this poll holds them.
        let (client, taken) = match (resume, held.is_some()) {
            (Some(id), true) => {
                if let Some(ClientRef::Conn(ck)) = self.hub.client(&id) {
                    self.answer_poll(ck, &[Bytes::from_static(event::NOOP)], false);
                }
                let taken = match self.hub.client(&id) {
                    Some(ClientRef::Session(sk)) => self.hub.take_session(sk),
                    _ => None,
                };
                (id, taken)
            }
            _ => (ClientId::random()?, None),
        };
        let (engine, now) = (&mut *self.engine, self.now);
        let hub::PollRead {
            events,
            mut subs,
            keys,
            later,
        } = self.hub.poll_read(engine, wanted, now);
        if later.is_empty() {
            let p = PollSetup {
                client,
                subs,
                events,
                cb,
                auth_expires,
                reads: Vec::new(),
                tickets: Vec::new(),
                later: Vec::new(),
            };
            self.settle_poll(key, p, cors, head.keep_alive, false);
        } else {
            // Reads in flight: the poll holds its channels (their live messages kept)
            // and waits; answered or parked once all are in.
            self.hub.attach(key, &mut subs);
            for s in &subs {
                self.hub.begin_sync(key, s.channel);
            }
            let mut is_later = vec![false; subs.len()];
            for (_, i) in &later {
                is_later[*i] = true;
            }
            let n = subs.len();
            let p = PollSetup {
                client,
                subs,
                events,
                cb,
                auth_expires,
                reads: (0..n).map(|_| None).collect(),
                tickets: later.clone(),
                later: is_later,
            };
            if let Some(conn) = self.conns.get_mut(key) {
                conn.phase = Phase::Waiting(Box::new(Waiting {
                    ticket: later[0].0,
                    deadline: after(now.ms, self.config.engine_timeout),
                    keep_alive: head.keep_alive,
                    cors,
                    call: Call::Poll(Box::new(p)),
                }));
                for (t, _) in &later {
                    self.waiting.insert(*t, key);
                }
                self.arm(key);
            }
        }
        let engine = &mut *self.engine;
        if let Some(s) = taken {
            self.hub.release_session(engine, s, now);
        }
        self.hub.release_unused(engine, keys, now);
        Ok(())
    }

    /// Answers a poll whose reads are all in (with what is due, or `noop` for a client
    /// that hung up), or parks it. `attached`: its memberships are in their channels'
    /// lists already (it waited for reads).
    fn settle_poll(
        &mut self,
        key: Key<Conn>,
        p: PollSetup,
        cors: Cors,
        keep_alive: bool,
        attached: bool,
    ) {
        let PollSetup {
            client,
            mut subs,
            mut events,
            cb,
            auth_expires,
            ..
        } = p;
        let (engine, now) = (&mut *self.engine, self.now);
        // A client that has already hung up (its request and FIN came together) is not
        // parked: it gets its answer, `noop` if nothing is due, at once.
        let hung_up = self.conns.get(key).is_some_and(|c| c.peer_closed);
        if !events.is_empty() || subs.is_empty() || hung_up {
            if events.is_empty() {
                events.push(Bytes::from_static(event::NOOP));
            }
            self.hub.detach(engine, client, &subs, auth_expires, now);
            if attached {
                self.hub.leave(engine, key, &subs, now);
            }
            self.write_poll_answer(key, &events, cb.as_deref(), client, cors, keep_alive);
        } else if let Some(conn) = self.conns.get_mut(key) {
            if !attached {
                self.hub.attach(key, &mut subs);
            }
            let parked = Parked {
                follower: Follower {
                    client,
                    subs: Subs::from_vec(subs),
                },
                cb,
                deadline: after(now.ms, self.config.poll_timeout),
                auth_expires,
                cors,
                keep_alive,
            };
            self.kinds.swap(conn, Phase::Parked(parked));
            conn.shrink();
            self.hub.register(client, key);
            self.arm(key);
        } else if attached {
            self.hub.leave(engine, key, &subs, now);
        }
    }

    /// The engine answered one of a waiting poll's reads; once all are in, each channel's
    /// read is merged with the live messages kept meanwhile, and the poll is answered or
    /// parked.
    pub(in crate::server) fn poll_read_answered(
        &mut self,
        key: Key<Conn>,
        ticket: Ticket,
        read: Option<Read>,
    ) {
        let Some(w) = self.record_read(key, ticket, read) else {
            return;
        };
        let (Call::Poll(mut p), cors, keep_alive) = (w.call, w.cors, w.keep_alive) else {
            return;
        };
        let mut gone = Vec::new();
        let reads = std::mem::take(&mut p.reads);
        for (i, read) in reads.into_iter().enumerate() {
            let sub = &mut p.subs[i];
            let kept = self.hub.end_sync(key, sub.channel);
            let read = match (p.later[i], read) {
                (true, Some(read)) => read,
                (true, None) => {
                    gone.push(*sub);
                    continue;
                }
                // Answered at once: its catch-up is in `events`; only the kept ones are new.
                (false, _) => Read {
                    start: Start {
                        notice: None,
                        seq: sub.next,
                    },
                    notice: None,
                    messages: Vec::new(),
                    head: sub.next,
                },
            };
            let Some(name) = self.hub.name(sub.channel).cloned() else {
                continue;
            };
            let (items, next) = sync::merge(&name, &read, &kept);
            let mut delivered = 0;
            for item in items {
                p.events.push(match item {
                    Item::Notice(n) => n,
                    Item::Message(m) => {
                        delivered += 1;
                        m.json.clone()
                    }
                });
            }
            self.hub.count_delivered(delivered);
            sub.next = next;
        }
        p.subs
            .retain(|s| !gone.iter().any(|g| g.channel == s.channel));
        self.hub.leave(&mut *self.engine, key, &gone, self.now);
        self.settle_poll(key, *p, cors, keep_alive, true);
        self.pending_input.push(key);
    }

    /// A waiting poll is given up (its reads took too long, or its client left).
    pub(in crate::server) fn abandon_poll(&mut self, key: Key<Conn>, p: &PollSetup) {
        for (t, _) in &p.tickets {
            if self.waiting.get(t) == Some(&key) {
                self.waiting.remove(t);
            }
        }
        for s in &p.subs {
            self.hub.end_sync(key, s.channel);
        }
        self.hub.leave(&mut *self.engine, key, &p.subs, self.now);
    }

    /// Answers a parked poll with `events` and frees its place in every channel. With
    /// `forget`, its session ends too (a control `close`); otherwise it waits for the next
    /// poll, carrying the cursors of the parked request.
    pub(in crate::server) fn answer_poll(
        &mut self,
        key: Key<Conn>,
        events: &[Bytes],
        forget: bool,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !matches!(conn.phase, Phase::Parked(_)) {
            debug_assert!(false, "answer_poll on a connection that is not parked");
            return;
        }
        let Phase::Parked(p) = self.kinds.swap(conn, Phase::Ready) else {
            return;
        };
        // Messages this turn delivered to it come first.
        let batch = self.take_poll_batch(key);
        let joined: Vec<Bytes>;
        let events = if batch.is_empty() {
            events
        } else {
            joined = batch.into_iter().chain(events.iter().cloned()).collect();
            &joined[..]
        };
        let (engine, now) = (&mut *self.engine, self.now);
        let f = &p.follower;
        self.hub.unregister(&f.client);
        if !forget {
            // The session holds the channels before the poll lets go of them.
            self.hub
                .detach(engine, f.client, f.subs.as_slice(), p.auth_expires, now);
        }
        self.hub.leave(engine, key, f.subs.as_slice(), now);
        self.write_poll_answer(key, events, p.cb.as_deref(), f.client, p.cors, p.keep_alive);
        // Move on to Idle, or to a request that was pipelined behind the poll.
        self.pending_input.push(key);
    }

    /// Queues `[e1,e2,…]` (or `cb([…]);`) as the answer to a poll.
    fn write_poll_answer(
        &mut self,
        key: Key<Conn>,
        events: &[Bytes],
        cb: Option<&str>,
        client: ClientId,
        cors: Cors,
        keep_alive: bool,
    ) {
        let parts = transport::poll::answer(events, cb, client, self.cors.lines(cors), keep_alive);
        self.respond(key, 200, parts, keep_alive);
    }
}
