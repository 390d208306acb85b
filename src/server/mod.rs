//! The reactor: one mio `Poll`, the public and admin listeners, every connection in a
//! generation-checked slab, and the timer wheel. Only this module and its children touch
//! sockets.
//!
//! The loop sleeps exactly until the next timer is due or a socket is ready, handles the
//! ready sockets (draining each until `WouldBlock`, as mio's edge-triggered readiness
//! requires), then fires due timers. A failing connection is closed and counted; only a
//! failing `Poll` ends `run`.
//!
//! Children: `conn` (one connection's buffers and I/O), `http_io` (request framing and
//! responses), `routes` (which handler serves which path), `longpoll` (parking and
//! answering polls), `stream` (the streaming transports), `clients` (client ids, long-poll
//! sessions between polls, control requests), `admin` (publishing and channel info),
//! `manage` (admin auth, channel list and delete, stats, metrics).

mod admin;
mod clients;
mod conn;
mod http_io;
mod longpoll;
mod manage;
mod routes;
mod shutdown;
mod stream;

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::channels::Channels;
use crate::config::Config;
use crate::handle::{GenSlab, Key};
use crate::http::response;
use crate::subscription::ClientId;
use crate::timer::TimerWheel;

use clients::{ClientRef, Session};
use conn::{Conn, Phase};

const PUBLIC: Token = Token(usize::MAX - 1);
const ADMIN: Token = Token(usize::MAX - 2);
const WAKER: Token = Token(usize::MAX - 3);

/// Whether `path` names an endpoint on the admin (`true`) or public listener: the
/// router's path matching, exposed for the fuzz entry point.
pub fn route_exists(admin: bool, path: &str) -> bool {
    routes::exists(admin, path)
}

/// How long accepting pauses after the process ran out of descriptors, unless a
/// connection closes first.
const ACCEPT_RETRY_MS: u64 = 100;

/// What a timer in the wheel is for.
#[derive(Clone, Copy, Debug)]
enum TimerKind {
    /// The connection's one timer; its meaning comes from the connection's phase.
    Conn(Key),
    /// Check whether an idle channel can be dropped.
    Channel(Key),
    /// Try accepting again after descriptor exhaustion.
    AcceptRetry,
    /// A long-poll session between polls has waited `--session-timeout`.
    Session(Key),
    /// `--demo`: publish the next tick to `demo.ticker`.
    DemoTick,
    /// `--shutdown-timeout` has passed since the first signal.
    ShutdownDeadline,
}

/// Counters the server keeps (the management API exposes them in a later version).
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections refused with 503 at `--max-conns`.
    pub refused: u64,
    /// `accept` failures for lack of descriptors (EMFILE/ENFILE/ENOBUFS/ENOMEM).
    pub accept_fd_errors: u64,
    /// Messages published (per channel).
    pub published: u64,
    /// Messages evicted from a channel buffer (by size or ttl).
    pub evicted: u64,
    /// Subscribers closed for passing `--max-pending-bytes`.
    pub slow_consumers: u64,
    /// Messages handed to subscribers (a poll answer or a stream frame each).
    pub delivered: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Admin requests refused for a missing or wrong token.
    pub auth_failures: u64,
}

/// Stops a running server from another thread.
#[derive(Clone)]
pub struct ShutdownHandle {
    flag: Arc<AtomicBool>,
    waker: Arc<Waker>,
}

impl ShutdownHandle {
    /// Asks the server to stop; `run` returns soon after.
    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::SeqCst);
        // A failed wake only delays the stop until the next event or timer.
        let _ = self.waker.wake();
    }
}

/// The gateway server.
pub struct Server {
    config: Config,
    poll: Poll,
    public: TcpListener,
    admin: TcpListener,
    conns: GenSlab<Conn>,
    channels: Channels,
    /// Every live client id: a stream, a parked poll, or a poll session between polls.
    clients: HashMap<ClientId, ClientRef>,
    /// Long-poll sessions between two polls.
    sessions: GenSlab<Session>,
    wheel: TimerWheel<TimerKind>,
    start: Instant,
    /// Reactor time in ms, updated after each wake-up.
    now: u64,
    /// Accepting stopped because descriptors ran out.
    accept_paused: bool,
    accept_retry_armed: bool,
    /// Connections with buffered requests to handle once the current event is done.
    pending_input: Vec<Key>,
    /// Read buffer shared by all connections.
    scratch: Box<[u8]>,
    /// Reused list of subscribers during a fan-out.
    fanout: Vec<Key>,
    stats: Stats,
    shutdown: Arc<AtomicBool>,
    waker: Arc<Waker>,
    /// Read end of the signal self-pipe, once `handle_signals` ran.
    signal_pipe: Option<mio::net::UnixStream>,
    /// A signal arrived: no more accepting; finishing what is open.
    draining: bool,
    /// Return from `run` now.
    stop_now: bool,
    /// Status of the response `respond` queued last (for the access log).
    last_status: u16,
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 (Linux numbering).
    matches!(e.raw_os_error(), Some(24) | Some(23) | Some(105) | Some(12))
}

