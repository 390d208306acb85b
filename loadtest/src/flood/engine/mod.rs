//! The flood's reactor: [`Flood`] owns the connection table (slots with generations, so a
//! stale timer or queued hog aimed at a reused slot does nothing), keeps each attack's pool at
//! its target within the `--max-conns` budget and the `--connect-rate` bucket, arms the
//! connect time-out and park hold, closes connections and settles what they leave behind.
//! Each connection's walk through connect, write, read and hog bursts from mio events is
//! in `conn`, below. A connection's failure closes it and bumps a counter; nothing here ends
//! the run, builds a request's bytes or parses an answer (`wire` does). The loop that turns
//! it is `run`, in the parent module.

mod conn;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Poll, Token};
use socket2::{Domain, Socket, Type};

use super::config::{FloodConfig, HOG, PARK, RESET, SESSION};
use super::counters::{errno_name, is_reset, Counters};
use super::wire::Rng;

/// hog: bytes written per turn of one connection.
const HOG_CHUNK: usize = 16 * 1024;
/// hog: chunks written per turn of the loop, over all connections.
pub(super) const HOG_CHUNKS_PER_TURN: usize = 128;

/// One connection of an attack; its slot in [`Flood::slots`] is its mio token.
pub(super) struct Conn {
    pub(super) kind: usize,
    sock: TcpStream,
    connecting: bool,
    /// Request bytes not yet written (park, reset, session).
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    /// Requests written or queued and not answered yet.
    pub(super) in_flight: u64,
    /// hog: bytes of the burst written.
    written: usize,
    blocked_once: bool,
    /// hog: waiting in the queue of bursts to continue.
    queued: bool,
    last_progress: Instant,
}

/// How a connection ends, for the counters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// Nothing to count (already counted).
    Quiet,
    /// The server sent a FIN.
    ServerClosed,
}

/// The flood's state: the connection table, the pools and their connect budget, the
/// counters and the timer queues. Built and turned by `run` in the parent module, which
/// also reads the counters and closes what is left at the end.
pub(super) struct Flood<'a> {
    pub(super) cfg: &'a FloodConfig,
    pub(super) poll: Poll,
    pub(super) slots: Vec<Option<Conn>>,
    pub(super) gens: Vec<u32>,
    pub(super) free: Vec<usize>,
    pub(super) open: [usize; 4],
    pub(super) total_open: usize,
    pub(super) peak_open: usize,
    pub(super) targets: [usize; 4],
    pub(super) c: [Counters; 4],
    pub(super) errors: BTreeMap<String, u64>,
    pub(super) rng: Rng,
    pub(super) src_next: usize,
    pub(super) tokens: f64,
    pub(super) last_refill: Instant,
    /// (deadline, slot, generation): parked polls to close.
    pub(super) park_q: VecDeque<(Instant, usize, u32)>,
    /// (deadline, slot, generation): connects to give up.
    pub(super) connect_q: VecDeque<(Instant, usize, u32)>,
    pub(super) hog_burst: Vec<u8>,
    pub(super) hog_req_len: usize,
    /// (slot, generation): hogs with more of their burst to write and room to write it.
    pub(super) hog_q: VecDeque<(usize, u32)>,
    pub(super) scratch: Vec<u8>,
}

impl<'a> Flood<'a> {
    fn count_error(&mut self, e: &io::Error) {
        *self.errors.entry(errno_name(e)).or_default() += 1;
    }

    pub(super) fn fill(&mut self, now: Instant) {
        let rate = self.cfg.connect_rate as f64;
        let dt = now.duration_since(self.last_refill).as_secs_f64();
        self.last_refill = now;
        self.tokens = (self.tokens + dt * rate).min((rate / 20.0).max(1.0));
        loop {
            let mut opened = false;
            for k in 0..4 {
                if self.tokens < 1.0 || self.total_open >= self.cfg.max_conns {
                    return;
                }
                if self.open[k] < self.targets[k] {
                    self.tokens -= 1.0;
                    self.open_conn(k, now);
                    opened = true;
                }
            }
            if !opened {
                return;
            }
        }
    }

