//! The gateway binary as a child process: `ChildGateway` (running, with its log) and
//! `refused_to_start` (expected to exit at once).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::WAIT;

/// Runs the gateway binary with `args`, expecting it to refuse to start: returns its
/// exit code and what it printed. Fails if it starts listening instead.
pub fn refused_to_start(args: &[&str]) -> (i32, String) {
    let bin = env!("CARGO_BIN_EXE_comet-gateway");
    let mut child = std::process::Command::new(bin)
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn gateway");
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.code().unwrap_or(-1), text);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the gateway started with {args:?}; it should have refused");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The gateway binary running as a child process (killed when dropped), with its stderr
/// collected line by line.
pub struct ChildGateway {
    pub child: std::process::Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ChildGateway {
    /// Starts `comet-gateway` on ephemeral ports with `args`, under `ulimit -n` (soft and
    /// hard limit) when given.
    pub fn spawn(fd_limit: Option<u32>, args: &[&str]) -> ChildGateway {
        let ulimit = fd_limit.map(|n| format!("ulimit -n {n}"));
        Self::start(ulimit.as_deref(), &[], &ephemeral(args))
    }

    /// Starts `comet-gateway` on ephemeral ports with `args`, under a soft descriptor
    /// limit of `n` (`ulimit -S -n`; the hard limit stays as it is).
    pub fn spawn_soft_fd_limit(n: u32, args: &[&str]) -> ChildGateway {
        Self::start(Some(&format!("ulimit -S -n {n}")), &[], &ephemeral(args))
    }

    /// Starts `comet-gateway` with `args` and the environment variables `env`, and no
    /// listen flags of its own: `env` or `args` say where it listens.
    pub fn spawn_env(env: &[(&str, &str)], args: &[&str]) -> ChildGateway {
        Self::start(None, env, args)
    }

    fn start(ulimit: Option<&str>, env: &[(&str, &str)], args: &[&str]) -> ChildGateway {
        use std::io::BufRead;
        let bin = env!("CARGO_BIN_EXE_comet-gateway");
        let mut cmd = String::new();
        if let Some(u) = ulimit {
            cmd.push_str(&format!("{u} && "));
        }
        cmd.push_str(&format!("exec '{bin}' {}", args.join(" ")));
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn gateway");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("listening:") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push(line);
            }
        });
        let line = match rx.recv_timeout(WAIT) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!("gateway did not start");
            }
        };
        let addrs: Vec<SocketAddr> = line
            .split("http://")
            .skip(1)
            .map(|a| a.split_whitespace().next().unwrap().parse().unwrap())
            .collect();
        ChildGateway {
            child,
            public: addrs[0],
            admin: addrs[1],
            log,
        }
    }

    /// True once a log line contains `needle`.
    pub fn logged(&self, needle: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(needle))
    }

    /// Every log line so far.
    pub fn log_lines(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// `args` after the flags that put both listeners on ephemeral loopback ports.
fn ephemeral<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"];
    all.extend_from_slice(args);
    all
}

impl Drop for ChildGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
