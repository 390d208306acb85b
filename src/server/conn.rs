//! One client connection: its socket, what it has sent that is not yet handled, the
//! responses queued for it, its single timer, and its phase.
//!
//! Reading and writing follow mio's readiness rules: both drain until `WouldBlock`
//! (edge-triggered), `Interrupted` is retried, and any other error means the connection
//! is done. The queue holds `Bytes` that may be shared with thousands of other
//! connections; writes are vectored straight from it.
//!
//! Owns one connection's socket and buffers; knows nothing of channels, the hub or the
//! wheel (its timer key is only stored here).

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};

use bytes::{Buf, Bytes};
use mio::net::TcpStream;

use crate::http::response::Cors;
use crate::hub::Follower;
use crate::timer::TimerKey;
use crate::transport::StreamOut;

/// How many queued buffers one `writev` takes at most (a turn's coalesced messages go
/// in one call: 100 messages of a batch are 100 to 200 buffers; Linux takes 1,024).
const MAX_IOVECS: usize = 512;

/// A streaming response in progress (`/stream`, `/iframe`, `/events`).
#[derive(Debug)]
pub struct Stream {
    /// Its client id and channels, each with its cursor (the hub's view).
    pub follower: Follower,
    /// How its events become bytes.
    pub out: StreamOut,
    /// When it ends with `reconnect` (reactor ms): `--stream-max-age` after it started,
    /// or earlier when a subscriber token it used expires.
    pub end_ms: u64,
    /// When it last sent anything (reactor ms), for heartbeats.
    pub last_write_ms: u64,
}

impl Stream {
    /// Something was queued on the stream at `now`: an HTTP stream's heartbeat waits a
    /// whole `--heartbeat` from here. A WebSocket's pings keep their own clock (they
    /// also check that the peer is alive, so they go out even while messages flow).
    pub fn wrote(&mut self, now: u64) {
        if !self.out.pings_on_schedule() {
            self.last_write_ms = now;
        }
    }
}

/// A long-poll waiting for a message: everything needed to answer it later.
#[derive(Debug)]
pub struct Parked {
    /// Its client id (sent back in `X-Comet-Client`) and the channels it waits on.
    pub follower: Follower,
    /// JSONP callback, if any.
    pub cb: Option<Box<str>>,
    /// When it is answered with `noop` (reactor ms).
    pub deadline: u64,
    /// When the subscriber tokens its session holds expire (Unix seconds; `u64::MAX`
    /// without `--auth-secret`): the session goes with the poll when it is answered.
    pub auth_expires: u64,
    /// CORS answer decided when the request arrived.
    pub cors: Cors,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
}

/// Where a connection is in its life. Every phase has a deadline (or, for `Ready` and
/// `Closing`, only the unsent-output one), so every connection always has a timer.
#[derive(Debug)]
pub enum Phase {
    /// Waiting for the rest of a request whose first bytes (or whose connection) arrived
    /// at `since` (reactor ms); `--header-timeout` runs from then and bounds the body too.
    Head {
        /// When the request started.
        since: u64,
    },
    /// Between requests on a keep-alive connection, since `since`; `--idle-timeout`
    /// runs from then (once the last answer is written).
    Idle {
        /// When the connection became idle.
        since: u64,
    },
    /// A request was just answered; what comes next is decided from the input. Stays
    /// so while pipelined requests wait for the client to read its answers.
    Ready,
    /// A long-poll waits for a message; the poll timer runs.
    Parked(Parked),
    /// A streaming response is open; the timer is its heartbeat or its end of life.
    Streaming(Stream),
    /// An admin request waits for the engine's answer (requests pipelined behind it
    /// wait too); the timer is `--engine-timeout`.
    Waiting(Box<super::waiting::Waiting>),
    /// The last response is queued; close once it is written (then linger, with
    /// `linger`, for a client that may still be sending).
    Closing {
        /// Drain the client's input for a while before closing, so it reads our answer
        /// instead of a reset (after 413 and other errors that cut a request short).
        linger: bool,
    },
    /// The answer is written and our side shut down; what the client still sends is
    /// read and dropped until it closes, or until `until` (reactor ms).
    Lingering {
        /// When to close anyway.
        until: u64,
    },
}

/// A connection's buffers.
struct Io {
    /// Received bytes; those before `rpos` are handled.
    rbuf: Vec<u8>,
    /// Handled bytes at the front of `rbuf` (dropped in bulk, not per request).
    rpos: usize,
    /// Responses not yet written, in order.
    wq: VecDeque<Bytes>,
    /// Bytes in `wq`.
    pending: usize,
    /// When the output last moved or started waiting (reactor ms); `NOT_FLUSHED` from
    /// the moment it became non-empty until the flush that follows.
    out_since: u64,
    /// Queued bytes that do not count against the slow-consumer limit: a stream's
    /// catch-up (shared with the channel's buffer, not copied), until the queue drains.
    grace: usize,
}

