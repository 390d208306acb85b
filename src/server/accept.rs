//! The two listeners, who gets in, and how a connection leaves (`close` frees what it
//! held in the hub and lets a waiting connection in). The public listener admits at most `--max-conns`
//! connections, the admin listener at most `--max-admin-conns`; past a cap a connection
//! is accepted, answered 503 and closed. Public accepts also stop short of the process's
//! descriptor limit by a reserve kept for the admin listener, so publishers and health
//! checks get in however many subscribers are connected.
//!
//! When accepting must stop (the reserve is reached, or `accept` fails for lack of
//! descriptors), the waiting connections stay in the kernel's backlog and the listener
//! is retried when a connection closes (admin first) or after a short pause. Each such
//! episode is logged once when it starts and once when the backlog is drained again.
//!
//! Owns the listeners and the accept state; touches the hub only to free what a closing
//! connection held.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpListener;
use mio::{Interest, Poll, Token};

use super::conn::{Conn, Phase};
use super::fd_limit::{self, FdLimit};
use super::{Server, TimerKind};
use crate::config::Config;
use crate::handle::Key;
use crate::http::response;

/// How long accepting pauses after the process ran out of descriptors, unless a
/// connection closes first.
const ACCEPT_RETRY_MS: u64 = 100;

/// Descriptors public accepts leave free for the admin listener (at most
/// `--max-admin-conns`, and at most an eighth of the descriptor limit).
pub const ADMIN_FD_RESERVE: u64 = 64;
/// A pause of accepting ends (and is logged as ended) once the backlog is drained with at
/// least this many descriptors to spare, so a server that hovers at its limit logs one
/// episode, not one per freed descriptor.
const RESUME_ROOM: u64 = 64;

/// The listeners and the state of accepting on each.
pub(super) struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
    /// The process's `RLIMIT_NOFILE` (its soft limit raised to the hard one at start-up)
    /// and how it came about, for the start-up log.
    limits: FdLimit,
    /// Descriptors open when the listeners were bound (listeners, poll, logging, …).
    fd_base: u64,
    /// Accepting is paused on the public (index 0) or admin (index 1) listener.
    paused: [bool; 2],
    /// An `AcceptRetry` timer is pending.
    pub retry_armed: bool,
}

fn is_fd_exhaustion(e: &io::Error) -> bool {
    // EMFILE 24, ENFILE 23, ENOBUFS 105, ENOMEM 12 (Linux numbering).
    matches!(e.raw_os_error(), Some(24) | Some(23) | Some(105) | Some(12))
}

/// Kernel receive buffer of public connections (set on the listener, so the window is
/// sized from the first SYN; the kernel doubles it). Subscribers send small requests;
/// a client that pipelines and never reads cannot park more than this in the kernel.
const PUBLIC_RCVBUF: usize = 32 * 1024;

/// A non-blocking listener with our backlog (mio's own `bind` fixes it at 128, too few
/// for a reconnect storm), and for the public one a small receive buffer.
fn listen(
    addr: SocketAddr,
    backlog: i32,
    rcvbuf: Option<usize>,
    reuse_port: bool,
) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let bind = || -> io::Result<Socket> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        if reuse_port {
            // The workers of `--workers` share the port; the kernel spreads connections.
            s.set_reuse_port(true)?;
        }
        if let Some(n) = rcvbuf {
            s.set_recv_buffer_size(n)?;
        }
        s.bind(&addr.into())?;
        s.listen(backlog)?;
        s.set_nonblocking(true)?;
        Ok(s)
    };
    let s =
        bind().map_err(|e| io::Error::new(e.kind(), format!("cannot listen on {addr}: {e}")))?;
    Ok(TcpListener::from_std(s.into()))
}

/// Descriptors the process has open now.
fn fds_open() -> u64 {
    std::fs::read_dir("/proc/self/fd")
        // The directory handle itself is one of the entries.
        .map(|d| d.count().saturating_sub(1) as u64)
        .unwrap_or(16)
}

