//! `GET /events` read by npm `eventsource` in Node.js (tests/sse/node_eventsource.mjs):
//! payloads, stream start, heartbeats, restart and JSON checked by `sse_common::run` (see
//! tests/sse_common/mod.rs). Needs `tests/setup.sh`.

mod sse_common;

use sse_common::{run, Lib};

#[test]
fn eventsource_npm_in_node() {
    run(Lib::NodeEventsource);
}
