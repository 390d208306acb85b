//! `GET /events` read by SSE client libraries this project did not write, in two languages:
//! npm `eventsource` (Node.js), `event-source-polyfill` and `@microsoft/fetch-event-source`
//! (both in headless Chromium, driven by playwright-core) and Python's `httpx-sse`. The
//! client scripts live in tests/sse/ (see the comment at the top of each); they print one
//! JSON line per thing their library reports, and this test drives the gateway binary
//! around them and checks what they saw:
//!
//! - `payloads`: messages whose payloads hold `\n`, `\r\n`, a lone `\r`, U+2028, U+2029,
//!   emoji, `</script>`, quotes, backslashes and SSE field lookalikes arrive byte-identical
//!   (the `data` of the JSON event the library delivered equals what was published) and in
//!   seq order.
//! - `stream-start`: the first message of every stream (the first connection and the one
//!   after the restart) is `hello`: the `retry:` hint must not make an empty message.
//! - `heartbeats`: with `--heartbeat 200ms`, about a second of idling delivers no message
//!   at all (a raw reader on the same channel meanwhile proves heartbeats were sent).
//! - `restart`: after the gateway is killed (SIGKILL) and started again on the same ports,
//!   the library reconnects by itself with the last event id, gets `reset` for the channel
//!   (the gateway's memory is gone), then exactly the messages published since, each once,
//!   in order, none from before the kill.
//! - `json`: every message event of the whole run carries one JSON event (no empty data,
//!   no parse error; the scripts' handlers catch parse errors and report them).
//!
//! Each test prints `ok LIB: CHECK` or `FAIL LIB: CHECK: …` per check and fails if any
//! check failed. Needs `tests/setup.sh` (node modules in tests/sse/node_modules, the Python
//! venv in tests/sse/.venv, Chromium), which the README's test command runs.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Longest a single wait for the gateway or a client may take.
const WAIT: Duration = Duration::from_secs(20);
/// Longest a client may take to start and get its first `hello` (Chromium's start on a
/// busy 2-core machine included).
const STARTUP: Duration = Duration::from_secs(60);
/// How long the stream idles (with `--heartbeat 200ms`) in the heartbeat check.
const IDLE: Duration = Duration::from_millis(1000);

/// Published before the idle period, in this order.
const PAYLOADS: &[&str] = &[
    "line one\nline two",
    "crlf\r\nline two\r\n",
    "lone cr\r then lf\n\n",
    "line separator\u{2028}paragraph separator\u{2029}end",
    "emoji \u{1F600} flag \u{1F1EB}\u{1F1F7} accent \u{e9} cjk \u{4e2d}",
    "</script><script>alert(1)</script><!--",
    "quotes \" ' and backslashes \\ \\\\ \\n \\u2028 \\\" end\\",
    "data: injected\n\nid: bogus\nretry: 1\nevent: x\n\n:comment\r\n",
    "\n",
    "  leading and trailing spaces  ",
    "mixed \r\n\u{2028}\u{1F600}\"\\</script>\u{2029}\r",
];
/// Published after the idle period; its arrival ends the idle window.
const AFTER_IDLE: &str = "after the idle second \u{1F600}";
/// Published after the restart, in this order.
const AFTER_RESTART: &[&str] = &[
    "after restart 1 \u{2028}\n",
    "after restart 2 \u{1F600}\r\n\"\\",
    "after restart 3 </script>",
    "end of run",
];

#[derive(Clone, Copy, Debug)]
enum Lib {
    NodeEventsource,
    Polyfill,
    FetchEventSource,
    HttpxSse,
}

