//! Request framing on a connection and the writing of responses: turns received bytes
//! into whole requests (head and body, keep-alive, pipelining, `100 Continue`, limits),
//! hands each to the router, and queues and flushes what handlers answer.
//!
//! Pipelined requests are handled one at a time, in order: while a long-poll is parked,
//! later requests wait in the read buffer; while more than a small window of answers is
//! unsent (4 KiB on the public listener, 64 KiB on the admin one), no further request is
//! handled. The read buffer is capped: once
//! it is full, reading stops and TCP back-pressure slows the client down until requests
//! are handled, so every pipelined request is answered and none is cut off. A connection
//! that uses up its turn yields to the others until the next loop turn.

use bytes::Bytes;

use super::conn::{Conn, Phase, ReadOutcome};
use super::{Server, PUBLIC_REQUESTS_PER_TURN, REQUESTS_PER_TURN};
use crate::config::Config;
use crate::handle::Key;
use crate::http::request::{self, Head, Status};
use crate::http::response::{self, Cors};
use crate::http::HttpError;

/// Spare room in an admin connection's read buffer beyond one maximal request, for
/// pipelined publishes.
const ADMIN_READ_SLACK: usize = 64 * 1024;
/// Most body a public request may carry: public endpoints take none (`/demo/pub`, with
/// `--demo`, takes up to `--max-message`).
pub(super) const PUBLIC_MAX_BODY: usize = 4096;
/// Spare room in a public connection's read buffer beyond one maximal request.
const PUBLIC_READ_SLACK: usize = 4096;
/// Unsent answers past which a public connection's further requests wait until it
/// reads: what a client that pipelines and never reads can make us hold (besides its
/// read buffer).
const PUBLIC_PIPELINE_WINDOW: usize = 4 * 1024;
/// The same for the admin listener, whose publishers may pipeline deeper.
const ADMIN_PIPELINE_WINDOW: usize = 64 * 1024;
/// How long a connection closed after an error keeps reading (and dropping) what its
/// client still sends, so the client reads our answer rather than a reset.
pub(super) const LINGER_MS: u64 = 5_000;

/// Largest body accepted on this listener.
fn body_limit(config: &Config, admin: bool) -> usize {
    if admin || config.demo {
        config.max_message
    } else {
        PUBLIC_MAX_BODY
    }
}

/// Unsent answers past which further pipelined requests wait.
fn pipeline_window(config: &Config, admin: bool) -> usize {
    let w = if admin {
        ADMIN_PIPELINE_WINDOW
    } else {
        PUBLIC_PIPELINE_WINDOW
    };
    w.min(config.max_pending_bytes)
}

/// Most unhandled bytes a connection may have buffered.
fn read_limit(config: &Config, admin: bool) -> usize {
    let slack = if admin {
        ADMIN_READ_SLACK
    } else {
        PUBLIC_READ_SLACK
    };
    config.max_header_bytes + body_limit(config, admin) + slack
}

