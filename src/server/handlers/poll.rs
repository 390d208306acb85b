//! `GET /poll`: resolves the cursor of every channel named (and of the session resumed
//! with `client=`), answers at once with what is buffered (and any `lost`/`reset`
//! notice), or parks the request on each channel until a message is published or
//! `--poll-timeout` passes (then `noop`).
//!
//! A parked poll costs its connection entry, one timer and one subscriber slot per
//! channel; it holds no read or write buffer.

use bytes::Bytes;

use crate::event;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::{Head, Method};
use crate::http::response::Cors;
use crate::http::HttpError;
use crate::hub::{self, ClientRef, Follower, Subs};
use crate::server::conn::{Conn, Parked, Phase};
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
            mut events,
            mut subs,
            keys,
            later,
        } = self.hub.poll_read(engine, wanted, now);
        if later {
            // Not yet: polls on an engine whose reads are answered later (issue 11).
            if let Some(s) = taken {
                self.hub.release_session(engine, s, now);
            }
            self.hub.release_unused(engine, keys, now);
            return Err(HttpError::new(503, "engine unavailable"));
        }
        // A client that has already hung up (its request and FIN came together) is not
        // parked: it gets its answer, `noop` if nothing is due, at once.
        let hung_up = self.conns.get(key).is_some_and(|c| c.peer_closed);
        if !events.is_empty() || subs.is_empty() || hung_up {
            if events.is_empty() {
                events.push(Bytes::from_static(event::NOOP));
            }
            self.hub.detach(engine, client, &subs, auth_expires, now);
            self.write_poll_answer(key, &events, cb.as_deref(), client, cors, head.keep_alive);
        } else if let Some(conn) = self.conns.get_mut(key) {
            self.hub.attach(key, &mut subs);
            let parked = Parked {
                follower: Follower {
                    client,
                    subs: Subs::from_vec(subs),
                },
                cb,
                deadline: after(now.ms, self.config.poll_timeout),
                auth_expires,
                cors,
                keep_alive: head.keep_alive,
            };
            self.kinds.swap(conn, Phase::Parked(parked));
            conn.shrink();
            self.hub.register(client, key);
            self.arm(key);
        }
        let engine = &mut *self.engine;
        if let Some(s) = taken {
            self.hub.release_session(engine, s, now);
        }
        self.hub.release_unused(engine, keys, now);
        Ok(())
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
