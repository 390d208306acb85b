//! The long-poll answer: `[e1,e2,…]`, or `/**/cb([…]);` for JSONP, with
//! `X-Comet-Client`. Builds bytes only; the reactor queues them.

use bytes::Bytes;

use crate::http::response::{self, ctype};
use crate::subscription::ClientId;

/// The whole answer to a poll: head, then the events (shared, not copied) between the
/// array's brackets. `cors` holds the CORS header lines the request earned.
pub fn answer(
    events: &[Bytes],
    cb: Option<&str>,
    client: ClientId,
    cors: &[u8],
    keep_alive: bool,
) -> Vec<Bytes> {
    let (open, close, ctype) = match cb {
        Some(cb) => (
            Bytes::from(format!("/**/{cb}([")),
            Bytes::from_static(b"]);"),
            ctype::JS,
        ),
        None => (
            Bytes::from_static(b"["),
            Bytes::from_static(b"]"),
            ctype::JSON,
        ),
    };
    let comma = Bytes::from_static(b",");
    let len = open.len()
        + close.len()
        + events.iter().map(Bytes::len).sum::<usize>()
        + events.len().saturating_sub(1);
    let extra = format!("X-Comet-Client: {client}\r\n");
    let h = response::head(200, ctype, len, keep_alive, cors, &extra);
    let mut parts = Vec::with_capacity(events.len() * 2 + 3);
    parts.push(h);
    parts.push(open);
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            parts.push(comma.clone());
        }
        parts.push(e.clone());
    }
    parts.push(close);
    parts
}

/// The head of an answer to `HEAD /poll`: the type a `GET` would have, no length.
pub fn head_only(jsonp: bool, cors: &[u8], keep_alive: bool) -> Bytes {
    let t = if jsonp { ctype::JS } else { ctype::JSON };
    response::head_without_length(t, keep_alive, cors, "")
}
