//! What a connection does with its frames: match them to commands ([`Commands`]) or read
//! them as pub/sub pushes ([`PubSub`]), and the calls that only make sense in each mode.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;

use super::{Mode, Reply, RespConn, RespError, Tag};

/// Command mode: every command sent gets exactly one reply, in order.
#[derive(Debug, Default)]
pub(crate) struct Commands {
    /// Tags of the commands sent and not yet answered, oldest first.
    tags: VecDeque<Tag>,
    /// Answers not yet taken: replies, then (once the connection died) the failed tags.
    done: Vec<(Tag, Result<Reply, RespError>)>,
}

impl Mode for Commands {
    fn on_frame(&mut self, frame: Reply) -> Result<(), RespError> {
        let tag = self.tags.pop_front().ok_or(RespError::Unexpected)?;
        self.done.push((tag, Ok(frame)));
        Ok(())
    }

    fn on_dead(&mut self, why: RespError) {
        self.done
            .extend(self.tags.drain(..).map(|tag| (tag, Err(why))));
    }

    fn in_flight(&self) -> usize {
        self.tags.len()
    }
}

impl RespConn<Commands> {
    /// Queues a command (`args[0]` is its name) whose reply will come back with `tag`.
    /// It leaves with the next [`flush`](RespConn::flush). On a dead connection nothing is
    /// queued and the reason comes back at once.
    pub(crate) fn send(&mut self, tag: Tag, args: &[&[u8]]) -> Result<(), RespError> {
        self.queue(args)?;
        self.mode.tags.push_back(tag);
        Ok(())
    }

    /// Moves the answers that arrived into `out`, in the order the commands were sent.
    /// Every tag sent comes back exactly once: with its reply (a Redis error is a
    /// `Reply::Error`), or with why the connection died before it was answered.
    pub(crate) fn take_replies(&mut self, out: &mut Vec<(Tag, Result<Reply, RespError>)>) {
        out.append(&mut self.mode.done);
    }
}

/// One channel as this connection knows it.
#[derive(Debug, Default)]
pub(super) struct Sub {
    /// The owner's last word: subscribed (true) or unsubscribed.
    want: bool,
    /// SUBSCRIBE/UNSUBSCRIBE sent for it and not yet confirmed.
    acks_due: u32,
}

/// Pub/sub mode: SUBSCRIBE/UNSUBSCRIBE go out, confirmations and messages come in unasked.
#[derive(Debug, Default)]
pub(crate) struct PubSub {
    /// Channels wanted, or let go and still awaiting their last confirmation.
    pub(super) subs: HashMap<Bytes, Sub>,
    /// Confirmations due, over all channels.
    acks_due: usize,
    /// `(channel, payload)` of messages not yet taken.
    pub(super) messages: Vec<(Bytes, Bytes)>,
    /// Channels whose subscription took effect since the last `take_confirmed`.
    pub(super) confirmed: Vec<Bytes>,
    /// PINGs sent and not yet answered.
    pub(super) pings_due: usize,
    /// PONGs received, ever.
    pub(super) pongs: u64,
}

impl PubSub {
    /// Records the owner's wish for `channel`; true if a command must go out for it.
    pub(super) fn want(&mut self, channel: &[u8], on: bool) -> bool {
        if let Some(sub) = self.subs.get_mut(channel) {
            if sub.want == on {
                return false;
            }
            sub.want = on;
            sub.acks_due += 1;
        } else if on {
            let sub = Sub {
                want: true,
                acks_due: 1,
            };
            self.subs.insert(Bytes::copy_from_slice(channel), sub);
        } else {
            return false;
        }
        self.acks_due += 1;
        true
    }

    fn pong(&mut self) -> Result<(), RespError> {
        self.pings_due = self.pings_due.checked_sub(1).ok_or(RespError::Unexpected)?;
        self.pongs += 1;
        Ok(())
    }

    /// A (un)subscribe confirmation for `channel`.
    fn ack(&mut self, channel: Bytes, on: bool) -> Result<(), RespError> {
        // The commands sent for a channel alternate (each flips `want`), the last one
        // being `want`: so must their confirmations.
        let Some(sub) = (self.subs.get_mut(&channel[..]))
            .filter(|s| s.acks_due > 0 && on == (s.want ^ (s.acks_due % 2 == 0)))
        else {
            return Err(RespError::Unexpected);
        };
        sub.acks_due -= 1;
        self.acks_due -= 1;
        if sub.acks_due == 0 {
            // The last command sent for it is now in effect.
            if sub.want {
                self.confirmed.push(channel);
            } else {
                self.subs.remove(&channel[..]);
            }
        }
        Ok(())
    }
}

