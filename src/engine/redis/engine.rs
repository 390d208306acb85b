//! `RedisEngine`: the channel log in a Redis shared by many gateway
//! processes. What works: `publish` (one `EVALSHA publish.lua` per channel, answered
//! later with the seqs Redis assigned, so every process shares one seq space per
//! channel); live messages (`watch` subscribes to the channel's pub/sub channel; each
//! `seq:payload` that arrives becomes one `EngineEvent::Message`, encoded once);
//! subscriber reads (`EVALSHA read.lua`, sent only once the channel's SUBSCRIBE took
//! effect, answered later and resolved with the cursor rule of `Log::start`), which the
//! stream and poll handlers merge with the live messages that raced it; reconnects
//! with backoff.
//!
//! Admin calls (`info.lua`, `list.lua`, `delete.lua`) are in `admin.rs`; a publish's
//! answer is held until its local live message came out (`hold.rs`); `NOSCRIPT` loads
//! the scripts again.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sha1::{Digest, Sha1};

use super::resp::{CommandConn, Pass, PubSubConn};
use super::scripts;
use crate::clock::Now;
use crate::engine::{
    Answer, Engine, EngineError, EngineEvent, EngineHealth, EngineStats, Limits, LogInfo, Message,
    Read, Reply as EngineReply, Ticket,
};

mod admin;
mod conns;
mod health;
mod hold;
mod live;
mod replies;
mod shared;

use admin::AdminCall;

/// Indexes of the scripts' SHA1s in `RedisEngine::shas` (the order of `scripts::ALL`).
#[allow(non_snake_case)]
mod SHAS {
    pub const PUBLISH: usize = 0;
    pub const READ: usize = 1;
    pub const DELETE: usize = 2;
    pub const INFO: usize = 3;
    pub const LIST: usize = 4;
}

/// A publish waiting for its channels' seqs.
struct Pending {
    ticket: Ticket,
    names: Vec<Arc<str>>,
    seqs: Vec<Option<u64>>,
    left: usize,
    failed: bool,
}

/// The ticket of the engine's own repair reads (callers' tickets start at 1).
const REPAIR: Ticket = Ticket(0);

/// Reconnect backoff: first wait, and the most it grows to.
const BACKOFF_MIN_MS: u64 = 100;
const BACKOFF_MAX_MS: u64 = 5_000;