impl Listeners {
    pub fn bind(config: &Config, poll: &Poll, public: Token, admin: Token) -> io::Result<Self> {
        let reuse = config.reuse_port;
        let mut p = listen(config.listen, config.backlog, Some(PUBLIC_RCVBUF), reuse)?;
        let mut a = listen(config.admin_listen, config.backlog, None, reuse)?;
        poll.registry()
            .register(&mut p, public, Interest::READABLE)?;
        poll.registry()
            .register(&mut a, admin, Interest::READABLE)?;
        let limits = fd_limit::raise();
        Ok(Listeners {
            public: p,
            admin: a,
            limits,
            // The waker and the signal pipe come after this count.
            fd_base: fds_open() + 4,
            paused: [false; 2],
            retry_armed: false,
        })
    }

    /// Descriptors public accepts leave for the admin listener.
    fn reserve(&self, config: &Config) -> u64 {
        config
            .max_admin_conns
            .min(ADMIN_FD_RESERVE)
            .min(self.limits.soft / 8)
    }

    /// Logs the descriptor limit, how it came about, and how many public connections it
    /// allows: a warning when that is fewer than `--max-conns`.
    pub fn log_capacity(&self, config: &Config) {
        let reserve = self.reserve(config);
        let room = self.limits.soft.saturating_sub(self.fd_base + reserve);
        let limit = self.limits.describe();
        if room < config.max_conns {
            log::warn!(
                "{limit}: room for about {room} public connections, fewer than --max-conns {} \
                 ({reserve} descriptors are kept for the admin listener); raise the hard \
                 limit (systemd LimitNOFILE=, limits.conf nofile, ulimit -Hn) for more",
                config.max_conns
            );
        } else {
            log::info!(
                "{limit}: room for about {room} public connections (--max-conns {}; \
                 {reserve} descriptors are kept for the admin listener)",
                config.max_conns
            );
        }
    }

    fn pause(&mut self, admin: bool, why: &dyn std::fmt::Display) {
        if !self.paused[admin as usize] {
            self.paused[admin as usize] = true;
            let which = if admin { "admin" } else { "public" };
            log::warn!(
                "accept paused on the {which} listener: {why}; new connections wait in the backlog"
            );
        }
    }

    /// The backlog is drained; with room to spare, the episode is over.
    fn drained(&mut self, admin: bool, room: u64) {
        if self.paused[admin as usize] && room >= RESUME_ROOM.min(self.limits.soft / 8) {
            self.paused[admin as usize] = false;
            let which = if admin { "admin" } else { "public" };
            log::info!("accept resumed on the {which} listener");
        }
    }
}

