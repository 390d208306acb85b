//! `RedisEngine` (in progress): the channel log in a Redis shared by many gateway
//! processes. What works: `publish` (one `EVALSHA publish.lua` per channel, answered
//! later with the seqs Redis assigned, so every process shares one seq space per
//! channel); live messages (`watch` subscribes to the channel's pub/sub channel; each
//! `seq:payload` that arrives becomes one `EngineEvent::Message`, encoded once);
//! subscriber reads (`EVALSHA read.lua`, sent only once the channel's SUBSCRIBE took
//! effect, answered later and resolved with the cursor rule of `Log::start`), which the
//! stream and poll handlers merge with the live messages that raced it; reconnects
//! with backoff.
//!
//! Not yet (see docs/redis-engine.md): control subscribes on this engine (503), catching watched channels up after a reconnect, info/list/delete (503),
//! holding a publish's answer until its live message arrived, `NOSCRIPT` reload,
//! `head` (a session's "from now on" pin). This file is over 400 lines: split it
//! (connections/reconnect, publish, read) before it lands.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use sha1::{Digest, Sha1};

use super::resp::{CommandConn, Pass, PubSubConn, Reply};
use super::scripts;
use crate::clock::Now;
use crate::engine::{
    Answer, Engine, EngineError, EngineEvent, EngineStats, Limits, LogInfo, Message, Read,
    Reply as EngineReply, Ticket,
};

mod conns;
mod live;

/// A publish waiting for its channels' seqs.
struct Pending {
    ticket: Ticket,
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
    publish_sha: String,
    next_tag: u64,
    next_ticket: u64,
    /// Command tag → (publish call, index of its channel).
    tags: HashMap<u64, (u64, usize)>,
    /// Command tag → the read it answers.
    read_tags: HashMap<u64, (Ticket, Arc<str>, Option<u64>)>,
    /// Reads waiting for their channel's SUBSCRIBE to take effect (so nothing published
    /// between the history read and the subscription can be missed).
    unsent_reads: Vec<(Ticket, Arc<str>, Option<u64>)>,
    read_sha: String,
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
        let publish_sha = hex(&Sha1::digest(scripts::PUBLISH.as_bytes()));
        let read_sha = hex(&Sha1::digest(scripts::READ.as_bytes()));
        Ok(RedisEngine {
            read_tags: HashMap::new(),
            unsent_reads: Vec::new(),
            read_sha,
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
            publish_sha,
            next_tag: 1,
            next_ticket: 1,
            tags: HashMap::new(),
            calls: HashMap::new(),
            watched: HashMap::new(),
            events: Vec::new(),
            more: [false; 2],
            stats: EngineStats::default(),
        })
    }

    fn key(&self, name: &str, suffix: &str) -> String {
        format!("{}{{{name}}}:{suffix}", self.prefix)
    }

    fn replies(&mut self) {
        let mut out = Vec::new();
        self.cmd.take_replies(&mut out);
        for (tag, reply) in out {
            if let Some((ticket, name, cursor)) = self.read_tags.remove(&tag) {
                let read = reply.ok().and_then(|r| self.resolve(&name, cursor, r));
                if ticket == REPAIR {
                    self.repaired(&name, cursor.unwrap_or(0), read);
                    continue;
                }
                if let Some(r) = &read {
                    self.expect.entry(name.clone()).or_insert(r.head);
                }
                self.events.push(EngineEvent::Answered {
                    ticket,
                    answer: Answer::Read(read),
                });
                continue;
            }
            let Some((call, index)) = self.tags.remove(&tag) else {
                continue;
            };
            let Some(p) = self.calls.get_mut(&call) else {
                continue;
            };
            match reply {
                Ok(Reply::Bulk(Some(b))) => {
                    p.seqs[index] = std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok());
                    p.failed |= p.seqs[index].is_none();
                }
                _ => p.failed = true,
            }
            p.left -= 1;
            if p.left == 0 {
                let p = self.calls.remove(&call).expect("just seen");
                let answer = if p.failed {
                    Err(EngineError::Unavailable)
                } else {
                    self.stats.published += p.seqs.len() as u64;
                    Ok(p.seqs.into_iter().flatten().collect())
                };
                self.events.push(EngineEvent::Answered {
                    ticket: p.ticket,
                    answer: Answer::Published(answer),
                });
            }
        }
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
    }

    fn publish(
        &mut self,
        names: &[&str],
        payload: &str,
        now: Now,
    ) -> EngineReply<Result<Vec<u64>, EngineError>> {
        self.last_ms = now.ms;
        self.check_down(now.ms);
        if self.down.is_some() || self.cmd.dead().is_some() {
            return EngineReply::Now(Err(EngineError::Unavailable));
        }
        let call = self.next_ticket;
        self.next_ticket += 1;
        let buffer = self.limits.buffer.to_string();
        let ttl = (self.limits.channel_ttl_ms / 1000).to_string();
        let floor = format!("{}floor", self.prefix);
        for (i, name) in names.iter().enumerate() {
            let (m, h, l) = (
                self.key(name, "m"),
                self.key(name, "h"),
                self.key(name, "l"),
            );
            let tag = self.next_tag;
            self.next_tag += 1;
            let args: [&[u8]; 10] = [
                b"EVALSHA",
                self.publish_sha.as_bytes(),
                b"3",
                m.as_bytes(),
                h.as_bytes(),
                floor.as_bytes(),
                payload.as_bytes(),
                buffer.as_bytes(),
                ttl.as_bytes(),
                l.as_bytes(),
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
                seqs: vec![None; names.len()],
                left: names.len(),
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

    fn head(&self, _name: &str) -> Option<u64> {
        None
    }

    fn delete(&mut self, _name: &str) -> EngineReply<Result<bool, EngineError>> {
        EngineReply::Now(Err(EngineError::Unavailable))
    }

    fn info(
        &mut self,
        _name: &str,
        _now: Now,
    ) -> EngineReply<Result<Option<LogInfo>, EngineError>> {
        EngineReply::Now(Err(EngineError::Unavailable))
    }

    fn list(
        &mut self,
        _prefix: &str,
        _limit: usize,
    ) -> EngineReply<Result<Vec<LogInfo>, EngineError>> {
        EngineReply::Now(Err(EngineError::Unavailable))
    }

    fn stats(&self) -> EngineStats {
        self.stats
    }

    fn next_deadline(&self) -> Option<u64> {
        // A connection that stopped reading at its budget goes on next turn.
        let more = self.more.iter().any(|&m| m).then_some(0);
        [more, self.down.map(|(at, _)| at)]
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
    }

    fn flush(&mut self) {
        let _ = self.cmd.flush();
        let _ = self.sub.flush();
        self.check_down(self.last_ms);
    }

    fn healthy(&self) -> bool {
        // A reconnect only starts the connects: Redis is reachable once they completed.
        self.down.is_none() && self.cmd.connected() && self.sub.connected()
    }
}
