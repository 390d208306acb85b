//! The engine seam: the channel log, and nothing else. An engine assigns seqs, keeps
//! each channel's recent messages (`--buffer`, `--message-ttl`), forgets idle channels
//! (`--channel-ttl`), caps the channels that have had a message (`--max-channels`), and
//! turns a subscriber's cursor into data, `lost` or `reset`.
//!
//! It knows nothing of subscribers, connections or bytes on the wire: the hub tells it
//! which channels have local subscribers (`watch`/`unwatch`), and every message an engine
//! accepts comes back out of [`Engine::drain_events`], whether it was published through
//! this process or (with a shared engine) through another one, so the reactor fans out
//! local and remote messages the same way.
//!
//! [`MemoryEngine`] is the embedded default. A networked engine (Redis) fits the same
//! trait: its `watch` subscribes to the channel's live messages, its messages arrive as
//! events when its socket is readable (the reactor polls it like any socket), and the
//! admin calls that need a round trip (`publish`, `info`, `list`, `delete`) may answer
//! [`Reply::Later`] with a [`Ticket`]: the answer comes as [`EngineEvent::Answered`], and
//! the connection that asked waits for it (or for `--engine-timeout`). Subscriber reads
//! (`read`) may be answered later too; the hub keeps the live messages that race such a
//! read and merges them with it (`hub::sync`).

mod log;
mod memory;
pub mod redis;

use std::sync::Arc;

use bytes::Bytes;

use crate::clock::Now;

pub use log::{valid_name, Log, Message, Notice, Start};
pub use memory::{Limits, MemoryEngine};

/// What a cursor has due on one channel.
#[derive(Debug)]
pub struct Read {
    /// Where delivery starts, and what the subscriber must be told first.
    pub start: Start,
    /// The notice's event (`lost`/`reset`), if any.
    pub notice: Option<Bytes>,
    /// The buffered messages from `start.seq` on, oldest first.
    pub messages: Vec<Arc<Message>>,
    /// The seq the channel's next message gets: the subscriber's cursor once it has
    /// `messages`.
    pub head: u64,
}

/// Something an engine reports to the reactor.
#[derive(Debug)]
pub enum EngineEvent {
    /// A message was appended to `channel`: deliver it to the local subscribers.
    Message {
        /// The channel's name.
        channel: Arc<str>,
        /// The message, encoded once.
        msg: Arc<Message>,
    },
    /// The live stream of `channel` skipped what `notice` names (it was trimmed from
    /// history, or the channel began a new life): every local subscriber past it is told.
    Gap {
        /// The channel's name.
        channel: Arc<str>,
        /// `lost` or `reset`.
        notice: Notice,
    },
    /// Channel `channel` was deleted (through another process, with a shared engine):
    /// its local subscribers are told `close`, as after a local `DELETE`.
    Deleted {
        /// The channel's name.
        channel: Arc<str>,
    },
    /// The answer to a call that said `Reply::Later(ticket)`.
    Answered {
        /// The call's ticket.
        ticket: Ticket,
        /// Its answer.
        answer: Answer,
    },
}

impl EngineEvent {
    /// The channel and message this event carries, if it is a message.
    pub fn into_message(self) -> Option<(Arc<str>, Arc<Message>)> {
        match self {
            EngineEvent::Message { channel, msg } => Some((channel, msg)),
            EngineEvent::Answered { .. }
            | EngineEvent::Gap { .. }
            | EngineEvent::Deleted { .. } => None,
        }
    }
}

/// Names a call whose answer comes later (after a network round trip), as an
/// `EngineEvent::Answered` with the same ticket. Unique per engine (the reactor asserts
/// it in debug builds). An engine emits the `Message` events a call caused before the
/// call's `Answered`, so subscribers get a message before its publisher gets its seq.
/// A call the reactor stopped waiting for (`--engine-timeout`) may still take effect:
/// its late answer is dropped, and the engine bounds its own pending calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ticket(pub u64);

/// An engine's answer to a call: now, or later under a ticket.
#[derive(Debug)]
pub enum Reply<T> {
    /// The answer.
    Now(T),
    /// The answer comes as `EngineEvent::Answered` with this ticket.
    Later(Ticket),
}

impl<T> Reply<T> {
    /// The answer, if it came now.
    pub fn now(self) -> Option<T> {
        match self {
            Reply::Now(t) => Some(t),
            Reply::Later(_) => None,
        }
    }
}

/// The answer to an admin call (publish, describe, list, delete) that came later.
#[derive(Debug)]
pub enum Answer {
    /// To `publish`.
    Published(Result<Vec<u64>, EngineError>),
    /// To `info`.
    Info(Result<Option<LogInfo>, EngineError>),
    /// To `list`.
    List(Result<Vec<LogInfo>, EngineError>),
    /// To `delete`.
    Deleted(Result<bool, EngineError>),
    /// To `read` (a subscriber's catch-up).
    Read(Option<Read>),
}

