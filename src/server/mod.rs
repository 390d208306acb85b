//! The reactor: one mio `Poll`, the public and admin listeners, every connection in a
//! generation-checked slab, and the timer wheel. Only this module and its children touch
//! sockets. Channel logs are the engine's and subscribers the hub's: the reactor holds
//! both and calls them, but keeps no channel or subscriber state of its own.
//!
//! The loop sleeps exactly until the next deadline (its own wheel's, the hub's or the
//! engine's) or until a socket is ready, handles the ready sockets (draining each until
//! `WouldBlock`, as mio's edge-triggered readiness requires), then fires due timers.
//! After every request and timer it fans out what the engine reports. A failing
//! connection is closed and counted; only a failing `Poll` ends `run`.
//!
//! Every connection always has exactly one armed timer; `timers` computes its deadline
//! from the connection's state (its phase, and how long its unsent output has not moved)
//! and decides what a firing means.
//!
//! Children: `accept` (listeners, connection caps, the descriptor reserve of the admin
//! listener), `fd_limit` (raising the descriptor limit at start-up), `conn` (one connection's buffers and I/O), `kinds` (connection counts by
//! kind), `timers` (every connection's one timer), `http_io` (request framing and
//! fair turns), `respond` (queueing and flushing answers), `routes` (which handler serves
//! which path), `handlers` (one file per endpoint family), `fanout` (engine events to
//! subscribers), `stats` (counters, and the host-wide view of `--workers`), `shutdown`.

mod accept;
mod coalesce;
mod conn;
mod fanout;
mod fd_limit;
mod handlers;
mod http_io;
mod kinds;
mod respond;
mod routes;
mod shutdown;
mod stats;
mod timers;
mod waiting;

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Poll, Token, Waker};

use crate::clock::{Clock, Now};
use crate::config::{Config, EngineUrl};
use crate::engine::{self, Engine, EngineEvent, MemoryEngine, Ticket};
use crate::handle::{GenSlab, Key};
use crate::http::response::CorsPolicy;
use crate::hub::{self, Delivery, Hub};
use crate::timer::TimerWheel;

use accept::Listeners;
pub use conn::Conn;
use kinds::Kinds;
pub use stats::Stats;

const PUBLIC: Token = Token(usize::MAX - 1);
const ADMIN: Token = Token(usize::MAX - 2);
const WAKER: Token = Token(usize::MAX - 3);
/// The engine's sockets: `ENGINE_TOKENS` tokens below the signal pipe's.
const ENGINE_FIRST: usize = usize::MAX - 5 - engine::ENGINE_TOKENS;

/// Whether `path` names an endpoint on the admin (`true`) or public listener: the
/// router's path matching, exposed for the fuzz entry point.
pub fn route_exists(admin: bool, path: &str) -> bool {
    routes::exists(admin, path)
}

/// Most requests one connection has handled in a row before the others get a turn.
const REQUESTS_PER_TURN: u32 = 16;
/// Most public requests handled in one loop turn, so that however many clients pipeline
/// requests at once, a turn stays short and the admin listener (served first in every
/// turn) waits at most one short turn.
pub(super) const PUBLIC_REQUESTS_PER_TURN: u32 = 64;

