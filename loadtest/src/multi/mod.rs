//! A run spread over several processes (`--processes P`), for more subscribers than one
//! process may open descriptors. This module is the coordinator ([`coordinate`]): it
//! creates the channels, starts P workers (this same binary with `--worker`, each opening
//! its share of the subscribers) and talks to them over their stdin and stdout. It is the
//! run's one publisher, started once every worker reports all its subscribers ready; it
//! tells them when publishing has ended and what was published, and merges their reports
//! into one summary (the text and JSON of a run in one process, plus a line per process).
//! Every wait here has a deadline, and a worker ends when its stdin closes, so none
//! outlives the coordinator.
//!
//! # Layout
//!
//! - `split`: each process's share of the subscribers and source addresses, and what will
//!   not fit.
//! - `wire`: the lines exchanged, the latency histogram's encoding, a summary's JSON read
//!   back.
//! - `procs`: the worker processes, their pipes, killing them at the end.
//! - `worker`: the worker's end of the lines (used by [`crate::run`]).
//! - `merge`: the workers' reports into one summary.

mod merge;
mod procs;
mod split;
pub(crate) mod wire;
pub(crate) mod worker;

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::publisher::{publisher, Published};
use crate::report::Summary;
use crate::run::{channel_names, channel_tag, create_channels};

use merge::Report;
use procs::{Heard, Workers};
use wire::{decode_latency, summary_from_json, FromWorker, Tick, ToWorker};

/// Beyond a worker's own bound (`--ramp-limit`, `--drain`), how long it may take to start
/// or to report.
const SLACK: Duration = Duration::from_secs(30);
/// The longest wait for a line in one turn.
const HEAR_WAIT: Duration = Duration::from_millis(100);
/// How often the progress line comes.
const PROGRESS: Duration = Duration::from_secs(1);

/// What one worker has said so far.
#[derive(Default)]
struct Said {
    ready: bool,
    tick: Tick,
    summary: Option<String>,
    latency: Option<String>,
    first: Option<String>,
    done: bool,
}

/// The coordinator's view of its workers.
struct Coordinator<'a> {
    cfg: &'a Config,
    workers: Workers,
    said: Vec<Said>,
    t0: Instant,
    last_progress: Instant,
    last_delivered: u64,
}

/// Runs `cfg` over `cfg.processes` worker processes started as `exe` with the run's
/// command-line `args` (without the program name), and returns the merged summary.
pub fn coordinate(cfg: &Config, exe: &Path, args: &[OsString]) -> io::Result<Summary> {
    cfg.check().map_err(io::Error::other)?;
    let sources = cfg.source.clone().map(|s| s.0).unwrap_or_default();
    let shares = split::shares(cfg.subscribers, &sources, cfg.processes, cfg.ramp);
    for w in split::warnings(&shares, split::ephemeral_ports(), split::open_files()) {
        eprintln!("comet-loadtest: warning: {w}");
    }
    let tag = channel_tag();
    let names = channel_names(&tag, cfg.channels);
    let first = create_channels(cfg, &names)?;
    let workers = Workers::spawn(exe, args, &shares)?;
    let mut c = Coordinator {
        cfg,
        said: (0..shares.len()).map(|_| Said::default()).collect(),
        workers,
        t0: Instant::now(),
        last_progress: Instant::now(),
        last_delivered: 0,
    };
    c.workers.tell_all(&ToWorker::Channels { tag, first })?;
    c.listen_until(Instant::now() + cfg.ramp_limit + SLACK, "ready", |s| {
        s.ready
    })?;
    let held = Instant::now() + cfg.hold;
    while Instant::now() < held {
        c.hear()?;
    }
    c.workers.tell_all(&ToWorker::Go)?;
    let published = c.publish(&names)?;
    c.workers.tell_all(&ToWorker::End(published.last.clone()))?;
    c.listen_until(Instant::now() + cfg.drain + SLACK, "reported", |s| s.done)?;
    let reports = c.reports()?;
    drop(c);
    merge::merge(cfg, &shares, &reports, &published)
}

