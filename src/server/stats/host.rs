//! The host-wide view under `--workers`: each worker writes its counts to
//! `--stats-dir/worker-<i>` about once a second (a timer in the reactor's wheel) and when
//! it stops, through a temporary file and a rename so that a reader never sees half a
//! file; a worker answering `/stats` or `/metrics` takes its own live counts and the
//! other workers' files, skipping files older than `STALE_MS` (a dead worker's; its
//! replacement overwrites the same index). Reading is a directory listing and a few small
//! reads on a private tmpfs directory, only when an admin asks.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use super::snapshot::{self, file_name, index_of};
use super::{View, Worker};
use crate::server::{Server, TimerKind};

/// How often a worker writes its snapshot.
pub(in crate::server) const SNAPSHOT_EVERY_MS: u64 = 1_000;
/// A snapshot older than this is a dead worker's, and left out.
const STALE_MS: u64 = 5_000;

/// Set once a snapshot failed to be written (logged once per process).
static WRITE_FAILED: AtomicBool = AtomicBool::new(false);

/// The fresh snapshots in `dir` of every worker but `own`, by index.
fn others(dir: &Path, own: u16, now_ms: u64) -> Vec<Worker> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<Worker> = entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            name.to_str().and_then(index_of).is_some_and(|i| i != own)
        })
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter_map(|text| snapshot::parse(&text))
        .filter(|w| w.index != own && w.written_ms.saturating_add(STALE_MS) >= now_ms)
        .collect();
    out.sort_by_key(|w| w.index);
    out.dedup_by_key(|w| w.index);
    out
}

impl Server {
    /// This worker's counts as the host view lists them.
    fn own(&self, index: u16) -> Worker {
        Worker {
            index,
            pid: std::process::id(),
            written_ms: self.now.unix_us / 1000,
            report: self.report(),
        }
    }

    /// What `/stats` and `/metrics` describe: this process, or under `--workers` the
    /// whole host.
    pub(in crate::server) fn view(&self) -> View {
        let (Some(dir), Some(index)) = (&self.config.stats_dir, self.config.worker_index) else {
            return View::One(self.report());
        };
        let own = self.own(index);
        let now_ms = own.written_ms;
        let mut workers = others(dir, index, now_ms);
        let at = workers.partition_point(|w| w.index < index);
        workers.insert(at, own);
        View::Host {
            total: snapshot::total(&workers),
            workers,
            now_ms,
        }
    }

    /// Writes this worker's snapshot (nothing without `--stats-dir`).
    pub(in crate::server) fn write_snapshot(&self) {
        let (Some(dir), Some(index)) = (&self.config.stats_dir, self.config.worker_index) else {
            return;
        };
        let text = snapshot::to_text(&self.own(index));
        let tmp = dir.join(format!(".{}.tmp", file_name(index)));
        let result = std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, dir.join(file_name(index))));
        if let Err(e) = result {
            if !WRITE_FAILED.swap(true, Ordering::Relaxed) {
                log::warn!(
                    "cannot write the stats snapshot in {} ({e}): /stats on other workers \
                     will miss this one",
                    dir.display()
                );
            }
        }
    }

    /// The snapshot timer fired (or the reactor starts): write, and arm the next one.
    pub(in crate::server) fn snapshot_tick(&mut self) {
        if self.config.stats_dir.is_none() {
            return;
        }
        self.write_snapshot();
        let at = self.now.ms.saturating_add(SNAPSHOT_EVERY_MS);
        self.wheel.insert(at, TimerKind::Snapshot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::stats::Report;

    #[test]
    fn other_workers_fresh_snapshots_are_read_and_stale_ones_skipped() {
        let dir = std::env::temp_dir().join(format!("comet-host-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        let put = |index: u16, written_ms: u64| {
            let w = Worker {
                index,
                pid: 1,
                written_ms,
                report: Report::empty(),
            };
            std::fs::write(dir.join(file_name(index)), snapshot::to_text(&w)).unwrap();
        };
        put(0, 10_000); // this worker's own (old) file: left out
        put(1, 9_000);
        put(2, 4_000); // stale
        put(3, 10_500);
        std::fs::write(
            dir.join(".worker-4.tmp"),
            "worker 4\npid 1\nwritten_ms 10000\n",
        )
        .unwrap();
        std::fs::write(dir.join("worker-5"), "half a fi").unwrap();
        let got: Vec<u16> = others(&dir, 0, 10_000).iter().map(|w| w.index).collect();
        assert_eq!(got, [1, 3]);
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            others(&dir, 0, 10_000).is_empty(),
            "no directory, no others"
        );
    }
}
