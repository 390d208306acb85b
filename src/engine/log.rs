//! One channel's log: its seq numbering, its ring buffer of recent messages, and the
//! rule that turns a subscriber's cursor into "lost", "reset" or a start seq.
//!
//! Pure state: the clock comes in as arguments. Knows nothing of subscribers (the hub's)
//! or of sockets; the registry of logs, their caps and expiry are in `memory.rs`.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::OnceLock;

use bytes::Bytes;

use crate::event;

/// A published message, encoded once as JSON; every subscriber's answer shares `json`,
/// and each stream format's framing of it is made once, on first use, by the transport.
#[derive(Debug)]
pub struct Message {
    /// The message's seq in its channel.
    pub seq: u64,
    /// When it was published (reactor milliseconds), for `--message-ttl`.
    pub at_ms: u64,
    /// The `data` event, script-safe JSON.
    pub json: Bytes,
    /// The ndjson chunk, made on first use by a `/stream` subscriber.
    pub ndjson: OnceLock<Bytes>,
    /// The EventSource chunk for subscribers of this channel alone (their `id:` is this
    /// channel's cursor), made on first use.
    pub sse_single: OnceLock<Bytes>,
    /// The EventSource `data:` part for subscribers of several channels, made on first use.
    pub sse_data: OnceLock<Bytes>,
    /// The WebSocket text frame, made on first use.
    pub ws: OnceLock<Bytes>,
}

impl Message {
    /// A message with no stream encodings made yet.
    pub fn new(seq: u64, at_ms: u64, json: Bytes) -> Message {
        Message {
            seq,
            at_ms,
            json,
            ndjson: OnceLock::new(),
            sse_single: OnceLock::new(),
            sse_data: OnceLock::new(),
            ws: OnceLock::new(),
        }
    }
}

/// What a subscriber must be told before the messages that follow its cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// Seqs `from..=to` were asked for but are no longer buffered.
    Lost {
        /// First missing seq.
        from: u64,
        /// Last missing seq.
        to: u64,
    },
    /// The cursor is from an earlier life of the channel or ahead of it; delivery
    /// restarts at `seq`.
    Reset {
        /// The seq delivery restarts at.
        seq: u64,
    },
}

impl Notice {
    /// The event that tells a subscriber of `channel` about this notice.
    pub fn event(self, channel: &str) -> Bytes {
        match self {
            Notice::Lost { from, to } => event::lost(channel, from, to),
            Notice::Reset { seq } => event::reset(channel, seq),
        }
    }
}

/// Where delivery starts for a cursor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Start {
    /// Told to the subscriber first, if anything.
    pub notice: Option<Notice>,
    /// The first seq to deliver (may be `next_seq`: nothing yet).
    pub seq: u64,
}

impl Start {
    /// The cursor rule, for a channel whose life began at `first`, whose oldest buffered
    /// message is `oldest` (`next` if none) and whose next message gets `next`: where
    /// delivery starts, and the `lost`/`reset` the subscriber is told first. Every engine
    /// applies this one rule.
    pub fn of(cursor: Option<u64>, first: u64, oldest: u64, next: u64) -> Start {
        match cursor {
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
        }
    }
}

/// Returns true when `name` is a valid channel name: 1–128 bytes of `[A-Za-z0-9_.-]`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// A channel's log.
pub struct Log {
    /// Shared with the registry's index.
    name: Arc<str>,
    first_seq: u64,
    next_seq: u64,
    buf: VecDeque<Arc<Message>>,
}

impl Log {
    /// A new, empty log whose first seq is `first_seq`.
    pub fn new(name: Arc<str>, first_seq: u64) -> Self {
        Log {
            name,
            first_seq,
            next_seq: first_seq,
            buf: VecDeque::new(),
        }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The channel's name, shared (no copy).
    pub fn shared_name(&self) -> Arc<str> {
        self.name.clone()
    }

    /// The seq the next published message gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// True once a message was published in this life of the channel.
    pub fn is_published(&self) -> bool {
        self.next_seq > self.first_seq
    }

    /// The first seq of this life of the channel.
    pub fn first_seq(&self) -> u64 {
        self.first_seq
    }

    /// The oldest seq still buffered (`next_seq` when the buffer is empty).
    pub fn oldest_seq(&self) -> u64 {
        self.buf.front().map_or(self.next_seq, |m| m.seq)
    }

    /// How many messages are buffered.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Appends a message, evicting the oldest past `capacity`. Returns the new message and
    /// how many were evicted.
    pub fn publish(
        &mut self,
        payload: &str,
        now_ms: u64,
        capacity: usize,
    ) -> (Arc<Message>, usize) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut evicted = 0;
        while self.buf.len() >= capacity.max(1) {
            self.buf.pop_front();
            evicted += 1;
        }
        let m = Arc::new(Message::new(
            seq,
            now_ms,
            event::data(&self.name, seq, payload),
        ));
        self.buf.push_back(m.clone());
        debug_assert_eq!(
            self.oldest_seq() + self.buf.len() as u64,
            self.next_seq,
            "buffer of {} is not contiguous",
            self.name
        );
        (m, evicted)
    }

