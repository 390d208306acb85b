//! The run: a flat, preallocated table of subscribers driven by one mio loop (in the
//! spirit of wrk), a publisher thread posting stamped messages to the admin listener, and
//! the per-subscriber, per-channel account that proves what was delivered.
//!
//! This module owns the run's state machine, `Run`: it creates the channels, turns the
//! loop (ramp, phase, socket events, reconnects, the once-a-second tick) until every due
//! message is accounted for or `--drain` is up, and sums up. It holds no socket and judges
//! no delivery itself (its submodules do), and it talks to the publisher thread only
//! through `publishing`.
//!
//! # Layout
//!
//! - `subscriber`: the subscriber table: sockets, requests, open and ready counts.
//! - `serve`: one subscriber's socket event: connect, write, read, what the answer means.
//! - `account`: each subscriber's account per channel, latency, what is still due, totals.
//! - `publishing`: the phase (ramping, publishing, draining) and the publisher thread.
//! - `tick`: once a second, churn and the progress line.

mod account;
mod publishing;
mod serve;
mod subscriber;
mod tick;

use std::io;
use std::time::{Duration, Instant};

use mio::Events;

use crate::clock::now_us;
use crate::config::Config;
use crate::publisher::Admin;
use crate::report::{rss_kib, Errors, Summary};

use account::Ledger;
use publishing::Publishing;
use subscriber::Subscribers;

/// The longest ramp: the publisher starts then even if some subscribers are not ready.
const RAMP_LIMIT: Duration = Duration::from_secs(120);
/// The longest wait for socket events in one turn.
const TURN_WAIT: Duration = Duration::from_millis(20);

/// Runs a whole load test and returns its summary.
pub fn run(cfg: &Config) -> io::Result<Summary> {
    cfg.check().map_err(io::Error::other)?;
    let mut run = Run::start(cfg)?;
    let mut events = Events::with_capacity(4096);
    while run.turn(&mut events)? {}
    run.finish()
}

/// A run in progress.
struct Run<'a> {
    cfg: &'a Config,
    /// Channel names, `TAG-INDEX`.
    names: Vec<String>,
    /// Per channel, the first seq of the run (the one after its warm-up message).
    first: Vec<u64>,
    subs: Subscribers,
    ledger: Ledger,
    errors: Errors,
    publishing: Publishing,
    t0: Instant,
    /// Subscribers the ramp has opened: the first `opened` of the table.
    opened: usize,
    /// When the ramp ended (the publisher started), from `t0`.
    ramp_done_at: Option<Duration>,
    /// Connects tried, reconnects included.
    connects: u64,
    /// Poll answers.
    answers: u64,
    /// Subscribers dropped this turn, reopened at its end.
    reopen: Vec<usize>,
    last_tick: Instant,
    /// `ledger.delivered` at the last tick.
    last_delivered: u64,
    /// Fraction of a subscriber due to churn, carried to the next tick.
    churn_carry: f64,
    /// Xorshift state that picks whom to churn.
    rng: u64,
    /// Read buffer, shared by all subscribers.
    scratch: Vec<u8>,
    /// Texts the framer made of one read.
    texts: Vec<String>,
}

/// Keeps the first error seen, in words.
fn log_first(errors: &mut Errors, what: String) {
    if errors.first.is_none() {
        errors.first = Some(what);
    }
}

/// Creates every channel with one message; subscribers start right after it, so each one's
/// expected deliveries are exactly what the run publishes. Returns each channel's first seq.
fn create_channels(cfg: &Config, names: &[String]) -> io::Result<Vec<u64>> {
    let mut admin = Admin::connect(cfg.admin, cfg.target_kind, cfg.admin_token.as_deref())?;
    // Stamped number 0: Nchan subscribers receive it first (`oldest`) and skip it.
    names
        .iter()
        .map(|n| Ok(admin.publish(n, "t=0;n=0;warm-up", 0)? + 1))
        .collect()
}

