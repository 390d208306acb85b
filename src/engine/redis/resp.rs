//! One connection to Redis: its socket, the commands queued for it, its read buffer and the
//! RESP2 framing of what comes back. It owns nothing else: channels, subscribers, the
//! reactor's slab and the reconnect policy belong to its owner, which registers the socket
//! on its `Poll`, calls [`RespConn::on_ready`] on events and [`RespConn::flush`] once per
//! loop turn (so a turn's commands leave in one `writev`, as Redis writes its replies).
//!
//! Both directions follow mio's rules, as `server/conn.rs` does: drain until `WouldBlock`,
//! retry `Interrupted`, any other error kills the connection. Reading stops early after
//! [`READ_BUDGET`] bytes so that a flood from Redis cannot starve the HTTP sockets; the
//! call then returns [`Pass::More`] and must be repeated next turn (no event will come).
//!
//! One framing, two modes, as two types: a [`CommandConn`] matches replies to the
//! caller's tags in FIFO order (Redis answers in order); a [`PubSubConn`] reads
//! unsolicited pushes. They are distinct types rather than a flag because a subscribed
//! RESP2 connection accepts only (UN)SUBSCRIBE, PING and the like, and one SUBSCRIBE may
//! bring several confirmations, so a command sent on it would break the one reply per tag
//! matching; the type system keeps `send` off it.
//!
//! Framing (`resp/frame.rs`): a scan walks the buffered bytes once, across reads, to find
//! where a whole frame ends (linear even for a large array arriving in many pieces, and a
//! bulk string announced past the limit is refused from its header); redis-protocol's
//! `decode_range` then parses exactly that frame and the bytes are frozen, so every string
//! in a [`Reply`] is a `Bytes` view of the read buffer, not a copy. `decode_bytes_mut` is
//! not used: it insists that error lines are UTF-8, and Redis 7 echoes raw bytes in them
//! (`-ERR unknown command '\xff'`), which would kill the connection on a valid reply. A
//! view pins the block it was read into: copy payloads kept for long. The modes are in
//! `resp/modes.rs`; `resp/tests.rs` needs no socket, `resp/redis_tests.rs` starts
//! redis-server.
//!
//! A dead connection stays dead: the owner drops it and connects anew.

mod frame;
mod modes;
#[cfg(test)]
mod redis_tests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice, Write};
use std::net::SocketAddr;

use bytes::{Buf, Bytes};
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

pub(crate) use frame::{encode_command, Reply};

use frame::Framer;
pub(crate) use modes::{Commands, PubSub};

/// How many queued commands one `writev` takes at most.
const MAX_IOVECS: usize = 64;
/// Bytes read in one `on_ready` before it returns [`Pass::More`].
pub(crate) const READ_BUDGET: usize = 1 << 20;
/// The default bound on one reply's encoded size.
pub(crate) const DEFAULT_MAX_REPLY: usize = 64 << 20;

/// The caller's name for a command; it comes back with the command's reply.
pub(crate) type Tag = u64;

/// A command connection.
pub(crate) type CommandConn = RespConn<Commands>;
/// A pub/sub connection.
pub(crate) type PubSubConn = RespConn<PubSub>;

/// Why a connection died. Small and `Copy`: it is handed to every tag it failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RespError {
    /// Redis closed the connection.
    Closed,
    /// The socket failed (connection refused, reset, ...).
    Io(io::ErrorKind),
    /// Bytes that are not RESP2.
    Protocol,
    /// A well-formed frame nothing waited for (a reply with no command outstanding, a push
    /// the pub/sub connection does not know).
    Unexpected,
    /// A reply longer than the connection's limit.
    TooBig,
    /// Redis answered an error on the pub/sub connection (logged with its text).
    Rejected,
}

impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RespError::Closed => f.write_str("redis closed the connection"),
            RespError::Io(kind) => write!(f, "redis socket error: {kind}"),
            RespError::Protocol => f.write_str("redis sent bytes that are not RESP2"),
            RespError::Unexpected => f.write_str("redis sent a frame nothing waited for"),
            RespError::TooBig => f.write_str("redis reply over the size limit"),
            RespError::Rejected => f.write_str("redis refused a pub/sub command"),
        }
    }
}

/// What [`RespConn::on_ready`] left to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pass {
    /// The socket was drained; the next event says when there is more.
    Drained,
    /// The read budget ran out first: call `on_ready(false, true)` again next turn.
    More,
}

/// How a connection's frames are taken.
pub(crate) trait Mode: Default {
    /// Takes one frame; an error kills the connection.
    fn on_frame(&mut self, frame: Reply) -> Result<(), RespError>;
    /// The connection died: whatever awaited an answer fails with `why`.
    fn on_dead(&mut self, why: RespError);
    /// Answers awaited.
    fn in_flight(&self) -> usize;
}

/// Where the socket is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// The non-blocking connect is under way; commands wait in the queue.
    Connecting,
    /// Connected: commands are written as they are flushed.
    Open,
    /// Failed for good, for this reason.
    Dead(RespError),
}

/// A non-blocking connection to Redis, driven by its owner's `Poll`.
pub(crate) struct RespConn<M: Mode> {
    sock: TcpStream,
    state: State,
    /// Encoded commands not yet written, in order.
    wq: VecDeque<Bytes>,
    /// Bytes in `wq`.
    pending_out: usize,
    /// What has been read and not yet framed.
    input: Framer,
    /// Where frames go.
    mode: M,
}

