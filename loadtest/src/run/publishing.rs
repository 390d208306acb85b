//! The publisher as the loop sees it: the run's phase ([`Publishing`]: ramping, then
//! publishing, then draining the last deliveries), starting the publisher thread,
//! collecting its report the turn it finishes, and stopping it at the end. In a worker
//! (one process of a run over several) the publisher is the coordinator instead: the phase
//! waits for its `GO` after the ramp and drains from its `END`, told by the loop, which
//! owns the lines. What the thread does is [`crate::publisher`]'s; this module never
//! touches a subscriber or an account.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::multi::wire::ToWorker;
use crate::publisher::{publisher, Published};

/// Where the run is.
enum Phase {
    /// Opening subscribers; nothing published yet.
    Ramping,
    /// A worker's ramp is over: it waits for the coordinator's `GO`.
    Waiting,
    /// The publisher runs (or has finished and not been collected yet).
    Publishing(Publisher),
    /// The publisher reported at `since`; the last deliveries are awaited.
    Draining {
        published: Published,
        since: Instant,
    },
    /// Only while moving from one phase to the next (left there if the publisher panicked).
    Moving,
}

/// Who publishes.
enum Publisher {
    /// This process's publisher thread.
    Thread(JoinHandle<Published>),
    /// A worker's coordinator, since its `GO`; what it published once it said `END`.
    Remote {
        since: Instant,
        last: Option<Vec<Option<u64>>>,
    },
}

/// What a coordinator published, as far as a worker knows: the last seqs it was told.
fn remote(last: Vec<Option<u64>>, since: Instant) -> Published {
    Published {
        last,
        count: 0,
        errors: 0,
        requests: 0,
        elapsed: since.elapsed(),
    }
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
            let thread = std::thread::spawn(move || publisher(c, n, s));
            self.phase = Phase::Publishing(Publisher::Thread(thread));
        }
    }

    /// A worker's ramp is over: waits for the coordinator's `GO` (only from ramping).
    pub(super) fn wait_for_go(&mut self) {
        if self.ramping() {
            self.phase = Phase::Waiting;
        }
    }

    /// A line from a worker's coordinator: `GO` starts publishing (after the ramp), `END`
    /// says what was published on each of the `channels` (once, while publishing);
    /// anything else is an error.
    pub(super) fn told(&mut self, m: ToWorker, channels: usize) -> io::Result<()> {
        match (m, &mut self.phase) {
            (ToWorker::Go, Phase::Waiting) => {
                self.phase = Phase::Publishing(Publisher::Remote {
                    since: Instant::now(),
                    last: None,
                });
            }
            (
                ToWorker::End(l),
                Phase::Publishing(Publisher::Remote {
                    last: last @ None, ..
                }),
            ) if l.len() == channels => {
                *last = Some(l);
            }
            (m, _) => {
                return Err(io::Error::other(format!(
                    "`{}` from the coordinator out of turn",
                    m.line()
                )))
            }
        }
        Ok(())
    }

    /// If the publisher has finished (its thread, or the coordinator said `END`), moves
    /// to draining; on that turn returns the last seq published per channel, None on
    /// every other.
    pub(super) fn collect(&mut self) -> io::Result<Option<Vec<Option<u64>>>> {
        let published = match std::mem::replace(&mut self.phase, Phase::Moving) {
            Phase::Publishing(Publisher::Thread(t)) if t.is_finished() => joined(t)?,
            Phase::Publishing(Publisher::Remote {
                since,
                last: Some(last),
            }) => remote(last, since),
            other => {
                self.phase = other;
                return Ok(None);
            }
        };
        let last = published.last.clone();
        self.phase = Phase::Draining {
            published,
            since: Instant::now(),
        };
        Ok(Some(last))
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
            Phase::Publishing(Publisher::Thread(t)) => Ok((joined(t)?, None)),
            Phase::Publishing(Publisher::Remote { since, last }) => Ok((
                remote(last.unwrap_or_else(|| vec![None; channels]), since),
                None,
            )),
            Phase::Ramping | Phase::Waiting | Phase::Moving => Ok((
                Published {
                    last: vec![None; channels],
                    count: 0,
                    errors: 0,
                    requests: 0,
                    elapsed: Duration::ZERO,
                },
                None,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_publishes_between_the_coordinators_go_and_end() {
        let mut p = Publishing::new();
        let end = || ToWorker::End(vec![Some(4), None]);
        assert!(
            p.told(ToWorker::Go, 2).is_err(),
            "GO before the ramp is over"
        );
        p.wait_for_go();
        assert!(!p.ramping() && !p.publishing());
        assert!(p.told(end(), 2).is_err(), "END before GO");
        p.told(ToWorker::Go, 2).unwrap();
        assert!(p.publishing());
        assert_eq!(p.collect().unwrap(), None, "publishing until END");
        assert!(
            p.told(ToWorker::End(vec![Some(4)]), 2).is_err(),
            "one seq per channel"
        );
        p.told(end(), 2).unwrap();
        assert!(p.told(end(), 2).is_err(), "END once");
        assert_eq!(p.collect().unwrap(), Some(vec![Some(4), None]));
        assert!(p.draining_for().is_some());
        let (published, since) = p.finish(2).unwrap();
        assert_eq!((published.count, published.last), (0, vec![Some(4), None]));
        assert!(since.is_some());
    }
}
