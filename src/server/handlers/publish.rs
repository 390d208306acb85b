//! The channel endpoints of the admin listener: `POST /pub` (the engine appends to each
//! channel; the fan-out that follows answers every parked poll and feeds every stream),
//! `GET /channels/NAME`, `GET /channels` and `DELETE /channels/NAME` (its subscribers
//! get `close`). Each is one engine call, answered at once by the memory engine; an
//! engine that answers later (a network round trip) parks the request in
//! `Phase::Waiting` until its answer comes (`engine_answered`) or `--engine-timeout`
//! passes (503 `engine unavailable`).

use bytes::Bytes;

use crate::engine::{valid_name, Answer, EngineError, LogInfo, Reply, Ticket};
use crate::event;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::Head;
use crate::http::response::{self, ctype, Cors};
use crate::http::HttpError;
use crate::json;
use crate::server::conn::{Conn, Phase};
use crate::server::waiting::{Call, Waiting};
use crate::server::{after, Server};
use crate::subscription;

/// Most channels one publish may name.
pub const MAX_PUBLISH_CHANNELS: usize = 1024;
/// Most channels one `GET /channels` lists.
const MAX_LIST: usize = 10_000;

/// An engine's reply to one call, as the answer the handlers take.
fn settle<T>(reply: Reply<T>, answer: fn(T) -> Answer) -> Reply<Answer> {
    match reply {
        Reply::Now(t) => Reply::Now(answer(t)),
        Reply::Later(ticket) => Reply::Later(ticket),
    }
}

fn engine_error(e: EngineError) -> HttpError {
    match e {
        EngineError::TooManyChannels => HttpError::new(503, "too many channels"),
        EngineError::Unavailable => HttpError::new(503, "engine unavailable"),
    }
}

impl Server {
    /// Handles `POST /pub?channel=a[,b]`, and a batch (`application/x-ndjson`).
    pub(in crate::server) fn handle_publish(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        q: &Query,
        body: Bytes,
        cors: Cors,
    ) {
        if head.ndjson {
            return self.handle_batch(key, head, q, &body, cors);
        }
        let names = match subscription::parse_names(q, MAX_PUBLISH_CHANNELS) {
            Ok(n) => n,
            Err(e) => return self.respond_error(key, head, e, cors, ""),
        };
        let Ok(payload) = std::str::from_utf8(&body) else {
            let e = HttpError::new(400, "payload is not UTF-8");
            return self.respond_error(key, head, e, cors, "");
        };
        let items: Vec<(&str, &str)> = names.iter().map(|&n| (n, payload)).collect();
        let reply = settle(self.engine.publish(&items, self.now), Answer::Published);
        let call = Call::Publish(names.iter().map(|n| (*n).into()).collect());
        self.publish_call(key, head, cors, call, reply);
    }

    /// `POST /pub` with an ndjson body: every line published, in order, with the
    /// atomicity of one publish (the channel limit checked for all lines first),
    /// answered with their seqs in order.
    fn handle_batch(&mut self, key: Key<Conn>, head: &Head, q: &Query, body: &[u8], cors: Cors) {
        if q.get("channel").is_some() {
            let e = HttpError::new(400, "a batch names its channels in its lines, not channel=");
            return self.respond_error(key, head, e, cors, "");
        }
        let items = match parse_batch(body, self.config.max_message) {
            Ok(items) => items,
            Err(e) => return self.respond_error(key, head, e, cors, ""),
        };
        let refs: Vec<(&str, &str)> = items
            .iter()
            .map(|(c, d)| (c.as_str(), d.as_str()))
            .collect();
        let reply = settle(self.engine.publish(&refs, self.now), Answer::Published);
        let call = Call::Batch(items.iter().map(|(c, _)| c.as_str().into()).collect());
        self.publish_call(key, head, cors, call, reply);
    }

    /// Answers a publish now or once the engine has, its subscribers first.
    fn publish_call(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        cors: Cors,
        call: Call,
        reply: Reply<Answer>,
    ) {
        if let Reply::Later(_) = reply {
            // Wait first: an answer the engine has already queued must find the
            // connection waiting. (The engine emits the messages before the answer, so
            // subscribers still get them first.)
            self.call_engine(key, head.keep_alive, cors, call, reply);
            self.fan_out();
        } else {
            // Subscribers get the message before the publisher its answer.
            self.fan_out();
            self.call_engine(key, head.keep_alive, cors, call, reply);
        }
    }

