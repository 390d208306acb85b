//! What a WebSocket subscriber sends: frames parsed from its read buffer
//! (`transport::websocket::frame::Parser`, kept in its `StreamOut`), a pong for each ping,
//! the closing handshake, close codes for what breaks the protocol, and the JSON
//! commands (`subscribe`, `unsubscribe`, `close`), which go through the very calls the
//! control requests use, with the same checks (names, limits, tokens). A bad command is
//! answered with an `error` event and the connection stays. A partial frame stays in the
//! read buffer, which the message cap bounds (`WS_MAX_MESSAGE`).
//!
//! A `subscribe` whose history reads come later (a networked engine) is remembered in
//! `Server::ws_reads` until they are in, as a control request would wait for them: one
//! such command per connection at a time (a second gets `error`), and at most
//! `--engine-timeout` (then its channels are dropped and the client told).
//!
//! The test-only echo endpoint (`--ws-echo`, for the Autobahn|Testsuite) shares all of
//! this but answers each message with itself.

use crate::engine::{Read, Ticket};
use crate::event;
use crate::handle::Key;
use crate::http::request::Head;
use crate::http::response::Cors;
use crate::http::HttpError;
use crate::hub::Channel;
use crate::hub::{Follower, Subs};
use crate::server::conn::{Conn, Phase, Stream};
use crate::server::handlers::stream::{ws_handshake, ws_refusal_headers};
use crate::server::http_io::pipeline_window;
use crate::server::waiting::Target;
use crate::server::{after, Server, TimerKind, PUBLIC_REQUESTS_PER_TURN};
use crate::subscription;
use crate::subscription::ClientId;
use crate::transport::websocket::command::{self, Command};
use crate::transport::websocket::{close, encode, Incoming, Parser, Status};
use crate::transport::Input;
use crate::transport::StreamOut;

/// Most frames one WebSocket has handled before the others get their turn.
const WS_FRAMES_PER_TURN: u32 = 16;

/// The largest message a subscriber may send (commands are small).
pub(in crate::server) const WS_MAX_MESSAGE: usize = 4096;
/// The largest message the test-only echo endpoint takes (Autobahn's case 9 sends 16 MiB).
pub(in crate::server) const WS_ECHO_MAX_MESSAGE: usize = 16 << 20;

/// A WebSocket `subscribe` waiting for its channels' history reads.
#[derive(Debug)]
pub(in crate::server) struct WsReads {
    /// The reads in flight: ticket, channel, and the token of the membership's sync.
    tickets: Vec<(Ticket, Key<Channel>, u64)>,
    /// When the reads still out are given up (reactor ms).
    deadline: u64,
    /// A read failed: the client is told once all are in.
    failed: bool,
}

impl Server {
    /// `GET /ws-echo` (only with the test-only `--ws-echo`): the handshake of `/ws`, then
    /// every message echoed, with no channel, command or heartbeat clock of its own
    /// beyond the pings of every WebSocket.
    pub(in crate::server) fn handle_ws_echo(&mut self, key: Key<Conn>, head: &Head, cors: Cors) {
        let opened = if self.config.ws_echo {
            ws_handshake(head, cors).and_then(|ws_key| Ok((ws_key.into(), ClientId::random()?)))
        } else {
            Err(HttpError::new(404, "not found"))
        };
        let (ws_key, client) = match opened {
            Ok(o) => o,
            Err(e) => {
                let extra = ws_refusal_headers(&e);
                return self.respond_error(key, head, e, cors, extra);
            }
        };
        let mut out = StreamOut::ws_echo(ws_key);
        let h = out.head(&[], &client.to_string());
        out.headed();
        let now = self.now.ms;
        out.heard(now);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.queue(h);
        let stream = Stream {
            follower: Follower {
                client,
                subs: Subs::from_vec(Vec::new()),
            },
            out,
            end_ms: u64::MAX,
            last_write_ms: now,
        };
        self.kinds.swap(conn, Phase::Streaming(stream));
        self.arm(key);
        self.flush(key);
        self.ws_input(key);
    }

