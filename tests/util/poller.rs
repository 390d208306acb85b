//! `Poller`: a long-poll client that behaves like comet.js (each poll names its channel
//! with its cursor and the session it holds), and `brief`, which shows an event as a
//! short string so that a test can compare whole sequences.

use std::net::SocketAddr;
use std::time::Instant;

use serde_json::Value;

use super::http::{request, Response};
use super::WAIT;

/// An event in short: `d<seq>`, `lost <from>-<to>`, `reset <seq>`, or its type.
pub fn brief(e: &Value) -> String {
    match e["type"].as_str().unwrap_or("?") {
        "data" => format!("d{}", e["seq"]),
        "lost" => format!("lost {}-{}", e["from"], e["to"]),
        "reset" => format!("reset {}", e["seq"]),
        other => other.to_string(),
    }
}

/// `d<seq>` for each of `seqs`.
pub fn data_briefs(seqs: impl IntoIterator<Item = u64>) -> Vec<String> {
    seqs.into_iter().map(|s| format!("d{s}")).collect()
}

/// A long-poll subscriber of one channel.
pub struct Poller {
    pub addr: SocketAddr,
    pub channel: String,
    /// The next seq it wants (`None`: from now on).
    pub cursor: Option<u64>,
    client: Option<String>,
}

impl Poller {
    pub fn new(addr: SocketAddr, channel: &str, cursor: Option<u64>) -> Poller {
        Poller {
            addr,
            channel: channel.to_string(),
            cursor,
            client: None,
        }
    }

    /// One poll (held by the server until something is due or its poll timeout): the
    /// answer, its events, the cursor moved past them.
    pub fn poll(&mut self) -> Response {
        let seq = self.cursor.map_or(String::new(), |s| s.to_string());
        let client = self
            .client
            .as_ref()
            .map_or(String::new(), |c| format!("&client={c}"));
        let r = request(
            self.addr,
            &format!(
                "GET /poll?channel={}&seq={seq}{client} HTTP/1.1\r\nHost: t\r\n\r\n",
                self.channel
            ),
        );
        if r.status != 200 {
            return r;
        }
        self.client = r.header("X-Comet-Client").map(str::to_string);
        for e in r.events() {
            match e["type"].as_str() {
                Some("data") => self.cursor = Some(e["seq"].as_u64().unwrap() + 1),
                Some("lost") => self.cursor = Some(e["to"].as_u64().unwrap() + 1),
                Some("reset") => self.cursor = Some(e["seq"].as_u64().unwrap()),
                _ => {}
            }
        }
        r
    }

    /// Polls until `done` holds for what it was told (noops left out, each answer
    /// 200), failing after `WAIT`; returns it all, in order.
    pub fn until(&mut self, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while !done(&seen) {
            assert!(
                Instant::now() < deadline,
                "poller: only {seen:?} within {WAIT:?}"
            );
            let r = self.poll();
            assert_eq!(r.status, 200, "poll answered {}: {}", r.status, r.text());
            seen.extend(r.events().into_iter().filter(|e| e["type"] != "noop"));
        }
        seen
    }
}