    /// Handles `GET /channels/NAME` (its info) and, with `delete`, `DELETE
    /// /channels/NAME` (every subscriber gets `close` for it, then it is dropped).
    pub(in crate::server) fn handle_channel(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        name: &str,
        cors: Cors,
        delete: bool,
    ) {
        if !valid_name(name) {
            return self.respond_error(key, head, HttpError::new(404, "no such channel"), cors, "");
        }
        let (call, reply) = if delete {
            let reply = settle(self.engine.delete(name), Answer::Deleted);
            (Call::Delete(name.into()), reply)
        } else {
            let reply = settle(self.engine.info(name, self.now), Answer::Info);
            (Call::Info(name.into()), reply)
        };
        self.call_engine(key, head.keep_alive, cors, call, reply);
    }

    /// `GET /channels[?prefix=P&limit=N]`, sorted by name; costs what it returns.
    pub(in crate::server) fn handle_channel_list(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        q: &Query,
        cors: Cors,
    ) {
        let prefix = q.get("prefix").unwrap_or("");
        let limit = match q.get("limit").map(str::parse::<usize>) {
            None => 100,
            Some(Ok(n)) => n.min(MAX_LIST),
            Some(Err(_)) => {
                let e = HttpError::new(400, "bad limit");
                return self.respond_error(key, head, e, cors, "");
            }
        };
        let reply = settle(self.engine.list(prefix, limit), Answer::List);
        self.call_engine(key, head.keep_alive, cors, Call::List, reply);
    }

    /// Answers an engine call now, or parks the connection until its answer comes.
    fn call_engine(
        &mut self,
        key: Key<Conn>,
        keep_alive: bool,
        cors: Cors,
        call: Call,
        reply: Reply<Answer>,
    ) {
        let ticket = match reply {
            Reply::Now(answer) => return self.answer_call(key, keep_alive, cors, call, answer),
            Reply::Later(ticket) => ticket,
        };
        let deadline = after(self.now.ms, self.config.engine_timeout);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let w = Waiting {
            ticket,
            deadline,
            keep_alive,
            cors,
            call,
        };
        conn.phase = Phase::Waiting(Box::new(w));
        let earlier = self.waiting.insert(ticket, key);
        debug_assert!(earlier.is_none(), "the engine reused ticket {ticket:?}");
        self.arm(key);
    }

    /// The engine answered the call under `ticket`: the connection that waits for it is
    /// answered, then goes on with what it pipelined.
    pub(in crate::server) fn engine_answered(&mut self, ticket: Ticket, answer: Answer) {
        // A subscriber's read: the stream opens, or the poll is answered or parked, once
        // all its reads are in.
        // A WebSocket `subscribe` command's read.
        if self.ws_tickets.contains_key(&ticket) {
            let read = match answer {
                Answer::Read(r) => r,
                _ => None,
            };
            return self.ws_read_answered(ticket, read);
        }
        if let Some(&key) = self.waiting.get(&ticket) {
            let kind = match self.conns.get(key).map(|c| &c.phase) {
                Some(Phase::Waiting(w)) => match w.call {
                    Call::Stream(_) => 1,
                    Call::Poll(_) => 2,
                    Call::Control(_) => 3,
                    _ => 0,
                },
                _ => 0,
            };
            if kind != 0 {
                let read = match answer {
                    Answer::Read(r) => r,
                    _ => None,
                };
                return match kind {
                    1 => self.stream_read_answered(key, ticket, read),
                    2 => self.poll_read_answered(key, ticket, read),
                    _ => self.control_read_answered(key, ticket, read),
                };
            }
        }
        let Some(w) = self.take_waiting(ticket) else {
            return;
        };
        let (key, w) = w;
        self.answer_call(key, w.keep_alive, w.cors, w.call, answer);
        self.pending_input.push(key);
    }

    /// `--engine-timeout` passed without an answer: 503 `engine unavailable` (an answer
    /// that comes after is dropped).
    pub(in crate::server) fn engine_timed_out(&mut self, key: Key<Conn>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !matches!(conn.phase, Phase::Waiting(_)) {
            return;
        }
        let Phase::Waiting(w) = std::mem::replace(&mut conn.phase, Phase::Ready) else {
            return;
        };
        // A stream that never started is refused like any request.
        self.abandon_waiting(key, &w);
        log::warn!(
            "engine did not answer within {:?}",
            self.config.engine_timeout
        );
        let e = engine_error(EngineError::Unavailable);
        self.respond_error_with(key, w.keep_alive, e, w.cors, "");
        self.pending_input.push(key);
    }

