//! The Redis engine's reads and live stream: history reads through `read.lua` (sent
//! once the channel's SUBSCRIBE took effect, resolved with the cursor rule of
//! `Log::start`), live messages kept in seq order per channel, and the repair read that
//! fills a gap (after a reconnect, or a skipped seq) or names what is gone.

use std::sync::Arc;

use super::admin::num;
use super::{RedisEngine, REPAIR};
use crate::engine::redis::resp::Reply;
use crate::engine::{Answer, EngineEvent, Message, Notice, Read, Start};
use crate::event;

/// How long the meta a subscriber's read created lives without a message (seconds).
const UNPUBLISHED_TTL_S: u64 = 60;

impl RedisEngine {
    /// Sends the reads whose channel's subscription has taken effect.
    pub(super) fn send_reads(&mut self) {
        if self.down.is_some() || self.cmd.dead().is_some() {
            return;
        }
        // The meta a read creates for a channel nobody published to lives a minute (or
        // --channel-ttl if shorter) after the last read: names that anonymous subscribers
        // made up do not stay in Redis for long. A channel whose meta went before its
        // first message starts a new life; its subscribers get `reset`, then the message.
        let ttl_s = match self.limits.channel_ttl_ms / 1000 {
            0 => UNPUBLISHED_TTL_S,
            t => t.min(UNPUBLISHED_TTL_S),
        };
        let ttl = ttl_s.to_string();
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
                self.shas[super::SHAS::READ].as_bytes(),
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
    pub(super) fn resolve(
        &mut self,
        name: &str,
        cursor: Option<u64>,
        reply: Reply,
    ) -> Option<Read> {
        let Reply::Array(Some(parts)) = reply else {
            return None;
        };
        let (first, next, now_ms) = (
            num(parts.first()?)?,
            num(parts.get(1)?)?,
            num(parts.get(2)?)?,
        );
        let ttl = self.limits.message_ttl_ms;
        // Once per read, not per entry: the channel's shared name and how many of its
        // messages the engine keeps.
        let channel = self.shared_name(name);
        let keep = self.keep_for(&channel);
        let at = self.last_ms;
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
                entries.push(self.shared.get_or_make(&channel, seq, keep, || {
                    Message::new(seq, at, event::data(name, seq, text))
                }));
            }
        }
        let oldest = entries.first().map_or(next, |m| m.seq);
        let start = Start::of(cursor, first, oldest, next);
        let messages: Vec<Arc<Message>> =
            entries.into_iter().filter(|m| m.seq >= start.seq).collect();
        Some(Read {
            start,
            notice: start.notice.map(|n| n.event(name)),
            messages,
            head: next,
        })
    }

    pub(super) fn messages(&mut self, now_ms: u64) {
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
            if let Some(n) = payload.strip_prefix(b"-deleted:") {
                // DELETE /channels/NAME on some process: every process closes its
                // subscribers of the life that ended at seq n (not one that follows the
                // next life already: the marker came late).
                let n: u64 = std::str::from_utf8(n)
                    .ok()
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let name = name.clone();
                if self.expect.get(&name).is_some_and(|&e| e > n) {
                    continue;
                }
                self.expect.remove(&name);
                self.repairing.remove(&name);
                self.shared.forget(&name);
                self.events.push(EngineEvent::Deleted { channel: name });
                continue;
            }
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
            let name = name.clone();
            // It came on a watched channel's live stream: its newest messages are kept.
            let keep = self.limits.buffer;
            let msg = self.shared.get_or_make(&name, seq, keep, || {
                Message::new(seq, now_ms, event::data(&name, seq, text))
            });
            self.live(name, msg);
        }
    }

    /// One live message, in order: a duplicate is dropped, a gap before it starts a
    /// repair read (the message is held until it returns).
    pub(super) fn live(&mut self, name: Arc<str>, msg: Arc<Message>) {
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
    pub(super) fn repair(&mut self, name: Arc<str>, from: u64, held: Vec<Arc<Message>>) {
        log::debug!("channel {name}: live stream skipped to seq {from}; reading its history");
        self.repairing.insert(name.clone(), held);
        self.unsent_reads.push((REPAIR, name, Some(from)));
        self.send_reads();
    }

    /// A repair read returned: what was missed (or `lost`/`reset` for what is gone),
    /// then the held live messages, each seq once. A held message past what the read
    /// covered (the read ran before it was published, and the live stream lost what came
    /// between: a reconnect while the read was in flight) starts another read from there,
    /// still holding the rest: only history says what is gone. That read runs after every
    /// held message was published, so it covers them (or names them `lost`), and no
    /// further read follows.
    pub(super) fn repaired(&mut self, name: &Arc<str>, from: u64, read: Option<Read>) {
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
        let mut held = held.into_iter();
        while let Some(msg) = held.next() {
            if msg.seq < next {
                continue;
            }
            if msg.seq > next {
                if self.is_watched(name) {
                    let rest = std::iter::once(msg).chain(held).collect();
                    return self.repair(name.clone(), next, rest);
                }
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
        if self.is_watched(name) {
            self.expect.insert(name.clone(), next);
        }
    }

    /// The channel's name as the engine keeps it (the watched channel's own `Arc`, so the
    /// shared-message keys do not copy it).
    fn shared_name(&self, name: &str) -> Arc<str> {
        self.watched
            .get(self.key(name, "l").as_bytes())
            .cloned()
            .unwrap_or_else(|| name.into())
    }

    /// How many of channel `name`'s newest messages are kept to share: `--buffer` while
    /// it is watched, none otherwise.
    fn keep_for(&self, name: &str) -> usize {
        if self.is_watched(name) {
            self.limits.buffer
        } else {
            0
        }
    }

    /// Whether local subscribers follow channel `name` (its live channel is subscribed).
    pub(super) fn is_watched(&self, name: &str) -> bool {
        self.watched.contains_key(self.key(name, "l").as_bytes())
    }
}
