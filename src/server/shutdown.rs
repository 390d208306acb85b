//! Graceful shutdown on SIGTERM or SIGINT. The signals reach the reactor through a
//! self-pipe (signal-hook writes a byte, the loop reads it like any socket). The first
//! signal stops accepting, answers every parked poll with `noop`, ends every stream with
//! `reconnect` carrying its cursor, closes idle connections, and lets the rest flush; the
//! reactor returns once no connection is left or `--shutdown-timeout` has passed. A second
//! signal returns at once.
//! Goes through the handlers' own ways of ending a poll or a stream; holds no state of
//! its own but the self-pipe.

use std::io::{self, Read};

use bytes::Bytes;
use mio::net::UnixStream;
use mio::{Interest, Token};

use super::conn::{Conn, Phase};
use super::{after, Server, TimerKind};
use crate::event;
use crate::handle::Key;

/// The self-pipe's token.
pub(super) const SIGNAL: Token = Token(usize::MAX - 4);

impl Server {
    /// Installs the SIGTERM/SIGINT handlers (the binary does; tests that run the server
    /// in-process do not).
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let (read, write) = std::os::unix::net::UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let write2 = write.try_clone()?;
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGTERM, write)?;
        signal_hook::low_level::pipe::register(signal_hook::consts::SIGINT, write2)?;
        let mut read = UnixStream::from_std(read);
        self.poll
            .registry()
            .register(&mut read, SIGNAL, Interest::READABLE)?;
        self.signal_pipe = Some(read);
        Ok(())
    }

    /// The self-pipe is readable: count the signals.
    pub(super) fn signalled(&mut self) {
        let mut n = 0;
        if let Some(pipe) = self.signal_pipe.as_mut() {
            let mut buf = [0u8; 16];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
            }
        }
        for _ in 0..n {
            if self.draining {
                log::warn!("second signal: exiting now");
                self.stop_now = true;
                return;
            }
            self.begin_shutdown();
        }
    }

    fn begin_shutdown(&mut self) {
        log::info!(
            "shutting down: {} connections to finish (at most {:?})",
            self.conns.len(),
            self.config.shutdown_timeout
        );
        self.draining = true;
        self.stop_listening();
        let keys: Vec<Key<Conn>> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            match &mut conn.phase {
                Phase::Parked(p) => {
                    p.keep_alive = false;
                    self.answer_poll(key, &[Bytes::from_static(event::NOOP)], false);
                }
                Phase::Streaming(st) => {
                    let cursor = self.hub.cursor(st.follower.subs.as_slice());
                    self.end_stream(key, &[event::reconnect(&cursor)]);
                }
                Phase::Head { .. } | Phase::Idle { .. } | Phase::Ready => {
                    if conn.wq_is_empty() {
                        self.close(key);
                    } else {
                        conn.phase = Phase::Closing { linger: false };
                        self.arm(key);
                    }
                }
                // Answered when the engine answers, or at --engine-timeout; then closed.
                Phase::Waiting(w) => w.keep_alive = false,
                Phase::Closing { .. } | Phase::Lingering { .. } => {}
            }
        }
        let at = after(self.now.ms, self.config.shutdown_timeout);
        self.wheel.insert(at, TimerKind::ShutdownDeadline);
    }
}
