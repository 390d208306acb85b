//! The Redis engine's admin calls, each one script answered later: `GET /channels/NAME`
//! (`info.lua`), `GET /channels` (`list.lua`, over the prefix's channel index) and
//! `DELETE /channels/NAME` (`delete.lua`, which also tells every gateway process on the
//! channel's live pub/sub channel, so each closes its own subscribers of it).

use std::sync::Arc;

use super::{RedisEngine, SHAS};
use crate::engine::redis::resp::Reply;
use crate::engine::{Answer, EngineError, LogInfo, Reply as EngineReply, Ticket};

/// An admin call waiting for its script's answer.
#[derive(Debug)]
pub(super) enum AdminCall {
    Info(Arc<str>),
    List,
    Delete,
}

/// A number in a script's answer (Redis gives strings or integers).
pub(super) fn num(r: &Reply) -> Option<u64> {
    match r {
        Reply::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.parse().ok(),
        Reply::Integer(i) => u64::try_from(*i).ok(),
        _ => None,
    }
}

impl RedisEngine {
    /// The prefix's channel index (a sorted set of the names that have had a message).
    pub(super) fn index_key(&self) -> String {
        format!("{}channels", self.prefix)
    }

    /// Sends one admin script; its answer comes as `Answered` under the ticket returned
    /// (503 at once while Redis is unreachable).
    pub(super) fn admin<T>(
        &mut self,
        call: AdminCall,
        script: usize,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> EngineReply<Result<T, EngineError>> {
        self.check_down(self.last_ms);
        if self.down.is_some() || self.cmd.dead().is_some() || !self.answered() {
            return EngineReply::Now(Err(EngineError::Unavailable));
        }
        let nkeys = keys.len().to_string();
        let mut cmd: Vec<&[u8]> = vec![b"EVALSHA", self.shas[script].as_bytes(), nkeys.as_bytes()];
        cmd.extend_from_slice(keys);
        cmd.extend_from_slice(args);
        let tag = self.next_tag;
        self.next_tag += 1;
        if self.cmd.send(tag, &cmd).is_err() {
            return EngineReply::Now(Err(EngineError::Unavailable));
        }
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.admin_tags.insert(tag, (ticket, call));
        EngineReply::Later(ticket)
    }

    /// `delete.lua`: the channel's keys go, the floor rises past its seqs, and every
    /// process is told.
    pub(super) fn send_delete(&mut self, name: &str) -> EngineReply<Result<bool, EngineError>> {
        let (m, h, l) = (
            self.key(name, "m"),
            self.key(name, "h"),
            self.key(name, "l"),
        );
        let (floor, index) = (format!("{}floor", self.prefix), self.index_key());
        let keys: [&[u8]; 4] = [
            m.as_bytes(),
            h.as_bytes(),
            floor.as_bytes(),
            index.as_bytes(),
        ];
        self.admin(
            AdminCall::Delete,
            SHAS::DELETE,
            &keys,
            &[name.as_bytes(), l.as_bytes()],
        )
    }

    /// `info.lua`: the channel's seqs and what its history holds.
    pub(super) fn send_info(
        &mut self,
        name: &str,
    ) -> EngineReply<Result<Option<LogInfo>, EngineError>> {
        let (m, h) = (self.key(name, "m"), self.key(name, "h"));
        let ttl = self.limits.message_ttl_ms.to_string();
        self.admin(
            AdminCall::Info(name.into()),
            SHAS::INFO,
            &[m.as_bytes(), h.as_bytes()],
            &[ttl.as_bytes()],
        )
    }

    /// `list.lua`: channels by name from the index.
    pub(super) fn send_list(
        &mut self,
        prefix: &str,
        limit: usize,
    ) -> EngineReply<Result<Vec<LogInfo>, EngineError>> {
        let index = self.index_key();
        let (limit, keys) = (limit.to_string(), self.prefix.clone());
        self.admin(
            AdminCall::List,
            SHAS::LIST,
            &[index.as_bytes()],
            &[prefix.as_bytes(), limit.as_bytes(), keys.as_bytes()],
        )
    }

    /// Turns an admin script's answer into the call's answer; a script error or a lost
    /// connection is `engine unavailable`.
    pub(super) fn admin_answer(call: AdminCall, reply: Result<Reply, ()>) -> Answer {
        let parts = match (&call, reply) {
            (AdminCall::Delete, Ok(Reply::Integer(n))) => return Answer::Deleted(Ok(n == 1)),
            (_, Ok(Reply::Array(Some(parts)))) => Some(parts),
            _ => None,
        };
        match call {
            AdminCall::Delete => Answer::Deleted(Err(EngineError::Unavailable)),
            AdminCall::Info(name) => Answer::Info(
                parts
                    .map(|p| {
                        if p.is_empty() {
                            return Some(None);
                        }
                        let v: Vec<u64> = p.iter().filter_map(num).collect();
                        let [first, next, oldest, buffered] = v[..] else {
                            return None;
                        };
                        Some(Some(LogInfo {
                            name,
                            first_seq: first,
                            oldest_seq: oldest,
                            next_seq: next,
                            buffered: buffered as usize,
                        }))
                    })
                    .and_then(|x| x)
                    .ok_or(EngineError::Unavailable),
            ),
            AdminCall::List => Answer::List(
                parts
                    .and_then(|p| {
                        p.chunks(3)
                            .map(|c| {
                                let Reply::Bulk(Some(name)) = c.first()? else {
                                    return None;
                                };
                                let name: Arc<str> = std::str::from_utf8(name).ok()?.into();
                                let (next, buffered) = (num(c.get(1)?)?, num(c.get(2)?)?);
                                Some(LogInfo {
                                    name,
                                    first_seq: next,
                                    oldest_seq: next.saturating_sub(buffered),
                                    next_seq: next,
                                    buffered: buffered as usize,
                                })
                            })
                            .collect::<Option<Vec<_>>>()
                    })
                    .ok_or(EngineError::Unavailable),
            ),
        }
    }
}
