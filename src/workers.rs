//! `--workers N`: a small parent that runs N copies of this binary as worker processes
//! (each exactly today's single-threaded reactor, with its own descriptor limit) sharing
//! the public and admin ports through SO_REUSEPORT. It restarts a worker that dies
//! (after a pause if it died young) and passes SIGTERM/SIGINT on to all of them, then
//! waits for their graceful drain. It binds nothing and touches no socket itself.
//!
//! So that `/stats` and `/metrics` describe the whole host, it also makes a private run
//! directory (mode 0700, under `$XDG_RUNTIME_DIR`, else `/dev/shm`, else the temporary
//! directory; removed when it returns) and gives each worker its index and that directory
//! (`--worker-index i --stats-dir DIR`): the workers leave their counts there
//! (`server/stats/host.rs`).

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A worker that lived less than this before dying is restarted only after a pause.
const YOUNG: Duration = Duration::from_secs(2);
/// How often the parent looks at its workers.
const TICK: Duration = Duration::from_millis(50);

/// The parent's own flags (with a value), which its workers must not get.
const PARENT_ONLY: [&str; 3] = ["--workers", "--worker-index", "--stats-dir"];

/// `args` without the parent's own flags (`--workers N`, `--workers=N`, …), plus
/// `--reuse-port` and `--stats-dir DIR`.
fn worker_args(args: &[OsString], dir: &Path) -> Vec<OsString> {
    let mut out = Vec::with_capacity(args.len() + 3);
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        let s = a.to_string_lossy();
        if PARENT_ONLY.contains(&&*s) {
            skip = true;
            continue;
        }
        if PARENT_ONLY.iter().any(|f| s.starts_with(&format!("{f}="))) {
            continue;
        }
        out.push(a.clone());
    }
    out.push("--reuse-port".into());
    out.push("--stats-dir".into());
    out.push(dir.into());
    out
}

/// The workers' private run directory; removed (with what the workers left in it) when
/// dropped.
struct RunDir(PathBuf);

impl RunDir {
    /// A new directory, mode 0700, that did not exist before (so nobody else can have
    /// prepared it).
    fn create() -> io::Result<RunDir> {
        use std::os::unix::fs::DirBuilderExt;
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute() && p.is_dir())
            .or_else(|| Some(PathBuf::from("/dev/shm")).filter(|p| p.is_dir()))
            .unwrap_or_else(std::env::temp_dir);
        let mut last = None;
        for attempt in 0..16u32 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let name = format!("comet-gateway-{}-{nanos:x}{attempt}", std::process::id());
            let path = base.join(name);
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(RunDir(path)),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no run directory")))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn spawn(exe: &Path, args: &[OsString], i: usize) -> io::Result<Child> {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(exe);
    cmd.args(args).arg("--worker-index").arg(i.to_string());
    // A worker inherits the environment, and with it every other setting; but not this
    // one, or each worker would start workers of its own.
    cmd.env_remove("COMET_WORKERS");
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
    let dir = RunDir::create()?;
    log::debug!("workers leave their counts in {}", dir.0.display());
    let args = worker_args(args, &dir.0);
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
            "--stats-dir",
            "/elsewhere",
            "--worker-index=1",
            "--x",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        let w: Vec<String> = worker_args(&a, Path::new("/run/d"))
            .iter()
            .map(|s| s.to_string_lossy().into())
            .collect();
        assert_eq!(
            w,
            [
                "--listen",
                "127.0.0.1:1",
                "--x",
                "--reuse-port",
                "--stats-dir",
                "/run/d"
            ]
        );
    }

    #[test]
    fn the_run_directory_is_private_and_goes_when_dropped() {
        use std::os::unix::fs::PermissionsExt;
        let dir = RunDir::create().unwrap();
        let path = dir.0.clone();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        std::fs::write(path.join("worker-0"), "x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }
}
