//! The server's counters, and `/stats` (JSON) and `/metrics` (Prometheus text) built
//! from them, from the connection counts, and from the engine's and the hub's counts.
//! Reads counts; changes nothing.

use std::fmt::Write as _;

use bytes::Bytes;

use super::kinds::Kinds;
use crate::engine::EngineStats;
use crate::hub::HubStats;
use crate::json;
use crate::transport::Format;

/// Counters the server keeps (the management API exposes them).
#[derive(Clone, Copy, Debug, Default)]
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
    /// Requests refused for a missing or wrong admin or subscriber token.
    pub auth_failures: u64,
}

impl Stats {
    /// The reactor's counters with the engine's and the hub's filled in.
    pub(super) fn with(mut self, e: EngineStats, h: HubStats) -> Stats {
        self.published = e.published;
        self.evicted = e.evicted;
        self.delivered = h.delivered;
        self.sessions_evicted = h.sessions_evicted;
        self
    }
}

/// Everything `/stats` and `/metrics` report.
pub(super) struct Report {
    pub stats: Stats,
    pub kinds: Kinds,
    pub sessions: u64,
    pub engine: EngineStats,
}

impl Report {
    /// `GET /stats`.
    pub fn json(&self) -> Bytes {
        let (k, s, e) = (&self.kinds, &self.stats, &self.engine);
        json::object(|o| {
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
            .num("channels", e.channels)
            .num("published_channels", e.published_channels)
            .obj("messages", |o| {
                o.num("published", s.published)
                    .num("delivered", s.delivered)
                    .num("evicted", s.evicted);
            })
            .num("bytes_out", s.bytes_out)
            .num("slow_consumers_dropped", s.slow_consumers)
            .num("stalled_dropped", s.stalled)
            .num("io_errors", s.io_errors)
            .num("accepted", s.accepted)
            .num("refused_max_conns", s.refused)
            .num("refused_max_admin_conns", s.refused_admin)
            .num("accept_errors", s.accept_fd_errors)
            .num("auth_failures", s.auth_failures);
        })
    }

    /// `GET /metrics` (Prometheus text format 0.0.4).
    pub fn prometheus(&self) -> Bytes {
        let (k, s, e) = (&self.kinds, &self.stats, &self.engine);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(
                out,
                "# HELP comet_{name} {help}\n# TYPE comet_{name} {kind}"
            );
            for (labels, v) in samples {
                let _ = writeln!(out, "comet_{name}{labels} {v}");
            }
        };
        let mut kinds = vec![
            ("{kind=\"public\"}".to_string(), k.public),
            ("{kind=\"admin\"}".to_string(), k.admin),
            ("{kind=\"parked_poll\"}".to_string(), k.parked),
        ];
        for f in Format::ALL {
            kinds.push((
                format!("{{kind=\"{}\"}}", &f.path()[1..]),
                k.streams[f.index()],
            ));
        }
        let kinds: Vec<(&str, u64)> = kinds.iter().map(|(l, v)| (l.as_str(), *v)).collect();
        metric(
            "connections",
            "gauge",
            "Open client connections by kind.",
            &kinds,
        );
        let simple: [(&str, &str, &str, u64); 14] = [
            (
                "sessions",
                "gauge",
                "Long-poll sessions between polls.",
                self.sessions,
            ),
            (
                "sessions_evicted_total",
                "counter",
                "Sessions forgotten at --max-sessions.",
                s.sessions_evicted,
            ),
            ("channels", "gauge", "Channels that exist.", e.channels),
            (
                "published_channels",
                "gauge",
                "Channels that have had a message (what --max-channels caps).",
                e.published_channels,
            ),
            (
                "messages_published_total",
                "counter",
                "Messages published (per channel).",
                s.published,
            ),
            (
                "messages_delivered_total",
                "counter",
                "Messages handed to subscribers.",
                s.delivered,
            ),
            (
                "messages_evicted_total",
                "counter",
                "Messages dropped from buffers by size or ttl.",
                s.evicted,
            ),
            (
                "bytes_out_total",
                "counter",
                "Bytes written to clients.",
                s.bytes_out,
            ),
            (
                "slow_consumers_dropped_total",
                "counter",
                "Subscribers closed past --max-pending-bytes.",
                s.slow_consumers,
            ),
            (
                "stalled_dropped_total",
                "counter",
                "Connections closed because their unsent output did not move for --idle-timeout.",
                s.stalled,
            ),
            (
                "io_errors_total",
                "counter",
                "Connections closed because a read or write on them failed.",
                s.io_errors,
            ),
            (
                "connections_accepted_total",
                "counter",
                "Connections accepted.",
                s.accepted,
            ),
            (
                "accept_errors_total",
                "counter",
                "accept() failures for lack of descriptors.",
                s.accept_fd_errors,
            ),
            (
                "auth_failures_total",
                "counter",
                "Requests with a missing or wrong admin or subscriber token.",
                s.auth_failures,
            ),
        ];
        for (name, kind, help, v) in &simple[..12] {
            metric(name, kind, help, &[("", *v)]);
        }
        metric(
            "connections_refused_total",
            "counter",
            "Connections refused at --max-conns (public) or --max-admin-conns (admin).",
            &[
                ("{listener=\"public\"}", s.refused),
                ("{listener=\"admin\"}", s.refused_admin),
            ],
        );
        for (name, kind, help, v) in &simple[12..] {
            metric(name, kind, help, &[("", *v)]);
        }
        Bytes::from(out)
    }
}
