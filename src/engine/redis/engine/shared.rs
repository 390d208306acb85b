//! One `Arc<Message>` per channel and seq in this process, however many reads bring it:
//! for each watched channel the engine keeps its newest `--buffer` messages (as the
//! memory engine keeps every channel's buffer), and a history read or a live message
//! with a seq it holds hands out that very message. Subscribers' write queues then share
//! its encoded bytes, as with the memory engine. Without it, every subscriber joining
//! with `seq=0` would queue its own copy of the channel's history (up to `--buffer` ×
//! `--max-message` each, and catch-ups are not counted by the slow-consumer limit).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::engine::Message;

/// The newest messages of each watched channel, in seq order.
#[derive(Default)]
pub(super) struct Shared {
    by_channel: HashMap<Arc<str>, VecDeque<Arc<Message>>>,
}

impl Shared {
    /// Message `seq` of `channel` if held; else `make()`, kept if it is among the newest
    /// `keep` of those held.
    pub(super) fn get_or_make(
        &mut self,
        channel: &Arc<str>,
        seq: u64,
        keep: usize,
        make: impl FnOnce() -> Message,
    ) -> Arc<Message> {
        let ring = self.by_channel.entry(channel.clone()).or_default();
        let pos = match ring.binary_search_by_key(&seq, |m| m.seq) {
            Ok(i) => return ring[i].clone(),
            Err(i) => i,
        };
        let m = Arc::new(make());
        if keep == 0 || (ring.len() >= keep && pos == 0) {
            return m;
        }
        ring.insert(pos, m.clone());
        while ring.len() > keep {
            ring.pop_front();
        }
        m
    }

    /// Channel `name` is not watched any more: its messages are let go.
    pub(super) fn forget(&mut self, name: &str) {
        self.by_channel.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn make(seq: u64) -> Message {
        Message::new(seq, 0, Bytes::from(format!("m{seq}")))
    }

    #[test]
    fn a_held_message_is_shared_the_newest_are_kept_and_a_forgotten_channel_starts_over() {
        let mut s = Shared::default();
        let ch: Arc<str> = "news".into();
        let a = s.get_or_make(&ch, 7, 3, || make(7));
        let b = s.get_or_make(&ch, 7, 3, || panic!("made twice"));
        assert!(Arc::ptr_eq(&a, &b));
        let other: Arc<str> = "sport".into();
        assert!(!Arc::ptr_eq(&a, &s.get_or_make(&other, 7, 3, || make(7))));
        // Out of order (a history read after live ones), capped at 3: 5 is dropped,
        // older than everything kept, and not kept.
        for seq in [9, 8, 6] {
            s.get_or_make(&ch, seq, 3, || make(seq));
        }
        let mut made = false;
        s.get_or_make(&ch, 5, 3, || {
            made = true;
            make(5)
        });
        assert!(made);
        s.get_or_make(&ch, 9, 3, || panic!("9 is kept"));
        s.get_or_make(&ch, 7, 3, || panic!("7 is kept"));
        let mut made = false;
        s.get_or_make(&ch, 6, 3, || {
            made = true;
            make(6)
        });
        assert!(made, "6 fell out behind 7, 8, 9");
        s.forget("news");
        let mut made = false;
        s.get_or_make(&ch, 9, 3, || {
            made = true;
            make(9)
        });
        assert!(made, "forgotten with its channel");
    }
}