/// A non-blocking listener with our backlog (mio's own `bind` fixes it at 128, too few
/// for a reconnect storm).
fn listen(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind = || -> io::Result<Socket> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.bind(&addr.into())?;
        s.listen(backlog)?;
        s.set_nonblocking(true)?;
        Ok(s)
    };
    let s =
        bind().map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    Ok(TcpListener::from_std(s.into()))
}

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

impl Server {
    /// Binds both listeners. Ports may be 0; `public_addr`/`admin_addr` tell the result.
    pub fn bind(config: Config) -> io::Result<Server> {
        let poll = Poll::new()?;
        let mut public = listen(config.listen, config.backlog)?;
        let mut admin = listen(config.admin_listen, config.backlog)?;
        poll.registry()
            .register(&mut public, PUBLIC, Interest::READABLE)?;
        poll.registry()
            .register(&mut admin, ADMIN, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Server {
            config,
            poll,
            public,
            admin,
            conns: GenSlab::default(),
            channels: Channels::default(),
            clients: HashMap::new(),
            sessions: GenSlab::default(),
            wheel: TimerWheel::new(0),
            start: Instant::now(),
            now: 0,
            accept_paused: false,
            accept_retry_armed: false,
            pending_input: Vec::new(),
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            fanout: Vec::new(),
            stats: Stats::default(),
            shutdown: Arc::new(AtomicBool::new(false)),
            waker,
            signal_pipe: None,
            draining: false,
            stop_now: false,
            last_status: 0,
        })
    }

