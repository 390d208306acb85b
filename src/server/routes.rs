//! Which handler serves which request: paths per listener, allowed methods (405 with
//! `Allow`), CORS preflight, unknown paths (404), the admin token check, and the access
//! log. The handlers are in `handlers/`.
//! Touches no hub or engine state itself.

use bytes::Bytes;

use super::conn::Conn;
use super::handlers::Action;
use super::Server;
use crate::handle::Key;
use crate::http::query::Query;
use crate::http::request::{Head, Method};
use crate::http::response::{self, ctype, Cors};
use crate::http::HttpError;
use crate::transport::Format;

/// The demo page served at `/`.
const DEMO_HTML: &str = include_str!("../static/demo.html");
/// The browser client.
const COMET_JS: &str = include_str!("../static/comet.js");
/// The browser client as an ES module.
const COMET_MJS: &str = concat!(
    include_str!("../static/comet.js"),
    "export default globalThis.Comet;\n"
);

/// What a path names.
#[derive(Debug, PartialEq, Eq)]
enum Endpoint<'a> {
    /// `GET /poll` (public).
    Poll,
    /// `GET /stream`, `/iframe`, `/events` (public).
    Stream(Format),
    /// `POST /clients/ID/ACTION` (public).
    Control(&'a str, Action),
    /// `POST /pub` (admin).
    Publish,
    /// `POST /demo/pub` (public, with `--demo`).
    DemoPublish,
    /// `GET /ws-echo` (public, with `--ws-echo`): the Autobahn|Testsuite's echo socket.
    WsEcho,
    /// A file served from memory (public): body and content type.
    Static(&'static [u8], &'static str),
    /// `GET` or `DELETE /channels/NAME` (admin).
    Channel(&'a str),
    /// `GET /channels` (admin).
    ChannelList,
    /// `GET /stats` (admin).
    Stats,
    /// `POST /sign` (admin).
    Sign,
    /// `GET /metrics` (admin).
    Metrics,
    /// `GET /healthz` (admin).
    Healthz,
}

impl Endpoint<'_> {
    fn parse(admin: bool, path: &str) -> Option<Endpoint<'_>> {
        if !admin {
            return match path {
                "/poll" => Some(Endpoint::Poll),
                "/" => Some(Endpoint::Static(DEMO_HTML.as_bytes(), ctype::HTML)),
                "/comet.js" => Some(Endpoint::Static(COMET_JS.as_bytes(), ctype::JS)),
                "/comet.mjs" => Some(Endpoint::Static(COMET_MJS.as_bytes(), ctype::JS)),
                "/demo/pub" => Some(Endpoint::DemoPublish),
                "/ws-echo" => Some(Endpoint::WsEcho),
                _ => {
                    if let Some(format) = Format::from_path(path) {
                        return Some(Endpoint::Stream(format));
                    }
                    let rest = path.strip_prefix("/clients/")?;
                    let (id, action) = rest.split_once('/')?;
                    Some(Endpoint::Control(id, Action::parse(action)?))
                }
            };
        }
        match path {
            "/pub" => Some(Endpoint::Publish),
            "/healthz" => Some(Endpoint::Healthz),
            "/channels" => Some(Endpoint::ChannelList),
            "/stats" => Some(Endpoint::Stats),
            "/sign" => Some(Endpoint::Sign),
            "/metrics" => Some(Endpoint::Metrics),
            _ => path
                .strip_prefix("/channels/")
                .filter(|n| !n.is_empty())
                .map(Endpoint::Channel),
        }
    }

    fn method(&self) -> (Method, &'static str) {
        match self {
            Endpoint::Publish | Endpoint::DemoPublish | Endpoint::Control(..) | Endpoint::Sign => {
                (Method::Post, "POST, OPTIONS")
            }
            Endpoint::Channel(_) => (Method::Get, "GET, HEAD, DELETE, OPTIONS"),
            Endpoint::Poll
            | Endpoint::WsEcho
            | Endpoint::Stream(_)
            | Endpoint::Static(..)
            | Endpoint::ChannelList
            | Endpoint::Stats
            | Endpoint::Metrics
            | Endpoint::Healthz => (Method::Get, "GET, HEAD, OPTIONS"),
        }
    }
}