    /// Handles the frames a WebSocket subscriber has sent, as HTTP requests are: a few
    /// per turn (a client that keeps its socket full yields to the others, and goes on
    /// next turn), and none while more than the pipelining window of output waits unsent
    /// (what a command makes the gateway queue, a catch-up or a pong, is written before
    /// the next is read: a client that sends without reading holds a read buffer and a
    /// window, then TCP pushes back). `flush` resumes it as its output drains.
    pub(in crate::server) fn ws_input(&mut self, key: Key<Conn>) {
        let mut handled = 0;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let window = pipeline_window(&self.config, conn.admin);
            if conn.pending() > window {
                return;
            }
            let Phase::Streaming(st) = &mut conn.phase else {
                return;
            };
            if st.out.input() != Input::WebSocket {
                return;
            }
            if handled == WS_FRAMES_PER_TURN || self.turn_requests >= PUBLIC_REQUESTS_PER_TURN {
                return self.defer(key);
            }
            let max = if st.out.is_echo() {
                WS_ECHO_MAX_MESSAGE
            } else {
                WS_MAX_MESSAGE
            };
            let mut parser = std::mem::replace(&mut st.out.parser, Parser::new());
            let parsed = if conn.rbuf().is_empty() {
                Ok(Status::Partial { frame_len: None })
            } else {
                parser.parse(conn.rbuf(), max)
            };
            let Phase::Streaming(st) = &mut conn.phase else {
                return;
            };
            st.out.parser = parser;
            let echo = st.out.is_echo();
            if matches!(parsed, Ok(Status::Complete { .. })) {
                st.out.heard(self.now.ms);
            }
            let incoming = match parsed {
                Ok(Status::Partial { .. }) => {
                    // Reading stopped at the buffer's limit: what the socket still holds
                    // gives no new readiness event, so it is read now.
                    if conn.read_paused && self.read_more(key) {
                        continue;
                    }
                    return;
                }
                Ok(Status::Complete { consumed, incoming }) => {
                    conn.consume(consumed);
                    handled += 1;
                    self.turn_requests += 1;
                    incoming
                }
                Err(e) => {
                    let frame = encode::close(e.close_code(), e.reason());
                    return self.end_stream_with(key, &[], Some(frame));
                }
            };
            match incoming {
                None | Some(Incoming::Pong(_)) => {}
                Some(Incoming::Ping(payload)) => {
                    conn.queue(encode::pong(&payload));
                    self.flush(key);
                }
                Some(Incoming::Close { code, .. }) => {
                    // The closing handshake: answer with the code it sent (or 1000).
                    let code = code.unwrap_or(close::NORMAL);
                    return self.end_stream_with(key, &[], Some(encode::close(code, "")));
                }
                Some(Incoming::Binary(data)) if echo => {
                    self.ws_echo(key, encode::binary(&data));
                }
                Some(Incoming::Text(text)) if echo => {
                    self.ws_echo(key, encode::text(text.as_bytes()));
                }
                Some(Incoming::Binary(_)) => {
                    let frame =
                        encode::close(close::UNSUPPORTED_DATA, "binary messages are not commands");
                    return self.end_stream_with(key, &[], Some(frame));
                }
                Some(Incoming::Text(text)) => self.ws_command(key, text.as_bytes()),
            }
        }
    }

    /// The echo socket answers a message with itself. Echoes do not count against
    /// `--max-pending-bytes` (they may be 16 MiB each); a client that sends them without
    /// reading is closed past four of the largest.
    fn ws_echo(&mut self, key: Key<Conn>, frame: bytes::Bytes) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.pending() > 4 * WS_ECHO_MAX_MESSAGE {
            return self.close(key);
        }
        let n = frame.len();
        conn.queue(frame);
        conn.add_grace(n);
        self.flush(key);
    }

    /// Does what a command asks; what is wrong with it comes back as an `error` event.
    fn ws_command(&mut self, key: Key<Conn>, text: &[u8]) {
        let result = match command::parse(text) {
            Err(why) => Err(why),
            Ok(Command::Close) => {
                let closes = self.close_events(key);
                let bye = encode::close(close::NORMAL, "");
                return self.end_stream_with(key, &closes, Some(bye));
            }
            Ok(Command::Unsubscribe(q)) => {
                subscription::parse_names_to_drop(&q)
                    .map(|names| {
                        let now = self.now;
                        // A stream left with no channel stays open, for a `subscribe`.
                        self.hub.conn_unsubscribe(
                            &mut *self.engine,
                            &mut self.conns,
                            key,
                            &names,
                            now,
                        );
                    })
                    .map_err(|e| e.message.to_string())
            }
            Ok(Command::Subscribe(q)) => self.ws_subscribe(key, &q).map_err(|e| e.message.into()),
        };
        if let Err(why) = result {
            self.ws_error(key, &why);
        }
    }

    /// `subscribe`: the same checks and calls as `POST /clients/ID/subscribe`.
    fn ws_subscribe(
        &mut self,
        key: Key<Conn>,
        q: &crate::http::query::Query,
    ) -> Result<(), HttpError> {
        if self.ws_reads.contains_key(&key) {
            return Err(HttpError::new(
                409,
                "a subscribe is still waiting for its history; send the next one after it",
            ));
        }
        let wanted = subscription::parse_channels(q, self.hub.max_channels())?;
        let names: Vec<&str> = wanted.iter().map(|w| w.channel.as_str()).collect();
        let expires = self.authorize(q, &names)?;
        let Some(setup) = self.conn_subscribe(key, &wanted, expires)? else {
            return Ok(());
        };
        let Target::Conn(_) = setup.target else {
            return Ok(());
        };
        let deadline = after(self.now.ms, self.config.engine_timeout);
        for (t, _, _) in &setup.tickets {
            self.ws_tickets.insert(*t, key);
        }
        self.ws_reads.insert(
            key,
            WsReads {
                tickets: setup.tickets,
                deadline,
                failed: false,
            },
        );
        self.wheel.insert(deadline, TimerKind::WsReads(key));
        Ok(())
    }

    /// Sends an `error` event; the connection stays.
    fn ws_error(&mut self, key: Key<Conn>, why: &str) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Streaming(st) = &conn.phase else {
            return;
        };
        let e = event::error_event(why);
        let f = st
            .out
            .event(&e, &self.hub.cursor(st.follower.subs.as_slice()));
        conn.queue(f);
        self.flush(key);
    }

    /// A history read of a WebSocket `subscribe` came back (`None`: it failed).
    pub(in crate::server) fn ws_read_answered(&mut self, ticket: Ticket, read: Option<Read>) {
        let Some(key) = self.ws_tickets.remove(&ticket) else {
            return;
        };
        let Some(w) = self.ws_reads.get_mut(&key) else {
            return;
        };
        let Some(pos) = w.tickets.iter().position(|t| t.0 == ticket) else {
            return;
        };
        let (_, ch, sync) = w.tickets.remove(pos);
        w.failed |= read.is_none();
        let done = w.tickets.is_empty();
        match read {
            Some(read) => self.joined_later(key, ch, sync, &read),
            None => self.drop_membership(key, ch, sync),
        }
        if done {
            if let Some(w) = self.ws_reads.remove(&key) {
                if w.failed {
                    self.ws_error(key, "engine unavailable: subscribe again");
                }
            }
        }
    }

    /// `--engine-timeout` passed for a WebSocket `subscribe`: the channels whose reads
    /// are still out are dropped, and the client told.
    pub(in crate::server) fn ws_reads_timed_out(&mut self, key: Key<Conn>) {
        if self
            .ws_reads
            .get(&key)
            .is_none_or(|w| w.deadline > self.now.ms)
        {
            return;
        }
        let Some(w) = self.ws_reads.remove(&key) else {
            return;
        };
        for (t, ch, sync) in w.tickets {
            self.ws_tickets.remove(&t);
            self.drop_membership(key, ch, sync);
        }
        log::warn!(
            "engine did not answer within {:?}",
            self.config.engine_timeout
        );
        self.ws_error(key, "engine unavailable: subscribe again");
    }

    /// A WebSocket ends: a `subscribe` it still waited for is forgotten (the answers,
    /// when they come, find nobody).
    pub(in crate::server) fn ws_forget(&mut self, key: Key<Conn>) {
        if self.ws_reads.is_empty() {
            return;
        }
        if let Some(w) = self.ws_reads.remove(&key) {
            for (t, _, _) in w.tickets {
                self.ws_tickets.remove(&t);
            }
        }
    }
}
