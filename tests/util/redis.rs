//! `Redis`: a redis-server of the test's own on a free loopback port (no system
//! service), and `redis-cli` against it; optionally persistent (append-only file,
//! fsynced on every write) so that a restart brings its data back.

use super::workers::free_port;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server of our own, killed (SIGKILL) on drop.
pub struct Redis {
    pub port: u16,
    /// Where a persistent one keeps its data (removed when the last handle on it drops
    /// with `keep_dir` false).
    dir: Option<PathBuf>,
    child: Child,
}

impl Redis {
    pub fn start() -> Redis {
        Redis::start_on(free_port())
    }

    /// Starts one on `port` (again, after a kill: a restart without its data).
    pub fn start_on(port: u16) -> Redis {
        Redis::spawn(port, None)
    }

    /// Starts one that writes every change to an append-only file (fsync always) in a
    /// fresh directory, so that [`restart`](Self::restart) finds its data again.
    pub fn start_persistent() -> Redis {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!("comet-redis-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Redis::spawn(port, Some(dir))
    }

    fn spawn(port: u16, dir: Option<PathBuf>) -> Redis {
        assert!(
            std::path::Path::new("/usr/bin/redis-server").exists(),
            "redis-server is missing: run `bash tests/setup.sh` first"
        );
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"]);
        match &dir {
            Some(d) => cmd.args(["--save", "", "--appendonly", "yes"]).args([
                "--appendfsync",
                "always",
                "--dir",
                d.to_str().unwrap(),
            ]),
            None => cmd.args(["--save", "", "--appendonly", "no"]),
        };
        let child = cmd
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let r = Redis { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while r.cli(&["PING"]) != "PONG" {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        r
    }

    /// Kills it (SIGKILL: nothing is saved on the way out) and starts it again on the
    /// same port: with its data if it is persistent, empty otherwise.
    pub fn restart(mut self) -> Redis {
        self.kill();
        let (port, dir) = (self.port, self.dir.take());
        drop(self);
        Redis::spawn(port, dir)
    }

    /// SIGKILL, and waits until it is gone (its port is closed then).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Runs `redis-cli` with `args`; its output, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8(out.stdout)
            .unwrap()
            .trim_end()
            .to_string()
    }

    /// Its address.
    pub fn addr(&self) -> std::net::SocketAddr {
        ([127, 0, 0, 1], self.port).into()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