/// The message of a 404: a path that the other listener serves says so, since sending a
/// publish to the public port is the first mistake a newcomer makes.
fn not_found_message(admin: bool, path: &str) -> &'static str {
    match (admin, Endpoint::parse(!admin, path)) {
        (false, Some(Endpoint::Publish)) => {
            "not found: publishing is on the admin listener (--admin-listen)"
        }
        (false, Some(_)) => "not found: this path is on the admin listener (--admin-listen)",
        (true, Some(_)) => "not found: this path is on the public listener (--listen)",
        (_, None) => "not found",
    }
}

/// Whether a path names an endpoint on the given listener (for the fuzz entry point).
pub(crate) fn exists(admin: bool, path: &str) -> bool {
    Endpoint::parse(admin, path).is_some_and(|e| {
        // Touch what a handler would read from it.
        let _ = e.method();
        true
    })
}

impl Server {
    /// Dispatches one whole request.
    pub(super) fn route(&mut self, key: Key<Conn>, head: Head, body: Bytes, cors: Cors) {
        if !self.config.access_log {
            return self.dispatch(key, head, body, cors);
        }
        let (method, path) = (head.method, head.path.clone());
        let (admin, peer) = self
            .conns
            .get(key)
            .map_or((false, None), |c| (c.admin, c.sock.peer_addr().ok()));
        self.last_status = 0;
        self.dispatch(key, head, body, cors);
        let outcome = match self.conns.get(key).map(|c| &c.phase) {
            Some(super::conn::Phase::Parked(_)) => "parked".to_string(),
            Some(super::conn::Phase::Streaming(_)) => "stream".to_string(),
            Some(super::conn::Phase::Waiting(_)) => "waiting".to_string(),
            _ => self.last_status.to_string(),
        };
        let peer = peer.map_or("-".to_string(), |p| p.to_string());
        let listener = if admin { "admin" } else { "public" };
        // The query is left out: it may carry a token.
        log::info!(target: "access", "{peer} {listener} {method:?} {path} {outcome}");
    }

