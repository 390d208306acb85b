//! A client script: its JSON lines, read on a thread and received with timeouts; and the
//! helpers that pick events out of those lines and describe them for failure messages.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Lib;

pub(super) struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Value>,
    /// Every line so far, in order (`{"kind":…}` objects; a non-JSON line is kept as
    /// `{"kind":"garbage","line":…}`).
    pub(super) seen: Vec<Value>,
    pub(super) stderr: Arc<Mutex<String>>,
}

impl Client {
    pub(super) fn spawn(lib: Lib, dir: &Path, base: &str, channel: &str) -> Client {
        let mut child = lib
            .command(dir, base, channel)
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
                    .unwrap_or_else(|| serde_json::json!({"kind": "garbage", "line": line}));
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
        }
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
                    "the client script failed: {}\nstderr:\n{}",
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
                        "the client script exited ({status:?}); it printed:\n{}\nstderr:\n{}",
                        render(&self.seen),
                        self.stderr.lock().unwrap()
                    );
                }
            }
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

/// The lines, one per line, for failure messages (shortened past 60).
pub(super) fn render(lines: &[Value]) -> String {
    let mut out: Vec<String> = lines.iter().take(60).map(Value::to_string).collect();
    if lines.len() > 60 {
        out.push(format!("… {} more", lines.len() - 60));
    }
    out.join("\n")
}

pub(super) fn is_message(v: &Value) -> bool {
    v["kind"] == "message"
}

/// The JSON event a message line carries, if its data parsed to an object with a `type`.
pub(super) fn event_of(v: &Value) -> Option<&Value> {
    if !is_message(v) {
        return None;
    }
    let j = &v["json"];
    j.get("type")?.as_str()?;
    Some(j)
}

/// The `(seq, data)` of the `data` events for `channel` among `lines`.
pub(super) fn data_events(lines: &[Value], channel: &str) -> Vec<(u64, String)> {
    lines
        .iter()
        .filter_map(event_of)
        .filter(|e| e["type"] == "data" && e["channel"] == channel)
        .map(|e| {
            (
                e["seq"].as_u64().unwrap_or(0),
                e["data"].as_str().unwrap_or("<not a string>").to_string(),
            )
        })
        .collect()
}

pub(super) fn has_data(lines: &[Value], channel: &str, payload: &str) -> bool {
    data_events(lines, channel)
        .iter()
        .any(|(_, d)| d == payload)
}

/// Compares delivered `(seq, data)` with published ones; describes every difference.
pub(super) fn compare(got: &[(u64, String)], want: &[(u64, String)]) -> Option<String> {
    if got == want {
        return None;
    }
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
            (g, w) => diffs.push(format!("#{i}: delivered {g:?}, published {w:?}")),
        }
    }
    Some(diffs.join("; "))
}

/// The message lines of `lines` that come before the first `hello` event in it.
pub(super) fn messages_before_hello(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .take_while(|v| event_of(v).is_none_or(|e| e["type"] != "hello"))
        .filter(|v| is_message(v))
        .collect()
}

pub(super) fn show(lines: &[&Value]) -> String {
    let mut out: Vec<String> = lines.iter().take(5).map(|v| v.to_string()).collect();
    if lines.len() > 5 {
        out.push(format!("… {} more", lines.len() - 5));
    }
    out.join(", ")
}
