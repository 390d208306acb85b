//! A worker's end of the lines (`--worker`, one process of a run over several): [`Link`]
//! owns the thread that reads the coordinator's lines from stdin and hands them to the
//! run's loop (which polls, never blocks on them), and writes the worker's lines to
//! stdout. It also keeps a worker from outliving its coordinator: when stdin closes, the
//! loop is told and fails the run, and should the process still be there after a grace
//! time, the thread ends it. It knows nothing of subscribers or accounts.

use std::io::{self, BufRead, Write};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::wire::{encode_latency, FromWorker, ToWorker};
use crate::report::Summary;

/// How long a worker whose stdin closed may take to end by itself.
const GRACE: Duration = Duration::from_secs(3);
/// The exit code of a worker ended because its coordinator went away.
const ORPHANED: i32 = 3;

/// The worker's lines to and from its coordinator.
pub(crate) struct Link {
    rx: Receiver<Result<ToWorker, String>>,
}

fn gone() -> io::Error {
    io::Error::other("the coordinator went away (stdin closed)")
}

impl Link {
    /// Starts reading stdin.
    pub(crate) fn start() -> Link {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                if tx.send(ToWorker::parse(&line)).is_err() {
                    return;
                }
            }
            let _ = tx.send(Err(gone().to_string()));
            std::thread::sleep(GRACE);
            std::process::exit(ORPHANED);
        });
        Link { rx }
    }

    /// Waits at most `timeout` for the first line, the run's channels: their tag and
    /// first seqs.
    pub(crate) fn channels(&self, timeout: Duration) -> io::Result<(String, Vec<u64>)> {
        match self.rx.recv_timeout(timeout) {
            Ok(Ok(ToWorker::Channels { tag, first })) => Ok((tag, first)),
            Ok(Ok(other)) => Err(io::Error::other(format!(
                "expected the channels, got `{}`",
                other.line()
            ))),
            Ok(Err(e)) => Err(io::Error::other(e)),
            Err(RecvTimeoutError::Timeout) => {
                Err(io::Error::other("no channels from the coordinator"))
            }
            Err(RecvTimeoutError::Disconnected) => Err(gone()),
        }
    }

    /// The next line from the coordinator, if one came; an error once stdin has closed or
    /// a line made no sense.
    pub(crate) fn next(&self) -> io::Result<Option<ToWorker>> {
        match self.rx.try_recv() {
            Ok(Ok(m)) => Ok(Some(m)),
            Ok(Err(e)) => Err(io::Error::other(e)),
            Err(TryRecvError::Empty) => Ok(None),
            Err(TryRecvError::Disconnected) => Err(gone()),
        }
    }

    /// Writes one line to the coordinator.
    pub(crate) fn send(&self, m: &FromWorker) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{}", m.line())?;
        out.flush()
    }

    /// The closing report: the worker's summary, its latency histogram, its first error,
    /// and `DONE`.
    pub(crate) fn report(&self, s: &Summary, latency: &Histogram<u64>) -> io::Result<()> {
        self.send(&FromWorker::Summary(s.json()))?;
        self.send(&FromWorker::Latency(encode_latency(latency)))?;
        if let Some(f) = &s.errors.first {
            self.send(&FromWorker::First(f.clone()))?;
        }
        self.send(&FromWorker::Done)
    }
}
