//! `--workers N`: a small parent that runs N copies of this binary as worker processes
//! (each exactly today's single-threaded reactor, with its own descriptor limit) sharing
//! the public and admin ports through SO_REUSEPORT. It restarts a worker that dies
//! (after a pause if it died young) and passes SIGTERM/SIGINT on to all of them, then
//! waits for their graceful drain. It binds nothing and touches no socket itself.

use std::ffi::OsString;
use std::io;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A worker that lived less than this before dying is restarted only after a pause.
const YOUNG: Duration = Duration::from_secs(2);
/// How often the parent looks at its workers.
const TICK: Duration = Duration::from_millis(50);

/// `args` without `--workers N` / `--workers=N`, plus `--reuse-port`.
fn worker_args(args: &[OsString]) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        let s = a.to_string_lossy();
        if s == "--workers" {
            skip = true;
            continue;
        }
        if s.starts_with("--workers=") {
            continue;
        }
        out.push(a.clone());
    }
    out.push("--reuse-port".into());
    out
}

fn spawn(exe: &std::path::Path, args: &[OsString], i: usize) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(exe);
    cmd.args(args);
    // SAFETY: prctl(2) only, between fork and exec: a worker whose parent dies (even by
    // SIGKILL) is sent SIGTERM and drains, instead of living on unsupervised.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    let child = cmd.spawn()?;
    log::info!("worker {i} started (pid {})", child.id());
    Ok(child)
}

fn signal_all(workers: &[Option<(Child, Instant)>], sig: i32) {
    for (child, _) in workers.iter().flatten() {
        // SAFETY: kill(2) with a pid we started and a valid signal number.
        unsafe {
            libc::kill(child.id() as libc::pid_t, sig);
        }
    }
}

/// Runs `n` workers with the command line `args` (the program's own, without its
/// name) until SIGTERM/SIGINT and their drain. Returns the exit code for the parent.
pub fn supervise(args: &[OsString], n: usize) -> io::Result<i32> {
    let exe = std::env::current_exe()?;
    let args = worker_args(args);
    let signals = Arc::new(AtomicUsize::new(0));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let s = signals.clone();
        // SAFETY: the handler only touches an atomic.
        unsafe {
            signal_hook::low_level::register(sig, move || {
                s.fetch_add(1, Ordering::SeqCst);
            })?;
        }
    }
    let mut workers: Vec<Option<(Child, Instant)>> = Vec::with_capacity(n);
    for i in 0..n {
        workers.push(Some((spawn(&exe, &args, i)?, Instant::now())));
    }
    let mut restart_at: Vec<Option<Instant>> = vec![None; n];
    let mut forwarded = 0;
    loop {
        let seen = signals.load(Ordering::SeqCst);
        if seen > forwarded {
            // First signal: drain; a second: the workers exit at once (their own rule).
            log::info!(
                "signal: passing it on to {} workers",
                workers.iter().flatten().count()
            );
            signal_all(&workers, libc::SIGTERM);
            forwarded = seen;
        }
        for i in 0..n {
            if let Some((child, since)) = &mut workers[i] {
                if let Some(status) = child.try_wait()? {
                    let young = since.elapsed() < YOUNG;
                    workers[i] = None;
                    if forwarded == 0 {
                        log::warn!("worker {i} exited ({status}); restarting it");
                        restart_at[i] =
                            Some(Instant::now() + if young { YOUNG } else { Duration::ZERO });
                    }
                }
            }
            if forwarded == 0 && restart_at[i].is_some_and(|t| Instant::now() >= t) {
                restart_at[i] = None;
                workers[i] = Some((spawn(&exe, &args, i)?, Instant::now()));
            }
        }
        if forwarded > 0 && workers.iter().all(Option::is_none) {
            log::info!("all workers stopped");
            return Ok(0);
        }
        std::thread::sleep(TICK);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_get_the_arguments_without_workers_and_with_reuse_port() {
        let a: Vec<OsString> = [
            "--listen",
            "127.0.0.1:1",
            "--workers",
            "3",
            "--workers=2",
            "--x",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let w: Vec<String> = worker_args(&a)
            .iter()
            .map(|s| s.to_string_lossy().into())
            .collect();
        assert_eq!(w, ["--listen", "127.0.0.1:1", "--x", "--reuse-port"]);
    }
}
