//! `comet-loadtest`: the bundled load generator for Comet Gateway.
//!
//! # Layout
//!
//! - `clock`: wall-clock microseconds (the time base of stamps and latency) and the
//!   schedule of a steady publishing rate.
//! - [`config`]: flags, loopback-only target check.
//! - [`fd_limit`]: raising the soft descriptor limit to the hard one at start-up (the
//!   gateway's own file, compiled here too).
//! - [`framer`]: response bytes to event texts, for each transport.
//! - [`websocket`]: the client side of RFC 6455 (key and accept, server frames, masked
//!   pongs) that the framer uses for `--transport ws`.
//! - [`scan`]: the fields of one event that the account needs.
//! - `publisher`: the thread that posts numbered messages stamped with their due time.
//! - `batch`: the ndjson body of a batch publish (`--batch`) and its answer, read back
//!   into one seq per message.
//! - [`run`](mod@run): the run's state machine, one mio loop over a flat subscriber table; in it
//!   `subscriber` (sockets, requests, open and ready counts), `serve` (one socket event),
//!   `account` (per-channel accounts, latency, what is still due), `publishing` (the
//!   phase and the publisher thread) and `tick` (churn, progress line).
//! - [`floor`]: the bare cost of fan-out (one write per socket per message), to compare.
//! - [`flood`]: `comet-flood`, hostile traffic (channel-table exhaustion, session flood,
//!   never-reading pipeliners) counted by outcome.
//! - [`report`]: the summary, as text and JSON.
//! - [`multi`]: `--processes`: a coordinator that spreads the subscribers over worker
//!   processes of this binary, publishes once for all of them and merges their accounts;
//!   a worker runs [`run::work`].
#![deny(missing_docs)]

mod batch;
mod clock;
pub mod config;
#[path = "../../src/server/fd_limit.rs"]
pub mod fd_limit;
pub mod flood;
pub mod floor;
pub mod framer;
pub mod multi;
mod publisher;
pub mod report;
pub mod run;
pub mod scan;
pub mod websocket;

pub use config::Config;
pub use framer::Transport;
pub use report::Summary;
pub use run::{run, work};
