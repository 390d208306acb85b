//! Who may do what: subscriber tokens on subscribe requests (`--auth-secret`), the admin
//! token on the admin listener (`--admin-token`), `POST /sign`; and the read-only
//! management endpoints `GET /stats` and `GET /metrics`. Secrets are compared in
//! constant time (`auth::constant_time_eq`) and never logged.

use crate::auth;
use crate::engine::valid_name;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::Head;
use crate::http::response::{ctype, Cors};
use crate::http::HttpError;
use crate::json;
use crate::server::conn::Conn;
use crate::server::kinds::Kinds;
use crate::server::stats::Report;
use crate::server::Server;

impl Server {
    /// With `--auth-secret`, checks the request's `token=` (one for all channels, or one
    /// per channel in order) against every channel it names; 403 otherwise. Returns when
    /// the soonest of those tokens expires (Unix seconds; `u64::MAX` without auth).
    pub(in crate::server) fn authorize(
        &mut self,
        q: &Query,
        channels: &[&str],
    ) -> Result<u64, HttpError> {
        let Some(secret) = self.config.auth_secret.as_deref() else {
            return Ok(u64::MAX);
        };
        let tokens: Vec<&str> = q.list("token").filter(|t| !t.is_empty()).collect();
        let result = if tokens.is_empty() {
            Err(HttpError::new(403, "missing token"))
        } else if tokens.len() != 1 && tokens.len() != channels.len() {
            Err(HttpError::new(403, "give one token, or one per channel"))
        } else {
            let now = self.now.unix_secs();
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
    pub(in crate::server) fn handle_sign(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        q: &Query,
        cors: Cors,
    ) {
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
        let expires = self.now.unix_secs().saturating_add(ttl.max(1));
        let token = auth::sign(secret.as_bytes(), scope, expires);
        let body = json::object(|o| {
            o.str("token", &token).num("expires", expires);
        });
        self.respond_ok(key, head, cors, ctype::JSON, body);
    }

    /// True when the request may use the admin listener (no token set, or the right one).
    pub(in crate::server) fn admin_allowed(&mut self, head: &Head) -> bool {
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
        let ok = auth::constant_time_eq(given.trim().as_bytes(), token.as_bytes());
        if !ok {
            self.stats.auth_failures += 1;
        }
        ok
    }

    /// Everything `/stats` and `/metrics` report about this process. Debug builds check the connection
    /// counts (kept as phases change) against a full count.
    pub(in crate::server) fn report(&self) -> Report {
        debug_assert_eq!(
            self.kinds,
            Kinds::recount(self.conns.iter().map(|(_, c)| c)),
            "connection counts drifted"
        );
        let engine = self.engine.stats();
        Report {
            stats: self.stats(),
            kinds: self.kinds,
            sessions: self.hub.sessions() as u64,
            channels: engine.channels,
            published_channels: engine.published_channels,
            engine: self.engine.health(),
        }
    }

    /// `GET /stats`.
    pub(in crate::server) fn handle_stats(&mut self, key: Key<Conn>, head: &Head, cors: Cors) {
        let body = self.view().json();
        self.respond_ok(key, head, cors, ctype::JSON, body);
    }

    /// `GET /metrics` (Prometheus text format 0.0.4).
    pub(in crate::server) fn handle_metrics(&mut self, key: Key<Conn>, head: &Head, cors: Cors) {
        let body = self.view().prometheus();
        self.respond_ok(key, head, cors, ctype::METRICS, body);
    }
}
