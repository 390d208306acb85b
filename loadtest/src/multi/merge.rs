//! One summary out of the workers' reports: counts summed, latency histograms added
//! bucket by bucket (never percentiles averaged), the ramp and the delivery window the
//! longest any worker took, the publisher's figures (the coordinator's own), the first
//! error any worker saw, and a [`Process`] line per worker. It owns [`Report`], a worker's
//! report as read back; it reads no pipe and touches no socket.

use std::io;

use hdrhistogram::Histogram;

use super::split::Share;
use crate::config::Config;
use crate::publisher::Published;
use crate::report::{latency_histogram, own_cpu_secs, rss_kib, Process, Summary};

/// One worker's report.
pub(super) struct Report {
    /// Its summary (its first error included).
    pub(super) summary: Summary,
    /// Its latency histogram.
    pub(super) latency: Histogram<u64>,
}

/// The run's summary from each share's report (in share order) and what was published.
pub(super) fn merge(
    cfg: &Config,
    shares: &[Share],
    reports: &[Report],
    published: &Published,
) -> io::Result<Summary> {
    let mut s = Summary::new(cfg);
    s.published = published.count;
    s.publish_errors = published.errors;
    s.publish_requests = published.requests;
    s.publish_secs = published.elapsed.as_secs_f64();
    let mut latency = latency_histogram()?;
    for (k, (share, r)) in shares.iter().zip(reports).enumerate() {
        let w = &r.summary;
        s.ramp_secs = s.ramp_secs.max(w.ramp_secs);
        s.delivery_secs = s.delivery_secs.max(w.delivery_secs);
        s.connects += w.connects;
        s.answers += w.answers;
        s.expected += w.expected;
        s.received += w.received;
        s.duplicates += w.duplicates;
        s.out_of_order += w.out_of_order;
        s.skipped += w.skipped;
        s.lost += w.lost;
        s.resets += w.resets;
        s.missing += w.missing;
        s.generator_cpu_secs += w.generator_cpu_secs;
        let (e, we) = (&mut s.errors, &w.errors);
        e.connect += we.connect;
        e.write += we.write;
        e.read += we.read;
        e.closed_by_server += we.closed_by_server;
        e.http += we.http;
        e.protocol += we.protocol;
        e.server_error_events += we.server_error_events;
        e.churned += we.churned;
        if e.first.is_none() {
            e.first = we.first.as_ref().map(|f| format!("process {k}: {f}"));
        }
        latency
            .add(&r.latency)
            .map_err(|e| io::Error::other(format!("process {k}: latency: {e:?}")))?;
        s.processes.push(Process {
            subscribers: share.subscribers,
            sources: share.sources.clone(),
            ramp_secs: w.ramp_secs,
            received: w.received,
            missing: w.missing,
            errors: we.total(),
            latency_count: r.latency.len(),
            p99_us: r.latency.value_at_quantile(0.99),
        });
    }
    s.set_latency(&latency);
    s.latency_count = Some(latency.len());
    if let Some(pid) = cfg.server_pid {
        s.server_rss_kib = rss_kib(pid);
    }
    // The coordinator's own (the publisher) beside its workers'.
    s.generator_cpu_secs += own_cpu_secs();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::time::Duration;

    fn report(received: u64, latencies: &[u64], first: Option<&str>) -> Report {
        let mut latency = latency_histogram().unwrap();
        for &l in latencies {
            latency.record(l).unwrap();
        }
        let mut summary = Summary {
            expected: received + 1,
            received,
            missing: 1,
            ramp_secs: received as f64,
            delivery_secs: 2.0,
            ..Summary::default()
        };
        summary.errors.read = 1;
        summary.errors.first = first.map(String::from);
        Report { summary, latency }
    }

    #[test]
    fn counts_add_histograms_merge_and_times_take_the_longest() {
        let cfg = Config::parse_from(["x", "--subscribers=5", "--processes=2"]);
        let shares = super::super::split::shares(5, &[], 2, 5000);
        let reports = [
            report(3, &[10, 20, 30], None),
            report(2, &[1000, 2000], Some("HTTP 503")),
        ];
        let published = Published {
            last: vec![Some(4)],
            count: 3,
            errors: 0,
            requests: 2,
            elapsed: Duration::from_millis(1500),
        };
        let s = merge(&cfg, &shares, &reports, &published).unwrap();
        assert_eq!((s.subscribers, s.published, s.publish_secs), (5, 3, 1.5));
        assert_eq!(s.publish_requests, 2);
        assert_eq!((s.expected, s.received, s.missing), (7, 5, 2));
        assert_eq!((s.ramp_secs, s.delivery_secs), (3.0, 2.0));
        assert_eq!(s.errors.read, 2);
        assert_eq!(s.errors.first.as_deref(), Some("process 1: HTTP 503"));
        assert_eq!(s.latency_count, Some(5));
        // The merged p50 is the third of 10, 20, 30, 1000, 2000: not an average of two.
        assert_eq!(s.latency_us[0], 30);
        assert_eq!(s.latency_us[4], 2000);
        assert_eq!(s.processes.len(), 2);
        assert_eq!(
            (s.processes[1].subscribers, s.processes[1].latency_count),
            (2, 2)
        );
        assert!(s.text().contains("process 1: subscribers 2  from any"));
        assert!(s.json().ends_with(",\"latency_count\":5}"), "{}", s.json());
    }
}