    /// The public listener's address.
    pub fn public_addr(&self) -> io::Result<SocketAddr> {
        self.public.local_addr()
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> io::Result<SocketAddr> {
        self.admin.local_addr()
    }

    /// A handle that stops `run` from another thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            flag: self.shutdown.clone(),
            waker: self.waker.clone(),
        }
    }

    /// Runs the reactor until a shutdown is requested. Errors only if polling fails.
    pub fn run(&mut self) -> io::Result<()> {
        log::info!(
            "comet-gateway listening: public http://{} admin http://{}",
            self.public_addr()?,
            self.admin_addr()?
        );
        let mut events = Events::with_capacity(1024);
        if self.config.demo {
            log::info!("demo enabled: page at http://{}/", self.public_addr()?);
            self.wheel.insert(self.now + 1000, TimerKind::DemoTick);
        }
        let mut fired = Vec::new();
        while !self.shutdown.load(Ordering::SeqCst) && !self.stop_now {
            if self.draining && self.conns.is_empty() {
                break;
            }
            let timeout = self
                .wheel
                .next_expiration()
                .map(|at| Duration::from_millis(at.saturating_sub(self.clock())));
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.now = self.clock();
            for event in events.iter() {
                match event.token() {
                    PUBLIC => self.accept(false),
                    ADMIN => self.accept(true),
                    WAKER => {}
                    shutdown::SIGNAL => self.signalled(),
                    Token(index) => {
                        if let Some(key) = self.conns.key_at(index) {
                            self.conn_ready(
                                key,
                                event.is_readable() || event.is_read_closed(),
                                event.is_writable(),
                            );
                        }
                    }
                }
                self.drain_pending_input();
            }
            self.wheel.advance(self.now, &mut fired);
            for kind in fired.drain(..) {
                self.timer_fired(kind);
                self.drain_pending_input();
            }
        }
        log::info!("comet-gateway stopped");
        Ok(())
    }

    fn clock(&self) -> u64 {
        ms(self.start.elapsed())
    }

    fn wall_us() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64)
    }

    /// The server's counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    fn accept(&mut self, admin: bool) {
        loop {
            let listener = if admin { &self.admin } else { &self.public };
            match listener.accept() {
                Ok((mut sock, _peer)) => {
                    self.stats.accepted += 1;
                    if self.conns.len() >= self.config.max_conns {
                        self.stats.refused += 1;
                        // Best effort: a fresh socket's buffer takes this whole.
                        let _ = sock.write(response::OVERLOADED);
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    let key = self.conns.insert(Conn::new(sock, admin));
                    let Some(conn) = self.conns.get_mut(key) else {
                        continue;
                    };
                    if let Err(e) = self.poll.registry().register(
                        &mut conn.sock,
                        Token(key.index()),
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        log::warn!("cannot register a connection: {e}");
                        self.conns.remove(key);
                        continue;
                    }
                    self.set_conn_timer(key, self.config.header_timeout);
                }
                // The backlog is empty.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_fd_exhaustion(&e) => {
                    // Leave the rest in the backlog; resume when a descriptor frees (a
                    // connection closes) or after a short pause. No busy loop: the listener
                    // stays quiet (edge-triggered) until then.
                    self.stats.accept_fd_errors += 1;
                    if !self.accept_paused {
                        log::warn!("accept paused: {e}; resuming when descriptors free up");
                    }
                    self.accept_paused = true;
                    if !self.accept_retry_armed {
                        self.accept_retry_armed = true;
                        self.wheel
                            .insert(self.now + ACCEPT_RETRY_MS, TimerKind::AcceptRetry);
                    }
                    return;
                }
                // ECONNABORTED and kin: that one connection is gone, the next may be fine.
                Err(e) => log::debug!("accept: {e}"),
            }
        }
    }

    fn resume_accepting(&mut self) {
        if self.accept_paused && !self.draining {
            self.accept_paused = false;
            log::info!("accept resumed");
            self.accept(false);
            if !self.accept_paused {
                self.accept(true);
            }
        }
    }

    fn conn_ready(&mut self, key: Key, readable: bool, writable: bool) {
        if writable {
            self.flush(key);
        }
        if readable {
            self.read(key);
        }
    }

    fn timer_fired(&mut self, kind: TimerKind) {
        match kind {
            TimerKind::Conn(key) => {
                let Some(conn) = self.conns.get_mut(key) else {
                    return;
                };
                // Timers fired in one batch are handled one by one; if handling an earlier
                // one gave this connection a new timer, this firing is stale.
                if conn.timer.is_some_and(|t| self.wheel.deadline(t).is_some()) {
                    return;
                }
                conn.timer = None;
                match conn.phase {
                    Phase::Parked(_) => {
                        let noop = bytes::Bytes::from_static(crate::event::NOOP);
                        self.answer_poll(key, &[noop], false);
                    }
                    Phase::Streaming(_) => self.stream_tick(key),
                    // Header timeout, idle keep-alive timeout, or a final response the
                    // client never read.
                    Phase::Head | Phase::Idle | Phase::Closing => self.close(key),
                }
            }
            TimerKind::Channel(key) => self.channel_expiry(key),
            TimerKind::Session(key) => self.session_expired(key),
            TimerKind::ShutdownDeadline => {
                log::warn!("shutdown timeout: {} connections left", self.conns.len());
                self.stop_now = true;
            }
            TimerKind::DemoTick => {
                let tick = format!("{} s since start", self.now / 1000);
                if let Ok(keys) = self.open_channels(std::iter::once("demo.ticker")) {
                    self.publish(keys[0], &tick);
                }
                self.wheel.insert(self.now + 1000, TimerKind::DemoTick);
            }
            TimerKind::AcceptRetry => {
                self.accept_retry_armed = false;
                self.resume_accepting();
            }
        }
    }

    /// Replaces the connection's timer with one that fires after `after`.
    fn set_conn_timer(&mut self, key: Key, after: Duration) {
        let deadline = self.now + ms(after);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(old) = conn.timer.take() {
            self.wheel.cancel(old);
        }
        conn.timer = Some(self.wheel.insert(deadline, TimerKind::Conn(key)));
    }

    /// Closes a connection and frees everything it held.
    fn close(&mut self, key: Key) {
        let Some(mut conn) = self.conns.remove(key) else {
            return;
        };
        if let Some(t) = conn.timer.take() {
            self.wheel.cancel(t);
        }
        match std::mem::replace(&mut conn.phase, Phase::Closing) {
            // The client may poll again: its session outlives the connection.
            Phase::Parked(p) => {
                self.leave_channels(p.subs.as_slice());
                self.detach_session(p.client, p.subs.as_slice());
            }
            Phase::Streaming(st) => {
                self.leave_channels(st.subs.as_slice());
                self.clients.remove(&st.client);
            }
            Phase::Head | Phase::Idle | Phase::Closing => {}
        }
        let _ = self.poll.registry().deregister(&mut conn.sock);
        drop(conn);
        self.resume_accepting();
    }

    fn drain_pending_input(&mut self) {
        while let Some(key) = self.pending_input.pop() {
            self.process_input(key);
        }
    }

    fn channel_expiry(&mut self, key: Key) {
        let ttl = ms(self.config.channel_ttl);
        let Some(ch) = self.channels.get(key) else {
            return;
        };
        let idle_since = ch.last_active_ms;
        let next = if !ch.subs.is_empty() {
            self.now + ttl
        } else if self.now >= idle_since + ttl {
            log::debug!("channel {} expired", ch.name());
            self.channels.remove(key);
            return;
        } else {
            idle_since + ttl
        };
        self.wheel.insert(next, TimerKind::Channel(key));
    }
}