impl<'a> Run<'a> {
    /// Creates the channels and the table of subscribers, none of them open yet.
    fn start(cfg: &'a Config) -> io::Result<Run<'a>> {
        let tag = format!("lt{}x{}", std::process::id(), now_us() % 1_000_000_000);
        let names: Vec<String> = (0..cfg.channels).map(|i| format!("{tag}-{i}")).collect();
        let first = create_channels(cfg, &names)?;
        let subs = Subscribers::new(cfg, &first)?;
        Ok(Run {
            cfg,
            names,
            first,
            subs,
            ledger: Ledger::new()?,
            errors: Errors::default(),
            publishing: Publishing::new(),
            t0: Instant::now(),
            opened: 0,
            ramp_done_at: None,
            connects: 0,
            answers: 0,
            reopen: Vec::new(),
            last_tick: Instant::now(),
            last_delivered: 0,
            churn_carry: 0.0,
            rng: now_us() | 1,
            scratch: vec![0u8; 64 * 1024],
            texts: Vec::new(),
        })
    }

    /// One turn of the loop; false when the run is over. Its cost is the events it
    /// serves and the subscribers it opens: nothing in it walks the table.
    fn turn(&mut self, events: &mut Events) -> io::Result<bool> {
        self.ramp_up();
        self.advance_phase()?;
        if self.is_over() {
            return Ok(false);
        }
        self.subs.poll(events, TURN_WAIT)?;
        for ev in events.iter() {
            self.serve(ev.token().0, ev);
        }
        self.reconnect();
        self.tick();
        Ok(true)
    }

    /// Opens as many subscribers as `--ramp` allows by now.
    fn ramp_up(&mut self) {
        let by_now = (self.t0.elapsed().as_secs_f64() * self.cfg.ramp as f64) as usize + 1;
        let allowed = by_now.min(self.subs.len());
        while self.opened < allowed {
            let i = self.opened;
            self.opened += 1;
            self.connects += 1;
            if let Err(e) = self.subs.open(i, self.cfg, &self.names) {
                self.errors.connect += 1;
                log_first(&mut self.errors, format!("connect: {e}"));
                self.reopen.push(i);
            }
        }
    }

    /// Starts the publisher once every subscriber is ready (or the ramp took too long),
    /// and collects its report once it is done.
    fn advance_phase(&mut self) -> io::Result<()> {
        let all_ready =
            self.opened == self.subs.len() && self.subs.ready_count() == self.subs.len();
        let too_long = Instant::now() > self.t0 + RAMP_LIMIT;
        if self.publishing.ramping() && (all_ready || too_long) {
            self.ramp_done_at = Some(self.t0.elapsed());
            self.publishing.start(self.cfg, &self.names);
        }
        if let Some(last) = self.publishing.collect()? {
            self.ledger.publishing_ended(last, self.subs.accounts());
        }
        Ok(())
    }

    /// Publishing is done and every due message was accounted for, or `--drain` is up.
    fn is_over(&self) -> bool {
        self.publishing
            .draining_for()
            .is_some_and(|d| self.ledger.all_delivered() || d >= self.cfg.drain)
    }

    /// Reopens whatever dropped this turn, resuming from its cursor.
    fn reconnect(&mut self) {
        for i in self.reopen.drain(..) {
            if !self.subs.is_open(i) {
                self.connects += 1;
                if self.subs.open(i, self.cfg, &self.names).is_err() {
                    self.errors.connect += 1;
                }
            }
        }
    }

    /// Stops the publisher, sums up every account and closes every subscriber.
    fn finish(mut self) -> io::Result<Summary> {
        let (published, ended) = self.publishing.finish(self.names.len())?;
        let mut s = Summary::new(self.cfg);
        s.ramp_secs = self.ramp_done_at.unwrap_or_default().as_secs_f64();
        s.connects = self.connects;
        s.answers = self.answers;
        s.published = published.count;
        s.publish_errors = published.errors;
        s.publish_secs = published.elapsed.as_secs_f64();
        account::tally(&mut s, self.subs.accounts(), &published.last, &self.first);
        s.delivery_secs = ended.map_or(0.0, |d| (d.elapsed() + published.elapsed).as_secs_f64());
        s.set_latency(&self.ledger.latency);
        s.errors = self.errors;
        if let Some(pid) = self.cfg.server_pid {
            s.server_rss_kib = rss_kib(pid);
        }
        self.subs.close_all();
        Ok(s)
    }
}
