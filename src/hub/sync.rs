//! The merge that closes the race between a subscriber's history read and the live
//! messages that arrive while it is in flight (as centrifuge's `pubSubSync`): the live
//! subscription exists before the read is sent, live messages for the syncing
//! membership are kept, and when the read returns this turns (read, kept) into what the
//! subscriber gets, in order, each seq once, and every gap named.
//!
//! Pure: no socket, no hub state. The hub keeps the live messages of a syncing
//! membership (`Hub::begin_sync`/`end_sync`); the stream handler merges with this.

use std::sync::Arc;

use bytes::Bytes;

use super::{Channel, Delivery, Followers, Hub};
use crate::engine::{Message, Notice, Read};
use crate::event;
use crate::handle::Key;
use crate::server::Conn;

/// One thing a syncing subscriber is sent, in order.
#[derive(Debug, Clone)]
pub enum Item {
    /// A `lost` or `reset` event.
    Notice(Bytes),
    /// A message.
    Message(Arc<Message>),
}

/// What a subscriber of `channel` gets once its history `read` returns, given the live
/// messages `kept` while it was in flight (in arrival order). Returns the items and the
/// subscriber's cursor after them.
///
/// History first (the cursor rule's notice, then the buffered messages), then the kept
/// live messages at or past the read's head, sorted by seq, duplicates dropped. A kept
/// message beyond the next expected seq means the live stream skipped something (or the
/// channel began a new life): the subscriber is told `lost` for the gap before it.
pub fn merge(channel: &str, read: &Read, kept: &[Arc<Message>]) -> (Vec<Item>, u64) {
    let mut out = Vec::with_capacity(read.messages.len() + kept.len() + 1);
    if let Some(n) = &read.notice {
        out.push(Item::Notice(n.clone()));
    }
    let mut next = read.start.seq;
    for m in &read.messages {
        if m.seq >= next {
            out.push(Item::Message(m.clone()));
            next = m.seq + 1;
        }
    }
    // The history runs up to the head the read saw; nothing before it is live-only.
    next = next.max(read.head);
    let mut live: Vec<&Arc<Message>> = kept.iter().collect();
    live.sort_by_key(|m| m.seq);
    for m in live {
        if m.seq < next {
            continue;
        }
        if m.seq > next {
            out.push(Item::Notice(event::lost(channel, next, m.seq - 1)));
        }
        out.push(Item::Message(m.clone()));
        next = m.seq + 1;
    }
    (out, next)
}

/// The most live messages kept for one syncing membership; past it the oldest go, and
/// the merge names them `lost` (a read that stays in flight while a channel runs fast).
const KEEP_MAX: usize = 4096;

/// A membership whose history read is in flight: its token and the live messages kept.
#[derive(Debug, Default)]
pub struct Syncing {
    token: u64,
    kept: Vec<Arc<Message>>,
}

impl Syncing {
    /// Keeps a live message (dropping the oldest past `KEEP_MAX`).
    pub(super) fn keep(&mut self, msg: &Arc<Message>) {
        if self.kept.len() >= KEEP_MAX {
            self.kept.remove(0);
        }
        self.kept.push(msg.clone());
    }
}

impl Hub {
    /// Counts messages handed to subscribers outside `read` and `fan_out` (a merged
    /// catch-up).
    pub fn count_delivered(&mut self, n: usize) {
        self.stats.delivered += n as u64;
    }

    /// From now on, live messages of channel `ch` for connection `conn` are kept instead
    /// of delivered, until `end_sync` (its history read is in flight).
    /// Returns a token that names this sync (see `sync_token`).
    pub fn begin_sync(&mut self, conn: Key<Conn>, ch: Key<Channel>) -> u64 {
        self.sync_tokens += 1;
        let token = self.sync_tokens;
        let s = Syncing {
            token,
            kept: Vec::new(),
        };
        self.syncing.insert((conn, ch), s);
        token
    }

    /// The token of `conn`'s sync on `ch`, if one is going on: a caller that began a sync
    /// checks it is still its own (the membership may have been left and joined again).
    pub fn sync_token(&self, conn: Key<Conn>, ch: Key<Channel>) -> Option<u64> {
        self.syncing.get(&(conn, ch)).map(|s| s.token)
    }

    /// The live messages kept for `conn` on `ch`; delivery goes on as usual.
    pub fn end_sync(&mut self, conn: Key<Conn>, ch: Key<Channel>) -> Vec<Arc<Message>> {
        self.syncing
            .remove(&(conn, ch))
            .map(|s| s.kept)
            .unwrap_or_default()
    }