/// Refuses a connection over its listener's cap: 503, then the close. What the client
/// sent is read and dropped first and again after our side is shut, so the close does
/// not turn into a reset that would hide the 503 (best effort: no state is kept).
fn refuse(mut sock: mio::net::TcpStream, scratch: &mut [u8]) {
    let drain = |sock: &mut mio::net::TcpStream, scratch: &mut [u8]| {
        for _ in 0..16 {
            match sock.read(scratch) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
    };
    drain(&mut sock, scratch);
    // A fresh socket's buffer takes this whole.
    let _ = sock.write(&response::overloaded());
    let _ = sock.shutdown(std::net::Shutdown::Write);
    drain(&mut sock, scratch);
}

impl Server {
    /// Descriptors left before public accepts would eat into the admin listener's
    /// reserve.
    fn public_fd_room(&self) -> u64 {
        let l = &self.listeners;
        let open = l.fd_base + self.kinds.public + self.kinds.admin;
        l.limits.soft.saturating_sub(open + l.reserve(&self.config))
    }

    /// Accepts every waiting connection of one listener, within its caps.
    pub(super) fn accept(&mut self, admin: bool) {
        if self.draining {
            return;
        }
        loop {
            if !admin && self.public_fd_room() == 0 {
                let why = "descriptor limit reached (the rest is kept for the admin listener)";
                self.listeners.pause(false, &why);
                return;
            }
            let listener = if admin {
                &self.listeners.admin
            } else {
                &self.listeners.public
            };
            match listener.accept() {
                Ok((sock, _peer)) => {
                    self.stats.accepted += 1;
                    let (open, max) = if admin {
                        (self.kinds.admin, self.config.max_admin_conns)
                    } else {
                        (self.kinds.public, self.config.max_conns)
                    };
                    if open >= max {
                        if admin {
                            self.stats.refused_admin += 1;
                        } else {
                            self.stats.refused += 1;
                        }
                        refuse(sock, &mut self.scratch);
                        continue;
                    }
                    let _ = sock.set_nodelay(true);
                    if self.config.sndbuf > 0 {
                        let _ =
                            socket2::SockRef::from(&sock).set_send_buffer_size(self.config.sndbuf);
                    }
                    let key = self.conns.insert(Conn::new(sock, admin, self.now.ms));
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
                    self.kinds.opened(admin);
                    self.arm(key);
                }
                // The backlog is empty.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let room = if admin {
                        u64::MAX
                    } else {
                        self.public_fd_room()
                    };
                    self.listeners.drained(admin, room);
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_fd_exhaustion(&e) => {
                    // Leave the rest in the backlog; resume when a descriptor frees (a
                    // connection closes) or after a short pause. No busy loop: the listener
                    // stays quiet (edge-triggered) until then.
                    self.stats.accept_fd_errors += 1;
                    self.listeners.pause(admin, &e);
                    if !self.listeners.retry_armed {
                        self.listeners.retry_armed = true;
                        self.wheel
                            .insert(self.now.ms + ACCEPT_RETRY_MS, TimerKind::AcceptRetry);
                    }
                    return;
                }
                // ECONNABORTED and kin: that one connection is gone, the next may be fine.
                Err(e) => log::debug!("accept: {e}"),
            }
        }
    }

    /// A descriptor may have freed: accept what waits, the admin listener first.
    pub(super) fn resume_accepting(&mut self) {
        if self.listeners.paused[1] {
            self.accept(true);
        }
        if self.listeners.paused[0] {
            self.accept(false);
        }
    }

    /// Stops accepting for good (shutdown).
    pub(super) fn stop_listening(&mut self) {
        let _ = self.poll.registry().deregister(&mut self.listeners.public);
        let _ = self.poll.registry().deregister(&mut self.listeners.admin);
    }

    /// Closes a connection and frees everything it held.
    pub(super) fn close(&mut self, key: Key<Conn>) {
        let Some(mut conn) = self.conns.remove(key) else {
            return;
        };
        if let Some(t) = conn.timer.take() {
            self.wheel.cancel(t);
        }
        self.kinds.closed(&conn);
        match std::mem::replace(&mut conn.phase, Phase::Ready) {
            // The client may poll again: its session outlives the connection (and holds
            // its channels before the poll lets go of them).
            Phase::Parked(p) => {
                let f = &p.follower;
                let (engine, now) = (&mut *self.engine, self.now);
                self.hub.unregister(&f.client);
                self.hub
                    .detach(engine, f.client, f.subs.as_slice(), p.auth_expires, now);
                self.hub.leave(engine, key, f.subs.as_slice(), now);
            }
            // Its answer, when it comes, finds nobody waiting.
            Phase::Waiting(w) => self.abandon_waiting(key, &w),
            Phase::Streaming(st) => {
                self.ws_forget(key);
                let f = &st.follower;
                self.hub
                    .leave(&mut *self.engine, key, f.subs.as_slice(), self.now);
                self.hub.unregister(&f.client);
            }
            _ => {}
        }
        let _ = self.poll.registry().deregister(&mut conn.sock);
        drop(conn);
        self.resume_accepting();
    }
}
