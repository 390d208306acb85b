//! `GET /metrics` in Prometheus text format 0.0.4. One process: every series as it has
//! always been. The whole host (`--workers`): every series once per worker, labelled
//! `worker="i"` (sum them with `sum without (worker)`), plus `comet_workers`. Counters are
//! not summed here: a replaced worker starts its counters at 0 again, which Prometheus
//! reads as the reset of that worker's series, where a summed counter would go down.
//! Each metric's HELP and TYPE appear once, and no name and label set twice.

use std::fmt::Write as _;

use bytes::Bytes;

use super::{Report, View};
use crate::transport::Format;

/// One metric and its samples: inner labels (without braces) and value.
struct Family {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    samples: Vec<(String, String)>,
}

fn family(name: &'static str, kind: &'static str, help: &'static str, v: u64) -> Family {
    Family {
        name,
        kind,
        help,
        samples: vec![(String::new(), v.to_string())],
    }
}

/// Every metric of one report, in the order of the output.
fn families(r: &Report) -> Vec<Family> {
    let (k, s, e) = (&r.kinds, &r.stats, &r.engine);
    let mut kinds = vec![
        ("kind=\"public\"".to_string(), k.public.to_string()),
        ("kind=\"admin\"".to_string(), k.admin.to_string()),
        ("kind=\"parked_poll\"".to_string(), k.parked.to_string()),
    ];
    for f in Format::ALL {
        let label = format!("kind=\"{}\"", &f.path()[1..]);
        kinds.push((label, k.streams[f.index()].to_string()));
    }
    let connections = Family {
        name: "connections",
        kind: "gauge",
        help: "Open client connections by kind.",
        samples: kinds,
    };
    let refused = Family {
        name: "connections_refused_total",
        kind: "counter",
        help: "Connections refused at --max-conns (public) or --max-admin-conns (admin).",
        samples: vec![
            ("listener=\"public\"".into(), s.refused.to_string()),
            ("listener=\"admin\"".into(), s.refused_admin.to_string()),
        ],
    };
    let up = Family {
        name: "engine_up",
        kind: "gauge",
        help: "1 while the engine can be reached (the memory engine always).",
        samples: vec![(format!("kind=\"{}\"", e.kind), u64::from(e.up).to_string())],
    };
    let rtt = Family {
        name: "engine_rtt_seconds",
        kind: "gauge",
        help: "Round trip of the last PING on the engine's pub/sub connection.",
        samples: (e.rtt_us.iter())
            .map(|us| (String::new(), format!("{:.6}", *us as f64 / 1e6)))
            .collect(),
    };
    vec![
        connections,
        family(
            "sessions",
            "gauge",
            "Long-poll sessions between polls.",
            r.sessions,
        ),
        family(
            "sessions_evicted_total",
            "counter",
            "Sessions forgotten at --max-sessions.",
            s.sessions_evicted,
        ),
        family("channels", "gauge", "Channels that exist.", r.channels),
        family(
            "published_channels",
            "gauge",
            "Channels that have had a message (what --max-channels caps).",
            r.published_channels,
        ),
        family(
            "messages_published_total",
            "counter",
            "Messages published (per channel).",
            s.published,
        ),
        family(
            "messages_delivered_total",
            "counter",
            "Messages handed to subscribers.",
            s.delivered,
        ),
        family(
            "messages_evicted_total",
            "counter",
            "Messages dropped from buffers by size or ttl.",
            s.evicted,
        ),
        family(
            "bytes_out_total",
            "counter",
            "Bytes written to clients.",
            s.bytes_out,
        ),
        family(
            "public_writes_total",
            "counter",
            "Write system calls on public-listener connections (deliveries per write: messages_delivered_total / this).",
            s.public_writes,
        ),
        family(
            "slow_consumers_dropped_total",
            "counter",
            "Subscribers closed past --max-pending-bytes.",
            s.slow_consumers,
        ),
        family(
            "stalled_dropped_total",
            "counter",
            "Connections closed because their unsent output did not move for --idle-timeout.",
            s.stalled,
        ),
        family(
            "io_errors_total",
            "counter",
            "Connections closed because a read or write on them failed.",
            s.io_errors,
        ),
        family(
            "connections_accepted_total",
            "counter",
            "Connections accepted.",
            s.accepted,
        ),
        refused,
        family(
            "accept_errors_total",
            "counter",
            "accept() failures for lack of descriptors.",
            s.accept_fd_errors,
        ),
        family(
            "auth_failures_total",
            "counter",
            "Requests with a missing or wrong admin or subscriber token.",
            s.auth_failures,
        ),
        up,
        family(
            "engine_reconnects_total",
            "counter",
            "Lost engine connections made again (and answering).",
            e.reconnects,
        ),
        rtt,
    ]
}