    /// A subscriber still waiting for its reads names a channel that was just deleted:
    /// it is refused (503, to try again) rather than opened on a channel that is gone.
    fn refuse_waiting(&mut self, key: Key<Conn>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !matches!(&conn.phase, Phase::Waiting(w) if matches!(w.call, Call::Stream(_) | Call::Poll(_)))
        {
            return;
        }
        let Phase::Waiting(w) = std::mem::replace(&mut conn.phase, Phase::Ready) else {
            return;
        };
        self.abandon_waiting(key, &w);
        let e = HttpError::new(503, "channel deleted meanwhile; subscribe again");
        self.respond_error_with(key, w.keep_alive, e, w.cors, "");
        self.pending_input.push(key);
    }

    /// A connection taken out of its wait without its answers (timeout, client gone,
    /// channel deleted): its ticket goes (only its own entry: an engine that reused a
    /// ticket must not cost another waiter its answer), and what it held is let go.
    pub(in crate::server) fn abandon_waiting(&mut self, key: Key<Conn>, w: &Waiting) {
        if self.waiting.get(&w.ticket) == Some(&key) {
            self.waiting.remove(&w.ticket);
        }
        match &w.call {
            Call::Stream(setup) => self.abandon_stream(key, setup),
            Call::Poll(p) => self.abandon_poll(key, p),
            Call::Control(c) => self.abandon_control(key, c),
            Call::Publish(_) | Call::Batch(_) | Call::Info(_) | Call::List | Call::Delete(_) => {}
        }
    }

    /// The connection waiting under `ticket`, taken out of its wait.
    fn take_waiting(&mut self, ticket: Ticket) -> Option<(Key<Conn>, Box<Waiting>)> {
        let key = self.waiting.remove(&ticket)?;
        let conn = self.conns.get_mut(key)?;
        if !matches!(&conn.phase, Phase::Waiting(w) if w.ticket == ticket) {
            return None;
        }
        match std::mem::replace(&mut conn.phase, Phase::Ready) {
            Phase::Waiting(w) => Some((key, w)),
            _ => None,
        }
    }

    /// Answers an engine call's request with the engine's answer.
    fn answer_call(
        &mut self,
        key: Key<Conn>,
        keep_alive: bool,
        cors: Cors,
        call: Call,
        answer: Answer,
    ) {
        let result = match (call, answer) {
            (Call::Batch(names), Answer::Published(r)) => r.map(|seqs| {
                debug_assert_eq!(seqs.len(), names.len(), "a line left out of a batch");
                Some(batch_json(&names, &seqs))
            }),
            (Call::Publish(names), Answer::Published(r)) => r.map(|seqs| {
                debug_assert_eq!(seqs.len(), names.len(), "a channel left out of a publish");
                Some(publish_json(&names, &seqs))
            }),
            (Call::Info(name), Answer::Info(r)) => {
                r.map(|info| info.map(|i| self.info_json(&name, &i)))
            }
            (Call::List, Answer::List(r)) => r.map(|list| Some(self.list_json(&list))),
            (Call::Delete(name), Answer::Deleted(r)) => r.map(|gone| {
                gone.then(|| {
                    self.close_deleted(&name);
                    Bytes::new()
                })
            }),
            (call, answer) => {
                debug_assert!(false, "answer {answer:?} to call {call:?}");
                return self.respond_error_with(
                    key,
                    keep_alive,
                    HttpError::new(500, "internal error"),
                    cors,
                    "",
                );
            }
        };
        match result {
            Err(e) => self.respond_error_with(key, keep_alive, engine_error(e), cors, ""),
            Ok(None) => self.respond_error_with(
                key,
                keep_alive,
                HttpError::new(404, "no such channel"),
                cors,
                "",
            ),
            Ok(Some(body)) if body.is_empty() => {
                let h = response::head(204, "", 0, keep_alive, self.cors.lines(cors), "");
                self.respond(key, 204, [h], keep_alive);
            }
            Ok(Some(body)) => self.respond_ok_with(key, keep_alive, cors, ctype::JSON, body),
        }
    }

