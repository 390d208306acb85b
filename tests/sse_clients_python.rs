//! `GET /events` read by Python's `httpx-sse` (tests/sse/httpx_sse_client.py, in the venv at
//! tests/sse/.venv): payloads, stream start, heartbeats, restart and JSON checked by
//! `sse_common::run` (see tests/sse_common/mod.rs). Needs `tests/setup.sh`.

mod sse_common;

use sse_common::{run, Lib};

#[test]
fn httpx_sse_in_python() {
    run(Lib::HttpxSse);
}
