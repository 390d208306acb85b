//! The run's summary: printed for people, written as JSON for scripts. It owns the
//! [`Summary`] and [`Errors`] and both formats, which scripts and tests parse (change
//! neither lightly), and reads a server's RSS from `/proc`; it never touches a socket or
//! the run's state: the run fills a summary in at its end.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

use crate::config::Config;

/// Errors, counted by kind; none of them stops the run.
#[derive(Clone, Debug, Default)]
pub struct Errors {
    /// Connects that failed.
    pub connect: u64,
    /// Writes that failed.
    pub write: u64,
    /// Reads that failed (reset etc.).
    pub read: u64,
    /// The server closed a connection the generator expected to stay open.
    pub closed_by_server: u64,
    /// Non-200 answers.
    pub http: u64,
    /// Bytes or events that made no sense.
    pub protocol: u64,
    /// `error` events sent by the server.
    pub server_error_events: u64,
    /// Connections dropped on purpose by `--churn` (not an error; counted here for one view).
    pub churned: u64,
    /// The first error seen, in words.
    pub first: Option<String>,
}

impl Errors {
    /// All real errors (churn excluded).
    pub fn total(&self) -> u64 {
        self.connect
            + self.write
            + self.read
            + self.closed_by_server
            + self.http
            + self.protocol
            + self.server_error_events
    }
}

/// The result of a run.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// Transport used.
    pub transport: String,
    /// Subscriber connections.
    pub subscribers: usize,
    /// Channels.
    pub channels: usize,
    /// Channels per subscriber.
    pub channels_per_subscriber: usize,
    /// Seconds until every subscriber was ready.
    pub ramp_secs: f64,
    /// Connections opened (including reconnects).
    pub connects: u64,
    /// Poll answers received (long-poll round trips).
    pub answers: u64,
    /// Messages published.
    pub published: u64,
    /// Publishes that failed.
    pub publish_errors: u64,
    /// Seconds spent publishing.
    pub publish_secs: f64,
    /// From the start of publishing to the end of the last deliveries (bounded by drain).
    pub delivery_secs: f64,
    /// Deliveries due: each subscriber × each message of its channels.
    pub expected: u64,
    /// Messages delivered in order.
    pub received: u64,
    /// Messages delivered again.
    pub duplicates: u64,
    /// Deliveries that skipped seqs with no `lost` event.
    pub out_of_order: u64,
    /// Seqs skipped with no `lost` event.
    pub skipped: u64,
    /// Seqs announced by `lost` events.
    pub lost: u64,
    /// `reset` events.
    pub resets: u64,
    /// Due but neither delivered nor announced lost.
    pub missing: u64,
    /// Latency percentiles, µs: p50, p90, p99, p99.9, max.
    pub latency_us: [u64; 5],
    /// Errors by kind.
    pub errors: Errors,
    /// The server's resident memory at the end, KiB.
    pub server_rss_kib: Option<u64>,
}

/// VmRSS of a process, KiB.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

impl Summary {
    /// An empty summary for a configuration.
    pub fn new(cfg: &Config) -> Summary {
        Summary {
            transport: format!("{:?}", cfg.transport).to_lowercase(),
            subscribers: cfg.subscribers,
            channels: cfg.channels,
            channels_per_subscriber: cfg.channels_per_subscriber,
            ..Summary::default()
        }
    }

