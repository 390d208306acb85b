//! The admin listener's handlers: `POST /pub` (append to each channel, then answer every
//! parked poll on it with the one shared encoding) and `GET /channels/NAME`.

use bytes::Bytes;

use super::conn::Phase;
use super::{after, ms, stream, Server, TimerKind};
use crate::channel::valid_name;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::Head;
use crate::http::response::{ctype, Cors};
use crate::http::HttpError;

/// Most channels one publish may name.
pub const MAX_PUBLISH_CHANNELS: usize = 1024;

impl Server {
    /// Handles `POST /pub?channel=a[,b]`.
    pub(super) fn handle_publish(
        &mut self,
        key: Key,
        head: &Head,
        q: &Query,
        body: Bytes,
        cors: Cors,
    ) {
        match self.try_publish(q, &body) {
            Ok(json) => self.respond_ok(key, head, cors, ctype::JSON, Bytes::from(json)),
            Err(e) => self.respond_error(key, head, e, cors, ""),
        }
    }

    fn try_publish(&mut self, q: &Query, body: &[u8]) -> Result<String, HttpError> {
        let mut names: Vec<&str> = Vec::new();
        for name in q.list("channel") {
            if !valid_name(name) {
                return Err(HttpError::new(
                    400,
                    "bad channel name (1-128 bytes of A-Z a-z 0-9 _ . -)",
                ));
            }
            if names.contains(&name) {
                return Err(HttpError::new(400, "channel named twice"));
            }
            if names.len() >= MAX_PUBLISH_CHANNELS {
                return Err(HttpError::new(400, "too many channels in one publish"));
            }
            names.push(name);
        }
        if names.is_empty() {
            return Err(HttpError::new(400, "missing channel"));
        }
        let payload =
            std::str::from_utf8(body).map_err(|_| HttpError::new(400, "payload is not UTF-8"))?;
        let keys = self.open_channels(names.iter().copied(), true)?;
        let mut results = Vec::with_capacity(keys.len());
        for (name, ck) in names.iter().zip(keys) {
            if let Some(seq) = self.publish(ck, payload) {
                results.push(format!("{{\"channel\":\"{name}\",\"seq\":{seq}}}"));
            }
        }
        Ok(if results.len() == 1 {
            results.pop().unwrap_or_default()
        } else {
            format!("[{}]", results.join(","))
        })
    }

    /// Appends `payload` to a channel, answers every poll parked on it and sends it down
    /// every stream that receives it. Returns the seq.
    pub fn publish(&mut self, ck: Key, payload: &str) -> Option<u64> {
        let ttl = ms(self.config.message_ttl);
        let cap = self.config.buffer as usize;
        let expired = self.channels.get_mut(ck)?.expire_messages(self.now, ttl);
        let p = self.channels.publish(ck, payload, self.now, cap)?;
        let (seq, json, first) = (p.msg.seq, p.msg.json.clone(), p.first);
        self.stats.published += 1;
        self.stats.evicted += (expired + p.evicted) as u64;
        if first {
            // Published channels live until idle for --channel-ttl.
            let at = after(self.now, self.config.channel_ttl);
            self.wheel.insert(at, TimerKind::Channel(ck));
        }
        let mut subs = std::mem::take(&mut self.fanout);
        subs.clear();
        if let Some(ch) = self.channels.get(ck) {
            subs.extend(ch.subs.iter().map(|(_, k)| *k));
        }
        let mut parked = Vec::new();
        let mut streams = Vec::new();
        if let Some(msg) = self.channels.get(ck).and_then(|c| c.newest()) {
            for &sub in &subs {
                let Some(conn) = self.conns.get_mut(sub) else {
                    continue;
                };
                if let Phase::Parked(p) = &mut conn.phase {
                    if let Some(s) = p.subs.find_mut(ck) {
                        s.next = seq + 1;
                    }
                    parked.push(sub);
                } else if stream::deliver(conn, &self.channels, ck, msg, self.now) {
                    streams.push(sub);
                }
            }
        }
        self.stats.delivered += (parked.len() + streams.len()) as u64;
        for sub in parked {
            self.answer_poll(sub, std::slice::from_ref(&json), false);
        }
        for sub in streams {
            self.flush(sub);
        }
        self.fanout = subs;
        Some(seq)
    }

    /// Handles `GET /channels/NAME`.
    pub(super) fn handle_channel_info(&mut self, key: Key, head: &Head, name: &str, cors: Cors) {
        let ttl = ms(self.config.message_ttl);
        let found = valid_name(name)
            .then(|| self.channels.find(name))
            .flatten()
            .and_then(|ck| self.channels.get_mut(ck));
        let Some(ch) = found else {
            let e = HttpError::new(404, "no such channel");
            return self.respond_error(key, head, e, cors, "");
        };
        self.stats.evicted += ch.expire_messages(self.now, ttl) as u64;
        let json = Bytes::from(format!(
            "{{\"channel\":\"{}\",\"first_seq\":{},\"oldest_seq\":{},\"next_seq\":{},\"buffered\":{},\"subscribers\":{},\"sessions\":{}}}",
            ch.name(),
            ch.first_seq(),
            ch.oldest_seq(),
            ch.next_seq(),
            ch.buffered(),
            ch.subs.len(),
            ch.holders()
        ));
        self.respond_ok(key, head, cors, ctype::JSON, json);
    }
}
