//! `GET /events` read by `event-source-polyfill` and `@microsoft/fetch-event-source` in
//! headless Chromium driven by playwright-core (tests/sse/browser.mjs): payloads, stream
//! start, heartbeats, restart and JSON checked by `sse_common::run` (see
//! tests/sse_common/mod.rs). Needs `tests/setup.sh`.

mod sse_common;

use sse_common::{run, Lib};

#[test]
fn event_source_polyfill_in_chromium() {
    run(Lib::Polyfill);
}

#[test]
fn fetch_event_source_in_chromium() {
    run(Lib::FetchEventSource);
}
