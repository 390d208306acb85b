//! The run: a flat, preallocated table of subscribers driven by one mio loop (in the
//! spirit of wrk), a publisher thread posting stamped messages to the admin listener, and
//! the per-subscriber, per-channel account that proves what was delivered.
//!
//! This module owns the run's state machine, `Run`: it creates the channels, turns the
//! loop (ramp, phase, socket events, reconnects, the once-a-second tick) until every due
//! message is accounted for or `--drain` is up, and sums up. It holds no socket and judges
//! no delivery itself (its submodules do), and it talks to the publisher thread only
//! through `publishing`. As a worker ([`work`], one process of a run over several) the
//! same loop runs one share of the subscribers: the coordinator names the channels and
//! publishes, and the loop passes its lines (through [`crate::multi`]'s link) to
//! `publishing` and reports to it at the end.
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
use crate::multi::wire::FromWorker;
use crate::multi::worker::Link;
use crate::publisher::Admin;
use crate::report::{own_cpu_secs, rss_kib, Errors, Summary};

use account::Ledger;
use publishing::Publishing;
use subscriber::Subscribers;

/// The longest wait for socket events in one turn.
const TURN_WAIT: Duration = Duration::from_millis(20);
/// The longest a worker waits for its coordinator to name the channels.
const CHANNELS_WAIT: Duration = Duration::from_secs(60);

/// Runs a whole load test in this process and returns its summary (`--processes` above 1
/// is the coordinator's, in [`crate::multi`]).
pub fn run(cfg: &Config) -> io::Result<Summary> {
    cfg.check().map_err(io::Error::other)?;
    if cfg.processes > 1 || cfg.worker {
        return Err(io::Error::other(
            "run() is one process: --processes above 1 is multi::coordinate's",
        ));
    }
    let names = channel_names(&channel_tag(), cfg.channels);
    let first = create_channels(cfg, &names)?;
    Run::start(cfg, names, first, None)?.drive()
}

/// Runs this process's share of a run over several as a worker: the coordinator's lines
/// on stdin name the channels and start and end publishing; its report goes to stdout.
/// Returns the share's summary.
pub fn work(cfg: &Config) -> io::Result<Summary> {
    cfg.check().map_err(io::Error::other)?;
    let link = Link::start();
    let (tag, first) = link.channels(CHANNELS_WAIT)?;
    if first.len() != cfg.channels {
        return Err(io::Error::other(
            "the coordinator named another count of channels",
        ));
    }
    let names = channel_names(&tag, first.len());
    Run::start(cfg, names, first, Some(link))?.drive()
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
    /// A worker's lines to and from its coordinator (None: a run of its own).
    link: Option<Link>,
}

/// Keeps the first error seen, in words.
fn log_first(errors: &mut Errors, what: String) {
    if errors.first.is_none() {
        errors.first = Some(what);
    }
}

/// A tag for this run's channel names, unique enough between runs.
pub(crate) fn channel_tag() -> String {
    format!("lt{}x{}", std::process::id(), now_us() % 1_000_000_000)
}

/// The run's channel names, `TAG-INDEX`.
pub(crate) fn channel_names(tag: &str, channels: usize) -> Vec<String> {
    (0..channels).map(|i| format!("{tag}-{i}")).collect()
}

/// Creates every channel with one message; subscribers start right after it, so each one's
/// expected deliveries are exactly what the run publishes. Returns each channel's first seq.
pub(crate) fn create_channels(cfg: &Config, names: &[String]) -> io::Result<Vec<u64>> {
    let token = cfg.admin_token.as_deref();
    let mut admin = Admin::connect(cfg.admin, cfg.target_kind, token, cfg.publish_timeout)?;
    // Stamped number 0: Nchan subscribers receive it first (`oldest`) and skip it.
    names
        .iter()
        .map(|n| Ok(admin.publish(n, "t=0;n=0;warm-up", 0)? + 1))
        .collect()
}

impl<'a> Run<'a> {
    /// The table of subscribers of channels `names`, starting at seqs `first`, none of
    /// them open yet.
    fn start(
        cfg: &'a Config,
        names: Vec<String>,
        first: Vec<u64>,
        link: Option<Link>,
    ) -> io::Result<Run<'a>> {
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
            link,
        })
    }

    /// Turns the loop until the run is over, and sums up.
    fn drive(mut self) -> io::Result<Summary> {
        let mut events = Events::with_capacity(4096);
        while self.turn(&mut events)? {}
        self.finish()
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
        let too_long = Instant::now() > self.t0 + self.cfg.ramp_limit;
        if self.publishing.ramping() && (all_ready || too_long) {
            let done_at = *self.ramp_done_at.get_or_insert(self.t0.elapsed());
            match &self.link {
                // --hold: the subscribers stay connected and idle this long first.
                None if self.t0.elapsed() < done_at + self.cfg.hold => {}
                None => self.publishing.start(self.cfg, &self.names),
                Some(link) => {
                    let (ready, of) = (self.subs.ready_count(), self.subs.len());
                    link.send(&FromWorker::Ready { ready, of })?;
                    self.publishing.wait_for_go();
                }
            }
        }
        while let Some(m) = self.link.as_ref().map(Link::next).transpose()?.flatten() {
            self.publishing.told(m, self.names.len())?;
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
        s.publish_requests = published.requests;
        s.publish_secs = published.elapsed.as_secs_f64();
        account::tally(&mut s, self.subs.accounts(), &published.last, &self.first);
        s.delivery_secs = ended.map_or(0.0, |d| (d.elapsed() + published.elapsed).as_secs_f64());
        s.set_latency(&self.ledger.latency);
        s.errors = self.errors;
        if let Some(pid) = self.cfg.server_pid {
            s.server_rss_kib = rss_kib(pid);
        }
        s.generator_cpu_secs = own_cpu_secs();
        self.subs.close_all();
        if let Some(link) = &self.link {
            link.report(&s, &self.ledger.latency)?;
        }
        Ok(s)
    }
}
