//! The worker processes as the coordinator holds them ([`Workers`]): each spawned from
//! this same binary with the run's flags and its share, its stdin to write lines to, and
//! one thread per stdout turning lines into [`Heard`] on one channel, so the coordinator
//! waits on all of them at once with a deadline. Dropping [`Workers`] closes every stdin
//! (a worker then ends by itself), waits a moment, and kills and reaps whatever is left:
//! no worker outlives the run. It reads no report and keeps no account.

use std::ffi::OsString;
use std::io::{self, BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::split::Share;
use super::wire::{FromWorker, ToWorker};

/// How long dropped workers get to end by themselves before they are killed.
const END_WAIT: Duration = Duration::from_secs(5);

/// What came from worker `k`.
#[derive(Debug)]
pub(super) enum Heard {
    /// A line.
    Line(usize, FromWorker),
    /// A line that made no sense.
    Bad(usize, String),
    /// Its stdout closed: it has ended (or is ending).
    Closed(usize),
}

/// The running workers.
pub(super) struct Workers {
    children: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    rx: Receiver<Heard>,
}

/// The flags a worker gets after the run's own (later ones win): its share (subscribers,
/// source addresses, ramp), and no further processes of its own.
fn share_args(share: &Share) -> Vec<String> {
    let mut args = vec![
        "--worker".to_string(),
        "--processes=1".into(),
        format!("--subscribers={}", share.subscribers),
        format!("--first-subscriber={}", share.first),
        format!("--ramp={}", share.ramp),
    ];
    if let Some(s) = &share.sources {
        args.push(format!("--source={s}"));
    }
    args
}

impl Workers {
    /// Starts one worker per share: `exe` with the run's `args` and the share's.
    pub(super) fn spawn(exe: &Path, args: &[OsString], shares: &[Share]) -> io::Result<Workers> {
        let (tx, rx) = mpsc::channel();
        let mut workers = Workers {
            children: Vec::new(),
            stdins: Vec::new(),
            rx,
        };
        for (k, share) in shares.iter().enumerate() {
            let mut child = Command::new(exe)
                .args(args)
                .args(share_args(share))
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .map_err(|e| io::Error::other(format!("cannot start process {k}: {e}")))?;
            let stdout = child.stdout.take().expect("piped");
            workers.stdins.push(child.stdin.take());
            workers.children.push(child);
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let heard = match FromWorker::parse(&line) {
                        Ok(m) => Heard::Line(k, m),
                        Err(e) => Heard::Bad(k, e),
                    };
                    if tx.send(heard).is_err() {
                        return;
                    }
                }
                let _ = tx.send(Heard::Closed(k));
            });
        }
        Ok(workers)
    }

    /// Writes one line to every worker.
    pub(super) fn tell_all(&mut self, m: &ToWorker) -> io::Result<()> {
        let line = m.line() + "\n";
        for (k, stdin) in self.stdins.iter_mut().enumerate() {
            let stdin = stdin
                .as_mut()
                .ok_or_else(|| io::Error::other("stdin closed"))?;
            stdin
                .write_all(line.as_bytes())
                .and_then(|()| stdin.flush())
                .map_err(|e| io::Error::other(format!("process {k}: {e}")))?;
        }
        Ok(())
    }

    /// How worker `k` ended, waiting a moment for it (its stdout has closed).
    pub(super) fn ended(&mut self, k: usize) -> String {
        let until = Instant::now() + Duration::from_secs(1);
        loop {
            match self.children[k].try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(10)),
                Ok(None) => return "still running, its stdout closed".into(),
                Err(e) => return e.to_string(),
            }
        }
    }

    /// What the workers said next, waiting at most `timeout` (None: nothing yet).
    pub(super) fn hear(&self, timeout: Duration) -> Option<Heard> {
        match self.rx.recv_timeout(timeout) {
            Ok(h) => Some(h),
            Err(RecvTimeoutError::Timeout) => None,
            // Every reader has ended and was heard closing; nothing more will come.
            Err(RecvTimeoutError::Disconnected) => {
                std::thread::sleep(timeout);
                None
            }
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stdins.clear();
        let until = Instant::now() + END_WAIT;
        for child in &mut self.children {
            while Instant::now() < until && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(10));
            }
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}
