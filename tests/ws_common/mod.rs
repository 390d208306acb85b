//! Shared by the WebSocket client-library tests (tests/ws_clients_*.rs): `GET /ws` spoken
//! to by WebSocket clients this project did not write, in two languages: npm `ws`
//! (Node.js) and Python's `websockets`. The client scripts live in tests/ws/ (see the
//! comment at the top of each); they take one JSON command per line on standard input
//! (open, send a text frame, pause or resume reading) and print one JSON line per thing
//! their library reports. The checks, one test each, against the gateway binary:
//!
//! - `order`: payloads with `\n`, `\r`, U+2028, emoji, `</script>`, quotes, backslashes,
//!   and one whose JSON event passes 65,535 bytes (a frame with a 64-bit length) arrive
//!   byte-identical and in seq order, after `hello`, each once.
//! - `restart`: after the gateway is killed (SIGKILL) and started again on the same ports,
//!   the script reconnects with the cursor it kept (as `?seq=`), gets `reset` for the
//!   channel (the memory engine's log is gone, as for the SSE clients), then exactly the
//!   messages published since, each once, in order, none from before the kill.
//! - `commands`: `subscribe` over the socket (with a seq: the buffered messages first),
//!   `unsubscribe` (nothing more from that channel), a bad command answered by an `error`
//!   event with the connection kept, and `close` ending the connection.
//! - `auth`: with `--auth-secret`, a handshake with no token or a forged one is refused
//!   with 403 before the upgrade; a token from `/sign` gets `hello` and messages.
//! - `slow`: with `--max-pending-bytes 64k`, a client that stops reading is closed
//!   (`slow_consumers_dropped` in /stats, the channel down to one subscriber) while
//!   another client on the same channel receives every message in order.
//!
//! Needs `tests/setup.sh` (tests/ws/node_modules, the venv at tests/ws/.venv).
//!
//! Here: the payloads and `Lib`; a client script in `client`, the checks in `run`; the
//! gateway child process and admin HTTP from tests/sse_common/gateway.rs.
#![allow(dead_code)] // each test file runs only some of the libraries

mod client;
#[path = "../sse_common/gateway.rs"]
mod gateway;
mod run;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use run::{auth, commands, order, restart, slow};

/// Longest a single wait for the gateway or a client may take.
const WAIT: Duration = Duration::from_secs(20);

/// Published in the order check, in this order (the last one is built in `run`).
const PAYLOADS: &[&str] = &[
    "line one\nline two",
    "crlf\r\nline two\r\n",
    "line separator\u{2028}paragraph separator\u{2029}end",
    "emoji \u{1F600} flag \u{1F1EB}\u{1F1F7} accent \u{e9} cjk \u{4e2d}",
    "</script><script>alert(1)</script><!--",
    "quotes \" ' and backslashes \\ \\\\ \\n \\u2028 \\\" end\\",
    "{\"type\":\"close\"}",
    "",
    "  leading and trailing spaces  ",
];

#[derive(Clone, Copy, Debug)]
pub enum Lib {
    NodeWs,
    PyWebsockets,
}

impl Lib {
    fn name(self) -> &'static str {
        match self {
            Lib::NodeWs => "ws (npm, Node.js)",
            Lib::PyWebsockets => "websockets (Python)",
        }
    }

    fn tag(self) -> &'static str {
        match self {
            Lib::NodeWs => "node-ws",
            Lib::PyWebsockets => "py-websockets",
        }
    }

    /// The command that runs this library's client script.
    fn command(self, dir: &Path) -> Command {
        match self {
            Lib::NodeWs => {
                let mut c = Command::new("node");
                c.arg(dir.join("node_ws.mjs"));
                c
            }
            Lib::PyWebsockets => {
                let mut c = Command::new(dir.join(".venv/bin/python"));
                c.arg(dir.join("websockets_client.py"));
                c
            }
        }
    }

    /// Files that must exist for the script to run (installed by tests/setup.sh).
    fn prerequisites(self, dir: &Path) -> Vec<PathBuf> {
        match self {
            Lib::NodeWs => vec![dir.join("node_modules/ws/package.json")],
            Lib::PyWebsockets => vec![dir.join(".venv/bin/python")],
        }
    }
}
