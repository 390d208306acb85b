//! The account that proves what was delivered: each subscriber's [`Account`] on each of its
//! channels, how one event changes it ([`Ledger::apply`]), the latency histogram, the count
//! of deliveries, and, once publishing has ended, how many accounts are still due a
//! message (kept up to date as each account moves, so that asking whether everything was
//! delivered costs nothing), and the totals that go into the summary ([`tally`]). It is
//! handed events already framed and scanned; it never touches a socket, the subscriber
//! table's connection state or the publisher.

use std::io;

use hdrhistogram::Histogram;

use crate::report::{latency_histogram, Errors, Summary};
use crate::scan::Event;

/// The account of one subscriber on one channel.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Account {
    /// The next seq it should receive.
    pub(super) next: u64,
    received: u64,
    duplicates: u64,
    /// Deliveries that skipped seqs without a `lost` event.
    out_of_order: u64,
    /// Seqs skipped without a `lost` event.
    skipped: u64,
    /// Seqs announced lost.
    lost: u64,
    resets: u64,
}

impl Account {
    /// An empty account expecting `next` first.
    pub(super) fn starting_at(next: u64) -> Account {
        Account {
            next,
            ..Account::default()
        }
    }
}

/// Latency, deliveries, and what is still due once publishing has ended.
pub(super) struct Ledger {
    /// Publish-to-delivery latency, µs (from the payload's due-time stamp).
    pub(super) latency: Histogram<u64>,
    /// Messages delivered in order so far.
    pub(super) delivered: u64,
    /// Per channel, the last seq published; set when publishing has ended.
    last: Option<Vec<Option<u64>>>,
    /// Accounts whose `next` is at or before their channel's `last`.
    behind: usize,
}

impl Ledger {
    pub(super) fn new() -> io::Result<Ledger> {
        Ok(Ledger {
            latency: latency_histogram()?,
            delivered: 0,
            last: None,
            behind: 0,
        })
    }

    /// An account of channel `c` at `next` is still due a message.
    fn is_behind(&self, c: usize, next: u64) -> bool {
        self.last
            .as_ref()
            .is_some_and(|last| last[c].is_some_and(|l| next <= l))
    }

    /// An account of channel `c` moved from `before` to `after`: keeps `behind` true.
    fn moved(&mut self, c: usize, before: u64, after: u64) {
        match (self.is_behind(c, before), self.is_behind(c, after)) {
            (true, false) => self.behind -= 1,
            (false, true) => self.behind += 1,
            _ => {}
        }
    }

    /// Publishing has ended with `last` (per channel): counts, once, the accounts still
    /// due a message; from here on the count follows each account as it moves.
    pub(super) fn publishing_ended<'a>(
        &mut self,
        last: Vec<Option<u64>>,
        accounts: impl Iterator<Item = (usize, &'a Account)>,
    ) {
        self.last = Some(last);
        self.behind = 0;
        for (c, a) in accounts {
            if self.is_behind(c, a.next) {
                self.behind += 1;
            }
        }
    }

    /// Publishing has ended and every account has all it was due.
    pub(super) fn all_delivered(&self) -> bool {
        self.last.is_some() && self.behind == 0
    }

    /// Applies one event to a subscriber's accounts (`acc`, one per channel of `channels`),
    /// `now` being the delivery time in µs.
    pub(super) fn apply(
        &mut self,
        channels: &[usize],
        acc: &mut [Account],
        names: &[String],
        ev: Event<'_>,
        now: u64,
        errors: &mut Errors,
    ) {
        match ev {
            Event::Data {
                channel,
                seq,
                sent_us,
            } => match find(channels, names, channel) {
                Some(j) => self.deliver(channels[j], &mut acc[j], seq, sent_us, now),
                None => errors.protocol += 1,
            },
            Event::Lost { channel, from, to } => {
                if let Some(j) = find(channels, names, channel) {
                    let a = &mut acc[j];
                    if from <= a.next && to >= a.next {
                        let before = a.next;
                        a.lost += to + 1 - a.next;
                        a.next = to + 1;
                        self.moved(channels[j], before, to + 1);
                    } else {
                        errors.protocol += 1;
                    }
                }
            }
            Event::Reset { channel, seq } => {
                if let Some(j) = find(channels, names, channel) {
                    let before = acc[j].next;
                    acc[j].resets += 1;
                    acc[j].next = seq;
                    self.moved(channels[j], before, seq);
                }
            }
            Event::Error => errors.server_error_events += 1,
            Event::Hello { .. }
            | Event::Reconnect { .. }
            | Event::Noop
            | Event::Close
            | Event::Unknown => {}
        }
    }

