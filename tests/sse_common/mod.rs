//! Shared by the SSE client-library tests (tests/sse_clients_*.rs): `GET /events` read by
//! SSE client libraries this project did not write, in two languages: npm `eventsource`
//! (Node.js), `event-source-polyfill` and `@microsoft/fetch-event-source` (both in headless
//! Chromium, driven by playwright-core) and Python's `httpx-sse`. The client scripts live in
//! tests/sse/ (see the comment at the top of each); they print one JSON line per thing their
//! library reports, and `run` drives the gateway binary around them and checks what they saw:
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
//!
//! Here: the payloads and `Lib` (which library, how to start its script); the gateway as a
//! child process in `gateway`, a client script in `client`, the checks in `run`.
#![allow(dead_code)] // each test file runs only some of the libraries

mod client;
mod gateway;
mod run;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use run::run;

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
pub enum Lib {
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
