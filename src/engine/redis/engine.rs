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

use super::resp::{CommandConn, Pass, PubSubConn, Reply, DEFAULT_MAX_REPLY};
use super::scripts;
use crate::clock::Now;
use crate::engine::{
    Answer, Engine, EngineError, EngineEvent, EngineStats, Limits, LogInfo, Message, Notice, Read,
    Reply as EngineReply, Start, Ticket,
};
use crate::event;

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

    /// A command connection (the script loaded first, so the `EVALSHA`s behind it find
    /// it) and a pub/sub connection.
    fn open(addr: SocketAddr, db: u32) -> io::Result<(CommandConn, PubSubConn)> {
        let mut cmd = CommandConn::connect(addr, DEFAULT_MAX_REPLY)?;
        let sub = PubSubConn::connect(addr, DEFAULT_MAX_REPLY)?;
        if db != 0 {
            cmd.send(0, &[b"SELECT", db.to_string().as_bytes()])
                .map_err(|e| io::Error::other(format!("redis: {e:?}")))?;
        }
        for script in [scripts::PUBLISH, scripts::READ] {
            cmd.send(0, &[b"SCRIPT", b"LOAD", script.as_bytes()])
                .map_err(|e| io::Error::other(format!("redis: {e:?}")))?;
        }
        Ok((cmd, sub))
    }

    /// A connection died: publishes answer 503 until a reconnect, tried after a backoff
    /// that doubles up to `BACKOFF_MAX_MS`.
    fn check_down(&mut self, now_ms: u64) {
        let dead = self.cmd.dead().or(self.sub.dead());
        if let (Some(e), None) = (dead, self.down) {
            log::warn!("redis at {} unreachable ({e:?}); retrying", self.addr);
            self.down = Some((now_ms + BACKOFF_MIN_MS, BACKOFF_MIN_MS));
        }
    }

    /// Connects again, registers the new sockets, subscribes to every watched channel
    /// again. (Catching the watched channels up from their subscribers' cursors is not
    /// done yet: see docs/redis-engine.md.)
    fn reconnect(&mut self, now_ms: u64) {
        let Some((at, wait)) = self.down else {
            return;
        };
        if now_ms < at {
            return;
        }
        let retry = |e: &dyn std::fmt::Debug, this: &mut Self| {
            log::debug!("redis reconnect failed: {e:?}");
            let wait = (wait * 2).min(BACKOFF_MAX_MS);
            this.down = Some((now_ms + wait, wait));
        };
        let (mut cmd, mut sub) = match Self::open(self.addr, self.db) {
            Ok(c) => c,
            Err(e) => return retry(&e, self),
        };
        if let Some((registry, first)) = &self.registry {
            let _ = self.cmd.deregister(registry);
            let _ = self.sub.deregister(registry);
            let r = cmd
                .register(registry, mio::Token(*first))
                .and_then(|_| sub.register(registry, mio::Token(first + 1)));
            if let Err(e) = r {
                return retry(&e, self);
            }
        }
        for live in self.watched.keys() {
            let _ = sub.subscribe(live);
        }
        self.cmd = cmd;
        self.sub = sub;
        self.down = None;
        self.reconnects += 1;
        // What was published while the connection was down is read back from history.
        let behind: Vec<(Arc<str>, u64)> =
            self.expect.iter().map(|(n, &e)| (n.clone(), e)).collect();
        for (name, from) in behind {
            if !self.repairing.contains_key(&name) {
                self.repair(name, from, Vec::new());
            }
        }
        log::info!("redis at {} reconnected", self.addr);
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

    /// Sends the reads whose channel's subscription has taken effect.
    fn send_reads(&mut self) {
        let ttl = (self.limits.channel_ttl_ms / 1000).to_string();
        let floor = format!("{}floor", self.prefix);
        let reads = std::mem::take(&mut self.unsent_reads);
        for (ticket, name, cursor) in reads {
            let live = self.key(&name, "l");
            if !self.sub.subscribed(live.as_bytes()) {
                self.unsent_reads.push((ticket, name, cursor));
                continue;
            }
            let (m, h) = (self.key(&name, "m"), self.key(&name, "h"));
            // From now on: only the meta is needed, so read from a seq past any entry.
            let from = cursor.unwrap_or(u64::MAX / 2).to_string();
            let tag = self.next_tag;
            self.next_tag += 1;
            let args: [&[u8]; 9] = [
                b"EVALSHA",
                self.read_sha.as_bytes(),
                b"3",
                m.as_bytes(),
                h.as_bytes(),
                floor.as_bytes(),
                from.as_bytes(),
                b"1",
                ttl.as_bytes(),
            ];
            if self.cmd.send(tag, &args).is_err() {
                self.events.push(EngineEvent::Answered {
                    ticket,
                    answer: Answer::Read(None),
                });
                continue;
            }
            self.read_tags.insert(tag, (ticket, name, cursor));
        }
    }

    /// Turns `read.lua`'s answer into what the cursor has due (the rule of `Log::start`).
    fn resolve(&self, name: &str, cursor: Option<u64>, reply: Reply) -> Option<Read> {
        let Reply::Array(Some(parts)) = reply else {
            return None;
        };
        let num = |r: &Reply| -> Option<u64> {
            match r {
                Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
                Reply::Integer(i) => u64::try_from(*i).ok(),
                _ => None,
            }
        };
        let (first, next, now_ms) = (
            num(parts.first()?)?,
            num(parts.get(1)?)?,
            num(parts.get(2)?)?,
        );
        let ttl = self.limits.message_ttl_ms;
        let mut entries = Vec::new();
        if let Some(Reply::Array(Some(list))) = parts.get(3) {
            for e in list {
                let Reply::Array(Some(e)) = e else { continue };
                let (Some(Reply::Bulk(Some(id))), Some(Reply::Array(Some(fields)))) =
                    (e.first(), e.get(1))
                else {
                    continue;
                };
                let Some(seq) = std::str::from_utf8(id)
                    .ok()
                    .and_then(|i| i.strip_suffix("-0"))
                    .and_then(|i| i.parse::<u64>().ok())
                else {
                    continue;
                };
                let (Some(Reply::Bulk(Some(d))), Some(t)) =
                    (fields.get(1), fields.get(3).and_then(num))
                else {
                    continue;
                };
                if ttl != 0 && now_ms.saturating_sub(t) >= ttl {
                    continue;
                }
                let Ok(text) = std::str::from_utf8(d) else {
                    continue;
                };
                entries.push(Arc::new(Message::new(
                    seq,
                    self.last_ms,
                    event::data(name, seq, text),
                )));
            }
        }
        let oldest = entries.first().map_or(next, |m| m.seq);
        let start = match cursor {
            None => Start {
                notice: None,
                seq: next,
            },
            Some(0) => Start {
                notice: None,
                seq: oldest,
            },
            Some(s) if s < first || s > next => {
                let seq = if s > next { next } else { oldest };
                Start {
                    notice: Some(Notice::Reset { seq }),
                    seq,
                }
            }
            Some(s) if s < oldest => Start {
                notice: Some(Notice::Lost {
                    from: s,
                    to: oldest - 1,
                }),
                seq: oldest,
            },
            Some(s) => Start {
                notice: None,
                seq: s,
            },
        };
        let messages: Vec<Arc<Message>> =
            entries.into_iter().filter(|m| m.seq >= start.seq).collect();
        Some(Read {
            start,
            notice: start.notice.map(|n| n.event(name)),
            messages,
            head: next,
        })
    }

    fn messages(&mut self, now_ms: u64) {
        let mut confirmed = Vec::new();
        self.sub.take_confirmed(&mut confirmed);
        if !confirmed.is_empty() && !self.unsent_reads.is_empty() {
            self.send_reads();
        }
        let mut out = Vec::new();
        self.sub.take_messages(&mut out);
        for (live, payload) in out {
            let Some(name) = self.watched.get(&live) else {
                continue;
            };
            let Some(colon) = payload.iter().position(|&b| b == b':') else {
                continue;
            };
            let seq = std::str::from_utf8(&payload[..colon])
                .ok()
                .and_then(|s| s.parse().ok());
            let text = std::str::from_utf8(&payload[colon + 1..]).ok();
            let (Some(seq), Some(text)) = (seq, text) else {
                continue;
            };
            let msg = Arc::new(Message::new(seq, now_ms, event::data(name, seq, text)));
            let name = name.clone();
            self.live(name, msg);
        }
    }

    /// One live message, in order: a duplicate is dropped, a gap before it starts a
    /// repair read (the message is held until it returns).
    fn live(&mut self, name: Arc<str>, msg: Arc<Message>) {
        if let Some(held) = self.repairing.get_mut(&name) {
            held.push(msg);
            return;
        }
        match self.expect.get(&name).copied() {
            Some(e) if msg.seq < e => {}
            Some(e) if msg.seq > e => self.repair(name, e, vec![msg]),
            _ => {
                self.expect.insert(name.clone(), msg.seq + 1);
                self.events
                    .push(EngineEvent::Message { channel: name, msg });
            }
        }
    }

    /// Reads channel `name` from `from` on, holding its live messages meanwhile.
    fn repair(&mut self, name: Arc<str>, from: u64, held: Vec<Arc<Message>>) {
        log::debug!("channel {name}: live stream skipped to seq {from}; reading its history");
        self.repairing.insert(name.clone(), held);
        self.unsent_reads.push((REPAIR, name, Some(from)));
        self.send_reads();
    }

    /// A repair read returned: what was missed (or `lost`/`reset` for what is gone),
    /// then the held live messages, each seq once.
    fn repaired(&mut self, name: &Arc<str>, from: u64, read: Option<Read>) {
        let held = self.repairing.remove(name).unwrap_or_default();
        let mut next = from;
        if let Some(read) = read {
            if let Some(notice) = read.start.notice {
                self.events.push(EngineEvent::Gap {
                    channel: name.clone(),
                    notice,
                });
            }
            next = read.start.seq;
            for msg in read.messages {
                next = msg.seq + 1;
                self.events.push(EngineEvent::Message {
                    channel: name.clone(),
                    msg,
                });
            }
            next = next.max(read.head);
        }
        let mut held = held;
        held.sort_by_key(|m| m.seq);
        for msg in held {
            if msg.seq < next {
                continue;
            }
            if msg.seq > next {
                self.events.push(EngineEvent::Gap {
                    channel: name.clone(),
                    notice: Notice::Lost {
                        from: next,
                        to: msg.seq - 1,
                    },
                });
            }
            next = msg.seq + 1;
            self.events.push(EngineEvent::Message {
                channel: name.clone(),
                msg,
            });
        }
        self.expect.insert(name.clone(), next);
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
        self.down.is_none() && self.cmd.dead().is_none() && self.sub.dead().is_none()
    }
}
