//! The publisher thread as the loop sees it: the run's phase ([`Publishing`]: ramping, then
//! publishing, then draining the last deliveries), starting the thread, collecting its
//! report the turn it finishes, and stopping it at the end. What the thread does is
//! [`crate::publisher`]'s; this module never touches a subscriber or an account.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::publisher::{publisher, Published};

/// Where the run is.
enum Phase {
    /// Opening subscribers; nothing published yet.
    Ramping,
    /// The publisher thread runs (or has finished and not been collected yet).
    Publishing(JoinHandle<Published>),
    /// The publisher reported at `since`; the last deliveries are awaited.
    Draining {
        published: Published,
        since: Instant,
    },
    /// Only while moving from one phase to the next (left there if the publisher panicked).
    Moving,
}

/// The publisher thread and the run's phase.
pub(super) struct Publishing {
    phase: Phase,
    stop: Arc<AtomicBool>,
}

fn joined(t: JoinHandle<Published>) -> io::Result<Published> {
    t.join().map_err(|_| io::Error::other("publisher panicked"))
}

impl Publishing {
    pub(super) fn new() -> Publishing {
        Publishing {
            phase: Phase::Ramping,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Still ramping: the publisher has not started.
    pub(super) fn ramping(&self) -> bool {
        matches!(self.phase, Phase::Ramping)
    }

    /// The publisher has started and its report has not been collected.
    pub(super) fn publishing(&self) -> bool {
        matches!(self.phase, Phase::Publishing(_))
    }

    /// Starts the publisher thread over `names` (only from ramping).
    pub(super) fn start(&mut self, cfg: &Config, names: &[String]) {
        if self.ramping() {
            let (c, n, s) = (cfg.clone(), names.to_vec(), self.stop.clone());
            self.phase = Phase::Publishing(std::thread::spawn(move || publisher(c, n, s)));
        }
    }

    /// If the publisher thread has finished, joins it and moves to draining; on that
    /// turn returns the last seq it published per channel, None on every other.
    pub(super) fn collect(&mut self) -> io::Result<Option<Vec<Option<u64>>>> {
        match std::mem::replace(&mut self.phase, Phase::Moving) {
            Phase::Publishing(t) if t.is_finished() => {
                let published = joined(t)?;
                let last = published.last.clone();
                self.phase = Phase::Draining {
                    published,
                    since: Instant::now(),
                };
                Ok(Some(last))
            }
            other => {
                self.phase = other;
                Ok(None)
            }
        }
    }

    /// How long since the publisher's report was collected (None before).
    pub(super) fn draining_for(&self) -> Option<Duration> {
        match &self.phase {
            Phase::Draining { since, .. } => Some(since.elapsed()),
            _ => None,
        }
    }

    /// Stops the publisher and returns its report over `channels` channels (empty if it
    /// never started) and when it was collected (None if only now).
    pub(super) fn finish(self, channels: usize) -> io::Result<(Published, Option<Instant>)> {
        self.stop.store(true, Ordering::Relaxed);
        match self.phase {
            Phase::Draining { published, since } => Ok((published, Some(since))),
            Phase::Publishing(t) => Ok((joined(t)?, None)),
            Phase::Ramping | Phase::Moving => Ok((
                Published {
                    last: vec![None; channels],
                    count: 0,
                    errors: 0,
                    elapsed: Duration::ZERO,
                },
                None,
            )),
        }
    }
}
