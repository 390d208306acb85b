//! One entry point that runs untrusted request bytes through every pure parser of the
//! request path: the request head (under the limits), the router's path matching, the
//! query, the subscribe parameters, client ids, cursors, tokens, and the script-safe
//! encoder. The cargo-fuzz target (`fuzz/`) and the corpus-replay test
//! (`tests/fuzz_corpus.rs`) both call it; it must never panic. Touches no server state.

use crate::auth;
use crate::event;
use crate::http::query::Query;
use crate::http::request::{self, Status};
use crate::subscription::{self, ClientId};
use crate::transport;

/// Feeds `data` to the request path's parsers as a client could send it.
pub fn request_path(data: &[u8]) {
    // Whole, and cut short (half, and the first 17 bytes) as a slow client's request
    // arrives in pieces.
    for end in [data.len(), data.len() / 2, data.len().min(17)] {
        let _ = request::parse(&data[..end], 8192);
    }
    if let Ok(Status::Complete(head)) = request::parse(data, 8192) {
        // The router's path matching, on both listeners.
        let _ = crate::server::route_exists(false, &head.path);
        let _ = crate::server::route_exists(true, &head.path);
        if let Ok(q) = Query::parse(&head.query) {
            let _ = subscription::parse_channels(&q, 16);
            let _ = subscription::parse_callback(&q);
            if let Some(c) = q.get("client") {
                let _ = ClientId::parse(c);
            }
            for t in q.list("token") {
                let _ = auth::check(b"fuzz-secret", t, "news", 1_800_000_000);
            }
        }
        if let Some(last) = head.last_event_id.as_deref() {
            let _ = transport::parse_cursor(last);
        }
    }
    // The body of a publish, encoded for every subscriber.
    if let Ok(text) = std::str::from_utf8(data) {
        let json = event::data("fuzz", 1, text);
        let _ = transport::stream::frame(transport::Format::Iframe, &json, "fuzz:2", "cb", true);
    }
}