    fn info_json(&self, name: &str, info: &LogInfo) -> Bytes {
        let (subscribers, sessions) = self.hub.counts(name);
        json::object(|o| {
            o.str("channel", &info.name)
                .num("first_seq", info.first_seq)
                .num("oldest_seq", info.oldest_seq)
                .num("next_seq", info.next_seq)
                .num("buffered", info.buffered as u64)
                .num("subscribers", subscribers as u64)
                .num("sessions", u64::from(sessions));
        })
    }

    fn list_json(&self, list: &[LogInfo]) -> Bytes {
        json::array(list, |o, c| {
            o.str("channel", &c.name)
                .num("next_seq", c.next_seq)
                .num("buffered", c.buffered as u64)
                .num("subscribers", self.hub.counts(&c.name).0 as u64);
        })
    }

    /// Channel `name` was deleted: its parked polls are answered `close`, its streams
    /// sent `close` (and kept open, as after `unsubscribe`: an EventSource that saw its
    /// stream end would reconnect to the same URL).
    pub(in crate::server) fn close_deleted(&mut self, name: &str) {
        let close = event::close(name);
        let Some((ch, subscribers)) = self.hub.delete(name) else {
            return;
        };
        // The engine's log is gone; a shared engine stops following its live messages.
        self.engine.unwatch(name, self.now);
        for sub in subscribers {
            let Some(conn) = self.conns.get_mut(sub) else {
                continue;
            };
            match &mut conn.phase {
                Phase::Parked(_) => self.answer_poll(sub, std::slice::from_ref(&close), false),
                Phase::Streaming(st) => {
                    st.follower.subs.remove(ch);
                    let frame = st
                        .out
                        .event(&close, &self.hub.cursor(st.follower.subs.as_slice()));
                    st.wrote(self.now.ms);
                    conn.queue(frame);
                    self.flush(sub);
                }
                Phase::Waiting(_) => self.refuse_waiting(sub),
                _ => {}
            }
        }
    }
}

/// `{"channel":…,"seq":…}` for one channel, an array of them for several.
/// The answer to a batch: `[{"channel":…,"seq":…},…]`, one per line, in order.
fn batch_json(names: &[Box<str>], seqs: &[u64]) -> Bytes {
    json::array(
        names.iter().map(|n| &**n).zip(seqs.iter().copied()),
        |o, (name, seq)| {
            o.str("channel", name).num("seq", seq);
        },
    )
}

/// Most lines in one batch publish.
pub const MAX_BATCH_LINES: usize = 10_000;

/// The lines of a batch publish (`{"channel":"…","data":"…"}` each, blank lines
/// skipped): their channels and payloads, checked, or the 400/413 to answer.
fn parse_batch(body: &[u8], max_message: usize) -> Result<Vec<(String, String)>, HttpError> {
    let mut items = Vec::new();
    for line in body.split(|&b| b == b'\n') {
        let line = line.trim_ascii();
        if line.is_empty() {
            continue;
        }
        if items.len() == MAX_BATCH_LINES {
            return Err(HttpError::new(
                413,
                "too many lines in one batch (10,000 at most)",
            ));
        }
        let line: Option<(String, String)> = match serde_json::from_slice(line) {
            Ok(serde_json::Value::Object(mut o)) => match (o.remove("channel"), o.remove("data")) {
                (Some(serde_json::Value::String(c)), Some(serde_json::Value::String(d))) => {
                    Some((c, d))
                }
                _ => None,
            },
            _ => None,
        };
        let Some((channel, data)) = line else {
            return Err(HttpError::new(
                400,
                "each line of a batch is {\"channel\":\"…\",\"data\":\"…\"} (data a string)",
            ));
        };
        if !valid_name(&channel) {
            return Err(HttpError::new(
                400,
                "bad channel name in a batch line (1-128 bytes of A-Z a-z 0-9 _ . -)",
            ));
        }
        if data.len() > max_message {
            return Err(HttpError::new(
                413,
                "a batch line's data is over --max-message",
            ));
        }
        items.push((channel, data));
    }
    if items.is_empty() {
        return Err(HttpError::new(400, "empty batch"));
    }
    Ok(items)
}

fn publish_json(names: &[Box<str>], seqs: &[u64]) -> Bytes {
    let result = |o: &mut json::Obj, (name, seq): (&str, u64)| {
        o.str("channel", name).num("seq", seq);
    };
    match (names, seqs) {
        ([name], [seq]) => json::object(|o| result(o, (name, *seq))),
        _ => json::array(names.iter().map(|n| &**n).zip(seqs.iter().copied()), result),
    }
}