impl Coordinator<'_> {
    /// Runs the publisher thread to its end, hearing the workers meanwhile; a worker that
    /// fails stops it.
    fn publish(&mut self, names: &[String]) -> io::Result<Published> {
        let stop = Arc::new(AtomicBool::new(false));
        let (cfg, n, s) = (self.cfg.clone(), names.to_vec(), stop.clone());
        let thread = std::thread::spawn(move || publisher(cfg, n, s));
        let mut heard = Ok(());
        while heard.is_ok() && !thread.is_finished() {
            heard = self.hear();
        }
        stop.store(true, Ordering::Relaxed);
        let published = thread
            .join()
            .map_err(|_| io::Error::other("publisher panicked"))?;
        heard.map(|()| published)
    }

    /// Hears the workers until `done` holds for every one; an error if the deadline
    /// passes first (`what` says what was awaited).
    fn listen_until(
        &mut self,
        deadline: Instant,
        what: &str,
        done: impl Fn(&Said) -> bool,
    ) -> io::Result<()> {
        while let Some(k) = self.said.iter().position(|s| !done(s)) {
            if Instant::now() > deadline {
                return Err(io::Error::other(format!("process {k} not {what} in time")));
            }
            self.hear()?;
        }
        Ok(())
    }

    /// Takes in what the workers said in one turn, and prints the progress line when due.
    fn hear(&mut self) -> io::Result<()> {
        if let Some(h) = self.workers.hear(HEAR_WAIT) {
            self.take(h)?;
        }
        self.progress();
        Ok(())
    }

    /// Takes in one thing a worker said.
    fn take(&mut self, h: Heard) -> io::Result<()> {
        let (k, m) = match h {
            Heard::Line(k, m) => (k, m),
            Heard::Bad(k, why) => return Err(io::Error::other(format!("process {k}: {why}"))),
            Heard::Closed(k) if self.said[k].done => return Ok(()),
            Heard::Closed(k) => {
                let how = self.workers.ended(k);
                return Err(io::Error::other(format!(
                    "process {k} ended before its report ({how})"
                )));
            }
        };
        let s = &mut self.said[k];
        match m {
            FromWorker::Ready { .. } => s.ready = true,
            FromWorker::Tick(t) => s.tick = t,
            FromWorker::Summary(json) => s.summary = Some(json),
            FromWorker::Latency(h) => s.latency = Some(h),
            FromWorker::First(f) => s.first = Some(f),
            FromWorker::Done => s.done = true,
        }
        Ok(())
    }

    /// The workers' counts summed, once a second, unless `--quiet`.
    fn progress(&mut self) {
        if self.cfg.quiet || self.last_progress.elapsed() < PROGRESS {
            return;
        }
        self.last_progress = Instant::now();
        let sum = self.said.iter().fold(Tick::default(), |a, s| Tick {
            open: a.open + s.tick.open,
            ready: a.ready + s.tick.ready,
            delivered: a.delivered + s.tick.delivered,
            errors: a.errors + s.tick.errors,
        });
        eprintln!(
            "[{:>5.1}s] open {}/{} ready {} delivered {} (+{}/s) errors {} ({} processes)",
            self.t0.elapsed().as_secs_f64(),
            sum.open,
            self.cfg.subscribers,
            sum.ready,
            sum.delivered,
            sum.delivered.saturating_sub(self.last_delivered),
            sum.errors,
            self.said.len()
        );
        self.last_delivered = sum.delivered;
    }

    /// Every worker's report, read back.
    fn reports(&mut self) -> io::Result<Vec<Report>> {
        let mut out = Vec::new();
        for (k, s) in self.said.iter_mut().enumerate() {
            let bad = |why: String| io::Error::other(format!("process {k}: {why}"));
            let json = s.summary.take().ok_or_else(|| bad("no summary".into()))?;
            let mut summary = summary_from_json(&json).map_err(bad)?;
            summary.errors.first = s.first.take();
            let latency = s.latency.take().ok_or_else(|| bad("no latency".into()))?;
            let latency = decode_latency(&latency)?;
            out.push(Report { summary, latency });
        }
        Ok(out)
    }
}
