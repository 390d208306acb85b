//! One client connection: its socket, what it has sent that is not yet handled, the
//! responses queued for it, its single timer, and its phase.
//!
//! Reading and writing follow mio's readiness rules: both drain until `WouldBlock`
//! (edge-triggered), `Interrupted` is retried, and any other error means the connection
//! is done. The queue holds `Bytes` that may be shared with thousands of other
//! connections; writes are vectored straight from it.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};

use bytes::{Buf, Bytes};
use mio::net::TcpStream;

use crate::handle::Key;
use crate::http::response::Cors;
use crate::subscription::ClientId;
use crate::timer::TimerKey;
use crate::transport::Format;

/// How many queued buffers one `writev` takes at most.
const MAX_IOVECS: usize = 64;

/// Membership of a subscriber connection in one channel's subscriber list.
#[derive(Clone, Copy, Debug)]
pub struct Sub {
    /// The channel.
    pub channel: Key,
    /// This connection's slot in the channel's subscriber slab.
    pub slot: u32,
    /// The next seq this subscriber wants from the channel (its cursor).
    pub next: u64,
}

/// The channels a parked request waits on. Most wait on one, kept inline so a parked
/// poll needs no heap block for it.
#[derive(Debug)]
pub enum Subs {
    /// One channel.
    One(Sub),
    /// Several channels.
    Many(Box<[Sub]>),
}

impl Subs {
    /// From a list of memberships.
    pub fn from_vec(mut v: Vec<Sub>) -> Subs {
        if v.len() == 1 {
            Subs::One(v.remove(0))
        } else {
            Subs::Many(v.into_boxed_slice())
        }
    }

    /// All memberships.
    pub fn as_slice(&self) -> &[Sub] {
        match self {
            Subs::One(s) => std::slice::from_ref(s),
            Subs::Many(v) => v,
        }
    }

    /// The membership in `channel`.
    pub fn find_mut(&mut self, channel: Key) -> Option<&mut Sub> {
        match self {
            Subs::One(s) => Some(s).filter(|s| s.channel == channel),
            Subs::Many(v) => v.iter_mut().find(|s| s.channel == channel),
        }
    }

    /// Adds a membership.
    pub fn push(&mut self, sub: Sub) {
        let mut v = std::mem::replace(self, Subs::Many(Box::new([]))).into_vec();
        v.push(sub);
        *self = Subs::from_vec(v);
    }

    /// Removes the membership in `channel`, if any.
    pub fn remove(&mut self, channel: Key) -> Option<Sub> {
        let mut v = std::mem::replace(self, Subs::Many(Box::new([]))).into_vec();
        let removed = v
            .iter()
            .position(|s| s.channel == channel)
            .map(|i| v.remove(i));
        *self = Subs::from_vec(v);
        removed
    }

    fn into_vec(self) -> Vec<Sub> {
        match self {
            Subs::One(s) => vec![s],
            Subs::Many(v) => v.into_vec(),
        }
    }
}

/// A streaming response in progress (`/stream`, `/iframe`, `/events`).
#[derive(Debug)]
pub struct Stream {
    /// Its wire format.
    pub format: Format,
    /// Channels it receives, each with its cursor.
    pub subs: Subs,
    /// Its id for control requests.
    pub client: ClientId,
    /// The iframe callback (empty for other formats).
    pub cb: Box<str>,
    /// When it started (reactor ms), for `--stream-max-age`.
    pub started_ms: u64,
    /// When it last sent anything (reactor ms), for heartbeats.
    pub last_write_ms: u64,
}

/// A long-poll waiting for a message: everything needed to answer it later.
#[derive(Debug)]
pub struct Parked {
    /// Channels it waits on.
    pub subs: Subs,
    /// Sent back in `X-Comet-Client`.
    pub client: ClientId,
    /// JSONP callback, if any.
    pub cb: Option<Box<str>>,
    /// CORS answer decided when the request arrived.
    pub cors: Cors,
    /// Whether the connection stays open after the answer.
    pub keep_alive: bool,
}