impl Lib {
    fn name(self) -> &'static str {
        match self {
            Lib::NodeEventsource => "eventsource (npm, Node.js)",
            Lib::Polyfill => "event-source-polyfill (Chromium)",
            Lib::FetchEventSource => "@microsoft/fetch-event-source (Chromium)",
            Lib::HttpxSse => "httpx-sse (Python)",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Lib::NodeEventsource => "eventsource",
            Lib::Polyfill => "polyfill",
            Lib::FetchEventSource => "fetch-event-source",
            Lib::HttpxSse => "httpx-sse",
        }
    }

    /// The command that runs this library's client script against `base` and `channel`.
    fn command(self, dir: &Path, base: &str, channel: &str) -> Command {
        let mut cmd = match self {
            Lib::NodeEventsource => {
                let mut c = Command::new("node");
                c.arg(dir.join("node_eventsource.mjs"));
                c
            }
            Lib::Polyfill | Lib::FetchEventSource => {
                let mut c = Command::new("node");
                c.arg(dir.join("browser.mjs")).arg(self.tag());
                c
            }
            Lib::HttpxSse => {
                let mut c = Command::new(dir.join(".venv/bin/python"));
                c.arg(dir.join("httpx_sse_client.py"));
                c
            }
        };
        cmd.arg(base).arg(channel);
        cmd
    }

    /// Files that must exist for the script to run (installed by tests/setup.sh).
    fn prerequisites(self, dir: &Path) -> Vec<PathBuf> {
        match self {
            Lib::NodeEventsource => vec![dir.join("node_modules/eventsource/package.json")],
            Lib::Polyfill => vec![
                dir.join("node_modules/event-source-polyfill/package.json"),
                dir.join("node_modules/playwright-core/package.json"),
                PathBuf::from("/usr/bin/chromium"),
            ],
            Lib::FetchEventSource => vec![
                dir.join("node_modules/@microsoft/fetch-event-source/package.json"),
                dir.join("node_modules/playwright-core/package.json"),
                PathBuf::from("/usr/bin/chromium"),
            ],
            Lib::HttpxSse => vec![dir.join(".venv/bin/python")],
        }
    }
}

#[test]
fn eventsource_npm_in_node() {
    run(Lib::NodeEventsource);
}

#[test]
fn event_source_polyfill_in_chromium() {
    run(Lib::Polyfill);
}

#[test]
fn fetch_event_source_in_chromium() {
    run(Lib::FetchEventSource);
}

#[test]
fn httpx_sse_in_python() {
    run(Lib::HttpxSse);
}

// ---------------------------------------------------------------------------------------
// The gateway as a child process on fixed ports, so that a restart comes back on them.

/// Two distinct ports that were free a moment ago (bound to 127.0.0.1:0 together, then
/// released), for the gateway to take and to take again after a restart.
fn free_ports() -> (u16, u16) {
    let bind = || TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let (a, b) = (bind(), bind());
    let port = |l: &TcpListener| l.local_addr().unwrap().port();
    (port(&a), port(&b))
}

struct Gateway {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Gateway {
    /// Starts `comet-gateway` on `public` and `admin` and waits until it says it listens.
    /// Retries (boundedly) when it exits at once, e.g. while a port is still held.
    fn start(public: u16, admin: u16) -> Gateway {
        let deadline = Instant::now() + WAIT;
        let mut last_log = Vec::new();
        while Instant::now() < deadline {
            let mut child = Command::new(env!("CARGO_BIN_EXE_comet-gateway"))
                .args(["--listen", &format!("127.0.0.1:{public}")])
                .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
                .args(["--heartbeat", "200ms", "--buffer", "100"])
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn comet-gateway");
            let stderr = child.stderr.take().unwrap();
            let log = Arc::new(Mutex::new(Vec::new()));
            let (tx, rx) = mpsc::channel();
            let sink = log.clone();
            // Drains the log for the gateway's whole life (a full pipe would block it).
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("listening:") {
                        let _ = tx.send(());
                    }
                    sink.lock().unwrap().push(line);
                }
            });
            loop {
                if rx.recv_timeout(Duration::from_millis(20)).is_ok() {
                    return Gateway { child, log };
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: try again shortly
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the gateway did not start on 127.0.0.1:{public} within {WAIT:?}:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            }
            let _ = child.wait();
            last_log = log.lock().unwrap().clone();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the gateway kept exiting at start on 127.0.0.1:{public}:\n{}",
            last_log.join("\n")
        );
    }

    /// SIGKILL, and waits for the process to be gone.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap();
        let from = log.len().saturating_sub(20);
        log[from..].join("\n")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One HTTP/1.1 request with an exact body (`Content-Length`); returns status and body.