const NOT_FLUSHED: u64 = u64::MAX;

impl Default for Io {
    fn default() -> Self {
        Io {
            rbuf: Vec::new(),
            rpos: 0,
            wq: VecDeque::new(),
            pending: 0,
            out_since: NOT_FLUSHED,
            grace: 0,
        }
    }
}

/// A client connection.
pub struct Conn {
    /// The socket.
    pub sock: TcpStream,
    /// The phase; decides what its timer means when it fires.
    pub phase: Phase,
    /// Input and output buffers, allocated while in use and freed when both are empty,
    /// so an idle connection (a parked poll, a quiet stream) holds none.
    io: Option<Box<Io>>,
    /// The one timer this connection has at a time (its meaning comes from `phase`).
    pub timer: Option<TimerKey>,
    /// Accepted on the admin listener.
    pub admin: bool,
    /// `100 Continue` was sent for the request being received.
    pub continue_sent: bool,
    /// The peer closed its sending side; finish what was asked, then close.
    pub peer_closed: bool,
    /// Reading stopped at the input limit: the socket may hold more than we read.
    pub read_paused: bool,
    /// The request being answered is a `HEAD`: its answer goes without a body.
    pub head_request: bool,
    /// Queued for the next loop turn, having used up its share of this one.
    pub deferred: bool,
    /// Has output queued for the write at the end of this loop turn
    /// (`Server::write_turn`).
    pub dirty: bool,
}

/// One `writev` of the front of `wq` (at most `N` buffers).
fn writev_front<const N: usize>(sock: &mut TcpStream, wq: &VecDeque<Bytes>) -> io::Result<usize> {
    let mut iov = [IoSlice::new(&[]); N];
    let n = wq.len().min(N);
    for (slot, b) in iov.iter_mut().zip(wq.iter()) {
        *slot = IoSlice::new(b);
    }
    sock.write_vectored(&iov[..n])
}

/// What a read pass found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Drained to `WouldBlock`.
    Open,
    /// The peer sent FIN.
    Eof,
    /// The socket failed (reset etc.).
    Failed,
    /// The input buffer holds `limit` unhandled bytes: reading stops (TCP back-pressure
    /// slows the client) until requests are handled.
    Full,
}

/// What a flush did.
#[derive(Debug, Clone, Copy)]
pub struct Flushed {
    /// Bytes written.
    pub written: usize,
    /// Write system calls made.
    pub calls: u32,
    /// Output that was queued since the last flush could not all be written: its
    /// no-progress clock starts now.
    pub started_waiting: bool,
}

impl Conn {
    /// A freshly accepted connection, waiting for its first request since `now`.
    pub fn new(sock: TcpStream, admin: bool, now: u64) -> Conn {
        Conn {
            sock,
            phase: Phase::Head { since: now },
            io: None,
            timer: None,
            admin,
            continue_sent: false,
            peer_closed: false,
            read_paused: false,
            head_request: false,
            deferred: false,
            dirty: false,
        }
    }

    fn io_mut(&mut self) -> &mut Io {
        self.io.get_or_insert_with(Default::default)
    }

    /// Received bytes not yet handled.
    pub fn rbuf(&self) -> &[u8] {
        self.io.as_ref().map_or(&[], |io| &io.rbuf[io.rpos..])
    }

    /// Drops the first `n` unhandled bytes (a handled request).
    pub fn consume(&mut self, n: usize) {
        if let Some(io) = &mut self.io {
            io.rpos = (io.rpos + n).min(io.rbuf.len());
            if io.rpos == io.rbuf.len() {
                io.rbuf.clear();
                io.rpos = 0;
            }
        }
    }