impl Mode for PubSub {
    fn on_frame(&mut self, frame: Reply) -> Result<(), RespError> {
        let items = match frame {
            Reply::Array(Some(items)) => items,
            // A PING answered before any subscription took effect.
            Reply::Simple(s) if s == "PONG" => return self.pong(),
            Reply::Error(text) => {
                log::warn!("redis refused a pub/sub command: {}", text.escape_ascii());
                return Err(RespError::Rejected);
            }
            _ => return Err(RespError::Unexpected),
        };
        let mut items = items.into_iter();
        let (Some(Reply::Bulk(Some(kind))), Some(Reply::Bulk(Some(channel))), third, None) =
            (items.next(), items.next(), items.next(), items.next())
        else {
            return Err(RespError::Unexpected);
        };
        match (&kind[..], third) {
            (b"message", Some(Reply::Bulk(Some(payload)))) => {
                // A channel let go may still bring messages until Redis confirms.
                if self.subs.get(&channel[..]).is_some_and(|s| s.want) {
                    self.messages.push((channel, payload));
                }
                Ok(())
            }
            (b"subscribe", Some(Reply::Integer(_))) => self.ack(channel, true),
            (b"unsubscribe", Some(Reply::Integer(_))) => self.ack(channel, false),
            (b"pong", None) => self.pong(),
            _ => Err(RespError::Unexpected),
        }
    }

    fn on_dead(&mut self, _why: RespError) {
        // Nothing is subscribed any more; the owner subscribes again on a new connection.
        self.subs.clear();
        self.acks_due = 0;
        self.pings_due = 0;
    }

    fn in_flight(&self) -> usize {
        self.acks_due + self.pings_due
    }
}

impl RespConn<PubSub> {
    /// Subscribes to `channel` (nothing to send if already asked for). Its messages come
    /// through [`take_messages`](Self::take_messages) once Redis confirms, which
    /// [`take_confirmed`](Self::take_confirmed) reports.
    pub(crate) fn subscribe(&mut self, channel: &[u8]) -> Result<(), RespError> {
        self.change(channel, true)
    }

    /// Unsubscribes from `channel`; its messages stop being delivered at once.
    pub(crate) fn unsubscribe(&mut self, channel: &[u8]) -> Result<(), RespError> {
        self.change(channel, false)
    }

    fn change(&mut self, channel: &[u8], on: bool) -> Result<(), RespError> {
        if let Some(why) = self.dead() {
            return Err(why);
        }
        if self.mode.want(channel, on) {
            let cmd: &[u8] = if on { b"SUBSCRIBE" } else { b"UNSUBSCRIBE" };
            self.queue(&[cmd, channel])?;
        }
        Ok(())
    }

    /// True once Redis has confirmed the last SUBSCRIBE for `channel` (and no UNSUBSCRIBE
    /// was asked since): from then on no message published to it is missed.
    pub(crate) fn subscribed(&self, channel: &[u8]) -> bool {
        self.mode
            .subs
            .get(channel)
            .is_some_and(|s| s.want && s.acks_due == 0)
    }

    /// Sends a PING, to find a silent peer: [`pongs`](Self::pongs) counts the answers.
    pub(crate) fn ping(&mut self) -> Result<(), RespError> {
        self.queue(&[b"PING"])?;
        self.mode.pings_due += 1;
        Ok(())
    }

    /// PINGs answered since the connection was made.
    pub(crate) fn pongs(&self) -> u64 {
        self.mode.pongs
    }

    /// Moves the `(channel, payload)` of the messages that arrived into `out`, in order.
    pub(crate) fn take_messages(&mut self, out: &mut Vec<(Bytes, Bytes)>) {
        out.append(&mut self.mode.messages);
    }

    /// Moves the channels whose subscription took effect since the last call into `out`.
    pub(crate) fn take_confirmed(&mut self, out: &mut Vec<Bytes>) {
        out.append(&mut self.mode.confirmed);
    }
}
