//! The flood's reactor: [`Flood`] owns the connection table (slots with generations, so a
//! stale timer or queued hog aimed at a reused slot does nothing), keeps each attack's pool at
//! its target within the `--max-conns` budget and the `--connect-rate` bucket, arms the
//! connect time-out and park hold, and walks each connection through connect, write, read
//! and hog bursts from mio events. A connection's failure closes it and bumps a counter;
//! nothing here ends the run. The loop that turns it is `run`, in the parent module.

use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Poll, Token};
use socket2::{Domain, Socket, Type};

use super::config::{FloodConfig, HOG, PARK, RESET, SESSION};
use super::counters::{errno_name, is_reset, Counters};
use super::wire::{count_resets, parse_response, poll_request, Rng};

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

    pub(super) fn handle(&mut self, slot: usize, ev: &mio::event::Event, now: Instant) {
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
    pub(super) fn pump_hogs(&mut self, budget: usize) {
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