fn http(port: u16, method: &str, target: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut sock = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    sock.set_read_timeout(Some(WAIT)).unwrap();
    let mut req = format!(
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    sock.write_all(&req).expect("send request");
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    let (head_end, status, content_length, chunked) = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_string();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("bad status line: {head}"));
            let header = |name: &str| {
                head.lines().skip(1).find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_string())
                })
            };
            let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
            let chunked = header("transfer-encoding")
                .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
            break (p + 4, status, length, chunked);
        }
        let n = sock.read(&mut tmp).expect("read response");
        assert!(n > 0, "connection closed before a response to {target}");
        buf.extend_from_slice(&tmp[..n]);
    };
    let mut body = buf.split_off(head_end);
    if let Some(len) = content_length {
        while body.len() < len {
            let n = sock.read(&mut tmp).expect("read body");
            assert!(n > 0, "body of {target} cut short");
            body.extend_from_slice(&tmp[..n]);
        }
        body.truncate(len);
    } else {
        // Connection: close: the body runs to the end.
        sock.read_to_end(&mut body).expect("read body");
        if chunked {
            body = dechunk(&body);
        }
    }
    (status, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(p) = raw.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&raw[..p]).to_string();
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16)
            .expect("chunk size");
        if size == 0 || raw.len() < p + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[p + 2..p + 2 + size]);
        raw = &raw[(p + 4 + size).min(raw.len())..];
    }
    out
}

/// Publishes `payload` (its exact bytes) to `channel`; returns the seq.
fn publish(admin: u16, channel: &str, payload: &str) -> u64 {
    let (status, body) = http(
        admin,
        "POST",
        &format!("/pub?channel={channel}"),
        payload.as_bytes(),
    );
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 200, "publish {payload:?}: HTTP {status}: {text}");
    let answer: Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("publish answer ({e}): {text}"));
    answer["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("publish answer without seq: {text}"))
}

/// Reads `/events` raw for `period` and counts the heartbeat comments (`:hb`) it sees.
fn heartbeats_seen_by_raw_reader(public: u16, channel: &str, period: Duration) -> usize {
    let addr = SocketAddr::from(([127, 0, 0, 1], public));
    let mut sock = TcpStream::connect_timeout(&addr, WAIT).expect("connect");
    sock.write_all(
        format!("GET /events?channel={channel} HTTP/1.1\r\nHost: 127.0.0.1:{public}\r\n\r\n")
            .as_bytes(),
    )
    .expect("send");
    let end = Instant::now() + period;
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        sock.set_read_timeout(Some((end - now).max(Duration::from_millis(1))))
            .unwrap();
        match sock.read(&mut tmp) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    buf.windows(3).filter(|w| w == b":hb").count()
}

// ---------------------------------------------------------------------------------------
// A client script: its JSON lines, read on a thread and received with timeouts.

struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<Value>,
    /// Every line so far, in order (`{"kind":…}` objects; a non-JSON line is kept as
    /// `{"kind":"garbage","line":…}`).
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