/// Where a connection is in its life.
#[derive(Debug)]
pub enum Phase {
    /// Waiting for (the rest of) a request; the header timer runs.
    Head,
    /// Between requests on a keep-alive connection; the idle timer runs.
    Idle,
    /// A long-poll waits for a message; the poll timer runs.
    Parked(Parked),
    /// A streaming response is open; the timer is its heartbeat or its end of life.
    Streaming(Stream),
    /// The last response is queued; close once it is written.
    Closing,
}

/// A connection's buffers.
#[derive(Default)]
struct Io {
    /// Received bytes not yet handled (a partial request, or pipelined ones).
    rbuf: Vec<u8>,
    /// Responses not yet written, in order.
    wq: VecDeque<Bytes>,
    /// Bytes in `wq`.
    pending: usize,
}

/// A client connection.
pub struct Conn {
    /// The socket.
    pub sock: TcpStream,
    /// Accepted on the admin listener.
    pub admin: bool,
    /// The phase; decides what its timer means when it fires.
    pub phase: Phase,
    /// Input and output buffers, allocated while in use and freed when both are empty,
    /// so an idle connection (a parked poll, a quiet stream) holds none.
    io: Option<Box<Io>>,
    /// The one timer this connection has at a time (its meaning comes from `phase`).
    pub timer: Option<TimerKey>,
    /// `100 Continue` was sent for the request being received.
    pub continue_sent: bool,
    /// The peer closed its sending side; finish what was asked, then close.
    pub peer_closed: bool,
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
    /// The peer sent more than `limit` unhandled bytes.
    Overflow,
}

impl Conn {
    /// A freshly accepted connection, waiting for its first request.
    pub fn new(sock: TcpStream, admin: bool) -> Conn {
        Conn {
            sock,
            admin,
            phase: Phase::Head,
            io: None,
            timer: None,
            continue_sent: false,
            peer_closed: false,
        }
    }

    fn io_mut(&mut self) -> &mut Io {
        self.io.get_or_insert_with(Default::default)
    }

    /// Received bytes not yet handled.
    pub fn rbuf(&self) -> &[u8] {
        self.io.as_ref().map_or(&[], |io| &io.rbuf)
    }

    /// Drops the first `n` received bytes (a handled request).
    pub fn consume(&mut self, n: usize) {
        if let Some(io) = &mut self.io {
            io.rbuf.drain(..n);
        }
    }

    /// Drops all received bytes.
    pub fn clear_input(&mut self) {
        if let Some(io) = &mut self.io {
            io.rbuf.clear();
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

    /// Queues bytes to send.
    pub fn queue(&mut self, b: Bytes) {
        if !b.is_empty() {
            let io = self.io_mut();
            io.pending += b.len();
            io.wq.push_back(b);
        }
    }

    /// Reads until `WouldBlock`, appending what arrives through `scratch`.
    pub fn read_all(&mut self, scratch: &mut [u8], limit: usize) -> ReadOutcome {
        loop {
            match self.sock.read(scratch) {
                Ok(0) => return ReadOutcome::Eof,
                Ok(n) => {
                    let rbuf = &mut self.io_mut().rbuf;
                    if rbuf.len() + n > limit {
                        return ReadOutcome::Overflow;
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

    /// Writes queued bytes until the queue is empty or the socket would block; returns how
    /// many were written. `Err` means the connection is dead.
    pub fn flush(&mut self) -> io::Result<usize> {
        let mut written = 0;
        let Some(buf) = self.io.as_deref_mut() else {
            return Ok(0);
        };
        while !buf.wq.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let n_iov = buf.wq.len().min(MAX_IOVECS);
            for (slot, b) in iov.iter_mut().zip(buf.wq.iter()) {
                *slot = IoSlice::new(b);
            }
            match self.sock.write_vectored(&iov[..n_iov]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(mut n) => {
                    written += n;
                    buf.pending -= n;
                    while n > 0 {
                        let front = buf.wq.front_mut().expect("written bytes were queued");
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
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(written),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        debug_assert_eq!(buf.pending, 0, "empty queue with pending bytes");
        Ok(written)
    }

    /// Frees the buffers when both are empty.
    pub fn shrink(&mut self) {
        if self
            .io
            .as_ref()
            .is_some_and(|io| io.rbuf.is_empty() && io.wq.is_empty())
        {
            self.io = None;
        }
    }
}