    /// Drops messages older than `ttl_ms` (0 = keep forever). Returns how many.
    pub fn expire_messages(&mut self, now_ms: u64, ttl_ms: u64) -> usize {
        if ttl_ms == 0 {
            return 0;
        }
        let mut n = 0;
        while self
            .buf
            .front()
            .is_some_and(|m| now_ms.saturating_sub(m.at_ms) >= ttl_ms)
        {
            self.buf.pop_front();
            n += 1;
        }
        n
    }

    /// Resolves a cursor: `None` = only new messages, `Some(0)` = everything buffered,
    /// otherwise the next seq the subscriber wants.
    pub fn start(&self, cursor: Option<u64>) -> Start {
        Start::of(cursor, self.first_seq, self.oldest_seq(), self.next_seq)
    }

    /// The buffered messages from `seq` on, oldest first.
    pub fn messages_from(&self, seq: u64) -> impl Iterator<Item = &Arc<Message>> {
        let skip = seq.saturating_sub(self.oldest_seq()) as usize;
        self.buf.iter().skip(skip)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(ch: &Log, from: u64) -> Vec<u64> {
        ch.messages_from(from).map(|m| m.seq).collect()
    }

    #[test]
    fn names() {
        assert!(valid_name("news"));
        assert!(valid_name("a.b-c_D9"));
        assert!(valid_name(&"x".repeat(128)));
        assert!(!valid_name(&"x".repeat(129)));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a,b"));
        assert!(!valid_name("é"));
    }

    #[test]
    fn cursor_resolution_covers_every_case() {
        let mut ch = Log::new("c".into(), 1000);
        for _ in 0..10 {
            ch.publish("m", 0, 4);
        }
        // Buffer holds 1006..=1009, next is 1010.
        assert_eq!(ch.oldest_seq(), 1006);
        assert_eq!(ch.next_seq(), 1010);
        let start = |c| ch.start(c);
        assert_eq!(
            start(None),
            Start {
                notice: None,
                seq: 1010
            }
        );
        assert_eq!(
            start(Some(0)),
            Start {
                notice: None,
                seq: 1006
            }
        );
        assert_eq!(
            start(Some(1007)),
            Start {
                notice: None,
                seq: 1007
            }
        );
        assert_eq!(
            start(Some(1010)),
            Start {
                notice: None,
                seq: 1010
            }
        );
        assert_eq!(
            start(Some(1002)),
            Start {
                notice: Some(Notice::Lost {
                    from: 1002,
                    to: 1005
                }),
                seq: 1006
            }
        );
        assert_eq!(
            start(Some(1000)),
            Start {
                notice: Some(Notice::Lost {
                    from: 1000,
                    to: 1005
                }),
                seq: 1006
            }
        );
        assert_eq!(
            start(Some(999)),
            Start {
                notice: Some(Notice::Reset { seq: 1006 }),
                seq: 1006
            }
        );
        assert_eq!(
            start(Some(1011)),
            Start {
                notice: Some(Notice::Reset { seq: 1010 }),
                seq: 1010
            }
        );
        assert_eq!(seqs(&ch, 1006), vec![1006, 1007, 1008, 1009]);
        assert_eq!(seqs(&ch, 1008), vec![1008, 1009]);
        assert!(seqs(&ch, 1010).is_empty());
    }

    #[test]
    fn every_cursor_in_a_range_delivers_a_contiguous_tail() {
        let mut ch = Log::new("c".into(), 50);
        for i in 0..30 {
            ch.publish(&format!("{i}"), 0, 8);
            for cursor in 1..100u64 {
                let st = ch.start(Some(cursor));
                let got = seqs(&ch, st.seq);
                // Delivery is always the contiguous tail from st.seq.
                let expect: Vec<u64> = (st.seq..ch.next_seq()).collect();
                assert_eq!(got, expect, "cursor {cursor}");
                match st.notice {
                    None => assert!(cursor >= ch.oldest_seq() && cursor <= ch.next_seq()),
                    Some(Notice::Lost { from, to }) => {
                        assert_eq!(from, cursor);
                        assert_eq!(to + 1, st.seq);
                    }
                    Some(Notice::Reset { .. }) => {
                        assert!(cursor < ch.first_seq() || cursor > ch.next_seq())
                    }
                }
            }
        }
    }

    #[test]
    fn message_ttl_expires_from_the_front() {
        let mut ch = Log::new("c".into(), 1);
        ch.publish("a", 0, 10);
        ch.publish("b", 500, 10);
        assert_eq!(ch.expire_messages(999, 1000), 0);
        assert_eq!(ch.expire_messages(1000, 1000), 1);
        assert_eq!(ch.oldest_seq(), 2);
        assert_eq!(ch.expire_messages(10_000, 0), 0, "ttl 0 keeps forever");
        assert_eq!(ch.expire_messages(10_000, 1000), 1);
        assert_eq!(ch.oldest_seq(), 3);
        assert_eq!(ch.buffered(), 0);
    }
}