    /// The live stream of `channel` skipped what `notice` names: moves the cursor of
    /// every local subscriber it concerns past it and lists them in `out` (a syncing
    /// membership finds the gap in its own merge).
    pub fn gap<F: Followers + ?Sized>(
        &mut self,
        channel: &str,
        notice: Notice,
        followers: &mut F,
        out: &mut Vec<Delivery>,
    ) {
        out.clear();
        let Some(k) = self.find(channel) else {
            return;
        };
        let Some(c) = self.channels.get(k) else {
            return;
        };
        for (_, &conn) in c.subs.iter() {
            if self.syncing.contains_key(&(conn, k)) {
                continue;
            }
            let Some((f, mode)) = followers.follower_mut(conn) else {
                continue;
            };
            let Some(sub) = f.subs.find_mut(k) else {
                continue;
            };
            let moved = match notice {
                Notice::Lost { to, .. } if sub.next <= to => Some(to + 1),
                Notice::Reset { seq } if sub.next != seq => Some(seq),
                _ => None,
            };
            if let Some(next) = moved {
                sub.next = next;
                out.push(Delivery { conn, mode });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Notice, Start};

    fn msg(seq: u64) -> Arc<Message> {
        Arc::new(Message::new(seq, 0, event::data("c", seq, "x")))
    }

    fn read(start: u64, notice: Option<Notice>, history: &[u64], head: u64) -> Read {
        Read {
            start: Start { notice, seq: start },
            notice: notice.map(|n| n.event("c")),
            messages: history.iter().map(|&s| msg(s)).collect(),
            head,
        }
    }

    /// The items as text: `m<seq>` or the notice JSON.
    fn shown(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Message(m) => format!("m{}", m.seq),
                Item::Notice(b) => String::from_utf8(b.to_vec()).unwrap(),
            })
            .collect()
    }

    #[test]
    fn live_messages_that_the_history_already_had_are_dropped() {
        // Cursor 10; history 10..=12 (head 13); live 12, 13, 14 arrived meanwhile.
        let (items, next) = merge(
            "c",
            &read(10, None, &[10, 11, 12], 13),
            &[msg(12), msg(13), msg(14)],
        );
        assert_eq!(shown(&items), ["m10", "m11", "m12", "m13", "m14"]);
        assert_eq!(next, 15);
    }

    #[test]
    fn live_messages_out_of_order_are_sorted_and_duplicates_dropped() {
        let (items, next) = merge(
            "c",
            &read(5, None, &[], 5),
            &[msg(6), msg(5), msg(6), msg(7)],
        );
        assert_eq!(shown(&items), ["m5", "m6", "m7"]);
        assert_eq!(next, 8);
    }

    #[test]
    fn a_gap_in_the_live_stream_is_told_as_lost() {
        let (items, next) = merge("c", &read(1, None, &[1], 2), &[msg(2), msg(5)]);
        let lost = String::from_utf8(event::lost("c", 3, 4).to_vec()).unwrap();
        assert_eq!(
            shown(&items),
            vec!["m1".to_string(), "m2".into(), lost, "m5".into()]
        );
        assert_eq!(next, 6);
    }

    #[test]
    fn the_cursor_rules_notice_comes_first() {
        let notice = Notice::Lost { from: 3, to: 7 };
        let (items, next) = merge("c", &read(8, Some(notice), &[8, 9], 10), &[msg(10)]);
        let lost = String::from_utf8(event::lost("c", 3, 7).to_vec()).unwrap();
        assert_eq!(
            shown(&items),
            vec![lost, "m8".into(), "m9".into(), "m10".into()]
        );
        assert_eq!(next, 11);
        let reset = Notice::Reset { seq: 100 };
        let (items, next) = merge("c", &read(100, Some(reset), &[], 100), &[]);
        assert_eq!(items.len(), 1);
        assert_eq!(next, 100);
    }

    #[test]
    fn nothing_due_and_nothing_kept_leaves_the_cursor_at_the_head() {
        let (items, next) = merge("c", &read(42, None, &[], 42), &[]);
        assert!(items.is_empty());
        assert_eq!(next, 42);
        // A subscriber from now on: start at the head, live ones after it delivered.
        let (items, next) = merge("c", &read(42, None, &[], 42), &[msg(41), msg(42)]);
        assert_eq!(shown(&items), ["m42"]);
        assert_eq!(next, 43);
    }
}
