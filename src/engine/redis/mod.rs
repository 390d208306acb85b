//! The Redis engine: channel logs in a Redis shared by many
//! gateway processes. `publish.lua`, `read.lua` and `delete.lua` are the atomic steps
//! (seq assignment + capped history + live publish in one script); the connections are
//! non-blocking and driven by the reactor's `Poll`.

mod engine;
pub use engine::RedisEngine;

/// The Lua scripts, loaded once per connection with `SCRIPT LOAD` and run with `EVALSHA`.
#[allow(dead_code)]
pub(crate) mod scripts {
    /// Append + publish (seq from the channel's meta; a channel Redis lost starts a new
    /// life at the server clock in µs).
    pub const PUBLISH: &str = include_str!("publish.lua");
    /// Catch-up read from a seq (optionally fixing the first seq of a new channel).
    pub const READ: &str = include_str!("read.lua");
    /// Delete, raising the prefix's seq floor and telling every process.
    pub const DELETE: &str = include_str!("delete.lua");
    /// One channel's seqs and buffered count.
    pub const INFO: &str = include_str!("info.lua");
    /// Channels by name, from the prefix's index.
    pub const LIST: &str = include_str!("list.lua");
    /// Every script, in the order of `engine::SHAS`.
    pub const ALL: [&str; 5] = [PUBLISH, READ, DELETE, INFO, LIST];
}

/// The non-blocking RESP2 connections (commands, pub/sub); unused until the engine lands.
#[allow(dead_code)]
pub(crate) mod resp;
