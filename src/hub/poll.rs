//! The hub's part of a long-poll: merging the channels of a resumed session with those
//! the request names, and reading what every channel has due. The reactor decides from
//! the result whether the poll is answered at once or parks.

use std::sync::Arc;

use bytes::Bytes;

use super::{Channel, Hub, SessionSub, Sub};
use crate::clock::Now;
use crate::engine::{Engine, Reply, Ticket};
use crate::event;
use crate::handle::Key;
use crate::subscription::Wanted;

/// One channel of a poll, merged from the session and the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollChannel {
    /// The channel's name.
    pub name: Arc<str>,
    /// The channel the session held (to tell a deleted one from a live one).
    pub held: Option<Key<Channel>>,
    /// Where the poll resumes (`None`: from now on).
    pub seq: Option<u64>,
    /// The request named it (so its token covers it); otherwise it comes from the
    /// session and is only as good as the session's tokens.
    pub named: bool,
}

/// What a poll's channels have due.
#[derive(Debug, Default)]
pub struct PollRead {
    /// The events of the answer, in order: `close` for a channel deleted since the
    /// session held it, then per channel its notice and its buffered messages.
    pub events: Vec<Bytes>,
    /// The poll's memberships, each at its channel's head (where the cursor is once the
    /// answer is out, or while the poll is parked), not yet attached.
    pub subs: Vec<Sub>,
    /// The channel records opened: release them once the poll holds what it keeps.
    pub keys: Vec<Key<Channel>>,
    /// Reads the engine answers later: their ticket and the index of their membership
    /// in `subs` (whose cursor is then set from the answer).
    pub later: Vec<(Ticket, usize)>,
}

/// Merges the channels a session held with those a poll names: the request's cursor
/// wins over the session's, and channels it adds join.
pub fn merge_poll(held: &[SessionSub], requested: Vec<Wanted>) -> Vec<PollChannel> {
    let mut out: Vec<PollChannel> = held
        .iter()
        .map(|s| PollChannel {
            name: s.name.clone(),
            held: Some(s.channel),
            seq: s.next,
            named: false,
        })
        .collect();
    for w in requested {
        match out.iter_mut().find(|e| *e.name == *w.channel) {
            Some(e) => {
                e.seq = w.seq.or(e.seq);
                e.named = true;
            }
            None => out.push(PollChannel {
                name: w.channel.into(),
                held: None,
                seq: w.seq,
                named: true,
            }),
        }
    }
    out
}

impl Hub {
    /// Reads what every channel of a poll has due (the one subscribe pipeline, per
    /// channel). A channel the session held that was deleted since is not followed any
    /// more: the client is told `close` for it.
    pub fn poll_read(
        &mut self,
        engine: &mut dyn Engine,
        mut wanted: Vec<PollChannel>,
        now: Now,
    ) -> PollRead {
        let mut out = PollRead::default();
        wanted.retain(|w| {
            let deleted = !w.named && w.held.is_some_and(|k| self.name(k).is_none());
            if deleted {
                out.events.push(event::close(&w.name));
            }
            !deleted
        });
        let names: Vec<&str> = wanted.iter().map(|w| &*w.name).collect();
        out.keys = self.open(engine, &names, now);
        for (w, &ch) in wanted.iter().zip(&out.keys) {
            let read = match self.read(engine, ch, w.seq, now) {
                None => continue,
                Some(Reply::Now(read)) => read,
                Some(Reply::Later(t)) => {
                    out.later.push((t, out.subs.len()));
                    out.subs.push(Sub::detached(ch, 0));
                    continue;
                }
            };
            out.events.extend(read.notice);
            out.events
                .extend(read.messages.iter().map(|m| m.json.clone()));
            out.subs.push(Sub::detached(ch, read.head));
        }
        out
    }
}

#[cfg(test)]
mod tests;
