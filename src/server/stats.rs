//! The server's counters, and `/stats` (JSON) built from them, from the connection
//! counts, and from the engine's and the hub's counts: for this process alone, or (under
//! `--workers`) for the whole host, this worker's live counts and the other workers'
//! snapshot files (`stats/snapshot.rs` the file format and the sums, `stats/host.rs`
//! writing and reading the files, `stats/prometheus.rs` the `/metrics` text).
//! Reads counts; changes nothing.

mod host;
mod prometheus;
pub(super) mod snapshot;

use bytes::Bytes;

use super::kinds::Kinds;
use crate::engine::EngineHealth;
use crate::hub::HubStats;
use crate::json::{self, Obj};
use crate::transport::Format;

/// Counters the server keeps (the management API exposes them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted.
    pub accepted: u64,
    /// Public connections refused with 503 at `--max-conns`.
    pub refused: u64,
    /// Admin connections refused with 503 at `--max-admin-conns`.
    pub refused_admin: u64,
    /// `accept` failures for lack of descriptors (EMFILE/ENFILE/ENOBUFS/ENOMEM).
    pub accept_fd_errors: u64,
    /// Messages published (per channel).
    pub published: u64,
    /// Messages evicted from a channel buffer (by size or ttl).
    pub evicted: u64,
    /// Subscribers closed for passing `--max-pending-bytes`.
    pub slow_consumers: u64,
    /// Connections closed because their unsent output did not move for `--idle-timeout`.
    pub stalled: u64,
    /// Connections closed because reading from or writing to them failed (reset etc.).
    pub io_errors: u64,
    /// Long-poll sessions forgotten at `--max-sessions` (the one idle longest).
    pub sessions_evicted: u64,
    /// Messages handed to subscribers: in a poll answer (at once or after waiting), a
    /// stream's catch-up or a live stream frame; one per subscriber and message.
    pub delivered: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// Write system calls (`writev`) on public-listener connections: with `delivered`,
    /// how many deliveries one write carries (writes coalesced per loop turn).
    pub public_writes: u64,
    /// Requests refused for a missing or wrong admin or subscriber token.
    pub auth_failures: u64,
}

impl Stats {
    /// The reactor's counters with the engine's and the hub's filled in.
    pub(super) fn with(mut self, e: crate::engine::EngineStats, h: HubStats) -> Stats {
        self.published = e.published;
        self.evicted = e.evicted;
        self.delivered = h.delivered;
        self.sessions_evicted = h.sessions_evicted;
        self
    }
}

/// Everything `/stats` and `/metrics` report about one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Report {
    pub stats: Stats,
    pub kinds: Kinds,
    pub sessions: u64,
    /// The engine's channels (published ones, and those local subscribers named).
    pub channels: u64,
    /// The engine's channels that have had a message.
    pub published_channels: u64,
    pub engine: EngineHealth,
}

/// One worker of `--workers`, as the host view lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Worker {
    /// Its index (0..N), kept by a replacement.
    pub index: u16,
    pub pid: u32,
    /// When its counts were taken (Unix ms).
    pub written_ms: u64,
    pub report: Report,
}

/// What `/stats` and `/metrics` describe.
pub(super) enum View {
    /// This process (no `--workers`).
    One(Report),
    /// The whole host: the sums, and every worker whose counts are fresh.
    Host {
        total: Report,
        workers: Vec<Worker>,
        /// The time of this answer (Unix ms).
        now_ms: u64,
    },
}

impl Report {
    /// An empty report (nothing counted, the engine unknown and down).
    pub fn empty() -> Report {
        Report {
            stats: Stats::default(),
            kinds: Kinds::default(),
            sessions: 0,
            channels: 0,
            published_channels: 0,
            engine: EngineHealth {
                kind: "unknown",
                up: false,
                reconnects: 0,
                rtt_us: None,
            },
        }
    }

    /// The fields of `/stats`, into `o`.
    fn fields(&self, o: &mut Obj) {
        let (k, s, e) = (&self.kinds, &self.stats, &self.engine);
        o.obj("connections", |o| {
            o.num("public", k.public)
                .num("admin", k.admin)
                .num("parked_polls", k.parked)
                .obj("streams", |o| {
                    for f in Format::ALL {
                        o.num(&f.path()[1..], k.streams[f.index()]);
                    }
                });
        })
        .num("sessions", self.sessions)
        .num("sessions_evicted", s.sessions_evicted)
        .num("channels", self.channels)
        .num("published_channels", self.published_channels)
        .obj("messages", |o| {
            o.num("published", s.published)
                .num("delivered", s.delivered)
                .num("evicted", s.evicted);
        })
        .num("bytes_out", s.bytes_out)
        .num("public_writes", s.public_writes)
        .num("slow_consumers_dropped", s.slow_consumers)
        .num("stalled_dropped", s.stalled)
        .num("io_errors", s.io_errors)
        .num("accepted", s.accepted)
        .num("refused_max_conns", s.refused)
        .num("refused_max_admin_conns", s.refused_admin)
        .num("accept_errors", s.accept_fd_errors)
        .num("auth_failures", s.auth_failures)
        .obj("engine", |o| {
            o.str("kind", e.kind)
                .str("state", if e.up { "up" } else { "down" })
                .num("reconnects", e.reconnects);
            if let Some(rtt) = e.rtt_us {
                o.num("rtt_us", rtt);
            }
        });
    }
}

impl View {
    /// `GET /stats`.
    pub fn json(&self) -> Bytes {
        match self {
            View::One(r) => json::object(|o| r.fields(o)),
            View::Host {
                total,
                workers,
                now_ms,
            } => json::object(|o| {
                total.fields(o);
                o.arr("workers", workers, |o, w| {
                    o.num("worker", w.index.into())
                        .num("pid", w.pid.into())
                        .num("age_ms", now_ms.saturating_sub(w.written_ms));
                    w.report.fields(o);
                });
            }),
        }
    }
}
