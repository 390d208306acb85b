//! A worker's counts as a snapshot file, and the host-wide sums. The file is plain text,
//! one `key value` per line (`worker`, `pid`, `written_ms` first, then every count under
//! a fixed name, then the engine's `engine_kind`, `engine_up` and, once measured,
//! `engine_rtt_us`); a reader ignores keys it does not know and takes a missing count as
//! 0, so a worker of a newer build and one of an older can share a directory. Pure: the
//! files are read and written in `host.rs`.

use std::collections::HashMap;
use std::fmt::Write as _;

use super::{Report, Worker};
use crate::transport::Format;

/// Every count of `r`, by its name in the files, in a fixed order.
fn counts(r: &mut Report, mut f: impl FnMut(&str, &mut u64)) {
    let k = &mut r.kinds;
    f("conn_public", &mut k.public);
    f("conn_admin", &mut k.admin);
    f("conn_parked_polls", &mut k.parked);
    for fmt in Format::ALL {
        f(
            &format!("conn_{}", &fmt.path()[1..]),
            &mut k.streams[fmt.index()],
        );
    }
    f("sessions", &mut r.sessions);
    f("channels", &mut r.channels);
    f("published_channels", &mut r.published_channels);
    let s = &mut r.stats;
    for (name, v) in [
        ("sessions_evicted", &mut s.sessions_evicted),
        ("published", &mut s.published),
        ("delivered", &mut s.delivered),
        ("evicted", &mut s.evicted),
        ("bytes_out", &mut s.bytes_out),
        ("public_writes", &mut s.public_writes),
        ("slow_consumers_dropped", &mut s.slow_consumers),
        ("stalled_dropped", &mut s.stalled),
        ("io_errors", &mut s.io_errors),
        ("accepted", &mut s.accepted),
        ("refused_max_conns", &mut s.refused),
        ("refused_max_admin_conns", &mut s.refused_admin),
        ("accept_errors", &mut s.accept_fd_errors),
        ("auth_failures", &mut s.auth_failures),
    ] {
        f(name, v);
    }
    f("engine_reconnects", &mut r.engine.reconnects);
}

/// The counts of `r`, in the order of `counts`.
fn values(r: &Report) -> Vec<u64> {
    let mut r = r.clone();
    let mut out = Vec::with_capacity(32);
    counts(&mut r, |_, v| out.push(*v));
    out
}

/// The engine kinds a file may name (the report keeps a `&'static str`).
fn kind(name: &str) -> &'static str {
    match name {
        "memory" => "memory",
        "redis" => "redis",
        _ => "unknown",
    }
}

/// `w` as a snapshot file's text.
pub fn to_text(w: &Worker) -> String {
    let mut out = String::with_capacity(1024);
    let _ = writeln!(out, "worker {}", w.index);
    let _ = writeln!(out, "pid {}", w.pid);
    let _ = writeln!(out, "written_ms {}", w.written_ms);
    let mut r = w.report.clone();
    counts(&mut r, |name, v| {
        let _ = writeln!(out, "{name} {v}");
    });
    let e = &w.report.engine;
    let _ = writeln!(out, "engine_kind {}", e.kind);
    let _ = writeln!(out, "engine_up {}", u8::from(e.up));
    if let Some(rtt) = e.rtt_us {
        let _ = writeln!(out, "engine_rtt_us {rtt}");
    }
    out
}

/// A snapshot file's text, or `None` if it lacks the worker's index, pid or time.
pub fn parse(text: &str) -> Option<Worker> {
    let fields: HashMap<&str, &str> = text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k, v.trim()))
        .collect();
    let num = |k: &str| fields.get(k).and_then(|v| v.parse::<u64>().ok());
    let mut report = Report::empty();
    counts(&mut report, |name, v| *v = num(name).unwrap_or(0));
    report.engine.kind = kind(fields.get("engine_kind").copied().unwrap_or(""));
    report.engine.up = num("engine_up") == Some(1);
    report.engine.rtt_us = num("engine_rtt_us");
    Some(Worker {
        index: u16::try_from(num("worker")?).ok()?,
        pid: u32::try_from(num("pid")?).ok()?,
        written_ms: num("written_ms")?,
        report,
    })
}

