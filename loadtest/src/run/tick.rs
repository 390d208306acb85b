//! Once a second: churn (a share of the subscribers drop their connection and resume from
//! their cursor, while the publisher runs) and the progress line on stderr (a worker's
//! counts go to its coordinator instead, as a `TICK` line). It reads the
//! counts the table and the ledger keep, so a tick does not walk the table either; it
//! opens and closes subscribers only through the table and never touches an account.

use std::time::{Duration, Instant};

use super::Run;
use crate::multi::wire::{FromWorker, Tick};

/// How often the churn and the progress line come.
const TICK: Duration = Duration::from_secs(1);

impl Run<'_> {
    /// Churns and prints the progress line if a second has passed since the last time.
    pub(super) fn tick(&mut self) {
        if self.last_tick.elapsed() < TICK {
            return;
        }
        self.last_tick = Instant::now();
        self.churn();
        self.progress();
        self.last_delivered = self.ledger.delivered;
    }

    /// Drops and reopens `--churn` percent of the subscribers (picked at random; one that
    /// is not open is left alone), carrying fractions over to the next second.
    fn churn(&mut self) {
        if self.cfg.churn <= 0.0 || !self.publishing.publishing() {
            return;
        }
        let n = self.subs.len();
        self.churn_carry += n as f64 * self.cfg.churn / 100.0;
        while self.churn_carry >= 1.0 {
            self.churn_carry -= 1.0;
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let i = (self.rng % n as u64) as usize;
            if self.subs.is_open(i) {
                self.subs.close(i);
                self.errors.churned += 1;
                self.connects += 1;
                if self.subs.open(i, self.cfg, &self.names).is_err() {
                    self.errors.connect += 1;
                }
            }
        }
    }

    /// The progress line (a worker's `TICK`), unless `--quiet`.
    fn progress(&self) {
        if self.cfg.quiet {
            return;
        }
        let delivered = self.ledger.delivered;
        if let Some(link) = &self.link {
            let _ = link.send(&FromWorker::Tick(Tick {
                open: self.subs.open_count(),
                ready: self.subs.ready_count(),
                delivered,
                errors: self.errors.total(),
            }));
            return;
        }
        eprintln!(
            "[{:>5.1}s] open {}/{} ready {} delivered {} (+{}/s) p99 {} us errors {}",
            self.t0.elapsed().as_secs_f64(),
            self.subs.open_count(),
            self.subs.len(),
            self.subs.ready_count(),
            delivered,
            delivered - self.last_delivered,
            self.ledger.latency.value_at_quantile(0.99),
            self.errors.total()
        );
    }
}