/// Why an engine refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineError {
    /// The publish would make more than `--max-channels` channels with messages.
    TooManyChannels,
    /// The engine cannot be reached (a networked engine's connection is down).
    Unavailable,
}

/// One channel as `GET /channels/NAME` and `GET /channels` describe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogInfo {
    /// The channel's name.
    pub name: Arc<str>,
    /// The first seq of this life of the channel.
    pub first_seq: u64,
    /// The oldest seq still buffered.
    pub oldest_seq: u64,
    /// The seq of the next message.
    pub next_seq: u64,
    /// Messages buffered.
    pub buffered: usize,
}

/// An engine's counts, for `/stats` and `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Channels with a log (published ones, and those local subscribers named).
    pub channels: u64,
    /// Channels that have had a message (what `--max-channels` caps).
    pub published_channels: u64,
    /// Messages published (per channel).
    pub published: u64,
    /// Messages evicted from a buffer (by size or ttl).
    pub evicted: u64,
}

/// Whether an engine can be reached, for `/stats` and `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EngineHealth {
    /// `memory` or `redis`.
    pub kind: &'static str,
    /// False while the engine cannot be reached (as `Engine::healthy`).
    pub up: bool,
    /// Times a lost connection was made again and answered (a networked engine).
    pub reconnects: u64,
    /// Round trip of the last PING on the current connection, in µs, once one answered.
    pub rtt_us: Option<u64>,
}

/// The channel log.
pub trait Engine {
    /// Local subscribers follow channel `name` from now on: its log exists (created with
    /// its first seq fixed, if new) until `unwatch`. Returns whether it has had a message.
    fn watch(&mut self, name: &str, now: Now) -> bool;

    /// No local subscriber follows `name` any more. A channel that never had a message
    /// goes; one that had starts its `--channel-ttl` clock.
    fn unwatch(&mut self, name: &str, now: Now);

    /// Appends each `(channel, payload)` of `items` to its channel (created if needed;
    /// a channel may come several times, its messages in order), or nothing if that
    /// would pass `--max-channels`. Returns the seqs, in the order of `items`. The
    /// messages come out of `drain_events`. One publish to several channels is one item
    /// per channel with the same payload; a batch publish is one item per line.
    fn publish(&mut self, items: &[(&str, &str)], now: Now)
        -> Reply<Result<Vec<u64>, EngineError>>;

    /// What `cursor` has due on `name` (`None` if the channel has no log). An engine that
    /// answers later delivers `Answer::Read`; meanwhile the hub keeps the live messages of
    /// that channel for the subscriber (see `hub::sync`).
    fn read(&mut self, name: &str, cursor: Option<u64>, now: Now) -> Reply<Option<Read>>;

    /// The seq the next message of `name` gets.
    fn head(&self, name: &str) -> Option<u64>;

    /// Drops channel `name`'s log; a new life of it starts past its seqs. False if it
    /// had none.
    fn delete(&mut self, name: &str) -> Reply<Result<bool, EngineError>>;

    /// Channel `name`, described.
    fn info(&mut self, name: &str, now: Now) -> Reply<Result<Option<LogInfo>, EngineError>>;

    /// At most `limit` channels that have had a message whose names start with
    /// `prefix`, in name order; costs what it returns.
    fn list(&mut self, prefix: &str, limit: usize) -> Reply<Result<Vec<LogInfo>, EngineError>>;

    /// The engine's counts.
    fn stats(&self) -> EngineStats;

    /// When `advance` next has work (reactor ms).
    fn next_deadline(&self) -> Option<u64>;

    /// Does what is due by `now` (channel expiry).
    fn advance(&mut self, now: Now);

    /// Moves what happened since the last call into `out`.
    fn drain_events(&mut self, out: &mut Vec<EngineEvent>);

    /// Registers the engine's sockets with the reactor's `Poll`, under tokens from
    /// `first` on (at most [`ENGINE_TOKENS`] of them). The memory engine has none.
    fn register(&mut self, _registry: &mio::Registry, _first: usize) -> std::io::Result<()> {
        Ok(())
    }

    /// The socket registered under token `first + index` is ready.
    fn ready(&mut self, _index: usize, _readable: bool, _writable: bool, _now: Now) {}

    /// Called once per loop turn after events are handled: write what was queued.
    fn flush(&mut self) {}

    /// False while the engine cannot be reached (`/healthz` answers 503 then).
    fn healthy(&self) -> bool {
        true
    }

    /// Kind, state, reconnects and round trip, for `/stats`. The default suits an
    /// engine with no connection of its own (the memory engine).
    fn health(&self) -> EngineHealth {
        EngineHealth {
            kind: "memory",
            up: self.healthy(),
            reconnects: 0,
            rtt_us: None,
        }
    }
}

/// How many reactor tokens an engine may use for its sockets.
pub const ENGINE_TOKENS: usize = 16;