    /// Takes the percentiles of a latency histogram.
    pub fn set_latency(&mut self, h: &Histogram<u64>) {
        self.latency_us = [
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.9),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
        ];
    }

    /// Deliveries per second over the delivery window.
    pub fn deliveries_per_sec(&self) -> f64 {
        if self.delivery_secs > 0.0 {
            self.received as f64 / self.delivery_secs
        } else {
            0.0
        }
    }

    /// True when every due message arrived once, in order, or was announced lost.
    pub fn clean(&self) -> bool {
        self.duplicates == 0 && self.out_of_order == 0 && self.missing == 0
    }

    /// The summary for people.
    pub fn text(&self) -> String {
        let mut t = String::new();
        let l = self.latency_us;
        let _ = writeln!(
            t,
            "transport {}  subscribers {}  channels {} ({} per subscriber)",
            self.transport, self.subscribers, self.channels, self.channels_per_subscriber
        );
        let _ = writeln!(
            t,
            "ramp {:.2}s  connects {}  ({:.0}/s)",
            self.ramp_secs,
            self.connects,
            if self.ramp_secs > 0.0 {
                self.subscribers as f64 / self.ramp_secs
            } else {
                0.0
            }
        );
        let _ = writeln!(
            t,
            "published {} in {:.2}s ({} errors)",
            self.published, self.publish_secs, self.publish_errors
        );
        let _ = writeln!(t, "expected {}  received {}  duplicates {}  out-of-order {} (skipped {})  lost {}  resets {}  missing {}", self.expected, self.received, self.duplicates, self.out_of_order, self.skipped, self.lost, self.resets, self.missing);
        let _ = writeln!(t, "deliveries/s {:.0}", self.deliveries_per_sec());
        if self.answers > 0 {
            let rt = if self.delivery_secs > 0.0 {
                self.answers as f64 / self.delivery_secs
            } else {
                0.0
            };
            let _ = writeln!(t, "poll round trips {} ({rt:.0}/s)", self.answers);
        }
        let _ = writeln!(
            t,
            "latency us  p50 {}  p90 {}  p99 {}  p99.9 {}  max {}",
            l[0], l[1], l[2], l[3], l[4]
        );
        let e = &self.errors;
        let _ = writeln!(t, "errors: connect {} write {} read {} closed-by-server {} http {} protocol {} server-error-events {}  (churned {})", e.connect, e.write, e.read, e.closed_by_server, e.http, e.protocol, e.server_error_events, e.churned);
        if let Some(f) = &e.first {
            let _ = writeln!(t, "first error: {f}");
        }
        if let Some(r) = self.server_rss_kib {
            let _ = writeln!(t, "server RSS {r} KiB");
        }
        let _ = writeln!(
            t,
            "{}",
            if self.clean() {
                "RESULT: clean (nothing lost unannounced, duplicated or reordered)"
            } else {
                "RESULT: NOT CLEAN"
            }
        );
        t
    }

    /// The summary as a JSON object.
    pub fn json(&self) -> String {
        let e = &self.errors;
        let l = self.latency_us;
        format!(
            concat!(
                "{{\"transport\":\"{}\",\"subscribers\":{},\"channels\":{},\"channels_per_subscriber\":{},",
                "\"ramp_secs\":{:.3},\"connects\":{},\"answers\":{},\"published\":{},\"publish_errors\":{},\"publish_secs\":{:.3},",
                "\"delivery_secs\":{:.3},\"expected\":{},\"received\":{},\"duplicates\":{},\"out_of_order\":{},",
                "\"skipped\":{},\"lost\":{},\"resets\":{},\"missing\":{},\"deliveries_per_sec\":{:.1},",
                "\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}},",
                "\"errors\":{{\"connect\":{},\"write\":{},\"read\":{},\"closed_by_server\":{},\"http\":{},\"protocol\":{},\"server_error_events\":{},\"churned\":{}}},",
                "\"server_rss_kib\":{},\"clean\":{}}}"
            ),
            self.transport, self.subscribers, self.channels, self.channels_per_subscriber,
            self.ramp_secs, self.connects, self.answers, self.published, self.publish_errors, self.publish_secs,
            self.delivery_secs, self.expected, self.received, self.duplicates, self.out_of_order,
            self.skipped, self.lost, self.resets, self.missing, self.deliveries_per_sec(),
            l[0], l[1], l[2], l[3], l[4],
            e.connect, e.write, e.read, e.closed_by_server, e.http, e.protocol, e.server_error_events, e.churned,
            self.server_rss_kib.map_or("null".to_string(), |r| r.to_string()),
            self.clean()
        )
    }
}
