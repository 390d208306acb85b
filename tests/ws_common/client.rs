//! A client script: commands written to its standard input, its JSON lines read on a
//! thread and received with timeouts; and helpers that pick events out of those lines.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Lib;

pub(super) struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Value>,
    /// Every line so far, in order (`{"kind":…}` objects; a non-JSON line is kept as
    /// `{"kind":"garbage","line":…}`).
    pub(super) seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
    name: &'static str,
}

impl Client {
    pub(super) fn spawn(lib: Lib, dir: &Path) -> Client {
        let mut child = lib
            .command(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start the {} client: {e}", lib.name()));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v = serde_json::from_str::<Value>(&line)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!({"kind": "garbage", "line": line}));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let err = Arc::new(Mutex::new(String::new()));
        let sink = err.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                if s.len() < 64 * 1024 {
                    s.push_str(&line);
                    s.push('\n');
                }
            }
        });
        Client {
            child,
            stdin,
            rx,
            seen: Vec::new(),
            stderr: err,
            name: lib.name(),
        }
    }

    /// Writes one command line to the script.
    pub(super) fn send(&mut self, command: Value) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{command}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("{}: write a command: {e}", self.name));
    }

    /// `{"op":"open"}` on /ws of the gateway's public `port`.
    pub(super) fn open(
        &mut self,
        port: u16,
        channel: &str,
        seq: &str,
        token: Option<&str>,
        reconnect: bool,
    ) {
        self.send(json!({
            "op": "open",
            "base": format!("ws://127.0.0.1:{port}"),
            "channel": channel,
            "seq": seq,
            "token": token,
            "reconnect": reconnect,
        }));
    }

    /// Sends one text frame (a command to the gateway).
    pub(super) fn frame(&mut self, text: Value) {
        self.send(json!({"op": "send", "text": text.to_string()}));
    }

    /// Receives lines until `done(&seen)` holds (true) or `timeout` passes (false).
    pub(super) fn wait_for(&mut self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            while let Ok(v) = self.rx.try_recv() {
                self.seen.push(v);
            }
            if let Some(f) = self.seen.iter().find(|v| v["kind"] == "fatal") {
                panic!(
                    "the {} script failed: {}\nstderr:\n{}",
                    self.name,
                    f["message"],
                    self.stderr.lock().unwrap()
                );
            }
            if done(&self.seen) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            match self
                .rx
                .recv_timeout((deadline - now).min(Duration::from_millis(50)))
            {
                Ok(v) => self.seen.push(v),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().ok();
                    panic!(
                        "the {} script exited ({status:?}); it printed:\n{}\nstderr:\n{}",
                        self.name,
                        render(&self.seen),
                        self.stderr.lock().unwrap()
                    );
                }
            }
        }
    }

    /// Like `wait_for`, failing the test with what the script printed on timeout.
    pub(super) fn expect(
        &mut self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&[Value]) -> bool,
    ) {
        if !self.wait_for(timeout, done) {
            panic!(
                "{}: no {what} within {timeout:?}; the script printed:\n{}\nstderr:\n{}",
                self.name,
                render(&self.seen),
                self.stderr.lock().unwrap()
            );
        }
    }

    /// Closes the script's standard input (it then exits by itself); kills it if it has
    /// not exited within the bounded wait.
    pub(super) fn stop(&mut self) {
        self.stdin = None;
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The lines, one per line, for failure messages (long data shortened, 60 lines at most).
pub(super) fn render(lines: &[Value]) -> String {
    let mut out: Vec<String> = lines
        .iter()
        .take(60)
        .map(|v| {
            let s = v.to_string();
            if s.len() > 300 {
                format!(
                    "{}… ({} bytes)",
                    s.chars().take(300).collect::<String>(),
                    s.len()
                )
            } else {
                s
            }
        })
        .collect();
    if lines.len() > 60 {
        out.push(format!("… {} more", lines.len() - 60));
    }
    out.join("\n")
}

/// The JSON events the library delivered, in order (message lines whose text parsed to
/// an object with a `type`).
pub(super) fn events(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|v| v["kind"] == "message")
        .map(|v| &v["json"])
        .filter(|j| j.get("type").and_then(Value::as_str).is_some())
        .collect()
}

pub(super) fn count(lines: &[Value], kind: &str) -> usize {
    lines.iter().filter(|v| v["kind"] == kind).count()
}

pub(super) fn has_event(lines: &[Value], ty: &str) -> bool {
    events(lines).iter().any(|e| e["type"] == ty)
}

/// The `(seq, data)` of the `data` events for `channel` among `lines`.
pub(super) fn data_events(lines: &[Value], channel: &str) -> Vec<(u64, String)> {
    events(lines)
        .into_iter()
        .filter(|e| e["type"] == "data" && e["channel"] == channel)
        .map(|e| {
            (
                e["seq"].as_u64().unwrap_or(0),
                e["data"].as_str().unwrap_or("<not a string>").to_string(),
            )
        })
        .collect()
}

/// Compares delivered `(seq, data)` with published ones; describes every difference.
pub(super) fn compare(got: &[(u64, String)], want: &[(u64, String)]) -> Option<String> {
    if got == want {
        return None;
    }
    let short = |d: &str| d.chars().take(40).collect::<String>();
    let mut diffs = Vec::new();
    if got.len() != want.len() {
        diffs.push(format!(
            "{} data events delivered, {} published",
            got.len(),
            want.len()
        ));
    }
    for i in 0..got.len().max(want.len()) {
        match (got.get(i), want.get(i)) {
            (Some(g), Some(w)) if g == w => {}
            (g, w) => diffs.push(format!(
                "#{i}: delivered {:?}, published {:?}",
                g.map(|(s, d)| (s, short(d))),
                w.map(|(s, d)| (s, short(d)))
            )),
        }
    }
    Some(diffs.join("; "))
}