    /// Message `seq` of channel `c` reached account `a` at `now`, stamped `sent_us`.
    fn deliver(&mut self, c: usize, a: &mut Account, seq: u64, sent_us: Option<u64>, now: u64) {
        if seq < a.next {
            a.duplicates += 1;
            return;
        }
        if seq > a.next {
            a.out_of_order += 1;
            a.skipped += seq - a.next;
        }
        let before = a.next;
        a.next = seq + 1;
        a.received += 1;
        self.moved(c, before, seq + 1);
        if let Some(t) = sent_us {
            let _ = self.latency.record(now.saturating_sub(t).max(1));
        }
        self.delivered += 1;
    }
}

/// Which of `channels` an event's channel name is. Names are `TAG-INDEX`: the index is
/// read back, then the whole name checked.
fn find(channels: &[usize], names: &[String], channel: &str) -> Option<usize> {
    let idx: usize = channel.rsplit_once('-')?.1.parse().ok()?;
    if names.get(idx).map(String::as_str) != Some(channel) {
        return None;
    }
    channels.iter().position(|&c| c == idx)
}

/// Adds every account to the summary: what each was due (from its channel's `first` seq
/// to the `last` published), what it got, and what is missing.
pub(super) fn tally<'a>(
    s: &mut Summary,
    accounts: impl Iterator<Item = (usize, &'a Account)>,
    last: &[Option<u64>],
    first: &[u64],
) {
    for (c, a) in accounts {
        let expected = last[c].map_or(0, |last| last + 1 - first[c]);
        s.expected += expected;
        s.received += a.received;
        s.duplicates += a.duplicates;
        s.out_of_order += a.out_of_order;
        s.skipped += a.skipped;
        s.lost += a.lost;
        s.resets += a.resets;
        let accounted = a.received + a.lost + a.skipped;
        s.missing += expected.saturating_sub(accounted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["t-0".into(), "t-1".into()]
    }

    fn data(channel: &str, seq: u64) -> Event<'_> {
        Event::Data {
            channel,
            seq,
            sent_us: Some(10),
        }
    }

    #[test]
    fn what_is_due_follows_each_account_as_it_moves() {
        let (names, mut errors) = (names(), Errors::default());
        let mut l = Ledger::new().unwrap();
        let channels = [0, 1];
        let mut acc = [Account::starting_at(2), Account::starting_at(2)];
        l.apply(&channels, &mut acc, &names, data("t-0", 2), 20, &mut errors);
        assert!(
            !l.all_delivered(),
            "nothing is known before publishing ends"
        );
        // Channel 0 published up to 3, channel 1 nothing.
        l.publishing_ended(vec![Some(3), None], channels.iter().copied().zip(&acc));
        assert_eq!(l.behind, 1);
        l.apply(&channels, &mut acc, &names, data("t-0", 3), 20, &mut errors);
        assert!(l.all_delivered());
        // A reset behind the last seq makes it due again; a lost range settles it.
        let reset = Event::Reset {
            channel: "t-0",
            seq: 3,
        };
        l.apply(&channels, &mut acc, &names, reset, 20, &mut errors);
        assert!(!l.all_delivered());
        let lost = Event::Lost {
            channel: "t-0",
            from: 3,
            to: 3,
        };
        l.apply(&channels, &mut acc, &names, lost, 20, &mut errors);
        assert!(l.all_delivered());
        // A duplicate and a foreign channel change nothing that is due.
        l.apply(&channels, &mut acc, &names, data("t-0", 2), 20, &mut errors);
        l.apply(&channels, &mut acc, &names, data("x-0", 9), 20, &mut errors);
        assert!(l.all_delivered());
        assert_eq!((acc[0].duplicates, errors.protocol), (1, 1));
        assert_eq!((l.delivered, acc[0].received, acc[0].lost), (2, 2, 1));
        assert_eq!(l.latency.len(), 2);
    }
}
