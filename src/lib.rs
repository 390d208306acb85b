//! Comet Gateway: a Comet (HTTP long-connection server push) gateway on a single-threaded
//! mio reactor.
//!
//! Subscribers long-poll named channels on the public listener; backends publish on the
//! admin listener. Each published message is encoded once into `Bytes` shared by every
//! subscriber's response. The wire contract is described in the README.
//!
//! # Layout
//!
//! Four seams, each owning its state and touching nobody else's:
//!
//! - [`engine`]: the channel log: seqs, each channel's ring of recent messages, ttl and
//!   expiry, the channel cap, cursor → data / `lost` / `reset`. A trait; [`engine::MemoryEngine`]
//!   is the embedded default (a Redis engine shared by many processes goes beside it).
//! - [`hub`]: this process's subscribers: who follows which channel at which cursor,
//!   long-poll sessions, client ids, and the fan-out of a message to them.
//! - [`transport`]: how events become bytes on a connection: the long-poll answer and
//!   the stream formats (ndjson, iframe, EventSource; WebSocket goes beside them).
//! - [`server`]: the reactor: sockets, listeners, the connection slab, the timer wheel,
//!   HTTP framing, and thin handlers that parse a request, call hub and engine, answer.
//!
//! And the pure pieces they share:
//!
//! - [`http`]: request heads (httparse under limits), query strings, response heads.
//! - [`subscription`]: the `channel`/`seq`/`cb`/`client` parameters, checked once.
//! - [`event`]: the JSON events, script-safe; [`json`]: the admin answers' JSON writer.
//! - [`auth`]: subscriber tokens (HMAC-SHA256) and constant-time comparison.
//! - [`timer`]: the hierarchical timer wheel; [`clock`]: the one place clocks are read.
//! - [`handle`]: generation-checked, typed slab keys.
//! - [`config`]: command-line flags and their defaults.
//! - [`fuzzing`]: the request path's parsers behind one entry point, for fuzzing.
//! - [`workers`]: `--workers N`, the parent that runs N reactor processes (and makes the
//!   private directory where they leave their counts for a host-wide `/stats`).
#![deny(missing_docs)]

pub mod auth;
pub mod clock;
pub mod config;
pub mod engine;
pub mod event;
pub mod fuzzing;
pub mod handle;
pub mod http;
pub mod hub;
pub mod json;
pub mod server;
pub mod subscription;
pub mod timer;
pub mod transport;
pub mod workers;

pub use config::Config;
pub use server::{Server, ShutdownHandle, Stats};