    fn dispatch(&mut self, key: Key<Conn>, head: Head, body: Bytes, cors: Cors) {
        let Some(admin) = self.conns.get(key).map(|c| c.admin) else {
            return;
        };
        let Some(endpoint) = Endpoint::parse(admin, &head.path) else {
            let e = HttpError::new(404, not_found_message(admin, &head.path));
            return self.respond_error(key, &head, e, cors, "");
        };
        let (method, allow) = endpoint.method();
        if head.method == Method::Options {
            let extra = format!(
                "Allow: {allow}\r\nAccess-Control-Allow-Methods: {allow}\r\nAccess-Control-Allow-Headers: Content-Type, Authorization, Last-Event-ID\r\nAccess-Control-Max-Age: 86400\r\n"
            );
            let h = response::head(204, "", 0, head.keep_alive, self.cors.lines(cors), &extra);
            return self.respond(key, 204, [h], head.keep_alive);
        }
        // Load-balancer probes carry no token, and `/healthz` tells nothing but that the
        // gateway answers.
        if admin && endpoint != Endpoint::Healthz && !self.admin_allowed(&head) {
            let e = HttpError::new(401, "missing or wrong admin token");
            let extra = "WWW-Authenticate: Bearer\r\n";
            return self.respond_error(key, &head, e, cors, extra);
        }
        let delete = matches!(endpoint, Endpoint::Channel(_)) && head.method == Method::Delete;
        // Every GET route answers HEAD: the same head, no body.
        let head_of_get = method == Method::Get && head.method == Method::Head;
        if head.method != method && !delete && !head_of_get {
            let extra = format!("Allow: {allow}\r\n");
            let e = HttpError::new(405, "method not allowed");
            return self.respond_error(key, &head, e, cors, &extra);
        }
        let query = match Query::parse(&head.query) {
            Ok(q) => q,
            Err(e) => return self.respond_error(key, &head, e, cors, ""),
        };
        match endpoint {
            Endpoint::Poll => self.handle_poll(key, &head, &query, cors),
            Endpoint::Stream(format) => self.handle_stream(key, &head, &query, cors, format),
            Endpoint::WsEcho => self.handle_ws_echo(key, &head, cors),
            Endpoint::Control(id, action) => {
                self.handle_control(key, &head, &query, cors, id, action)
            }
            Endpoint::Publish => self.handle_publish(key, &head, &query, body, cors),
            Endpoint::DemoPublish => {
                let demo_only = query.list("channel").all(|c| c.starts_with("demo."));
                if !self.config.demo {
                    let e = HttpError::new(404, "not found (start the gateway with --demo)");
                    self.respond_error(key, &head, e, cors, "");
                } else if !demo_only {
                    let e = HttpError::new(403, "the demo may only publish to demo. channels");
                    self.respond_error(key, &head, e, cors, "");
                } else {
                    self.handle_publish(key, &head, &query, body, cors);
                }
            }
            Endpoint::Static(body, ctype) => {
                self.respond_ok(key, &head, cors, ctype, Bytes::from_static(body))
            }
            Endpoint::Channel(name) => self.handle_channel(key, &head, name, cors, delete),
            Endpoint::ChannelList => self.handle_channel_list(key, &head, &query, cors),
            Endpoint::Stats => self.handle_stats(key, &head, cors),
            Endpoint::Sign => self.handle_sign(key, &head, &query, cors),
            Endpoint::Metrics => self.handle_metrics(key, &head, cors),
            // A load balancer takes a process whose engine is unreachable out of rotation.
            Endpoint::Healthz if !self.engine.healthy() => {
                let e = HttpError::new(503, "engine unavailable");
                self.respond_error(key, &head, e, cors, "");
            }
            Endpoint::Healthz => {
                self.respond_ok(key, &head, cors, ctype::TEXT, Bytes::from_static(b"ok\n"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_per_listener() {
        assert_eq!(Endpoint::parse(false, "/poll"), Some(Endpoint::Poll));
        assert_eq!(Endpoint::parse(true, "/poll"), None);
        assert_eq!(Endpoint::parse(false, "/pub"), None);
        assert_eq!(Endpoint::parse(true, "/pub"), Some(Endpoint::Publish));
        assert_eq!(
            Endpoint::parse(true, "/channels/a"),
            Some(Endpoint::Channel("a"))
        );
        assert_eq!(Endpoint::parse(true, "/channels/"), None);
        assert_eq!(Endpoint::parse(true, "/healthz"), Some(Endpoint::Healthz));
        assert_eq!(Endpoint::parse(false, "/healthz"), None);
        assert_eq!(
            Endpoint::parse(false, "/events"),
            Some(Endpoint::Stream(Format::Sse))
        );
        assert_eq!(
            Endpoint::parse(false, "/clients/ab/close"),
            Some(Endpoint::Control("ab", Action::Close))
        );
        assert_eq!(Endpoint::parse(false, "/clients/ab/explode"), None);
        assert_eq!(Endpoint::parse(true, "/clients/ab/close"), None);
    }

    #[test]
    fn a_404_names_the_listener_that_serves_the_path() {
        assert_eq!(
            not_found_message(false, "/pub"),
            "not found: publishing is on the admin listener (--admin-listen)"
        );
        assert_eq!(
            not_found_message(false, "/stats"),
            "not found: this path is on the admin listener (--admin-listen)"
        );
        assert_eq!(
            not_found_message(true, "/poll"),
            "not found: this path is on the public listener (--listen)"
        );
        assert_eq!(not_found_message(false, "/nope"), "not found");
        assert_eq!(not_found_message(true, "/nope"), "not found");
    }
}
