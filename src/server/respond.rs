//! Writing answers: queueing a whole response (its head only, for `HEAD`), JSON errors,
//! rejecting a request the connection cannot recover from, and flushing: closing once a
//! final answer is out (lingering first, so the client reads it rather than a reset),
//! dropping a stream that falls too far behind, resuming request handling once the
//! client has read enough. Touches no hub or engine state.

use bytes::Bytes;

use super::conn::{Conn, Phase};
use super::http_io::{pipeline_window, LINGER_MS};
use super::Server;
use crate::handle::Key;
use crate::http::request::Head;
use crate::http::response::{self, Cors};
use crate::http::HttpError;

impl Server {
    /// Answers a request the connection cannot recover from (bad framing, oversized
    /// parts), then closes it, lingering so the client reads the answer.
    pub(super) fn reject(&mut self, key: Key<Conn>, e: HttpError, cors: Cors) {
        let parts = response::error(e.status, e.message, false, self.cors.lines(cors), "");
        if let Some(conn) = self.conns.get_mut(key) {
            conn.head_request = false;
        }
        self.respond_then(key, e.status, parts, Phase::Closing { linger: true });
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
        self.respond_error_with(key, head.keep_alive, e, cors, extra);
    }

    /// `respond_error` for a request whose head is gone (answered later).
    pub(super) fn respond_error_with(
        &mut self,
        key: Key<Conn>,
        keep_alive: bool,
        e: HttpError,
        cors: Cors,
        extra: &str,
    ) {
        let lines = self.cors.lines(cors);
        let parts = response::error(e.status, e.message, keep_alive, lines, extra);
        self.respond(key, e.status, parts, keep_alive);
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
        self.respond_ok_with(key, head.keep_alive, cors, ctype, body);
    }

    /// `respond_ok` for a request whose head is gone (answered later).
    pub(super) fn respond_ok_with(
        &mut self,
        key: Key<Conn>,
        keep_alive: bool,
        cors: Cors,
        ctype: &str,
        body: Bytes,
    ) {
        let lines = self.cors.lines(cors);
        let h = response::head(200, ctype, body.len(), keep_alive, lines, "");
        self.respond(key, 200, [h, body], keep_alive);
    }

    /// Queues a whole response and moves the connection to its next phase.
    pub(super) fn respond<I: IntoIterator<Item = Bytes>>(
        &mut self,
        key: Key<Conn>,
        status: u16,
        parts: I,
        keep_alive: bool,
    ) {
        let next = if keep_alive {
            // `process_input` moves it on to Idle or the next request.
            Phase::Ready
        } else {
            Phase::Closing { linger: false }
        };
        self.respond_then(key, status, parts, next);
    }

    /// Queues a whole response (only its head, for a `HEAD` request) and moves the
    /// connection to `next`.
    fn respond_then<I: IntoIterator<Item = Bytes>>(
        &mut self,
        key: Key<Conn>,
        status: u16,
        parts: I,
        next: Phase,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        // Remembered for the access log.
        self.last_status = status;
        let head_only = std::mem::take(&mut conn.head_request);
        for (i, p) in parts.into_iter().enumerate() {
            if i > 0 && head_only {
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
        // A publisher's answer (any admin answer) goes out at the end of the turn, after
        // the subscribers it concerns; a public answer at once.
        if conn.admin {
            self.mark_late(key);
        } else {
            self.flush(key);
        }
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
            Err(_) => {
                self.stats.io_errors += 1;
                return self.close(key);
            }
        };
        self.stats.bytes_out += flushed.written as u64;
        if !conn.admin {
            self.stats.public_writes += u64::from(flushed.calls);
        }
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