/// The host-wide report: every count summed; the engine up only if it is up in every
/// worker, its kind the first worker's, its round trip the slowest worker's.
pub fn total(workers: &[Worker]) -> Report {
    let mut sum = Report::empty();
    let mut acc = vec![0u64; values(&sum).len()];
    for w in workers {
        for (a, v) in acc.iter_mut().zip(values(&w.report)) {
            *a = a.saturating_add(v);
        }
    }
    let mut next = acc.into_iter();
    counts(&mut sum, |_, v| *v = next.next().unwrap_or(0));
    if let Some(first) = workers.first() {
        sum.engine.kind = first.report.engine.kind;
    }
    sum.engine.up = !workers.is_empty() && workers.iter().all(|w| w.report.engine.up);
    sum.engine.rtt_us = workers.iter().filter_map(|w| w.report.engine.rtt_us).max();
    sum
}

/// A snapshot file's name for worker `index`, and the index a file name gives.
pub fn file_name(index: u16) -> String {
    format!("worker-{index}")
}

/// The worker index of a snapshot file's name (`None` for any other file).
pub fn index_of(name: &str) -> Option<u16> {
    name.strip_prefix("worker-")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(index: u16, published: u64, up: bool, rtt: Option<u64>) -> Worker {
        let mut report = Report::empty();
        report.stats.published = published;
        report.kinds.streams[Format::Sse.index()] = 2;
        report.kinds.public = 3;
        report.engine.kind = "redis";
        report.engine.up = up;
        report.engine.reconnects = 1;
        report.engine.rtt_us = rtt;
        Worker {
            index,
            pid: 4000 + u32::from(index),
            written_ms: 1_700_000_000_000,
            report,
        }
    }

    #[test]
    fn a_snapshot_reads_back_as_written() {
        for w in [worker(3, 17, true, Some(250)), worker(0, 0, false, None)] {
            let text = to_text(&w);
            assert!(text.contains("\npublished "), "{text}");
            assert_eq!(parse(&text), Some(w));
        }
    }

    #[test]
    fn unknown_keys_are_ignored_and_missing_counts_are_zero() {
        let w =
            parse("worker 2\npid 9\nwritten_ms 5\nfuture_count 8\npublished 4\njunk\n").unwrap();
        assert_eq!((w.index, w.pid, w.written_ms), (2, 9, 5));
        assert_eq!(w.report.stats.published, 4);
        assert_eq!(w.report.stats.delivered, 0);
        assert_eq!(w.report.engine.kind, "unknown");
        assert!(!w.report.engine.up);
        // Half a file (no time) or a bad index is no snapshot.
        assert_eq!(parse("worker 2\npid 9\n"), None);
        assert_eq!(parse("worker 70000\npid 9\nwritten_ms 5\n"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn the_host_report_sums_the_counts_and_is_up_only_if_every_worker_is() {
        let all = [worker(0, 5, true, Some(100)), worker(1, 7, true, Some(300))];
        let t = total(&all);
        assert_eq!(t.stats.published, 12);
        assert_eq!(t.kinds.public, 6);
        assert_eq!(t.kinds.streams[Format::Sse.index()], 4);
        assert_eq!(t.engine.reconnects, 2);
        assert_eq!((t.engine.kind, t.engine.up), ("redis", true));
        assert_eq!(t.engine.rtt_us, Some(300));
        let t = total(&[worker(0, 5, true, Some(100)), worker(1, 7, false, None)]);
        assert!(!t.engine.up);
        assert_eq!(t.engine.rtt_us, Some(100));
        assert!(!total(&[]).engine.up);
    }

    #[test]
    fn file_names_carry_the_index() {
        assert_eq!(index_of(&file_name(12)), Some(12));
        assert_eq!(index_of(".worker-1.tmp"), None);
        assert_eq!(index_of("worker-x"), None);
    }
}
