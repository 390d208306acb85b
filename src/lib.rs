//! Comet Gateway: a Comet (HTTP long-connection server push) gateway on a single-threaded
//! mio reactor.
//!
//! Subscribers long-poll named channels on the public listener; backends publish on the
//! admin listener. Each published message is encoded once into `Bytes` shared by every
//! subscriber's response. The wire contract is described in the README.
//!
//! # Layout
//!
//! - [`auth`]: subscriber tokens (HMAC-SHA256), signing and checking.
//! - [`config`]: command-line flags and their defaults.
//! - [`server`]: the reactor: listeners, connections, request framing, routing, handlers.
//! - [`http`]: request heads (httparse under limits), query strings, response heads.
//! - [`channel`]: one channel's seqs, ring buffer, subscribers and cursor rules.
//! - [`channels`]: the registry of channels, creation caps, first seqs.
//! - [`subscription`]: the `channel`/`seq`/`cb`/`client` parameters of subscribe requests.
//! - [`event`]: the JSON events, script-safe.
//! - [`transport`]: the chunked wire formats of `/stream`, `/iframe`, `/events`.
//! - [`fuzzing`]: the request path's parsers behind one entry point, for fuzzing.
//! - [`timer`]: the hierarchical timer wheel that holds every timeout.
//! - [`handle`]: generation-checked slab keys.
#![deny(missing_docs)]

pub mod auth;
pub mod channel;
pub mod channels;
pub mod config;
pub mod event;
pub mod fuzzing;
pub mod handle;
pub mod http;
pub mod server;
pub mod subscription;
pub mod timer;
pub mod transport;

pub use config::Config;
pub use server::{Server, ShutdownHandle, Stats};