/// What a timer in the reactor's wheel is for.
#[derive(Clone, Copy, Debug)]
enum TimerKind {
    /// The connection's one timer; its meaning comes from the connection's state.
    Conn(Key<Conn>),
    /// Try accepting again after descriptor exhaustion.
    AcceptRetry,
    /// `--demo`: publish the next tick to `demo.ticker`.
    DemoTick,
    /// `--shutdown-timeout` has passed since the first signal.
    ShutdownDeadline,
    /// `--workers`: write this worker's counts for the others' `/stats`.
    Snapshot,
    /// A WebSocket `subscribe`'s history reads may be past `--engine-timeout`.
    WsReads(Key<Conn>),
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
    listeners: Listeners,
    conns: GenSlab<Conn>,
    /// Connections by listener and by what they do, kept as phases change.
    kinds: Kinds,
    /// The channel logs.
    engine: Box<dyn Engine + Send>,
    /// This process's subscribers.
    hub: Hub,
    cors: CorsPolicy,
    wheel: TimerWheel<TimerKind>,
    clock: Clock,
    /// The time of this loop turn, read once after each wake-up.
    now: Now,
    /// Connections with buffered requests to handle once the current event is done.
    pending_input: Vec<Key<Conn>>,
    /// Connections that used up their turn with requests still waiting, in the order
    /// they yielded (each at most once): served first-in first-out after the next poll,
    /// which then does not sleep.
    deferred_input: VecDeque<Key<Conn>>,
    /// Public requests handled in this loop turn.
    turn_requests: u32,
    /// Read buffer shared by all connections.
    scratch: Box<[u8]>,
    /// Reused buffers of a fan-out: what the engine reported, who gets a message.
    engine_events: Vec<EngineEvent>,
    deliveries: Vec<Delivery>,
    /// Admin requests waiting for an engine's answer, by the call's ticket.
    waiting: HashMap<Ticket, Key<Conn>>,
    /// Streams with frames queued this turn, written once at its end (`write_turn`).
    dirty: Vec<Key<Conn>>,
    /// Publishers' answers queued this turn, written after the subscribers.
    late: Vec<Key<Conn>>,
    /// Parked polls that got messages this turn, and the messages, answered at its end;
    /// by connection, the index of its entry.
    poll_batch: Vec<(Key<Conn>, Vec<bytes::Bytes>)>,
    poll_batched: HashMap<Key<Conn>, usize>,
    /// WebSocket `subscribe` commands waiting for their history reads, by connection,
    /// and the connection each of their reads is for.
    ws_reads: HashMap<Key<Conn>, handlers::websocket::WsReads>,
    ws_tickets: HashMap<Ticket, Key<Conn>>,
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

fn ms(d: Duration) -> u64 {
    d.as_millis().min(u64::MAX as u128) as u64
}

/// `now + d`, saturating: every deadline is computed here, so no duration, however
/// large, can overflow the reactor clock.
fn after(now: u64, d: Duration) -> u64 {
    now.saturating_add(ms(d))
}

impl Server {
    /// Binds both listeners. Ports may be 0; `public_addr`/`admin_addr` tell the result.
    /// Refuses a configuration that `Config::validate` rejects.
    pub fn bind(config: Config) -> io::Result<Server> {
        let limits = engine::Limits::of(&config);
        let engine: Box<dyn Engine + Send> = match &config.engine {
            EngineUrl::Memory => Box::new(MemoryEngine::new(limits)),
            EngineUrl::Redis { addr, db } => {
                use std::net::ToSocketAddrs;
                let to = addr.to_socket_addrs()?.next().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::NotFound, format!("{addr}: no address"))
                })?;
                let prefix = &config.redis_prefix;
                Box::new(engine::redis::RedisEngine::connect_db(
                    to, *db, prefix, limits,
                )?)
            }
        };
        Server::with_engine(config, engine)
    }

    /// Binds both listeners, with `engine` as the channel log (tests use engines that
    /// answer later, as a networked one does).
    pub fn with_engine(config: Config, mut engine: Box<dyn Engine + Send>) -> io::Result<Server> {
        config
            .validate()
            .map_err(|m| io::Error::new(io::ErrorKind::InvalidInput, m))?;
        let poll = Poll::new()?;
        let listeners = Listeners::bind(&config, &poll, PUBLIC, ADMIN)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        engine.register(poll.registry(), ENGINE_FIRST)?;
        let cors = CorsPolicy::new(&config.allow_origin, config.allow_credentials);
        let clock = Clock::default();
        Ok(Server {
            engine,
            hub: Hub::new(hub::Limits::of(&config)),
            config,
            poll,
            listeners,
            conns: GenSlab::default(),
            kinds: Kinds::default(),
            cors,
            wheel: TimerWheel::new(0),
            now: clock.now(),
            clock,
            pending_input: Vec::new(),
            deferred_input: VecDeque::new(),
            turn_requests: 0,
            scratch: vec![0u8; 64 * 1024].into_boxed_slice(),
            engine_events: Vec::new(),
            deliveries: Vec::new(),
            waiting: HashMap::new(),
            dirty: Vec::new(),
            late: Vec::new(),
            poll_batch: Vec::new(),
            poll_batched: HashMap::new(),
            ws_reads: HashMap::new(),
            ws_tickets: HashMap::new(),
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
        self.listeners.public.local_addr()
    }

    /// The admin listener's address.
    pub fn admin_addr(&self) -> io::Result<SocketAddr> {
        self.listeners.admin.local_addr()
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
        self.listeners.log_capacity(&self.config);
        let mut events = Events::with_capacity(256);
        if self.config.demo {
            log::info!("demo enabled: page at http://{}/", self.public_addr()?);
            self.wheel.insert(self.now.ms + 1000, TimerKind::DemoTick);
        }
        self.snapshot_tick();
        let mut fired = Vec::new();
        while !self.shutdown.load(Ordering::SeqCst) && !self.stop_now {
            if self.draining && self.conns.is_empty() {
                break;
            }
            let timeout = if self.deferred_input.is_empty() {
                [
                    self.wheel.next_expiration(),
                    self.hub.next_deadline(),
                    self.engine.next_deadline(),
                ]
                .into_iter()
                .flatten()
                .min()
                .map(|at| Duration::from_millis(at.saturating_sub(self.clock.mono_ms())))
            } else {
                Some(Duration::ZERO)
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            self.now = self.clock.now();
            self.turn_requests = 0;
            // The admin side first (publishers, health checks), then connections that
            // had work left from the last turn, then the public side.
            self.handle_events(&events, true);
            self.serve_deferred();
            self.handle_events(&events, false);
            self.wheel.advance(self.now.ms, &mut fired);
            for kind in fired.drain(..) {
                self.timer_fired(kind);
                self.drain_pending_input();
            }
            self.hub.advance(&mut *self.engine, self.now);
            self.engine.advance(self.now);
            self.fan_out();
            self.drain_pending_input();
            // Each subscriber written once with everything this turn queued for it.
            self.write_turn();
            // What the engine was asked this turn leaves in one write.
            self.engine.flush();
        }
        self.write_snapshot();
        log::info!("comet-gateway stopped");
        Ok(())
    }

    /// Handles the events of the admin side (its listener, its connections, signals) or
    /// of the public side.
    fn handle_events(&mut self, events: &Events, admin: bool) {
        for event in events.iter() {
            match event.token() {
                PUBLIC if !admin => self.accept(false),
                ADMIN if admin => self.accept(true),
                WAKER | PUBLIC | ADMIN => {}
                Token(t) if (ENGINE_FIRST..ENGINE_FIRST + engine::ENGINE_TOKENS).contains(&t) => {
                    if admin {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        self.engine.ready(
                            t - ENGINE_FIRST,
                            readable,
                            event.is_writable(),
                            self.now,
                        );
                        self.fan_out();
                    }
                }
                shutdown::SIGNAL => {
                    if admin {
                        self.signalled();
                    }
                }
                Token(index) => {
                    let Some(key) = self.conns.key_at(index) else {
                        continue;
                    };
                    if self.conns.get(key).is_none_or(|c| c.admin != admin) {
                        continue;
                    }
                    self.conn_ready(key, event);
                }
            }
            self.drain_pending_input();
        }
    }

    /// The server's counters.
    pub fn stats(&self) -> Stats {
        self.stats.with(self.engine.stats(), self.hub.stats())
    }

    fn conn_ready(&mut self, key: Key<Conn>, event: &mio::event::Event) {
        // A subscriber whose client hung up is gone at once, even with unread requests
        // in the way of the end-of-file (its input buffer may be full); a WebSocket's
        // last frames (its close, a last command) are read and handled first.
        let hung_up = event.is_read_closed()
            && self.conns.get(key).is_some_and(|c| match &c.phase {
                conn::Phase::Parked(_) => true,
                conn::Phase::Streaming(st) => st.out.input() != crate::transport::Input::WebSocket,
                _ => false,
            });
        if hung_up {
            return self.close(key);
        }
        if event.is_writable() {
            self.flush(key);
        }
        if event.is_readable() || event.is_read_closed() {
            self.read(key);
        }
    }

    fn timer_fired(&mut self, kind: TimerKind) {
        match kind {
            TimerKind::Conn(key) => self.conn_timer_fired(key),
            TimerKind::ShutdownDeadline => {
                log::warn!("shutdown timeout: {} connections left", self.conns.len());
                self.stop_now = true;
            }
            TimerKind::DemoTick => {
                let tick = format!("{} s since start", self.now.ms / 1000);
                // Only a full channel table refuses it; the next tick tries again.
                let _ = self.engine.publish(&[("demo.ticker", &tick)], self.now);
                self.fan_out();
                self.wheel.insert(self.now.ms + 1000, TimerKind::DemoTick);
            }
            TimerKind::Snapshot => self.snapshot_tick(),
            TimerKind::WsReads(key) => self.ws_reads_timed_out(key),
            TimerKind::AcceptRetry => {
                self.listeners.retry_armed = false;
                self.resume_accepting();
            }
        }
    }
}
