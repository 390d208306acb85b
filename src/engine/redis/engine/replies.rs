//! The command connection's answers, each to what asked: a publish (its seqs, answered
//! once all its channels have theirs, or held for their live messages), a subscriber's
//! or a repair read, an admin call; `NOSCRIPT` loads the scripts again.

use super::{RedisEngine, REPAIR};
use crate::engine::redis::resp::Reply;
use crate::engine::{Answer, EngineError, EngineEvent};

impl RedisEngine {
    pub(super) fn replies(&mut self) {
        let mut out = Vec::new();
        self.cmd.take_replies(&mut out);
        for (tag, reply) in out {
            if let Ok(Reply::Error(e)) = &reply {
                if e.starts_with(b"NOSCRIPT") && self.last_ms >= self.scripts_loaded_ms + 1_000 {
                    // The scripts were flushed (SCRIPT FLUSH, a failover): load them
                    // again; this call fails (503), the ones after it work.
                    log::warn!("redis lost the gateway's scripts; loading them again");
                    self.load_scripts();
                    self.scripts_loaded_ms = self.last_ms;
                }
            }
            if let Some((ticket, call)) = self.admin_tags.remove(&tag) {
                let reply = match reply {
                    Ok(Reply::Error(_)) | Err(_) => Err(()),
                    Ok(r) => Ok(r),
                };
                let answer = Self::admin_answer(call, reply);
                self.events.push(EngineEvent::Answered { ticket, answer });
                continue;
            }
            if let Some((ticket, name, cursor)) = self.read_tags.remove(&tag) {
                if reply.is_err() && self.is_watched(&name) {
                    // The connection died before the answer: asked again once a new one
                    // has subscribed (never answered as "no log", never a false `lost`).
                    self.unsent_reads.push((ticket, name, cursor));
                    continue;
                }
                let read = reply.ok().and_then(|r| self.resolve(&name, cursor, r));
                if ticket == REPAIR {
                    self.repaired(&name, cursor.unwrap_or(0), read);
                    continue;
                }
                if let Some(r) = &read {
                    // Only for a channel still watched: a read that comes back after its
                    // channel was let go must not leave a stale expectation behind.
                    if self.is_watched(&name) {
                        self.expect.entry(name.clone()).or_insert(r.head);
                    }
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
                if p.failed {
                    self.events.push(EngineEvent::Answered {
                        ticket: p.ticket,
                        answer: Answer::Published(Err(EngineError::Unavailable)),
                    });
                } else {
                    self.stats.published += p.seqs.len() as u64;
                    let seqs: Vec<u64> = p.seqs.into_iter().flatten().collect();
                    self.answer_published(p.ticket, p.names, seqs);
                }
            }
        }
    }
}