    /// Drops all received bytes.
    pub fn clear_input(&mut self) {
        if let Some(io) = &mut self.io {
            io.rbuf.clear();
            io.rpos = 0;
        }
    }

    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.io.as_ref().map_or(0, |io| io.pending)
    }

    /// True when nothing waits to be written.
    pub fn wq_is_empty(&self) -> bool {
        self.io.as_ref().is_none_or(|io| io.wq.is_empty())
    }

    /// Unsent bytes beyond the catch-up allowance (what the slow-consumer limit is
    /// checked against).
    pub fn pending_beyond_grace(&self) -> usize {
        self.io
            .as_ref()
            .map_or(0, |io| io.pending.saturating_sub(io.grace))
    }

    /// Lets the last `n` queued bytes (a catch-up) not count against the slow-consumer
    /// limit until the queue drains.
    pub fn add_grace(&mut self, n: usize) {
        if let Some(io) = &mut self.io {
            io.grace += n;
        }
    }

    /// Since when unsent output has not moved (reactor ms), if any is waiting.
    pub fn output_waiting_since(&self) -> Option<u64> {
        self.io
            .as_ref()
            .filter(|io| io.pending > 0 && io.out_since != NOT_FLUSHED)
            .map(|io| io.out_since)
    }

    /// Queues bytes to send.
    pub fn queue(&mut self, b: Bytes) {
        if !b.is_empty() {
            let io = self.io_mut();
            if io.pending == 0 {
                io.out_since = NOT_FLUSHED;
            }
            io.pending += b.len();
            io.wq.push_back(b);
        }
    }

    /// Reads until `WouldBlock`, appending what arrives through `scratch`, but never
    /// past `limit` unhandled bytes.
    pub fn read_all(&mut self, scratch: &mut [u8], limit: usize) -> ReadOutcome {
        self.read_paused = false;
        loop {
            let io = self.io_mut();
            if io.rpos > 0 {
                io.rbuf.drain(..io.rpos);
                io.rpos = 0;
            }
            let room = limit.saturating_sub(io.rbuf.len()).min(scratch.len());
            if room == 0 {
                self.read_paused = true;
                return ReadOutcome::Full;
            }
            match self.sock.read(&mut scratch[..room]) {
                Ok(0) => return ReadOutcome::Eof,
                Ok(n) => {
                    // Grow by doubling, but never past the limit.
                    let rbuf = &mut self.io_mut().rbuf;
                    if rbuf.capacity() < rbuf.len() + n {
                        let want = (rbuf.len() + n).max(rbuf.capacity() * 2).min(limit);
                        rbuf.reserve_exact(want - rbuf.len());
                    }
                    rbuf.extend_from_slice(&scratch[..n]);
                }
                // Drained: the next readable event will say when there is more.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Open,
                // A signal interrupted the call; nothing was read, try again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return ReadOutcome::Failed,
            }
        }
    }

    /// Writes queued bytes until the queue is empty or the socket would block. `now` is
    /// the reactor time, for the no-progress clock. `Err` means the connection is dead.
    pub fn flush(&mut self, now: u64) -> io::Result<Flushed> {
        let mut written = 0;
        let mut calls = 0;
        let Some(buf) = self.io.as_deref_mut() else {
            return Ok(Flushed {
                written: 0,
                calls: 0,
                started_waiting: false,
            });
        };
        let fresh = buf.out_since == NOT_FLUSHED;
        while !buf.wq.is_empty() {
            calls += 1;
            // The usual queue (a frame or a few) takes a small iovec array: filling the
            // large one would cost more than the frames.
            let wrote = if buf.wq.len() <= 8 {
                writev_front::<8>(&mut self.sock, &buf.wq)
            } else {
                writev_front::<MAX_IOVECS>(&mut self.sock, &buf.wq)
            };
            match wrote {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    written += n;
                    buf.pending -= n;
                    while n > 0 {
                        let Some(front) = buf.wq.front_mut() else {
                            debug_assert!(false, "wrote {n} bytes more than were queued");
                            break;
                        };
                        if n >= front.len() {
                            n -= front.len();
                            buf.wq.pop_front();
                        } else {
                            front.advance(n);
                            n = 0;
                        }
                    }
                }
                // The socket buffer is full; a writable event will resume us.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if written > 0 || fresh {
            buf.out_since = now;
        }
        if buf.pending == 0 {
            buf.grace = 0;
        }
        debug_assert!(
            !buf.wq.is_empty() || buf.pending == 0,
            "empty queue with {} pending bytes",
            buf.pending
        );
        Ok(Flushed {
            written,
            calls,
            started_waiting: fresh && buf.pending > 0,
        })
    }

    /// Frees the buffers when both are empty.
    pub fn shrink(&mut self) {
        if self
            .io
            .as_ref()
            .is_some_and(|io| io.rbuf.len() == io.rpos && io.wq.is_empty())
        {
            self.io = None;
        }
    }
}
#[cfg(test)]
mod size {
    /// Every connection's slab entry: a WebSocket's parser and liveness live in its
    /// `StreamOut` within the same 144 bytes an HTTP stream takes (density, issue 12).
    #[test]
    fn a_connection_entry_stays_144_bytes() {
        assert_eq!(std::mem::size_of::<crate::transport::StreamOut>(), 32);
        assert!(std::mem::size_of::<super::Conn>() <= 144);
    }
}
