//! Control requests: `POST /clients/ID/close|subscribe|unsubscribe`, which steer a
//! stream, a parked poll or a long-poll session from a separate short request. The hub
//! changes the memberships; this file tells the connection (a catch-up on a stream, an
//! answer to a parked poll) and answers the control request.

use bytes::Bytes;

use crate::engine::{Read, Reply};
use crate::event;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::Head;
use crate::http::response::{self, Cors};
use crate::http::HttpError;
use crate::hub::{Channel, ClientRef, Mode};
use crate::server::conn::{Conn, Phase};
use crate::server::waiting::{ControlSetup, Target};
use crate::server::Server;
use crate::subscription::{self, ClientId, Wanted};

/// A control action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// End the subscriber.
    Close,
    /// Add channels.
    Subscribe,
    /// Remove channels.
    Unsubscribe,
}

impl Action {
    /// Parses the last path segment.
    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "close" => Some(Action::Close),
            "subscribe" => Some(Action::Subscribe),
            "unsubscribe" => Some(Action::Unsubscribe),
            _ => None,
        }
    }
}

impl Server {
    /// Handles `POST /clients/ID/ACTION`.
    pub(in crate::server) fn handle_control(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        q: &Query,
        cors: Cors,
        id: &str,
        action: Action,
    ) {
        let result = match ClientId::parse(id).and_then(|id| self.hub.client(&id)) {
            None => Err(HttpError::new(404, "unknown client")),
            Some(target) => self.control(target, q, action),
        };
        match result {
            Ok(Some(setup)) => self.wait_for_subscribe(key, head.keep_alive, cors, setup),
            Ok(None) => {
                let h = response::head(204, "", 0, head.keep_alive, self.cors.lines(cors), "");
                self.respond(key, 204, [h], head.keep_alive);
            }
            Err(e) => self.respond_error(key, head, e, cors, ""),
        }
    }

    /// Does what the request asks; a subscribe whose reads come later returns what it
    /// waits for.
    fn control(
        &mut self,
        target: ClientRef,
        q: &Query,
        action: Action,
    ) -> Result<Option<ControlSetup>, HttpError> {
        let now = self.now;
        match (target, action) {
            (ClientRef::Session(sk), Action::Close) => {
                self.hub.forget_session(&mut *self.engine, sk, now)
            }
            (ClientRef::Conn(ck), Action::Close) => {
                let closes = self.close_events(ck);
                match self.conns.get(ck).map(|c| &c.phase) {
                    Some(Phase::Parked(_)) => self.answer_poll(ck, &closes, true),
                    Some(Phase::Streaming(_)) => self.end_stream(ck, &closes),
                    _ => {}
                }
            }
            (target, Action::Subscribe) => {
                let wanted = subscription::parse_channels(q, self.hub.max_channels())?;
                let names: Vec<&str> = wanted.iter().map(|w| w.channel.as_str()).collect();
                let expires = self.authorize(q, &names)?;
                match target {
                    ClientRef::Session(sk) => {
                        let unpinned = self.hub.session_subscribe(
                            &mut *self.engine,
                            sk,
                            &wanted,
                            expires,
                            now,
                        )?;
                        return Ok(self.pin_session(sk, unpinned));
                    }
                    ClientRef::Conn(ck) => return self.conn_subscribe(ck, &wanted, expires),
                }
            }
            (target, Action::Unsubscribe) => {
                let names = subscription::parse_names_to_drop(q)?;
                match target {
                    ClientRef::Session(sk) => {
                        self.hub
                            .session_unsubscribe(&mut *self.engine, sk, &names, now)
                    }
                    ClientRef::Conn(ck) => {
                        let left = self.hub.conn_unsubscribe(
                            &mut *self.engine,
                            &mut self.conns,
                            ck,
                            &names,
                            now,
                        );
                        // A parked poll left with no channel is answered with `noop`; a
                        // stream left with none stays open (for a control `subscribe`,
                        // or until its client closes it), as after `DELETE`.
                        if let Some((Mode::Poll, true)) = left {
                            self.answer_poll(ck, &[Bytes::from_static(event::NOOP)], false);
                        }
                    }
                }
            }
        }
        Ok(None)
    }

    /// One `close` event per channel of a subscriber connection.
    pub(in crate::server) fn close_events(&self, ck: Key<Conn>) -> Vec<Bytes> {
        let subs = match self.conns.get(ck).map(|c| &c.phase) {
            Some(Phase::Parked(p)) => p.follower.subs.as_slice(),
            Some(Phase::Streaming(st)) => st.follower.subs.as_slice(),
            _ => &[],
        };
        subs.iter()
            .filter_map(|s| self.hub.name(s.channel))
            .map(|name| event::close(name))
            .collect()
    }

    /// Adds channels to a stream or a parked poll (whose tokens expire at `expires`). A
    /// stream is sent what each new channel's cursor has due; a parked poll is answered
    /// if anything is due. Channels whose reads come later are returned, to wait for.
    pub(in crate::server) fn conn_subscribe(
        &mut self,
        ck: Key<Conn>,
        wanted: &[Wanted],
        expires: u64,
    ) -> Result<Option<ControlSetup>, HttpError> {
        let now = self.now;
        let mut joined =
            self.hub
                .conn_subscribe(&mut *self.engine, &mut self.conns, ck, wanted, now)?;
        let mut later = Vec::new();
        joined.retain(|j| match j.read {
            Reply::Later(t) => {
                later.push((t, j.channel, j.sync));
                false
            }
            Reply::Now(_) => true,
        });
        let joined: Vec<(Key<Channel>, Read)> = joined
            .into_iter()
            .filter_map(|j| Some((j.channel, j.read.now()?)))
            .collect();
        let setup = (!later.is_empty()).then_some(ControlSetup {
            target: Target::Conn(ck),
            tickets: later,
            failed: false,
        });
        let streaming = match self.conns.get_mut(ck).map(|c| &mut c.phase) {
            Some(Phase::Parked(p)) => {
                p.auth_expires = p.auth_expires.min(expires);
                false
            }
            Some(Phase::Streaming(st)) => {
                st.end_ms = st.end_ms.min(now.ms_of_unix(expires));
                true
            }
            _ => return Ok(setup),
        };
        if streaming {
            for (ch, read) in &joined {
                self.stream_catch_up(ck, *ch, read);
            }
            // A token that expires sooner moves the stream's end.
            self.tighten(ck);
            self.flush(ck);
        } else {
            let mut events = Vec::new();
            for (_, read) in joined {
                events.extend(read.notice);
                events.extend(read.messages.iter().map(|m| m.json.clone()));
            }
            if !events.is_empty() {
                self.answer_poll(ck, &events, false);
            }
        }
        Ok(setup)
    }
}
