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
//!
//! Owns request framing and the fairness of turns; answers are written in `respond`,
//! requests served in `routes`/`handlers`. Touches no hub or engine state.

use bytes::Bytes;

use super::conn::{Conn, Phase, ReadOutcome};
use super::{Server, PUBLIC_REQUESTS_PER_TURN, REQUESTS_PER_TURN};
use crate::config::Config;
use crate::handle::Key;
use crate::http::request::{self, Status};
use crate::http::response::{self, Cors};
use crate::http::HttpError;
use crate::transport::Input;

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

/// Whether `conn` is a WebSocket with frames waiting to be handled.
fn ws_with_input(conn: &Conn) -> bool {
    matches!(&conn.phase, Phase::Streaming(st) if st.out.input() == Input::WebSocket)
        && !conn.rbuf().is_empty()
}

/// Largest body accepted on this listener (for the read buffer: a batch publish's).
fn body_limit(config: &Config, admin: bool) -> usize {
    if admin {
        max_batch_body(config)
    } else if config.demo {
        config.max_message
    } else {
        PUBLIC_MAX_BODY
    }
}

/// Largest body of a batch publish (`application/x-ndjson`): 1 MiB, or `--max-message`
/// if that is larger (each line's data is held to `--max-message`).
pub(super) fn max_batch_body(config: &Config) -> usize {
    config.max_message.max(1 << 20)
}

/// Largest body of this request.
fn request_body_limit(config: &Config, admin: bool, ndjson: bool) -> usize {
    match (admin, ndjson) {
        (true, true) => max_batch_body(config),
        (true, false) => config.max_message,
        (false, _) => body_limit(config, false),
    }
}

/// Unsent answers past which further pipelined requests wait.
pub(super) fn pipeline_window(config: &Config, admin: bool) -> usize {
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
    pub(super) fn read_more(&mut self, key: Key<Conn>) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        let limit = match &conn.phase {
            // The test-only echo socket takes messages of up to 16 MiB in one frame.
            Phase::Streaming(st) if st.out.is_echo() => {
                super::handlers::websocket::WS_ECHO_MAX_MESSAGE + 64 * 1024
            }
            _ => read_limit(&self.config, conn.admin),
        };
        loop {
            let outcome = conn.read_all(&mut self.scratch, limit);
            // Streams, and connections whose last answer is out or on its way, read
            // only to drop what arrives (so a client still sending gets to read).
            // What a stream's client sends is its transport's business.
            let discard = match &conn.phase {
                Phase::Streaming(st) => st.out.input() == Input::Discard,
                Phase::Closing { .. } | Phase::Lingering { .. } => true,
                _ => false,
            };
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
                    self.stats.io_errors += 1;
                    self.close(key);
                    return false;
                }
                ReadOutcome::Eof if ws_with_input(conn) => {
                    // A WebSocket that half-closed after its last frames (a close, a
                    // command): they are handled (a close is answered, and the socket
                    // closed once that is written), then it is gone.
                    conn.peer_closed = true;
                    self.ws_input(key);
                    if let Some(conn) = self.conns.get_mut(key) {
                        if matches!(conn.phase, Phase::Streaming(_)) {
                            self.close(key);
                        }
                    }
                    return false;
                }
                ReadOutcome::Eof => {
                    // A subscriber that hangs up is gone; otherwise finish what was
                    // asked, then close.
                    let gone = matches!(
                        conn.phase,
                        Phase::Parked(_) | Phase::Streaming(_) | Phase::Lingering { .. }
                    ) || !matches!(conn.phase, Phase::Waiting(_))
                        && conn.rbuf().is_empty()
                        && conn.wq_is_empty();
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
            let window = pipeline_window(&self.config, admin);
            match &conn.phase {
                // A WebSocket's frames are its input.
                Phase::Streaming(st) if st.out.input() == Input::WebSocket => {
                    return self.ws_input(key)
                }
                Phase::Parked(_)
                | Phase::Streaming(_)
                | Phase::Waiting(_)
                | Phase::Closing { .. } => return,
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
            if head.content_length > request_body_limit(&self.config, admin, head.ndjson) {
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

    /// Serves the connections that yielded last turn, oldest first, while this turn's
    /// budget of public requests lasts; the rest keep their place in the queue.
    pub(super) fn serve_deferred(&mut self) {
        let mut batch = std::mem::take(&mut self.deferred_input);
        while let Some(key) = batch.pop_front() {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if !conn.admin && self.turn_requests >= PUBLIC_REQUESTS_PER_TURN {
                batch.push_front(key);
                break;
            }
            conn.deferred = false;
            self.process_input(key);
            self.drain_pending_input();
        }
        // Those not served stay ahead of those that yielded this turn.
        batch.append(&mut self.deferred_input);
        self.deferred_input = batch;
    }

    /// Puts a connection that still has requests at the back of the queue for the next
    /// turn (once).
    pub(super) fn defer(&mut self, key: Key<Conn>) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.deferred {
                conn.deferred = true;
                self.deferred_input.push_back(key);
            }
        }
    }

    pub(super) fn drain_pending_input(&mut self) {
        while let Some(key) = self.pending_input.pop() {
            self.process_input(key);
        }
    }
}
