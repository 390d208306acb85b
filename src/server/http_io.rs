//! Request framing on a connection and the writing of responses: turns received bytes
//! into whole requests (head and body, keep-alive, pipelining, `100 Continue`, limits),
//! hands each to the router, and queues and flushes what handlers answer.
//!
//! Pipelined requests are handled one at a time, in order: while a long-poll is parked,
//! later requests wait in the read buffer; while more than `--max-pending-bytes` of
//! responses are unsent, no further request is handled.

use bytes::Bytes;

use super::conn::{Phase, ReadOutcome};
use super::Server;
use crate::handle::Key;
use crate::http::request::{self, Head, Status};
use crate::http::response::{self, Cors};
use crate::http::HttpError;

/// Spare room in the read buffer beyond one maximal request, for pipelining.
const READ_SLACK: usize = 64 * 1024;

impl Server {
    /// Most unhandled bytes a connection may have buffered.
    fn read_limit(&self) -> usize {
        self.config.max_header_bytes + self.config.max_message + READ_SLACK
    }

    /// Handles a readable event: reads what arrived, then handles whole requests.
    pub(super) fn read(&mut self, key: Key) {
        let limit = self.read_limit();
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match conn.read_all(&mut self.scratch, limit) {
            ReadOutcome::Open => {}
            ReadOutcome::Failed => return self.close(key),
            ReadOutcome::Overflow => {
                log::debug!("connection sent more than {limit} unhandled bytes; closing");
                return self.close(key);
            }
            ReadOutcome::Eof => {
                // A parked poll whose client went away is over; otherwise finish what was
                // asked, then close.
                if matches!(conn.phase, Phase::Parked(_))
                    || conn.rbuf().is_empty() && conn.wq_is_empty()
                {
                    return self.close(key);
                }
                conn.peer_closed = true;
            }
        }
        self.process_input(key);
    }

    /// Handles buffered requests until one parks, the buffer holds no whole request, or
    /// too many response bytes wait.
    pub(super) fn process_input(&mut self, key: Key) {
        loop {
            let max_header = self.config.max_header_bytes;
            let max_body = self.config.max_message;
            let max_pending = self.config.max_pending_bytes;
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            match conn.phase {
                Phase::Parked(_) | Phase::Closing => return,
                // A stream's client has nothing more to say; what it sends is dropped.
                Phase::Streaming(_) => {
                    conn.clear_input();
                    conn.shrink();
                    return;
                }
                Phase::Head | Phase::Idle => {}
            }
            if conn.pending() > max_pending {
                // Resumed by `flush` once the client has read enough.
                return;
            }
            if conn.rbuf().is_empty() {
                conn.shrink();
                if conn.peer_closed {
                    return self.finish(key);
                }
                if !matches!(conn.phase, Phase::Idle) {
                    conn.phase = Phase::Idle;
                    self.set_conn_timer(key, self.config.idle_timeout);
                }
                return;
            }
            let head = match request::parse(conn.rbuf(), max_header) {
                Ok(Status::Complete(head)) => head,
                Ok(Status::Partial) => {
                    if conn.peer_closed {
                        return self.close(key);
                    }
                    self.await_rest_of_request(key);
                    return;
                }
                Err(e) => return self.reject(key, e, &Cors::Omit),
            };
            let cors = Cors::decide(&self.config.allow_origin, head.origin.as_deref());
            if head.content_length > max_body {
                return self.reject(key, HttpError::new(413, "body too large"), &cors);
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
                if conn.peer_closed {
                    return self.close(key);
                }
                self.await_rest_of_request(key);
                return;
            }
            let body = Bytes::copy_from_slice(&conn.rbuf()[head.len..total]);
            conn.consume(total);
            conn.continue_sent = false;
            conn.phase = Phase::Head;
            if let Some(t) = conn.timer.take() {
                self.wheel.cancel(t);
            }
            self.route(key, head, body, cors);
        }
    }

    /// Part of a request has arrived: the header timer (which also bounds the body)
    /// runs from the first byte and is not restarted as more trickles in.
    fn await_rest_of_request(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if matches!(conn.phase, Phase::Idle) || conn.timer.is_none() {
            conn.phase = Phase::Head;
            self.set_conn_timer(key, self.config.header_timeout);
        }
    }

    /// The peer has half-closed and everything it asked is answered: close once written.
    fn finish(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.phase = Phase::Closing;
        if conn.wq_is_empty() {
            self.close(key);
        }
    }

    /// Answers a request the connection cannot recover from (bad framing, oversized
    /// parts), then closes it.
    pub(super) fn reject(&mut self, key: Key, e: HttpError, cors: &Cors) {
        let parts = response::error(e.status, e.message, false, cors, "");
        self.respond(key, parts, false);
    }

    /// Answers with a JSON error, keeping the connection if the request allowed it.
    pub(super) fn respond_error(
        &mut self,
        key: Key,
        head: &Head,
        e: HttpError,
        cors: &Cors,
        extra: &str,
    ) {
        let parts = response::error(e.status, e.message, head.keep_alive, cors, extra);
        self.respond(key, parts, head.keep_alive);
    }

    /// Queues a whole response and moves the connection to its next phase.
    pub(super) fn respond<I: IntoIterator<Item = Bytes>>(
        &mut self,
        key: Key,
        parts: I,
        keep_alive: bool,
    ) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut first = true;
        for p in parts {
            if first {
                // "HTTP/1.1 NNN ...": remembered for the access log.
                self.last_status = p
                    .get(9..12)
                    .and_then(|d| std::str::from_utf8(d).ok()?.parse().ok())
                    .unwrap_or(0);
                first = false;
            }
            conn.queue(p);
        }
        if keep_alive && !conn.peer_closed {
            // `process_input` moves it on to Idle or the next request.
            conn.phase = Phase::Head;
        } else {
            conn.phase = Phase::Closing;
            self.set_conn_timer(key, self.config.idle_timeout);
        }
        self.flush(key);
    }

    /// Writes what is queued; closes the connection on error or once a final response is
    /// out; resumes request handling once back-pressure clears.
    pub(super) fn flush(&mut self, key: Key) {
        let max_pending = self.config.max_pending_bytes;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let before = conn.pending();
        match conn.flush() {
            Ok(n) => self.stats.bytes_out += n as u64,
            Err(_) => return self.close(key),
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let drained = conn.wq_is_empty();
        if drained && matches!(conn.phase, Phase::Closing) {
            return self.close(key);
        }
        if before > max_pending && conn.pending() <= max_pending && !conn.rbuf().is_empty() {
            self.pending_input.push(key);
        }
        if drained {
            conn.shrink();
        }
    }
}
