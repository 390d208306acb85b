//! A connection's life from its mio events, for [`Flood`]: completing the connect (and
//! queueing a park's poll or a pipeline's first requests), writing request bytes (hog
//! bursts one chunk per turn, continued from the queue by `pump_hogs`), reading and
//! framing answers, and keeping `--pipeline` requests in flight. A failure closes the
//! connection through the parent's `close`/`io_failure` and bumps a counter; the pools,
//! the connect budget and the timers are the parent's, and nothing here ends the run.

use std::io::{self, Read, Write};
use std::time::Instant;

use super::{End, Flood, HOG_CHUNK};
use crate::flood::config::{HOG, PARK, RESET, SESSION};
use crate::flood::wire::{count_resets, parse_response, poll_request};

impl Flood<'_> {
    /// Serves one mio event for the connection in `slot` (a stale one does nothing).
    pub(in crate::flood) fn handle(&mut self, slot: usize, ev: &mio::event::Event, now: Instant) {
        let Some(conn) = self.slots.get_mut(slot).and_then(|c| c.as_mut()) else {
            return;
        };
        let k = conn.kind;
        if conn.connecting {
            let err = match conn.sock.take_error() {
                Ok(Some(e)) | Err(e) => Some(e),
                Ok(None) => None,
            };
            let err = err.or_else(|| {
                conn.sock
                    .peer_addr()
                    .err()
                    .filter(|_| ev.is_error() || ev.is_read_closed() || ev.is_write_closed())
            });
            if let Some(e) = err {
                self.c[k].connect_errors += 1;
                self.count_error(&e);
                self.close(slot, End::Quiet);
                return;
            }
            if conn.sock.peer_addr().is_err() {
                return; // Not yet.
            }
            conn.connecting = false;
            conn.last_progress = now;
            self.c[k].connected += 1;
            match k {
                PARK => {
                    poll_request(
                        &mut conn.out,
                        &mut self.rng,
                        self.cfg.channels_per_poll,
                        self.cfg.name_len,
                        false,
                    );
                    conn.in_flight = 1;
                    self.c[k].requests += 1;
                    self.park_q
                        .push_back((now + self.cfg.park_hold, slot, self.gens[slot]));
                }
                RESET | SESSION => self.top_up(slot),
                _ => {}
            }
            self.write(slot);
            return self.after_write(slot, ev, now);
        }
        if ev.is_writable() {
            self.write(slot);
        }
        self.after_write(slot, ev, now);
    }

    fn after_write(&mut self, slot: usize, ev: &mio::event::Event, now: Instant) {
        let Some(conn) = self.slots[slot].as_ref() else {
            return;
        };
        if conn.kind == HOG {
            // Never read: only notice the server ending the connection.
            if ev.is_error() {
                let e = conn
                    .sock
                    .take_error()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionReset));
                self.io_failure(slot, &e);
            } else if ev.is_read_closed() {
                self.close(slot, End::ServerClosed);
            }
            return;
        }
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.read(slot, now);
        }
    }

    /// reset, session: queues requests until `--pipeline` are in flight.
    fn top_up(&mut self, slot: usize) {
        let Some(conn) = self.slots[slot].as_mut() else {
            return;
        };
        let k = conn.kind;
        let channels = if k == RESET {
            self.cfg.channels_per_poll
        } else {
            1
        };
        if conn.out_pos == conn.out.len() {
            conn.out.clear();
            conn.out_pos = 0;
        }
        while conn.in_flight < self.cfg.pipeline as u64 {
            poll_request(
                &mut conn.out,
                &mut self.rng,
                channels,
                self.cfg.name_len,
                true,
            );
            conn.in_flight += 1;
            self.c[k].requests += 1;
        }
    }

    fn write(&mut self, slot: usize) {
        let Some(conn) = self.slots[slot].as_mut() else {
            return;
        };
        if conn.connecting {
            return;
        }
        let k = conn.kind;
        loop {
            let pending: &[u8] = if k == HOG {
                // One chunk per turn, so that no burst holds up the loop (on loopback the
                // receiving side's work is done in the sender's system call).
                if conn.queued {
                    return;
                }
                let end = self.hog_burst.len().min(conn.written + HOG_CHUNK);
                &self.hog_burst[conn.written..end]
            } else {
                &conn.out[conn.out_pos..]
            };
            if pending.is_empty() {
                return;
            }
            match conn.sock.write(pending) {
                Ok(0) => return,
                Ok(n) => {
                    self.c[k].bytes_sent += n as u64;
                    if k == HOG {
                        let before = conn.written / self.hog_req_len;
                        conn.written += n;
                        self.c[k].requests += (conn.written / self.hog_req_len - before) as u64;
                        if conn.written == self.hog_burst.len() {
                            self.c[k].bursts_completed += 1;
                        } else {
                            conn.queued = true;
                            self.hog_q.push_back((slot, self.gens[slot]));
                        }
                        return;
                    } else {
                        conn.out_pos += n;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !conn.blocked_once {
                        conn.blocked_once = true;
                        self.c[k].write_blocked += 1;
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.io_failure(slot, &e),
            }
        }
    }

    fn read(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.slots[slot].as_mut() else {
            return;
        };
        let k = conn.kind;
        let mut eof = false;
        let mut failure = None;
        loop {
            match conn.sock.read(&mut self.scratch) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    conn.inbuf.extend_from_slice(&self.scratch[..n]);
                    self.c[k].bytes_received += n as u64;
                    conn.last_progress = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut at = 0;
        let mut answered = 0u64;
        let mut close_after = false;
        let mut broken = false;
        while at < conn.inbuf.len() {
            match parse_response(&conn.inbuf[at..], eof || failure.is_some()) {
                Ok(Some(r)) => {
                    let c = &mut self.c[k];
                    c.answers += 1;
                    *c.status.entry(r.status).or_default() += 1;
                    c.reset_events += count_resets(&conn.inbuf[at + r.body_start..at + r.len]);
                    if r.session {
                        c.sessions += 1;
                    }
                    answered += 1;
                    at += r.len;
                    if r.close {
                        close_after = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        conn.inbuf.drain(..at);
        conn.in_flight = conn.in_flight.saturating_sub(answered);
        if broken || conn.inbuf.len() > 64 << 20 {
            self.c[k].protocol_errors += 1;
            return self.close(slot, End::Quiet);
        }
        if let Some(e) = failure {
            return self.io_failure(slot, &e);
        }
        if eof {
            return self.close(slot, End::ServerClosed);
        }
        if close_after {
            // The server said it closes: count it as a close by the server.
            return self.close(slot, End::ServerClosed);
        }
        if k == PARK {
            if answered > 0 {
                // Answered before the hold ended (noop, 503, 400…): replace it.
                self.close(slot, End::Quiet);
            }
            return;
        }
        if answered > 0 {
            self.top_up(slot);
            self.write(slot);
        }
    }

    /// Continues queued hog bursts, one chunk each, up to `budget` chunks.
    pub(in crate::flood) fn pump_hogs(&mut self, budget: usize) {
        for _ in 0..budget {
            let Some((slot, gen)) = self.hog_q.pop_front() else {
                return;
            };
            if self.gens[slot] != gen {
                continue;
            }
            if let Some(c) = self.slots[slot].as_mut() {
                c.queued = false;
                self.write(slot);
            }
        }
    }
}