    fn open_conn(&mut self, kind: usize, now: Instant) {
        self.c[kind].connects += 1;
        let sock = match self.new_socket(kind) {
            Ok(s) => s,
            Err(e) => {
                self.c[kind].connect_errors += 1;
                self.count_error(&e);
                return;
            }
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.gens.push(0);
                self.slots.len() - 1
            }
        };
        let mut sock = sock;
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.c[kind].connect_errors += 1;
            self.count_error(&e);
            self.free.push(slot);
            return;
        }
        self.slots[slot] = Some(Conn {
            kind,
            sock,
            connecting: true,
            out: Vec::new(),
            out_pos: 0,
            inbuf: Vec::new(),
            in_flight: 0,
            written: 0,
            blocked_once: false,
            queued: false,
            last_progress: now,
        });
        self.open[kind] += 1;
        self.total_open += 1;
        self.peak_open = self.peak_open.max(self.total_open);
        self.connect_q
            .push_back((now + self.cfg.connect_timeout, slot, self.gens[slot]));
    }

    fn new_socket(&mut self, kind: usize) -> io::Result<TcpStream> {
        let target = self.cfg.target;
        let s = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
        let sources = &self.cfg.source.0;
        if !sources.is_empty() {
            let ip: IpAddr = sources[self.src_next % sources.len()];
            self.src_next = self.src_next.wrapping_add(1);
            s.bind(&SocketAddr::new(ip, 0).into())?;
        }
        s.set_nonblocking(true)?;
        s.set_tcp_nodelay(true)?;
        if kind == HOG && self.cfg.hog_rcvbuf > 0 {
            s.set_recv_buffer_size(self.cfg.hog_rcvbuf)?;
        }
        if kind == PARK && self.cfg.park_rst {
            s.set_linger(Some(Duration::ZERO))?;
        }
        match s.connect(&target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(115) || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        Ok(TcpStream::from_std(s.into()))
    }

    /// Closes a connection; it is replaced by the next `fill`.
    fn close(&mut self, slot: usize, end: End) {
        let Some(mut conn) = self.slots[slot].take() else {
            return;
        };
        let k = conn.kind;
        let _ = self.poll.registry().deregister(&mut conn.sock);
        if end == End::ServerClosed {
            self.c[k].closed_by_server += 1;
        }
        self.settle(&conn);
        self.open[k] -= 1;
        self.total_open -= 1;
        self.gens[slot] = self.gens[slot].wrapping_add(1);
        self.free.push(slot);
    }

    /// Counts what a connection leaves behind when it ends (or the run does).
    pub(super) fn settle(&mut self, conn: &Conn) {
        let k = conn.kind;
        if k != HOG && !conn.connecting {
            self.c[k].unanswered += conn.in_flight;
        }
    }

    fn io_failure(&mut self, slot: usize, e: &io::Error) {
        let Some(k) = self.slots[slot].as_ref().map(|c| c.kind) else {
            return;
        };
        if is_reset(e) {
            self.c[k].resets += 1;
        } else {
            self.c[k].io_errors += 1;
        }
        self.count_error(e);
        self.close(slot, End::Quiet);
    }

    pub(super) fn timers(&mut self, now: Instant) {
        while let Some(&(at, slot, gen)) = self.connect_q.front() {
            if at > now {
                break;
            }
            self.connect_q.pop_front();
            let live =
                self.gens[slot] == gen && self.slots[slot].as_ref().is_some_and(|c| c.connecting);
            if live {
                let k = self.slots[slot].as_ref().map_or(0, |c| c.kind);
                self.c[k].connect_timeouts += 1;
                self.close(slot, End::Quiet);
            }
        }
        while let Some(&(at, slot, gen)) = self.park_q.front() {
            if at > now {
                break;
            }
            self.park_q.pop_front();
            if self.gens[slot] == gen && self.slots[slot].is_some() {
                self.c[PARK].held_and_closed += 1;
                if let Some(c) = self.slots[slot].as_mut() {
                    // The poll is not unanswered: it was left on purpose.
                    c.in_flight = 0;
                }
                self.close(slot, End::Quiet);
            }
        }
    }

    pub(super) fn stalls(&mut self, now: Instant) {
        for slot in 0..self.slots.len() {
            let stalled = self.slots[slot].as_ref().is_some_and(|c| {
                (c.kind == RESET || c.kind == SESSION)
                    && !c.connecting
                    && c.in_flight > 0
                    && now.duration_since(c.last_progress) >= self.cfg.stall_timeout
            });
            if stalled {
                let k = self.slots[slot].as_ref().map_or(0, |c| c.kind);
                self.c[k].stalled += 1;
                self.close(slot, End::Quiet);
            }
        }
    }

    pub(super) fn snapshot(&self) -> Counters {
        let mut t = Counters::default();
        for c in &self.c {
            t.add(c);
        }
        t
    }
}
