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
        let cmd = Self::open_cmd(addr, db)?;
        let sub = PubSubConn::connect(addr, DEFAULT_MAX_REPLY)?;
        Ok((cmd, sub))
    }

    /// A command connection, its database selected and the scripts loaded.
    fn open_cmd(addr: SocketAddr, db: u32) -> io::Result<CommandConn> {
        let mut cmd = CommandConn::connect(addr, DEFAULT_MAX_REPLY)?;
        if db != 0 {
            cmd.send(0, &[b"SELECT", db.to_string().as_bytes()])
                .map_err(|e| io::Error::other(format!("redis: {e:?}")))?;
        }
        for script in scripts::ALL {
            cmd.send(0, &[b"SCRIPT", b"LOAD", script.as_bytes()])
                .map_err(|e| io::Error::other(format!("redis: {e:?}")))?;
        }
        Ok(cmd)
    }

    /// Loads every script again on the command connection (after `NOSCRIPT`).
    pub(super) fn load_scripts(&mut self) {
        for script in scripts::ALL {
            let _ = self.cmd.send(0, &[b"SCRIPT", b"LOAD", script.as_bytes()]);
        }
    }

    /// A connection died: publishes answer 503 until a reconnect, tried after a backoff
    /// that doubles (up to `BACKOFF_MAX_MS`) while reconnections fail before answering
    /// (a connect to a dead Redis fails only once tried), and starts over once one did.
    pub(super) fn check_down(&mut self, now_ms: u64) {
        let dead = self.cmd.dead().or(self.sub.dead());
        if let (Some(e), None) = (dead, self.down) {
            let wait = if self.answered() {
                BACKOFF_MIN_MS
            } else {
                (self.backoff_ms * 2).clamp(BACKOFF_MIN_MS, BACKOFF_MAX_MS)
            };
            self.backoff_ms = wait;
            log::warn!(
                "redis at {} unreachable ({e}); retrying in {wait} ms",
                self.addr
            );
            self.down = Some((now_ms + wait, wait));
        }
    }

    /// Opens again the connections that died (a command connection still alive keeps its
    /// calls in flight), registers the new sockets, subscribes to every watched channel
    /// again and reads each one back from the seq it expects next.
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
            this.backoff_ms = wait;
            this.down = Some((now_ms + wait, wait));
        };
        // The calls that died with the command connection are answered (503) first.
        self.replies();
        let new_cmd = match self.cmd.dead() {
            Some(_) => match Self::open_cmd(self.addr, self.db) {
                Ok(c) => Some(c),
                Err(e) => return retry(&e, self),
            },
            None => None,
        };
        let mut sub = match PubSubConn::connect(self.addr, DEFAULT_MAX_REPLY) {
            Ok(s) => s,
            Err(e) => return retry(&e, self),
        };
        let mut cmd = new_cmd;
        if let Some((registry, first)) = &self.registry {
            let _ = self.sub.deregister(registry);
            let mut r = sub.register(registry, mio::Token(first + 1));
            if let Some(c) = cmd.as_mut() {
                let _ = self.cmd.deregister(registry);
                r = r.and_then(|_| c.register(registry, mio::Token(*first)));
            }
            if let Err(e) = r {
                return retry(&e, self);
            }
        }
        for live in self.watched.keys() {
            let _ = sub.subscribe(live);
        }
        if let Some(c) = cmd {
            self.cmd = c;
        }
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
