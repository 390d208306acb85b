//! The management side of the admin listener: the `--admin-token` check, `GET /channels`
//! (list), `DELETE /channels/NAME` (its subscribers get `close`), `GET /stats` (JSON) and
//! `GET /metrics` (Prometheus text). Tokens are compared in constant time and never logged.

use std::fmt::Write as _;

use bytes::Bytes;

use super::conn::Phase;
use super::kinds::Kinds;
use super::{stream, Server};
use crate::auth;
use crate::channel::valid_name;
use crate::event;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::Head;
use crate::http::response::{self, ctype, Cors};
use crate::http::HttpError;
use crate::transport;

/// Most channels one `GET /channels` lists.
const MAX_LIST: usize = 10_000;

/// Compares without an early exit, so the time taken does not tell how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Server {
    /// With `--auth-secret`, checks the request's `token=` (one for all channels, or one
    /// per channel in order) against every channel it names; 403 otherwise. Returns when
    /// the soonest of those tokens expires (Unix seconds; `u64::MAX` without auth).
    pub(super) fn authorize(&mut self, q: &Query, channels: &[&str]) -> Result<u64, HttpError> {
        let Some(secret) = self.config.auth_secret.as_deref() else {
            return Ok(u64::MAX);
        };
        let tokens: Vec<&str> = q.list("token").filter(|t| !t.is_empty()).collect();
        let result = if tokens.is_empty() {
            Err(HttpError::new(403, "missing token"))
        } else if tokens.len() != 1 && tokens.len() != channels.len() {
            Err(HttpError::new(403, "give one token, or one per channel"))
        } else {
            let now = Self::unix_now();
            channels
                .iter()
                .enumerate()
                .try_fold(u64::MAX, |soonest, (i, ch)| {
                    let token = tokens[if tokens.len() == 1 { 0 } else { i }];
                    let expires = auth::check(secret.as_bytes(), token, ch, now).map_err(|r| {
                        HttpError::new(
                            403,
                            match r {
                                auth::Refusal::Malformed => "malformed token",
                                auth::Refusal::Forged => "invalid token",
                                auth::Refusal::Expired => "expired token",
                                auth::Refusal::WrongChannel => "token does not cover this channel",
                            },
                        )
                    })?;
                    Ok(soonest.min(expires))
                })
        };
        if result.is_err() {
            self.stats.auth_failures += 1;
        }
        result
    }

    /// `POST /sign?channel=NAME[*]&ttl=SECONDS` (admin): a subscriber token.
    pub(super) fn handle_sign(&mut self, key: Key, head: &Head, q: &Query, cors: Cors) {
        let Some(secret) = self.config.auth_secret.clone() else {
            let e = HttpError::new(404, "subscriber auth is off (no --auth-secret)");
            return self.respond_error(key, head, e, cors, "");
        };
        let scope = q.get("channel").unwrap_or("");
        let name = scope.strip_suffix('*').unwrap_or(scope);
        let name_ok = valid_name(name) || (scope.ends_with('*') && name.is_empty());
        let ttl = q.get("ttl").map_or(Ok(3600), str::parse::<u64>);
        let (true, Ok(ttl)) = (name_ok, ttl) else {
            let e = HttpError::new(400, "need channel=NAME (or PREFIX*) and a numeric ttl");
            return self.respond_error(key, head, e, cors, "");
        };
        let expires = Self::unix_now().saturating_add(ttl.max(1));
        let token = auth::sign(secret.as_bytes(), scope, expires);
        let body = format!("{{\"token\":\"{token}\",\"expires\":{expires}}}");
        self.json_ok(key, head, cors, ctype::JSON, body);
    }

    /// True when the request may use the admin listener (no token set, or the right one).
    pub(super) fn admin_allowed(&mut self, head: &Head) -> bool {
        let Some(token) = self.config.admin_token.as_deref() else {
            return true;
        };
        // The scheme is case-insensitive (RFC 9110 11.1).
        let given = head
            .authorization
            .as_deref()
            .and_then(|a| a.trim_start().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map_or("", |(_, t)| t);
        let ok = constant_time_eq(given.trim().as_bytes(), token.as_bytes());
        if !ok {
            self.stats.auth_failures += 1;
        }
        ok
    }

    fn json_ok(&mut self, key: Key, head: &Head, cors: Cors, ctype: &str, body: String) {
        self.respond_ok(key, head, cors, ctype, Bytes::from(body));
    }

    /// `GET /channels[?prefix=P&limit=N]`, sorted by name; costs what it returns.
    pub(super) fn handle_channel_list(&mut self, key: Key, head: &Head, q: &Query, cors: Cors) {
        let prefix = q.get("prefix").unwrap_or("");
        let limit = match q.get("limit").map(str::parse::<usize>) {
            None => 100,
            Some(Ok(n)) => n.min(MAX_LIST),
            Some(Err(_)) => {
                let e = HttpError::new(400, "bad limit");
                return self.respond_error(key, head, e, cors, "");
            }
        };
        let items: Vec<String> = self
            .channels
            .with_prefix(prefix)
            .take(limit)
            .map(|c| {
                format!(
                    "{{\"channel\":\"{}\",\"next_seq\":{},\"buffered\":{},\"subscribers\":{}}}",
                    c.name(),
                    c.next_seq(),
                    c.buffered(),
                    c.subs.len()
                )
            })
            .collect();
        let body = format!("[{}]", items.join(","));
        self.json_ok(key, head, cors, ctype::JSON, body);
    }

    /// `DELETE /channels/NAME`: every subscriber gets `close` for it, then it is dropped.
    pub(super) fn handle_channel_delete(&mut self, key: Key, head: &Head, name: &str, cors: Cors) {
        let found = valid_name(name).then(|| self.channels.find(name)).flatten();
        let Some(ck) = found.and_then(|ck| self.channels.remove(ck).map(|ch| (ck, ch))) else {
            let e = HttpError::new(404, "no such channel");
            return self.respond_error(key, head, e, cors, "");
        };
        let (ck, ch) = ck;
        let close = event::close(name);
        let subscribers: Vec<Key> = ch.subs.iter().map(|(_, k)| *k).collect();
        for sub in subscribers {
            let Some(conn) = self.conns.get_mut(sub) else {
                continue;
            };
            match &mut conn.phase {
                Phase::Parked(_) => self.answer_poll(sub, std::slice::from_ref(&close), false),
                // A stream left with no channel stays open, as after `unsubscribe`: an
                // EventSource that saw its stream end would reconnect to the same URL.
                Phase::Streaming(st) => {
                    st.subs.remove(ck);
                    let cursor = stream::cursor_of(&self.channels, st.subs.as_slice());
                    let frame = transport::frame(st.format, &close, &cursor, &st.cb, st.chunked);
                    st.last_write_ms = self.now;
                    conn.queue(frame);
                    self.flush(sub);
                }
                _ => {}
            }
        }
        let h = response::head(204, "", 0, head.keep_alive, self.cors.lines(cors), "");
        self.respond(key, [h], head.keep_alive);
    }

    /// The connection counts (kept as phases change; debug builds check them against a
    /// full count).
    fn kinds(&self) -> Kinds {
        debug_assert_eq!(
            self.kinds,
            Kinds::recount(self.conns.iter().map(|(_, c)| c)),
            "connection counts drifted"
        );
        self.kinds
    }

    /// `GET /stats`.
    pub(super) fn handle_stats(&mut self, key: Key, head: &Head, cors: Cors) {
        let k = self.kinds();
        let s = self.stats;
        let body = format!(
            concat!(
                "{{\"connections\":{{\"public\":{},\"admin\":{},\"parked_polls\":{},\"streams\":{{\"stream\":{},\"iframe\":{},\"events\":{}}}}},",
                "\"sessions\":{},\"sessions_evicted\":{},\"channels\":{},\"published_channels\":{},",
                "\"messages\":{{\"published\":{},\"delivered\":{},\"evicted\":{}}},",
                "\"bytes_out\":{},\"slow_consumers_dropped\":{},\"stalled_dropped\":{},\"accepted\":{},",
                "\"refused_max_conns\":{},\"refused_max_admin_conns\":{},",
                "\"accept_errors\":{},\"auth_failures\":{}}}"
            ),
            k.public, k.admin, k.parked, k.ndjson, k.iframe, k.sse,
            self.sessions.len(), s.sessions_evicted, self.channels.len(), self.channels.published(),
            s.published, s.delivered, s.evicted,
            s.bytes_out, s.slow_consumers, s.stalled, s.accepted,
            s.refused, s.refused_admin,
            s.accept_fd_errors, s.auth_failures
        );
        self.json_ok(key, head, cors, ctype::JSON, body);
    }

    /// `GET /metrics` (Prometheus text format 0.0.4).
    pub(super) fn handle_metrics(&mut self, key: Key, head: &Head, cors: Cors) {
        let k = self.kinds();
        let s = self.stats;
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(
                out,
                "# HELP comet_{name} {help}\n# TYPE comet_{name} {kind}"
            );
            for (labels, v) in samples {
                let _ = writeln!(out, "comet_{name}{labels} {v}");
            }
        };
        metric(
            "connections",
            "gauge",
            "Open client connections by kind.",
            &[
                ("{kind=\"public\"}", k.public),
                ("{kind=\"admin\"}", k.admin),
                ("{kind=\"parked_poll\"}", k.parked),
                ("{kind=\"stream\"}", k.ndjson),
                ("{kind=\"iframe\"}", k.iframe),
                ("{kind=\"events\"}", k.sse),
            ],
        );
        metric(
            "sessions",
            "gauge",
            "Long-poll sessions between polls.",
            &[("", self.sessions.len() as u64)],
        );
        metric(
            "sessions_evicted_total",
            "counter",
            "Sessions forgotten at --max-sessions.",
            &[("", s.sessions_evicted)],
        );
        metric(
            "channels",
            "gauge",
            "Channels that exist.",
            &[("", self.channels.len() as u64)],
        );
        metric(
            "published_channels",
            "gauge",
            "Channels that have had a message (what --max-channels caps).",
            &[("", self.channels.published() as u64)],
        );
        metric(
            "messages_published_total",
            "counter",
            "Messages published (per channel).",
            &[("", s.published)],
        );
        metric(
            "messages_delivered_total",
            "counter",
            "Messages handed to subscribers.",
            &[("", s.delivered)],
        );
        metric(
            "messages_evicted_total",
            "counter",
            "Messages dropped from buffers by size or ttl.",
            &[("", s.evicted)],
        );
        metric(
            "bytes_out_total",
            "counter",
            "Bytes written to clients.",
            &[("", s.bytes_out)],
        );
        metric(
            "slow_consumers_dropped_total",
            "counter",
            "Subscribers closed past --max-pending-bytes.",
            &[("", s.slow_consumers)],
        );
        metric(
            "stalled_dropped_total",
            "counter",
            "Connections closed because their unsent output did not move for --idle-timeout.",
            &[("", s.stalled)],
        );
        metric(
            "connections_accepted_total",
            "counter",
            "Connections accepted.",
            &[("", s.accepted)],
        );
        metric(
            "connections_refused_total",
            "counter",
            "Connections refused at --max-conns (public) or --max-admin-conns (admin).",
            &[
                ("{listener=\"public\"}", s.refused),
                ("{listener=\"admin\"}", s.refused_admin),
            ],
        );
        metric(
            "accept_errors_total",
            "counter",
            "accept() failures for lack of descriptors.",
            &[("", s.accept_fd_errors)],
        );
        metric(
            "auth_failures_total",
            "counter",
            "Requests with a missing or wrong admin or subscriber token.",
            &[("", s.auth_failures)],
        );
        self.json_ok(key, head, cors, ctype::METRICS, out);
    }
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