impl Server {
    /// Reads what the socket has, within the buffer limit. Returns false if the
    /// connection is gone (or now only finishing what it was asked).
    fn read_more(&mut self, key: Key<Conn>) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let limit = read_limit(&self.config, conn.admin);
        loop {
            let outcome = conn.read_all(&mut self.scratch, limit);
            // Streams, and connections whose last answer is out or on its way, read
            // only to drop what arrives (so a client still sending gets to read).
            let discard = matches!(
                conn.phase,
                Phase::Streaming(_) | Phase::Closing { .. } | Phase::Lingering { .. }
            );
            if discard {
                if !conn.rbuf().is_empty() {
                    if let Phase::Closing { linger } = &mut conn.phase {
                        // The client is still sending: let it read our answer.
                        *linger = true;
                    }
                }
                conn.clear_input();
            }
            match outcome {
                ReadOutcome::Full if discard => continue,
                ReadOutcome::Open | ReadOutcome::Full => return true,
                ReadOutcome::Failed => {
                    self.close(key);
                    return false;
                }
                ReadOutcome::Eof => {
                    // A subscriber that hangs up is gone; otherwise finish what was
                    // asked, then close.
                    let gone = matches!(
                        conn.phase,
                        Phase::Parked(_) | Phase::Streaming(_) | Phase::Lingering { .. }
                    ) || conn.rbuf().is_empty() && conn.wq_is_empty();
                    if gone {
                        self.close(key);
                        return false;
                    }
                    conn.peer_closed = true;
                    return true;
                }
            }
        }
    }

    /// Handles a readable event: reads what arrived, then handles whole requests.
    pub(super) fn read(&mut self, key: Key<Conn>) {
        if self.read_more(key) {
            self.process_input(key);
        }
        self.debug_check_timer(key);
    }

    /// Handles buffered requests until one parks, the buffer holds no whole request, too
    /// many response bytes wait, or the connection has had its turn. Always leaves the
    /// connection with its timer armed for the phase it ends in.
    pub(super) fn process_input(&mut self, key: Key<Conn>) {
        let max_header = self.config.max_header_bytes;
        let mut handled = 0;
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let admin = conn.admin;
            let body_limit = body_limit(&self.config, admin);
            let window = pipeline_window(&self.config, admin);
            match conn.phase {
                Phase::Parked(_) | Phase::Streaming(_) | Phase::Closing { .. } => return,
                Phase::Lingering { .. } => {
                    conn.clear_input();
                    return;
                }
                Phase::Head { .. } | Phase::Idle { .. } | Phase::Ready => {}
            }
            if conn.rbuf().is_empty() {
                if conn.read_paused {
                    if !self.read_more(key) {
                        return;
                    }
                    continue;
                }
                conn.shrink();
                if conn.peer_closed {
                    return self.finish(key);
                }
                if matches!(conn.phase, Phase::Ready) {
                    conn.phase = Phase::Idle { since: self.now.ms };
                }
                return self.arm(key);
            }
            let head = match request::parse(conn.rbuf(), max_header) {
                Ok(Status::Complete(head)) => head,
                Ok(Status::Partial) => {
                    if conn.read_paused {
                        if !self.read_more(key) {
                            return;
                        }
                        continue;
                    }
                    return self.await_rest_of_request(key);
                }
                Err(e) => return self.reject(key, e, Cors::Omit),
            };
            let cors = self.cors.decide(head.origin.as_deref());
            if head.content_length > body_limit {
                return self.reject(key, HttpError::new(413, "body too large"), cors);
            }
            let total = head.len + head.content_length;
            if conn.rbuf().len() < total {
                if head.expect_continue && !conn.continue_sent {
                    conn.continue_sent = true;
                    conn.queue(Bytes::from_static(response::CONTINUE));
                    self.flush(key);
                }
                let Some(conn) = self.conns.get_mut(key) else {
                    return;
                };
                if conn.read_paused {
                    if !self.read_more(key) {
                        return;
                    }
                    continue;
                }
                return self.await_rest_of_request(key);
            }
            // A whole request is here: no header clock any more, whatever it waits for.
            conn.phase = Phase::Ready;
            if conn.pending() > window {
                // Resumed by `flush` once the client has read enough; meanwhile the
                // stall clock watches the output.
                return self.arm(key);
            }
            let turn_over = !admin && self.turn_requests >= PUBLIC_REQUESTS_PER_TURN;
            if handled == REQUESTS_PER_TURN || turn_over {
                // Give the other connections their turn; continue after the next poll.
                self.arm(key);
                return self.defer(key);
            }
            handled += 1;
            if !admin {
                self.turn_requests += 1;
            }
            let body = Bytes::copy_from_slice(&conn.rbuf()[head.len..total]);
            conn.consume(total);
            conn.continue_sent = false;
            conn.head_request = head.method == request::Method::Head;
            self.route(key, head, body, cors);
        }
    }

    /// Part of a request has arrived (or none, on a fresh connection): the header timer
    /// (which also bounds the body) runs from the first byte and is not restarted as more
    /// trickles in. A client that has half-closed will not send the rest.
    fn await_rest_of_request(&mut self, key: Key<Conn>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.peer_closed {
            return self.close(key);
        }
        if !matches!(conn.phase, Phase::Head { .. }) {
            conn.phase = Phase::Head { since: self.now.ms };
        }
        self.arm(key);
    }

    /// The peer has half-closed and everything it asked is answered: close once written.
    fn finish(&mut self, key: Key<Conn>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.phase = Phase::Closing { linger: false };
        if conn.wq_is_empty() {
            self.close(key);
        } else {
            self.arm(key);
        }
    }

    /// Answers a request the connection cannot recover from (bad framing, oversized
    /// parts), then closes it, lingering so the client reads the answer.
    pub(super) fn reject(&mut self, key: Key<Conn>, e: HttpError, cors: Cors) {
        let parts = response::error(e.status, e.message, false, self.cors.lines(cors), "");
        if let Some(conn) = self.conns.get_mut(key) {
            conn.head_request = false;
        }
        self.respond_then(key, parts, Phase::Closing { linger: true });
    }

    /// Answers with a JSON error, keeping the connection if the request allowed it.
    pub(super) fn respond_error(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        e: HttpError,
        cors: Cors,
        extra: &str,
    ) {
        let parts = response::error(
            e.status,
            e.message,
            head.keep_alive,
            self.cors.lines(cors),
            extra,
        );
        self.respond(key, parts, head.keep_alive);
    }

    /// Answers 200 with `body` of type `ctype`.
    pub(super) fn respond_ok(
        &mut self,
        key: Key<Conn>,
        head: &Head,
        cors: Cors,
        ctype: &str,
        body: Bytes,
    ) {
        let h = response::head(
            200,
            ctype,
            body.len(),
            head.keep_alive,
            self.cors.lines(cors),
            "",
        );
        self.respond(key, [h, body], head.keep_alive);
    }

    /// Queues a whole response and moves the connection to its next phase.
    pub(super) fn respond<I: IntoIterator<Item = Bytes>>(
        &mut self,
        key: Key<Conn>,
        parts: I,
        keep_alive: bool,
    ) {
        let next = if keep_alive {
            // `process_input` moves it on to Idle or the next request.
            Phase::Ready
        } else {
            Phase::Closing { linger: false }
        };
        self.respond_then(key, parts, next);
    }

    /// Queues a whole response (only its head, for a `HEAD` request) and moves the
    /// connection to `next`.
    fn respond_then<I: IntoIterator<Item = Bytes>>(
        &mut self,
        key: Key<Conn>,
        parts: I,
        next: Phase,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let head_only = std::mem::take(&mut conn.head_request);
        for (i, p) in parts.into_iter().enumerate() {
            if i == 0 {
                // "HTTP/1.1 NNN ...": remembered for the access log.
                self.last_status = p
                    .get(9..12)
                    .and_then(|d| std::str::from_utf8(d).ok()?.parse().ok())
                    .unwrap_or(0);
            } else if head_only {
                break;
            }
            conn.queue(p);
        }
        // A client that has half-closed still gets an answer to every request it sent:
        // `process_input` closes once none is left.
        conn.phase = match next {
            // Pipelined requests after a `Connection: close` one are not answered; read
            // them out before closing, so the client sees the answer, not a reset.
            Phase::Closing { linger: false } if !conn.rbuf().is_empty() => {
                Phase::Closing { linger: true }
            }
            other => other,
        };
        self.flush(key);
    }

    /// Writes what is queued. Closes the connection on error, once a final response is
    /// out (or lingers first), or when a stream has fallen more than
    /// `--max-pending-bytes` behind; resumes request handling once back-pressure clears.
    pub(super) fn flush(&mut self, key: Key<Conn>) {
        let max_pending = self.config.max_pending_bytes;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let window = pipeline_window(&self.config, conn.admin);
        let before = conn.pending();
        let flushed = match conn.flush(self.now.ms) {
            Ok(f) => f,
            Err(_) => return self.close(key),
        };
        self.stats.bytes_out += flushed.written as u64;
        let pending = conn.pending();
        if pending == 0 {
            conn.shrink();
        }
        match conn.phase {
            Phase::Closing { linger } if pending == 0 => return self.finish_closing(key, linger),
            Phase::Streaming(_) if conn.pending_beyond_grace() > max_pending => {
                return self.drop_slow_consumer(key)
            }
            Phase::Idle { .. } if pending == 0 && before > 0 => {
                // The idle clock starts once the last answer is out.
                conn.phase = Phase::Idle { since: self.now.ms };
                return self.arm(key);
            }
            _ => {}
        }
        if before > window && pending <= window && !conn.rbuf().is_empty() {
            self.pending_input.push(key);
        }
        // Output started waiting (the stall clock runs), or drained (a stream's
        // heartbeat clock runs again): either may want an earlier deadline.
        if flushed.started_waiting || pending == 0 && before > 0 {
            self.tighten(key);
        }
    }

    /// The final response is written: close, or first shut our side and read what the
    /// client still sends (for at most `LINGER_MS`), so it sees our answer, not a reset.
    fn finish_closing(&mut self, key: Key<Conn>, linger: bool) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !linger || conn.peer_closed {
            return self.close(key);
        }
        let _ = conn.sock.shutdown(std::net::Shutdown::Write);
        conn.clear_input();
        conn.shrink();
        conn.phase = Phase::Lingering {
            until: self.now.ms + LINGER_MS,
        };
        self.arm(key);
        // What the client sent meanwhile is read (and dropped) now: the socket will not
        // signal it again.
        self.read_more(key);
    }
}
