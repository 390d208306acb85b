//! The run's summary: printed for people, written as JSON for scripts. It owns the
//! [`Summary`], [`Errors`] and [`Process`] (one share of a run over several processes) and
//! both formats, which scripts and tests parse (change neither lightly), the bounds of the
//! latency histogram every account records into, and reads a server's RSS from `/proc`; it
//! never touches a socket or the run's state: the run fills a summary in at its end.

use std::fmt::Write as _;
use std::io;

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

/// An empty latency histogram, µs, as every account records into: 1 µs to 10 minutes, 3
/// significant digits (histograms merged from several processes must share these bounds).
pub fn latency_histogram() -> io::Result<Histogram<u64>> {
    Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| io::Error::other(e.to_string()))
}

/// One process of a run spread over several (`--processes`): its share and how it went.
#[derive(Clone, Debug, Default)]
pub struct Process {
    /// Its subscribers.
    pub subscribers: usize,
    /// The source addresses it connected from (None: the OS picked).
    pub sources: Option<String>,
    /// Seconds until all its subscribers were ready.
    pub ramp_secs: f64,
    /// Messages its subscribers received in order.
    pub received: u64,
    /// Due to its subscribers but neither delivered nor announced lost.
    pub missing: u64,
    /// Its real errors (churn excluded).
    pub errors: u64,
    /// Deliveries its latency histogram holds.
    pub latency_count: u64,
    /// Its p99 latency, µs.
    pub p99_us: u64,
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
    /// Publish requests sent (one per message unless `--batch`).
    pub publish_requests: u64,
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
    /// CPU time (user + system) the generator used over the run, seconds (summed over its
    /// processes with `--processes`): near the run's wall time, the generator's core was
    /// busy all along and the run measured the generator as much as the server.
    pub generator_cpu_secs: f64,
    /// With `--processes` above 1, each process's share, in order (empty with one process:
    /// then the text and the JSON are exactly those of a one-process run).
    pub processes: Vec<Process>,
    /// With `--processes` above 1, the deliveries the merged latency histogram holds.
    pub latency_count: Option<u64>,
}

/// CPU time (user + system) this process has used so far, seconds (0 if unknown).
pub fn own_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // After the command name (in parentheses, which may hold spaces): state is field 3,
    // utime and stime are fields 14 and 15, in clock ticks (100 per second on Linux).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (ticks(11) + ticks(12)) as f64 / 100.0
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
            "published {} in {:.2}s, {} requests ({} errors)",
            self.published, self.publish_secs, self.publish_requests, self.publish_errors
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
        let _ = writeln!(t, "generator CPU {:.2}s", self.generator_cpu_secs);
        for (k, p) in self.processes.iter().enumerate() {
            let _ = writeln!(
                t,
                "process {k}: subscribers {}  from {}  ready {:.2}s  received {}  missing {}  errors {}  latency count {}  p99 {} us",
                p.subscribers,
                p.sources.as_deref().unwrap_or("any"),
                p.ramp_secs,
                p.received,
                p.missing,
                p.errors,
                p.latency_count,
                p.p99_us
            );
        }
        if let Some(c) = self.latency_count {
            let _ = writeln!(
                t,
                "latency histograms of {} processes merged: {c} deliveries",
                self.processes.len()
            );
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
                "\"ramp_secs\":{:.3},\"connects\":{},\"answers\":{},\"published\":{},\"publish_errors\":{},\"publish_requests\":{},\"publish_secs\":{:.3},",
                "\"delivery_secs\":{:.3},\"expected\":{},\"received\":{},\"duplicates\":{},\"out_of_order\":{},",
                "\"skipped\":{},\"lost\":{},\"resets\":{},\"missing\":{},\"deliveries_per_sec\":{:.1},",
                "\"latency_us\":{{\"p50\":{},\"p90\":{},\"p99\":{},\"p999\":{},\"max\":{}}},",
                "\"errors\":{{\"connect\":{},\"write\":{},\"read\":{},\"closed_by_server\":{},\"http\":{},\"protocol\":{},\"server_error_events\":{},\"churned\":{}}},",
                "\"server_rss_kib\":{},\"generator_cpu_secs\":{:.2},\"clean\":{}{}}}"
            ),
            self.transport, self.subscribers, self.channels, self.channels_per_subscriber,
            self.ramp_secs, self.connects, self.answers, self.published, self.publish_errors, self.publish_requests, self.publish_secs,
            self.delivery_secs, self.expected, self.received, self.duplicates, self.out_of_order,
            self.skipped, self.lost, self.resets, self.missing, self.deliveries_per_sec(),
            l[0], l[1], l[2], l[3], l[4],
            e.connect, e.write, e.read, e.closed_by_server, e.http, e.protocol, e.server_error_events, e.churned,
            self.server_rss_kib.map_or("null".to_string(), |r| r.to_string()),
            self.generator_cpu_secs,
            self.clean(),
            self.processes_json()
        )
    }

    /// The JSON members a run over several processes adds after `clean` (none for one).
    fn processes_json(&self) -> String {
        if self.processes.is_empty() {
            return String::new();
        }
        let each: Vec<String> = self
            .processes
            .iter()
            .map(|p| {
                format!(
                    "{{\"subscribers\":{},\"sources\":{},\"ramp_secs\":{:.3},\"received\":{},\"missing\":{},\"errors\":{},\"latency_count\":{},\"p99\":{}}}",
                    p.subscribers,
                    p.sources.as_ref().map_or("null".to_string(), |s| format!("\"{s}\"")),
                    p.ramp_secs,
                    p.received,
                    p.missing,
                    p.errors,
                    p.latency_count,
                    p.p99_us
                )
            })
            .collect();
        format!(
            ",\"processes\":[{}],\"latency_count\":{}",
            each.join(","),
            self.latency_count.unwrap_or(0)
        )
    }
}