/// The channel log in Redis.
pub struct RedisEngine {
    addr: SocketAddr,
    db: u32,
    /// The reactor's registry and the engine's first token, once registered (kept to
    /// register the sockets of a new connection after a reconnect).
    registry: Option<(mio::Registry, usize)>,
    /// Since a connection died: when to try again, and the wait after that.
    down: Option<(u64, u64)>,
    reconnects: u64,
    /// The reactor's clock at the last call that had it.
    last_ms: u64,
    prefix: String,
    limits: Limits,
    cmd: CommandConn,
    sub: PubSubConn,
    /// SHA1 of each script (`scripts::ALL`), for `EVALSHA`.
    shas: [String; 5],
    /// When the scripts were last loaded again after `NOSCRIPT` (once per second at most:
    /// a pipeline of calls meets it many times).
    scripts_loaded_ms: u64,
    /// One `Arc<Message>` per channel and seq, whatever read or live message brought it.
    shared: shared::Shared,
    /// The reconnect backoff's current wait (ms).
    backoff_ms: u64,
    /// Publish answers held until this process has seen their live messages.
    held: Vec<hold::Held>,
    /// Command tag → the admin call it answers.
    admin_tags: HashMap<u64, (Ticket, AdminCall)>,
    next_tag: u64,
    next_ticket: u64,
    /// Command tag → (publish call, index of its channel).
    tags: HashMap<u64, (u64, usize)>,
    /// Command tag → the read it answers.
    read_tags: HashMap<u64, (Ticket, Arc<str>, Option<u64>)>,
    /// Reads waiting for their channel's SUBSCRIBE to take effect (so nothing published
    /// between the history read and the subscription can be missed).
    unsent_reads: Vec<(Ticket, Arc<str>, Option<u64>)>,
    /// Per watched channel: the seq its next live message should have.
    expect: HashMap<Arc<str>, u64>,
    /// Channels whose live stream skipped seqs (or whose connection was lost): a repair
    /// read is in flight, and live messages are held until it returns.
    repairing: HashMap<Arc<str>, Vec<Arc<Message>>>,
    calls: HashMap<u64, Pending>,
    /// Live pub/sub channel → channel name, for the watched channels.
    watched: HashMap<Bytes, Arc<str>>,
    events: Vec<EngineEvent>,
    more: [bool; 2],
    stats: EngineStats,
    /// PINGs on the pub/sub connection, their round trip, reconnections that worked.
    health: health::Health,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl RedisEngine {
    /// Connects (non-blocking) to Redis at `addr`; keys go under `prefix`. The script is
    /// loaded first on the command connection, so the `EVALSHA`s behind it find it.
    pub fn connect(addr: SocketAddr, prefix: &str, limits: Limits) -> io::Result<RedisEngine> {
        Self::connect_db(addr, 0, prefix, limits)
    }

    /// `connect`, to database `db`.
    pub fn connect_db(
        addr: SocketAddr,
        db: u32,
        prefix: &str,
        limits: Limits,
    ) -> io::Result<RedisEngine> {
        let (cmd, sub) = Self::open(addr, db)?;
        let shas = scripts::ALL.map(|s| hex(&Sha1::digest(s.as_bytes())));
        Ok(RedisEngine {
            read_tags: HashMap::new(),
            unsent_reads: Vec::new(),
            expect: HashMap::new(),
            repairing: HashMap::new(),
            addr,
            db,
            registry: None,
            down: None,
            reconnects: 0,
            last_ms: 0,
            prefix: prefix.to_string(),
            limits,
            cmd,
            sub,
            shas,
            admin_tags: HashMap::new(),
            held: Vec::new(),
            backoff_ms: BACKOFF_MIN_MS,
            shared: shared::Shared::default(),
            scripts_loaded_ms: 0,
            next_tag: 1,
            next_ticket: 1,
            tags: HashMap::new(),
            calls: HashMap::new(),
            watched: HashMap::new(),
            events: Vec::new(),
            more: [false; 2],
            stats: EngineStats::default(),
            health: health::Health::default(),
        })
    }

    fn key(&self, name: &str, suffix: &str) -> String {
        format!("{}{{{name}}}:{suffix}", self.prefix)
    }
}

impl Engine for RedisEngine {
    fn watch(&mut self, name: &str, _now: Now) -> bool {
        let live = Bytes::from(self.key(name, "l"));
        let _ = self.sub.subscribe(&live);
        self.watched.insert(live, name.into());
        false
    }

    fn unwatch(&mut self, name: &str, _now: Now) {
        let live = Bytes::from(self.key(name, "l"));
        let _ = self.sub.unsubscribe(&live);
        self.watched.remove(&live);
        self.expect.remove(name);
        self.repairing.remove(name);
        self.shared.forget(name);
        // Reads still waiting for the SUBSCRIBE are not sent; their callers are told.
        let mut i = 0;
        while i < self.unsent_reads.len() {
            if *self.unsent_reads[i].1 != *name {
                i += 1;
                continue;
            }
            let (ticket, _, _) = self.unsent_reads.swap_remove(i);
            if ticket != REPAIR {
                self.events.push(EngineEvent::Answered {
                    ticket,
                    answer: Answer::Read(None),
                });
            }
        }
        self.release_held();
    }

    fn publish(
        &mut self,
        items: &[(&str, &str)],
        now: Now,
    ) -> EngineReply<Result<Vec<u64>, EngineError>> {
        self.last_ms = now.ms;
        self.check_down(now.ms);
        if self.down.is_some() || self.cmd.dead().is_some() || !self.answered() {
            return EngineReply::Now(Err(EngineError::Unavailable));
        }
        let call = self.next_ticket;
        self.next_ticket += 1;
        let buffer = self.limits.buffer.to_string();
        let ttl = (self.limits.channel_ttl_ms / 1000).to_string();
        let floor = format!("{}floor", self.prefix);
        let index = self.index_key();
        let clock = format!("{index}:t");
        for (i, &(name, payload)) in items.iter().enumerate() {
            let (m, h, l) = (
                self.key(name, "m"),
                self.key(name, "h"),
                self.key(name, "l"),
            );
            let tag = self.next_tag;
            self.next_tag += 1;
            let args: [&[u8]; 14] = [
                b"EVALSHA",
                self.shas[SHAS::PUBLISH].as_bytes(),
                b"5",
                m.as_bytes(),
                h.as_bytes(),
                floor.as_bytes(),
                index.as_bytes(),
                clock.as_bytes(),
                payload.as_bytes(),
                buffer.as_bytes(),
                ttl.as_bytes(),
                l.as_bytes(),
                name.as_bytes(),
                self.prefix.as_bytes(),
            ];
            if self.cmd.send(tag, &args).is_err() {
                return EngineReply::Now(Err(EngineError::Unavailable));
            }
            self.tags.insert(tag, (call, i));
        }
        let ticket = Ticket(call);
        self.calls.insert(
            call,
            Pending {
                ticket,
                names: items.iter().map(|&(n, _)| n.into()).collect(),
                seqs: vec![None; items.len()],
                left: items.len(),
                failed: false,
            },
        );
        EngineReply::Later(ticket)
    }