impl<M: Mode> RespConn<M> {
    /// Starts connecting to `addr`; replies longer than `max_reply` bytes will kill the
    /// connection. Commands may be queued at once: they leave when the connect completes.
    pub(crate) fn connect(addr: SocketAddr, max_reply: usize) -> io::Result<Self> {
        let sock = TcpStream::connect(addr)?;
        // Commands are small and pipelined: no Nagle delay before the server sees them.
        sock.set_nodelay(true)?;
        Ok(RespConn {
            sock,
            state: State::Connecting,
            wq: VecDeque::new(),
            pending_out: 0,
            input: Framer::new(max_reply),
            mode: M::default(),
        })
    }

    /// Registers the socket with `token`, for both directions (the connect completes with
    /// a writable event).
    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            &mut self.sock,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    /// Takes the socket off `registry` (before the connection is dropped).
    pub(crate) fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        registry.deregister(&mut self.sock)
    }

    /// Why the connection died, if it has.
    pub(crate) fn dead(&self) -> Option<RespError> {
        match self.state {
            State::Dead(why) => Some(why),
            _ => None,
        }
    }

    /// True once the connect has completed, until the connection dies.
    pub(crate) fn connected(&self) -> bool {
        self.state == State::Open
    }

    /// Bytes queued and not yet written.
    pub(crate) fn pending_out(&self) -> usize {
        self.pending_out
    }

    /// Answers awaited: replies to commands, or (un)subscribe confirmations.
    pub(crate) fn in_flight(&self) -> usize {
        self.mode.in_flight()
    }

    /// Handles an event for the socket. Pass `readable` as `is_readable() ||
    /// is_read_closed() || is_error()`, so that a reset is seen. Frames read are handed
    /// over by the mode's `take_*` calls; an error means the connection is now dead.
    pub(crate) fn on_ready(&mut self, writable: bool, readable: bool) -> Result<Pass, RespError> {
        let r = self.ready(writable, readable);
        r.map_err(|why| self.die(why))
    }

    /// Writes queued commands until done or `WouldBlock` (nothing while connecting).
    pub(crate) fn flush(&mut self) -> Result<(), RespError> {
        let r = self.write();
        r.map_err(|why| self.die(why))
    }

    fn ready(&mut self, writable: bool, readable: bool) -> Result<Pass, RespError> {
        match self.state {
            State::Dead(why) => return Err(why),
            State::Connecting => {
                // The steps of mio's `TcpStream::connect` docs: error, then peer address.
                if let Some(e) = self.sock.take_error().map_err(io_error)? {
                    return Err(io_error(e));
                }
                match self.sock.peer_addr() {
                    Ok(_) => self.state = State::Open,
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(Pass::Drained),
                    Err(e) => return Err(io_error(e)),
                }
                self.write()?;
            }
            State::Open if writable => self.write()?,
            State::Open => {}
        }
        if readable {
            self.read()
        } else {
            Ok(Pass::Drained)
        }
    }

    fn read(&mut self) -> Result<Pass, RespError> {
        let mut budget = READ_BUDGET;
        while budget > 0 {
            match self.input.read_from(&mut self.sock) {
                Ok(0) => return Err(RespError::Closed),
                Ok(n) => {
                    budget = budget.saturating_sub(n);
                    while let Some(frame) = self.input.next_frame()? {
                        self.mode.on_frame(frame)?;
                    }
                }
                // Drained: the next readable event says when there is more.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Pass::Drained),
                // A signal interrupted the call; nothing was read, try again.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(Pass::More)
    }

    fn write(&mut self) -> Result<(), RespError> {
        match self.state {
            State::Dead(why) => return Err(why),
            State::Connecting => return Ok(()),
            State::Open => {}
        }
        while !self.wq.is_empty() {
            let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
            let n_iov = self.wq.len().min(MAX_IOVECS);
            for (slot, b) in iov.iter_mut().zip(self.wq.iter()) {
                *slot = IoSlice::new(b);
            }
            match self.sock.write_vectored(&iov[..n_iov]) {
                Ok(0) => return Err(RespError::Io(io::ErrorKind::WriteZero)),
                Ok(mut n) => {
                    self.pending_out -= n;
                    while n > 0 {
                        let Some(front) = self.wq.front_mut() else {
                            debug_assert!(false, "wrote {n} bytes more than were queued");
                            break;
                        };
                        if n >= front.len() {
                            n -= front.len();
                            self.wq.pop_front();
                        } else {
                            front.advance(n);
                            n = 0;
                        }
                    }
                }
                // The socket buffer is full; a writable event will resume us.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io_error(e)),
            }
        }
        Ok(())
    }

    /// Queues one command, unless the connection is dead.
    fn queue(&mut self, args: &[&[u8]]) -> Result<(), RespError> {
        if let State::Dead(why) = self.state {
            return Err(why);
        }
        let cmd = encode_command(args);
        self.pending_out += cmd.len();
        self.wq.push_back(cmd);
        Ok(())
    }

    /// Kills the connection from outside (its peer stopped answering): what waited on it
    /// fails with `why`, as if the socket had failed.
    pub(crate) fn kill(&mut self, why: RespError) {
        self.die(why);
    }

    /// Marks the connection dead (once) and fails what waited on it.
    fn die(&mut self, why: RespError) -> RespError {
        if let State::Dead(first) = self.state {
            return first;
        }
        self.state = State::Dead(why);
        self.wq.clear();
        self.pending_out = 0;
        self.input.clear();
        self.mode.on_dead(why);
        why
    }
}

fn io_error(e: io::Error) -> RespError {
    RespError::Io(e.kind())
}
