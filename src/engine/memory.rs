//! The in-memory engine: every channel's log in this process, found by name; the
//! channels that have had a message (counted under `--max-channels`, and kept in name
//! order so a listing costs what it returns); each channel's first seq; and channel
//! expiry on its own timer wheel.
//!
//! A channel's first seq is the wall-clock time of its creation in microseconds, and
//! never less than one past the last seq of any channel this engine has dropped, so a
//! channel created again (after a delete or expiry) never reuses a seq of its earlier
//! life. Across restarts
//! that holds while a channel's lifetime average stays under one message per
//! microsecond.
//!
//! A channel nobody published to lives only while local subscribers watch it. A
//! published one lives until it has been idle (no message, no watcher) for
//! `--channel-ttl`. Knows nothing of subscribers beyond `watch`/`unwatch`.

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::Duration;

use super::log::Log;
use super::{Engine, EngineError, EngineEvent, EngineStats, LogInfo, Read, Reply};
use crate::clock::Now;
use crate::config::Config;
use crate::handle::{GenSlab, Key};
use crate::timer::TimerWheel;

/// What bounds the logs.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Messages kept per channel (`--buffer`).
    pub buffer: usize,
    /// Age at which a message is dropped, ms; 0 = never (`--message-ttl`).
    pub message_ttl_ms: u64,
    /// Idle time after which a published channel goes, ms (`--channel-ttl`).
    pub channel_ttl_ms: u64,
    /// Most channels that have had a message (`--max-channels`).
    pub max_channels: u64,
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl Limits {
    /// The limits the flags give.
    pub fn of(config: &Config) -> Limits {
        Limits {
            buffer: config.buffer as usize,
            message_ttl_ms: ms(config.message_ttl),
            channel_ttl_ms: ms(config.channel_ttl),
            max_channels: config.max_channels,
        }
    }
}

struct Entry {
    log: Log,
    /// Local subscribers follow it.
    watched: bool,
    /// Last publish, or the moment its last watcher left (reactor ms).
    last_active_ms: u64,
}

/// Every channel's log, in memory.
pub struct MemoryEngine {
    limits: Limits,
    /// Every channel by name (SipHash: names come from anonymous clients).
    by_name: HashMap<Arc<str>, Key<Entry>>,
    logs: GenSlab<Entry>,
    /// The channels that have had a message, in name order.
    published: BTreeSet<Arc<str>>,
    /// One past the highest seq any channel could have issued so far.
    floor: u64,
    /// When to look at a published channel again for `--channel-ttl`.
    expiry: TimerWheel<Key<Entry>>,
    events: Vec<EngineEvent>,
    stats: EngineStats,
}

impl MemoryEngine {
    /// An empty engine.
    pub fn new(limits: Limits) -> MemoryEngine {
        MemoryEngine {
            limits,
            by_name: HashMap::new(),
            logs: GenSlab::default(),
            published: BTreeSet::new(),
            floor: 0,
            expiry: TimerWheel::new(0),
            events: Vec::new(),
            stats: EngineStats::default(),
        }
    }

    fn find(&self, name: &str) -> Option<Key<Entry>> {
        self.by_name.get(name).copied()
    }

    fn create(&mut self, name: &str, now: Now) -> Key<Entry> {
        debug_assert!(self.find(name).is_none(), "channel {name} exists");
        let first = now.unix_us.max(self.floor).max(1);
        let name: Arc<str> = name.into();
        let key = self.logs.insert(Entry {
            log: Log::new(name.clone(), first),
            watched: false,
            last_active_ms: now.ms,
        });
        self.by_name.insert(name, key);
        key
    }

    fn remove(&mut self, key: Key<Entry>) {
        if let Some(e) = self.logs.remove(key) {
            self.by_name.remove(e.log.name());
            self.published.remove(e.log.name());
            self.floor = self.floor.max(e.log.next_seq() + 1);
        }
    }

    /// The log of `name` with its expired messages dropped.
    fn fresh(&mut self, name: &str, now: Now) -> Option<&mut Log> {
        let key = self.find(name)?;
        let e = self.logs.get_mut(key)?;
        self.stats.evicted += e.log.expire_messages(now.ms, self.limits.message_ttl_ms) as u64;
        Some(&mut e.log)
    }

    /// Appends `payload` to every channel of `names`, or to none past `--max-channels`.
    pub fn publish(
        &mut self,
        names: &[&str],
        payload: &str,
        now: Now,
    ) -> Result<Vec<u64>, EngineError> {
        let items: Vec<(&str, &str)> = names.iter().map(|&n| (n, payload)).collect();
        self.publish_items(&items, now)
    }

