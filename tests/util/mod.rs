//! Shared helpers for integration tests: start a real server on ephemeral loopback ports,
//! speak raw HTTP/1.1 to it, and wait (boundedly) for observable state. The pieces live
//! in submodules (`server`, `http`, `stream`, `poller`, `process`, `redis`, `proxy`,
//! `workers`) and are re-exported here, so test files name them `util::…`.
#![allow(dead_code)]

mod http;
mod later;
mod poller;
mod process;
mod proxy;
mod redis;
mod server;
mod stream;
mod workers;
pub mod ws;

use std::time::{Duration, Instant};

// Each test crate uses only some of these.
#[allow(unused_imports)]
pub use http::{get, request, send_poll, stats, tiny_reader, write_what_fits, Conn, Response};
#[allow(unused_imports)]
pub use later::{Delay, Later};
#[allow(unused_imports)]
pub use poller::{brief, data_briefs, Poller};
#[allow(unused_imports)]
pub use process::{refused_to_start, ChildGateway};
#[allow(unused_imports)]
pub use proxy::Proxy;
#[allow(unused_imports)]
pub use redis::Redis;
#[allow(unused_imports)]
pub use server::{redis_gateway, TestServer};
#[allow(unused_imports)]
pub use stream::{cursor_query, StreamClient, Transport, TRANSPORTS};
#[allow(unused_imports)]
pub use workers::{free_port, Workers};

/// Longest any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(20);

/// Polls `cond` until it holds, failing the test after `WAIT`.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}