impl Client {
    fn spawn(lib: Lib, dir: &Path, base: &str, channel: &str) -> Client {
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
    fn wait_for(&mut self, timeout: Duration, done: impl Fn(&[Value]) -> bool) -> bool {
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
    fn stop(&mut self) {
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
fn render(lines: &[Value]) -> String {
    let mut out: Vec<String> = lines.iter().take(60).map(Value::to_string).collect();
    if lines.len() > 60 {
        out.push(format!("… {} more", lines.len() - 60));
    }
    out.join("\n")
}

fn is_message(v: &Value) -> bool {
    v["kind"] == "message"
}

/// The JSON event a message line carries, if its data parsed to an object with a `type`.
fn event_of(v: &Value) -> Option<&Value> {
    if !is_message(v) {
        return None;
    }
    let j = &v["json"];
    j.get("type")?.as_str()?;
    Some(j)
}

/// The `(seq, data)` of the `data` events for `channel` among `lines`.
fn data_events(lines: &[Value], channel: &str) -> Vec<(u64, String)> {
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

fn has_data(lines: &[Value], channel: &str, payload: &str) -> bool {
    data_events(lines, channel)
        .iter()
        .any(|(_, d)| d == payload)
}

/// Compares delivered `(seq, data)` with published ones; describes every difference.
fn compare(got: &[(u64, String)], want: &[(u64, String)]) -> Option<String> {
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
fn messages_before_hello(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .take_while(|v| event_of(v).is_none_or(|e| e["type"] != "hello"))
        .filter(|v| is_message(v))
        .collect()
}

fn show(lines: &[&Value]) -> String {
    let mut out: Vec<String> = lines.iter().take(5).map(|v| v.to_string()).collect();
    if lines.len() > 5 {
        out.push(format!("… {} more", lines.len() - 5));
    }
    out.join(", ")
}

// ---------------------------------------------------------------------------------------

fn run(lib: Lib) {
    let started = Instant::now();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("tests/sse");
    for p in lib.prerequisites(&dir) {
        assert!(
            p.exists(),
            "{}: {} is missing: run `bash tests/setup.sh` first",
            lib.name(),
            p.display()
        );
    }
    let (public, admin) = free_ports();
    let mut gateway = Gateway::start(public, admin);
    let channel = format!("sse-{}", lib.tag());
    let base = format!("http://127.0.0.1:{public}");
    let mut client = Client::spawn(lib, &dir, &base, &channel);
    let mut checks: Vec<(&str, Option<String>)> = Vec::new();

    // Connected: the stream's hello has arrived.
    let hello = |lines: &[Value]| {
        lines
            .iter()
            .filter_map(event_of)
            .any(|e| e["type"] == "hello")
    };
    if !client.wait_for(STARTUP, hello) {
        panic!(
            "{}: no hello within {STARTUP:?}; the client printed:\n{}\nstderr:\n{}\ngateway:\n{}",
            lib.name(),
            render(&client.seen),
            client.stderr.lock().unwrap(),
            gateway.log_tail()
        );
    }
    let first_stream_start = messages_before_hello(&client.seen)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();

    // payloads: byte-identical, in seq order.
    let mut published: Vec<(u64, String)> = PAYLOADS
        .iter()
        .map(|p| (publish(admin, &channel, p), p.to_string()))
        .collect();
    let n = published.len();
    let ch = channel.clone();
    let all_arrived = client.wait_for(WAIT, |l| data_events(l, &ch).len() >= n);
    let got = data_events(&client.seen, &channel);
    let mut payload_problem = compare(&got, &published);
    if !all_arrived {
        payload_problem = Some(format!(
            "only {} of {n} messages arrived within {WAIT:?}; {}",
            got.len(),
            payload_problem.unwrap_or_default()
        ));
    }

    // heartbeats: about a second of idling (a raw reader counts the heartbeats meanwhile),
    // then one more message: nothing may have been delivered in between.
    let idle_from = client.seen.len();
    let heartbeats = heartbeats_seen_by_raw_reader(public, &channel, IDLE);
    let marker_seq = publish(admin, &channel, AFTER_IDLE);
    let ch = channel.clone();
    let marker_arrived = client.wait_for(WAIT, |l| has_data(&l[idle_from..], &ch, AFTER_IDLE));
    let idle_messages: Vec<&Value> = client.seen[idle_from..]
        .iter()
        .filter(|v| is_message(v))
        .take_while(|v| event_of(v).is_none_or(|e| e["data"] != AFTER_IDLE))
        .collect();
    let heartbeat_problem = if heartbeats == 0 {
        Some(format!(
            "the gateway sent no heartbeat to a raw reader during {IDLE:?} (run with --heartbeat 200ms): the check proves nothing"
        ))
    } else if !idle_messages.is_empty() {
        Some(format!(
            "{} message event(s) delivered during {IDLE:?} of idling, while the gateway sent {heartbeats} heartbeat(s) to a raw reader: {}",
            idle_messages.len(),
            show(&idle_messages)
        ))
    } else if !marker_arrived {
        Some(format!(
            "the message published after the idle period did not arrive within {WAIT:?}"
        ))
    } else {
        None
    };
    published.push((marker_seq, AFTER_IDLE.to_string()));
    if payload_problem.is_none() {
        // The message after the idle period is in order too.
        payload_problem = compare(&data_events(&client.seen, &channel), &published);
    }
    checks.push(("payloads", payload_problem));

    // restart: SIGKILL, start again on the same ports, publish; the library resumes alone.
    let killed_at = client.seen.len();
    let last_id_before_kill = client
        .seen
        .iter()
        .rev()
        .find(|v| is_message(v) && v["id"].as_str().is_some_and(|s| !s.is_empty()))
        .map(|v| v["id"].as_str().unwrap().to_string());
    let seqs_before_kill: HashSet<u64> = published.iter().map(|(s, _)| *s).collect();
    gateway.kill();
    gateway = Gateway::start(public, admin);
    let reconnected = client.wait_for(WAIT, |l| {
        l[killed_at..]
            .iter()
            .filter_map(event_of)
            .any(|e| e["type"] == "hello")
    });
    let mut second_stream_start = Vec::new();
    let restart_problem = if !reconnected {
        Some(format!(
            "no new stream (hello) within {WAIT:?} of the restart; after the kill the client printed:\n{}",
            render(&client.seen[killed_at..])
        ))
    } else {
        // The stream the library opened: from the last connection report before its hello.
        let after_kill = &client.seen[killed_at..];
        let hello_at = after_kill
            .iter()
            .position(|v| event_of(v).is_some_and(|e| e["type"] == "hello"))
            .unwrap();
        let opened_at = after_kill[..hello_at]
            .iter()
            .rposition(|v| v["kind"] == "open" || v["kind"] == "request")
            .map_or(0, |i| i + 1);
        second_stream_start = messages_before_hello(&after_kill[opened_at..])
            .into_iter()
            .cloned()
            .collect();
        let after: Vec<(u64, String)> = AFTER_RESTART
            .iter()
            .map(|p| (publish(admin, &channel, p), p.to_string()))
            .collect();
        let last = AFTER_RESTART[AFTER_RESTART.len() - 1];
        let ch = channel.clone();
        let complete = client.wait_for(WAIT, |l| has_data(&l[killed_at..], &ch, last));
        let stream = &client.seen[killed_at..][hello_at..];
        let events: Vec<&Value> = stream.iter().filter_map(event_of).collect();
        let requests: Vec<&Value> = client.seen[killed_at..]
            .iter()
            .filter(|v| v["kind"] == "request")
            .collect();
        let resumed_with = format!(
            "last id before the kill {last_id_before_kill:?}; reconnect requests: {}",
            show(&requests)
        );
        let resets: Vec<&&Value> = events
            .iter()
            .filter(|e| e["type"] == "reset" && e["channel"] == channel.as_str())
            .collect();
        let got = data_events(stream, &channel);
        let duplicates: Vec<&(u64, String)> = got
            .iter()
            .filter(|(s, d)| {
                seqs_before_kill.contains(s) || PAYLOADS.contains(&d.as_str()) || d == AFTER_IDLE
            })
            .collect();
        let others: Vec<&&Value> = events
            .iter()
            .skip(1) // the hello
            .filter(|e| !(e["type"] == "data" || e["type"] == "reset"))
            .collect();
        let first_data = events.iter().position(|e| e["type"] == "data");
        let first_reset = events.iter().position(|e| e["type"] == "reset");
        if !complete {
            Some(format!(
                "the messages published after the restart did not all arrive within {WAIT:?}: got {got:?}; {resumed_with}"
            ))
        } else if resets.len() != 1 {
            Some(format!(
                "expected one reset event for {channel} after the restart, got {}; events of the new stream: {}; {resumed_with}",
                resets.len(),
                events.iter().map(|e| e.to_string()).collect::<Vec<_>>().join(", ")
            ))
        } else if first_reset > first_data {
            Some(format!(
                "the reset came after data; events of the new stream: {}",
                events
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else if !duplicates.is_empty() {
            Some(format!(
                "messages from before the kill were delivered again: {duplicates:?}"
            ))
        } else if let Some(diff) = compare(&got, &after) {
            Some(format!("after the restart: {diff}"))
        } else if resets[0]["seq"].as_u64() != Some(after[0].0) {
            Some(format!(
                "reset says what follows starts at {}, but the first message after it has seq {}",
                resets[0]["seq"], after[0].0
            ))
        } else if !others.is_empty() {
            Some(format!(
                "unexpected events in the new stream: {}",
                others
                    .iter()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        } else {
            None
        }
    };
    checks.push(("restart", restart_problem));
    checks.insert(
        1,
        (
            "stream-start",
            match (first_stream_start.is_empty(), second_stream_start.is_empty()) {
                (true, true) => None,
                _ => Some(format!(
                    "message event(s) delivered before hello: {} on the first stream [{}], {} on the stream after the restart [{}]",
                    first_stream_start.len(),
                    show(&first_stream_start.iter().collect::<Vec<_>>()),
                    second_stream_start.len(),
                    show(&second_stream_start.iter().collect::<Vec<_>>())
                )),
            },
        ),
    );
    checks.insert(2, ("heartbeats", heartbeat_problem));

    // json: every message event of the run carried one JSON event.
    let bad: Vec<&Value> = client
        .seen
        .iter()
        .filter(|v| is_message(v) && event_of(v).is_none())
        .collect();
    let page_errors: Vec<&Value> = client
        .seen
        .iter()
        .filter(|v| v["kind"] == "pageerror" || v["kind"] == "garbage")
        .collect();
    checks.push((
        "json",
        if bad.is_empty() && page_errors.is_empty() {
            None
        } else {
            let empty = bad.iter().filter(|v| v["data"] == "").count();
            Some(format!(
                "{} of {} message events were not a JSON event ({} with empty data, {} others): {}{}",
                bad.len(),
                client.seen.iter().filter(|v| is_message(v)).count(),
                empty,
                bad.len() - empty,
                show(&bad),
                if page_errors.is_empty() {
                    String::new()
                } else {
                    format!("; page errors or stray output: {}", show(&page_errors))
                }
            ))
        },
    ));

    client.stop();
    drop(gateway);

    let mut report = Vec::new();
    for (name, problem) in &checks {
        match problem {
            None => report.push(format!("ok {}: {name}", lib.name())),
            Some(p) => report.push(format!("FAIL {}: {name}: {p}", lib.name())),
        }
    }
    let report = report.join("\n");
    let took = started.elapsed().as_secs_f64();
    assert!(
        checks.iter().all(|(_, p)| p.is_none()),
        "{report}\n({took:.1} s)\n\nthe client printed:\n{}",
        render(&client.seen)
    );
    println!("{report}\n({took:.1} s)");
}
