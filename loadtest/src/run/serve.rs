//! One subscriber's mio event: completing its connect, writing its pending request,
//! draining its socket through its framer, turning each text into an event for the
//! ledger, and acting on how the answer stands (read on, poll again, or drop it to be
//! reopened at the end of the turn, counting the error). It changes a subscriber only
//! through the table and an account only through the ledger; it never starts, stops or
//! waits for the publisher, and never walks the table.

use std::io;

use crate::clock::now_us;
use crate::config::Kind;
use crate::framer::Status;
use crate::scan::{self, Event};

use super::{log_first, Run};

impl Run<'_> {
    /// Serves a mio event for subscriber `i` (a stale token is ignored).
    pub(super) fn serve(&mut self, i: usize, ev: &mio::event::Event) {
        if i >= self.subs.len() {
            return;
        }
        if ev.is_writable()
            && !self.subs.is_connected(i)
            && !self.subs.complete_connect(i, self.cfg.transport)
        {
            self.errors.connect += 1;
            self.drop_sub(i);
            return;
        }
        if self.subs.flush(i).is_err() {
            self.errors.write += 1;
            self.drop_sub(i);
            return;
        }
        if (ev.is_readable() || ev.is_read_closed()) && self.subs.is_connected(i) {
            self.drain(i);
        }
    }

    /// Closes subscriber `i`; it is reopened, from its cursor, at the end of the turn.
    pub(super) fn drop_sub(&mut self, i: usize) {
        self.subs.close(i);
        self.reopen.push(i);
    }

    /// Reads subscriber `i` until its socket would block or it is dropped.
    fn drain(&mut self, i: usize) {
        loop {
            match self.subs.read(i, &mut self.scratch) {
                None => return,
                Some(Ok(0)) => {
                    self.errors.closed_by_server += 1;
                    return self.drop_sub(i);
                }
                Some(Ok(n)) => {
                    if !self.received(i, n) {
                        return;
                    }
                }
                Some(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => return,
                Some(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Some(Err(_)) => {
                    self.errors.read += 1;
                    return self.drop_sub(i);
                }
            }
        }
    }

    /// Frames `n` bytes just read into `scratch`, accounts for each text, and acts on the
    /// framer's status; false when the subscriber was dropped.
    fn received(&mut self, i: usize, n: usize) -> bool {
        let mut texts = std::mem::take(&mut self.texts);
        texts.clear();
        let status = self.subs.feed(i, &self.scratch[..n], &mut texts);
        let now = now_us();
        for t in &texts {
            self.account_text(i, t, now);
        }
        self.texts = texts;
        self.after_read(i, status)
    }

    /// Turns one text of subscriber `i` into an event and applies it to its accounts.
    fn account_text(&mut self, i: usize, text: &str, now: u64) {
        let ev = match self.cfg.target_kind {
            Kind::Gateway => scan::event(text),
            // A raw payload: its stamped number is its seq; 0 is the warm-up, which only
            // shows the subscription is live.
            Kind::Nchan => {
                self.subs.mark_ready(i);
                match scan::payload_seq(text) {
                    Some(n) if n > 0 => Event::Data {
                        channel: &self.names[self.subs.channels(i)[0]],
                        seq: n,
                        sent_us: scan::stamp(text),
                    },
                    _ => Event::Noop,
                }
            }
        };
        if matches!(ev, Event::Hello { .. }) {
            self.subs.mark_ready(i);
        }
        let (channels, acc) = self.subs.accounts_mut(i);
        self.ledger
            .apply(channels, acc, &self.names, ev, now, &mut self.errors);
    }

    /// Acts on where subscriber `i`'s answer stands; false when it was dropped.
    fn after_read(&mut self, i: usize, status: Status) -> bool {
        match status {
            Status::Open => return true,
            Status::Answered => {
                self.answers += 1;
                self.subs.poll_again(i, self.cfg, &self.names);
                return true;
            }
            Status::Ended => {}
            Status::Refused(code) => {
                self.errors.http += 1;
                log_first(&mut self.errors, format!("HTTP {code}"));
            }
            Status::Broken(why) => {
                self.errors.protocol += 1;
                log_first(&mut self.errors, why.to_string());
            }
        }
        self.drop_sub(i);
        false
    }
}
