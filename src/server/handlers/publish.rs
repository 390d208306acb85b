//! The channel endpoints of the admin listener: `POST /pub` (the engine appends to each
//! channel; the fan-out that follows answers every parked poll and feeds every stream),
//! `GET /channels/NAME`, `GET /channels` and `DELETE /channels/NAME` (its subscribers
//! get `close`).

use bytes::Bytes;

use crate::engine::{valid_name, EngineError};
use crate::event;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::Head;
use crate::http::response::{self, ctype, Cors};
use crate::http::HttpError;
use crate::json;
use crate::server::conn::{Conn, Phase};
use crate::server::Server;
use crate::subscription;

/// Most channels one publish may name.
pub const MAX_PUBLISH_CHANNELS: usize = 1024;
/// Most channels one `GET /channels` lists.
const MAX_LIST: usize = 10_000;

impl Server {
    /// Handles `POST /pub?channel=a[,b]`.
    pub(in crate::server) fn handle_publish(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        q: &Query,
        body: Bytes,
        cors: Cors,
    ) {
        let result = self.try_publish(q, &body);
        // Subscribers get the message before the publisher its answer.
        self.fan_out();
        match result {
            Ok(json) => self.respond_ok(key, head, cors, ctype::JSON, json),
            Err(e) => self.respond_error(key, head, e, cors, ""),
        }
    }

    fn try_publish(&mut self, q: &Query, body: &[u8]) -> Result<Bytes, HttpError> {
        let names = subscription::parse_names(q, MAX_PUBLISH_CHANNELS)?;
        let payload =
            std::str::from_utf8(body).map_err(|_| HttpError::new(400, "payload is not UTF-8"))?;
        let seqs = self
            .engine
            .publish(&names, payload, self.now)
            .map_err(|e| match e {
                EngineError::TooManyChannels => HttpError::new(503, "too many channels"),
            })?;
        debug_assert_eq!(seqs.len(), names.len(), "a channel left out of a publish");
        let result = |o: &mut json::Obj, (name, seq): (&&str, &u64)| {
            o.str("channel", name).num("seq", *seq);
        };
        Ok(match (names.as_slice(), seqs.as_slice()) {
            ([name], [seq]) => json::object(|o| result(o, (name, seq))),
            _ => json::array(names.iter().zip(&seqs), result),
        })
    }

    /// Handles `GET /channels/NAME`.
    pub(in crate::server) fn handle_channel_info(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        name: &str,
        cors: Cors,
    ) {
        let info = valid_name(name)
            .then(|| self.engine.info(name, self.now))
            .flatten();
        let Some(info) = info else {
            let e = HttpError::new(404, "no such channel");
            return self.respond_error(key, head, e, cors, "");
        };
        let (subscribers, sessions) = self.hub.counts(name);
        let body = json::object(|o| {
            o.str("channel", &info.name)
                .num("first_seq", info.first_seq)
                .num("oldest_seq", info.oldest_seq)
                .num("next_seq", info.next_seq)
                .num("buffered", info.buffered as u64)
                .num("subscribers", subscribers as u64)
                .num("sessions", u64::from(sessions));
        });
        self.respond_ok(key, head, cors, ctype::JSON, body);
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
        let list = self.engine.list(prefix, limit);
        let body = json::array(&list, |o, c| {
            o.str("channel", &c.name)
                .num("next_seq", c.next_seq)
                .num("buffered", c.buffered as u64)
                .num("subscribers", self.hub.counts(&c.name).0 as u64);
        });
        self.respond_ok(key, head, cors, ctype::JSON, body);
    }

    /// `DELETE /channels/NAME`: every subscriber gets `close` for it, then it is dropped.
    pub(in crate::server) fn handle_channel_delete(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        name: &str,
        cors: Cors,
    ) {
        if !valid_name(name) || !self.engine.delete(name) {
            let e = HttpError::new(404, "no such channel");
            return self.respond_error(key, head, e, cors, "");
        }
        let close = event::close(name);
        let (ch, subscribers) = match self.hub.delete(name) {
            Some((ch, subs)) => (Some(ch), subs),
            None => (None, Vec::new()),
        };
        for sub in subscribers {
            let Some(conn) = self.conns.get_mut(sub) else {
                continue;
            };
            match &mut conn.phase {
                Phase::Parked(_) => self.answer_poll(sub, std::slice::from_ref(&close), false),
                // A stream left with no channel stays open, as after `unsubscribe`: an
                // EventSource that saw its stream end would reconnect to the same URL.
                Phase::Streaming(st) => {
                    if let Some(ch) = ch {
                        st.follower.subs.remove(ch);
                    }
                    let frame = st
                        .out
                        .event(&close, &self.hub.cursor(st.follower.subs.as_slice()));
                    st.last_write_ms = self.now.ms;
                    conn.queue(frame);
                    self.flush(sub);
                }
                _ => {}
            }
        }
        let h = response::head(204, "", 0, head.keep_alive, self.cors.lines(cors), "");
        self.respond(key, 204, [h], head.keep_alive);
    }
}