/// `{worker,inner}` labels as the text format writes them ("" for none).
fn labels(worker: Option<u16>, inner: &str) -> String {
    match (worker, inner.is_empty()) {
        (None, true) => String::new(),
        (None, false) => format!("{{{inner}}}"),
        (Some(w), true) => format!("{{worker=\"{w}\"}}"),
        (Some(w), false) => format!("{{worker=\"{w}\",{inner}}}"),
    }
}

impl View {
    /// `GET /metrics`.
    pub fn prometheus(&self) -> Bytes {
        let reports: Vec<(Option<u16>, Vec<Family>)> = match self {
            View::One(r) => vec![(None, families(r))],
            View::Host { workers, .. } => workers
                .iter()
                .map(|w| (Some(w.index), families(&w.report)))
                .collect(),
        };
        let mut out = String::new();
        let count = reports.first().map_or(0, |(_, f)| f.len());
        for i in 0..count {
            let mut head = false;
            for (worker, fams) in &reports {
                let Some(f) = fams.get(i) else { continue };
                for (inner, v) in &f.samples {
                    if !head {
                        let (name, kind, help) = (f.name, f.kind, f.help);
                        let _ = writeln!(out, "# HELP comet_{name} {help}");
                        let _ = writeln!(out, "# TYPE comet_{name} {kind}");
                        head = true;
                    }
                    let _ = writeln!(out, "comet_{}{} {v}", f.name, labels(*worker, inner));
                }
            }
        }
        if let View::Host { workers, .. } = self {
            let _ = writeln!(
                out,
                "# HELP comet_workers Worker processes whose counts this answer includes.\n\
                 # TYPE comet_workers gauge\ncomet_workers {}",
                workers.len()
            );
        }
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Worker;
    use super::*;

    fn metric_lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| !l.starts_with('#')).collect()
    }

    #[test]
    fn one_process_has_no_worker_label_and_the_host_one_per_worker() {
        let mut r = Report::empty();
        r.stats.published = 5;
        r.engine.rtt_us = Some(250);
        let one = String::from_utf8(View::One(r.clone()).prometheus().to_vec()).unwrap();
        assert!(
            one.contains("\ncomet_messages_published_total 5\n"),
            "{one}"
        );
        assert!(
            one.contains("\ncomet_engine_rtt_seconds 0.000250\n"),
            "{one}"
        );
        assert!(one.contains("comet_engine_up{kind=\"unknown\"} 0"), "{one}");
        assert!(!one.contains("worker"), "{one}");
        let w = |index| Worker {
            index,
            pid: 100 + u32::from(index),
            written_ms: 0,
            report: r.clone(),
        };
        let host = View::Host {
            total: r.clone(),
            workers: vec![w(0), w(3)],
            now_ms: 0,
        };
        let text = String::from_utf8(host.prometheus().to_vec()).unwrap();
        assert!(text.contains("comet_messages_published_total{worker=\"3\"} 5"));
        assert!(text.contains("comet_connections{worker=\"0\",kind=\"public\"} 0"));
        assert!(text.contains("\ncomet_workers 2\n"), "{text}");
        // No series twice, and every family's HELP and TYPE once.
        let lines = metric_lines(&text);
        let series: std::collections::HashSet<&str> = lines
            .iter()
            .map(|l| l.rsplit_once(' ').unwrap().0)
            .collect();
        assert_eq!(series.len(), lines.len(), "{text}");
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let distinct: std::collections::HashSet<&&str> = types.iter().collect();
        assert_eq!(distinct.len(), types.len(), "{text}");
        assert_eq!(
            metric_lines(&one).len() * 2 + 1,
            lines.len(),
            "every series once per worker, plus comet_workers"
        );
    }
}