    fn read(&mut self, name: &str, cursor: Option<u64>, now: Now) -> EngineReply<Option<Read>> {
        self.last_ms = now.ms;
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.unsent_reads.push((ticket, name.into(), cursor));
        self.send_reads();
        EngineReply::Later(ticket)
    }

    /// The seq the channel's next live message should have, once this process has read
    /// the channel (a watched channel in step with its live stream); `None` otherwise.
    fn head(&self, name: &str) -> Option<u64> {
        if self.repairing.contains_key(name) {
            return None;
        }
        self.expect.get(name).copied()
    }

    fn delete(&mut self, name: &str) -> EngineReply<Result<bool, EngineError>> {
        self.send_delete(name)
    }

    fn info(&mut self, name: &str, now: Now) -> EngineReply<Result<Option<LogInfo>, EngineError>> {
        self.last_ms = now.ms;
        self.send_info(name)
    }

    fn list(
        &mut self,
        prefix: &str,
        limit: usize,
    ) -> EngineReply<Result<Vec<LogInfo>, EngineError>> {
        self.send_list(prefix, limit)
    }

    /// `channels` counts the channels this process follows; `published_channels` and
    /// `evicted` live in Redis and are not counted here (`GET /channels` lists them).
    fn stats(&self) -> EngineStats {
        EngineStats {
            channels: self.watched.len() as u64,
            ..self.stats
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        // A connection that stopped reading at its budget goes on next turn.
        let more = self.more.iter().any(|&m| m).then_some(0);
        [
            more,
            self.down.map(|(at, _)| at),
            self.held_deadline(),
            self.ping_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn advance(&mut self, now: Now) {
        self.last_ms = now.ms;
        for i in 0..2 {
            if self.more[i] {
                self.ready(i, true, false, now);
            }
        }
        self.reconnect(now.ms);
        self.ping_tick(now);
        self.release_held();
    }

    fn drain_events(&mut self, out: &mut Vec<EngineEvent>) {
        out.append(&mut self.events);
    }

    fn register(&mut self, registry: &mio::Registry, first: usize) -> io::Result<()> {
        self.cmd.register(registry, mio::Token(first))?;
        self.sub.register(registry, mio::Token(first + 1))?;
        self.registry = Some((registry.try_clone()?, first));
        Ok(())
    }

    fn ready(&mut self, index: usize, readable: bool, writable: bool, now: Now) {
        self.last_ms = now.ms;
        let pass = match index {
            0 => self.cmd.on_ready(writable, readable),
            1 => self.sub.on_ready(writable, readable),
            _ => return,
        };
        self.more[index.min(1)] = matches!(pass, Ok(Pass::More));
        if let Err(e) = pass {
            log::warn!("redis connection {index} lost: {e:?}");
        }
        match index {
            0 => self.replies(),
            _ => self.messages(now.ms),
        }
        self.check_down(now.ms);
        self.release_held();
    }

    fn flush(&mut self) {
        let _ = self.cmd.flush();
        let _ = self.sub.flush();
        self.check_down(self.last_ms);
    }

    fn healthy(&self) -> bool {
        // A reconnect only starts the connects: Redis is reachable once they completed
        // and the new pub/sub connection answered a PING.
        self.down.is_none() && self.cmd.connected() && self.sub.connected() && self.answered()
    }

    fn health(&self) -> EngineHealth {
        self.health_report(self.healthy())
    }
}
