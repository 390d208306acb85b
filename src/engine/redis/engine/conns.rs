//! The Redis engine's two connections: opening them (scripts loaded first), noticing
//! that one died (publishes answer 503 from then on), and reconnecting after a backoff
//! (100 ms doubling to 5 s), subscribing again and repairing every watched channel from
//! its next expected seq.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use super::{RedisEngine, BACKOFF_MAX_MS, BACKOFF_MIN_MS};
use crate::engine::redis::resp::{CommandConn, PubSubConn, DEFAULT_MAX_REPLY};
use crate::engine::redis::scripts;

impl RedisEngine {
    /// A command connection (the script loaded first, so the `EVALSHA`s behind it find
    /// it) and a pub/sub connection.
    pub(super) fn open(addr: SocketAddr, db: u32) -> io::Result<(CommandConn, PubSubConn)> {
        let mut cmd = CommandConn::connect(addr, DEFAULT_MAX_REPLY)?;
        let sub = PubSubConn::connect(addr, DEFAULT_MAX_REPLY)?;
        if db != 0 {
            cmd.send(0, &[b"SELECT", db.to_string().as_bytes()])
                .map_err(|e| io::Error::other(format!("redis: {e:?}")))?;
        }
        for script in scripts::ALL {
            cmd.send(0, &[b"SCRIPT", b"LOAD", script.as_bytes()])
                .map_err(|e| io::Error::other(format!("redis: {e:?}")))?;
        }
        Ok((cmd, sub))
    }

    /// Loads every script again on the command connection (after `NOSCRIPT`).
    pub(super) fn load_scripts(&mut self) {
        for script in scripts::ALL {
            let _ = self.cmd.send(0, &[b"SCRIPT", b"LOAD", script.as_bytes()]);
        }
    }

    /// A connection died: publishes answer 503 until a reconnect, tried after a backoff
    /// that doubles up to `BACKOFF_MAX_MS`.
    pub(super) fn check_down(&mut self, now_ms: u64) {
        let dead = self.cmd.dead().or(self.sub.dead());
        if let (Some(e), None) = (dead, self.down) {
            log::warn!("redis at {} unreachable ({e:?}); retrying", self.addr);
            self.down = Some((now_ms + BACKOFF_MIN_MS, BACKOFF_MIN_MS));
        }
    }

    /// Connects again, registers the new sockets, subscribes to every watched channel
    /// again. (Catching the watched channels up from their subscribers' cursors is not
    /// done yet: see docs/redis-engine.md.)
    pub(super) fn reconnect(&mut self, now_ms: u64) {
        let Some((at, wait)) = self.down else {
            return;
        };
        if now_ms < at {
            return;
        }
        let retry = |e: &dyn std::fmt::Debug, this: &mut Self| {
            log::debug!("redis reconnect failed: {e:?}");
            let wait = (wait * 2).min(BACKOFF_MAX_MS);
            this.down = Some((now_ms + wait, wait));
        };
        let (mut cmd, mut sub) = match Self::open(self.addr, self.db) {
            Ok(c) => c,
            Err(e) => return retry(&e, self),
        };
        if let Some((registry, first)) = &self.registry {
            let _ = self.cmd.deregister(registry);
            let _ = self.sub.deregister(registry);
            let r = cmd
                .register(registry, mio::Token(*first))
                .and_then(|_| sub.register(registry, mio::Token(first + 1)));
            if let Err(e) = r {
                return retry(&e, self);
            }
        }
        for live in self.watched.keys() {
            let _ = sub.subscribe(live);
        }
        self.cmd = cmd;
        self.sub = sub;
        self.down = None;
        self.reconnects += 1;
        // What was published while the connection was down is read back from history.
        let behind: Vec<(Arc<str>, u64)> =
            self.expect.iter().map(|(n, &e)| (n.clone(), e)).collect();
        for (name, from) in behind {
            if !self.repairing.contains_key(&name) {
                self.repair(name, from, Vec::new());
            }
        }
        log::info!("redis at {} reconnected", self.addr);
    }
}