    /// Appends each `(channel, payload)` to its channel, or nothing past
    /// `--max-channels` ([`Engine::publish`], answered at once).
    pub fn publish_items(
        &mut self,
        items: &[(&str, &str)],
        now: Now,
    ) -> Result<Vec<u64>, EngineError> {
        let mut fresh: Vec<&str> = items
            .iter()
            .map(|&(n, _)| n)
            .filter(|n| {
                self.find(n)
                    .and_then(|k| self.logs.get(k))
                    .is_none_or(|e| !e.log.is_published())
            })
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        if self.published.len() as u64 + fresh.len() as u64 > self.limits.max_channels {
            return Err(EngineError::TooManyChannels);
        }
        let mut seqs = Vec::with_capacity(items.len());
        for &(name, payload) in items {
            let key = match self.find(name) {
                Some(k) => k,
                None => self.create(name, now),
            };
            let Some(e) = self.logs.get_mut(key) else {
                continue;
            };
            let expired = e.log.expire_messages(now.ms, self.limits.message_ttl_ms);
            let first = !e.log.is_published();
            let (msg, evicted) = e.log.publish(payload, now.ms, self.limits.buffer);
            e.last_active_ms = now.ms;
            self.stats.published += 1;
            self.stats.evicted += (expired + evicted) as u64;
            if first {
                self.published.insert(e.log.shared_name());
                // Published channels live until idle for --channel-ttl.
                let at = now.ms.saturating_add(self.limits.channel_ttl_ms);
                self.expiry.insert(at, key);
            }
            seqs.push(msg.seq);
            self.events.push(EngineEvent::Message {
                channel: e.log.shared_name(),
                msg,
            });
        }
        Ok(seqs)
    }

    /// Published channels by prefix, in name order, at most `limit` ([`Engine::list`]).
    pub fn list(&self, prefix: &str, limit: usize) -> Vec<LogInfo> {
        self.published
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|name| name.starts_with(prefix))
            .filter_map(|name| self.logs.get(*self.by_name.get(name)?))
            .take(limit)
            .map(|e| Self::describe(&e.log))
            .collect()
    }

    /// What `cursor` has due on `name` ([`Engine::read`], answered at once).
    pub fn read(&mut self, name: &str, cursor: Option<u64>, now: Now) -> Option<Read> {
        let log = self.fresh(name, now)?;
        let start = log.start(cursor);
        Some(Read {
            start,
            notice: start.notice.map(|n| n.event(log.name())),
            messages: log.messages_from(start.seq).cloned().collect(),
            head: log.next_seq(),
        })
    }

    /// Drops channel `name` ([`Engine::delete`]); false if it had no log.
    pub fn delete(&mut self, name: &str) -> bool {
        match self.find(name) {
            Some(k) => {
                self.remove(k);
                true
            }
            None => false,
        }
    }

    /// Channel `name`, described ([`Engine::info`]).
    pub fn info(&mut self, name: &str, now: Now) -> Option<LogInfo> {
        self.fresh(name, now).map(|log| Self::describe(log))
    }

    fn describe(log: &Log) -> LogInfo {
        LogInfo {
            name: log.shared_name(),
            first_seq: log.first_seq(),
            oldest_seq: log.oldest_seq(),
            next_seq: log.next_seq(),
            buffered: log.buffered(),
        }
    }
}

impl Engine for MemoryEngine {
    fn watch(&mut self, name: &str, now: Now) -> bool {
        let key = match self.find(name) {
            Some(k) => k,
            None => self.create(name, now),
        };
        let Some(e) = self.logs.get_mut(key) else {
            return false;
        };
        debug_assert!(!e.watched, "channel {name} watched twice");
        e.watched = true;
        e.log.is_published()
    }

    fn unwatch(&mut self, name: &str, now: Now) {
        let Some(key) = self.find(name) else {
            return;
        };
        let Some(e) = self.logs.get_mut(key) else {
            return;
        };
        e.watched = false;
        e.last_active_ms = now.ms;
        if !e.log.is_published() {
            self.remove(key);
        }
    }

    fn publish(
        &mut self,
        items: &[(&str, &str)],
        now: Now,
    ) -> Reply<Result<Vec<u64>, EngineError>> {
        Reply::Now(MemoryEngine::publish_items(self, items, now))
    }

    fn read(&mut self, name: &str, cursor: Option<u64>, now: Now) -> Reply<Option<Read>> {
        Reply::Now(MemoryEngine::read(self, name, cursor, now))
    }

    fn head(&self, name: &str) -> Option<u64> {
        let e = self.logs.get(self.find(name)?)?;
        Some(e.log.next_seq())
    }

    fn delete(&mut self, name: &str) -> Reply<Result<bool, EngineError>> {
        Reply::Now(Ok(MemoryEngine::delete(self, name)))
    }

    fn info(&mut self, name: &str, now: Now) -> Reply<Result<Option<LogInfo>, EngineError>> {
        Reply::Now(Ok(MemoryEngine::info(self, name, now)))
    }

    fn list(&mut self, prefix: &str, limit: usize) -> Reply<Result<Vec<LogInfo>, EngineError>> {
        Reply::Now(Ok(MemoryEngine::list(self, prefix, limit)))
    }

    fn stats(&self) -> EngineStats {
        EngineStats {
            channels: self.logs.len() as u64,
            published_channels: self.published.len() as u64,
            ..self.stats
        }
    }

    fn next_deadline(&self) -> Option<u64> {
        self.expiry.next_expiration()
    }

    fn advance(&mut self, now: Now) {
        let mut due = Vec::new();
        self.expiry.advance(now.ms, &mut due);
        let ttl = self.limits.channel_ttl_ms;
        for key in due {
            let Some(e) = self.logs.get(key) else {
                continue;
            };
            let next = if e.watched {
                now.ms.saturating_add(ttl)
            } else if now.ms >= e.last_active_ms.saturating_add(ttl) {
                log::debug!("channel {} expired", e.log.name());
                self.remove(key);
                continue;
            } else {
                e.last_active_ms.saturating_add(ttl)
            };
            self.expiry.insert(next, key);
        }
    }

    fn drain_events(&mut self, out: &mut Vec<EngineEvent>) {
        out.append(&mut self.events);
    }
}

#[cfg(test)]
mod tests;
