//! What the flood counts: [`Counters`] per attack, [`Second`] per-second totals, the
//! [`Summary`] of a run and their JSON, and the names errors are counted under. Plain data:
//! the engine bumps the counters; nothing here touches a socket.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

use super::config::ATTACKS;

/// Outcomes of one attack, counted; none of them stops the run.
#[derive(Clone, Debug, Default)]
pub struct Counters {
    /// Connections the attack keeps open at once.
    pub target_conns: u64,
    /// Connects tried.
    pub connects: u64,
    /// Connects that completed.
    pub connected: u64,
    /// Connects that failed (socket, bind, connect or its completion).
    pub connect_errors: u64,
    /// Connects not completed within `--connect-timeout`.
    pub connect_timeouts: u64,
    /// Requests written (hog: whole requests of the bursts that got into the socket).
    pub requests: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Bytes read.
    pub bytes_received: u64,
    /// Complete responses read.
    pub answers: u64,
    /// Responses by HTTP status.
    pub status: BTreeMap<u16, u64>,
    /// `reset` events in the answers.
    pub reset_events: u64,
    /// Answers carrying `X-Comet-Client` (a session the client never resumes).
    pub sessions: u64,
    /// Connections the server ended with a FIN (EOF, or a hang-up seen without reading).
    pub closed_by_server: u64,
    /// Connections reset by the server (ECONNRESET, EPIPE).
    pub resets: u64,
    /// Other read or write errors.
    pub io_errors: u64,
    /// park: connections closed by the tool after `--park-hold` with the poll still
    /// parked.
    pub held_and_closed: u64,
    /// reset, session: connections with answers due and nothing received for
    /// `--stall-timeout`.
    pub stalled: u64,
    /// Requests sent on connections that ended before answering them.
    pub unanswered: u64,
    /// Writes that would have blocked (back-pressure from the server).
    pub write_blocked: u64,
    /// hog: bursts written completely.
    pub bursts_completed: u64,
    /// Responses that could not be parsed.
    pub protocol_errors: u64,
    /// Connections still open at the end.
    pub open_at_end: u64,
}

impl Counters {
    pub(super) fn add(&mut self, o: &Counters) {
        self.target_conns += o.target_conns;
        self.connects += o.connects;
        self.connected += o.connected;
        self.connect_errors += o.connect_errors;
        self.connect_timeouts += o.connect_timeouts;
        self.requests += o.requests;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.answers += o.answers;
        for (k, v) in &o.status {
            *self.status.entry(*k).or_default() += v;
        }
        self.reset_events += o.reset_events;
        self.sessions += o.sessions;
        self.closed_by_server += o.closed_by_server;
        self.resets += o.resets;
        self.io_errors += o.io_errors;
        self.held_and_closed += o.held_and_closed;
        self.stalled += o.stalled;
        self.unanswered += o.unanswered;
        self.write_blocked += o.write_blocked;
        self.bursts_completed += o.bursts_completed;
        self.protocol_errors += o.protocol_errors;
        self.open_at_end += o.open_at_end;
    }

    /// Failures the server caused or allowed: connect errors and time-outs, closes,
    /// resets, I/O errors, stalls.
    pub fn failures(&self) -> u64 {
        self.connect_errors
            + self.connect_timeouts
            + self.closed_by_server
            + self.resets
            + self.io_errors
            + self.stalled
            + self.protocol_errors
    }

    /// Answers with this status.
    pub fn with_status(&self, code: u16) -> u64 {
        self.status.get(&code).copied().unwrap_or(0)
    }

    /// The counters as a JSON object.
    pub fn json(&self) -> String {
        let mut status = String::from("{");
        for (i, (k, v)) in self.status.iter().enumerate() {
            let _ = write!(status, "{}\"{k}\":{v}", if i > 0 { "," } else { "" });
        }
        status.push('}');
        format!(
            concat!(
                "{{\"target_conns\":{},\"connects\":{},\"connected\":{},\"connect_errors\":{},",
                "\"connect_timeouts\":{},\"requests\":{},\"bytes_sent\":{},\"bytes_received\":{},",
                "\"answers\":{},\"status\":{},\"reset_events\":{},\"sessions\":{},",
                "\"closed_by_server\":{},\"resets\":{},\"io_errors\":{},\"held_and_closed\":{},",
                "\"stalled\":{},\"unanswered\":{},\"write_blocked\":{},\"bursts_completed\":{},",
                "\"protocol_errors\":{},\"open_at_end\":{}}}"
            ),
            self.target_conns,
            self.connects,
            self.connected,
            self.connect_errors,
            self.connect_timeouts,
            self.requests,
            self.bytes_sent,
            self.bytes_received,
            self.answers,
            status,
            self.reset_events,
            self.sessions,
            self.closed_by_server,
            self.resets,
            self.io_errors,
            self.held_and_closed,
            self.stalled,
            self.unanswered,
            self.write_blocked,
            self.bursts_completed,
            self.protocol_errors,
            self.open_at_end
        )
    }
}

/// One second of the run, over all attacks.
#[derive(Clone, Copy, Debug, Default)]
pub struct Second {
    /// Connects tried.
    pub connects: u64,
    /// Requests written.
    pub requests: u64,
    /// Answers read.
    pub answers: u64,
    /// 503 answers.
    pub status_503: u64,
    /// Failures (see [`Counters::failures`]).
    pub failures: u64,
    /// Connections open at the end of the second.
    pub open: u64,
}

/// The result of a flood.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    /// `--mode`, in words.
    pub mode: String,
    /// The target.
    pub target: String,
    /// How long it ran, seconds.
    pub secs: f64,
    /// Source addresses used (0: the OS picked).
    pub sources: usize,
    /// `--max-conns`.
    pub max_conns: usize,
    /// Most connections open at once.
    pub peak_open: usize,
    /// Counters per attack, in [`ATTACKS`] order.
    pub attacks: [Counters; 4],
    /// Which attacks ran.
    pub active: [bool; 4],
    /// Errors by kind (errno name), connect and I/O alike.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Per-second totals.
    pub per_second: Vec<Second>,
}

impl Summary {
    /// The counters of every attack added up.
    pub fn totals(&self) -> Counters {
        let mut t = Counters::default();
        for c in &self.attacks {
            t.add(c);
        }
        t
    }

    /// The summary as one JSON object.
    pub fn json(&self) -> String {
        let mut j = String::new();
        let _ = write!(
            j,
            "{{\"tool\":\"comet-flood\",\"mode\":\"{}\",\"target\":\"{}\",\"secs\":{:.3},\"sources\":{},\"max_conns\":{},\"peak_open\":{},\"attacks\":{{",
            self.mode, self.target, self.secs, self.sources, self.max_conns, self.peak_open
        );
        let mut first = true;
        for (i, c) in self.attacks.iter().enumerate() {
            if self.active[i] {
                let _ = write!(
                    j,
                    "{}\"{}\":{}",
                    if first { "" } else { "," },
                    ATTACKS[i],
                    c.json()
                );
                first = false;
            }
        }
        let _ = write!(
            j,
            "}},\"totals\":{},\"errors_by_kind\":{{",
            self.totals().json()
        );
        for (i, (k, v)) in self.errors_by_kind.iter().enumerate() {
            let _ = write!(j, "{}\"{k}\":{v}", if i > 0 { "," } else { "" });
        }
        j.push_str("},\"per_second\":{");
        type Field = fn(&Second) -> u64;
        let series: [(&str, Field); 6] = [
            ("connects", |s| s.connects),
            ("requests", |s| s.requests),
            ("answers", |s| s.answers),
            ("status_503", |s| s.status_503),
            ("failures", |s| s.failures),
            ("open", |s| s.open),
        ];
        for (i, (name, f)) in series.iter().enumerate() {
            let values: Vec<String> = self.per_second.iter().map(|s| f(s).to_string()).collect();
            let _ = write!(
                j,
                "{}\"{name}\":[{}]",
                if i > 0 { "," } else { "" },
                values.join(",")
            );
        }
        j.push_str("}}");
        j
    }
}
pub(super) fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(1) => "EPERM".into(),
        Some(11) => "EAGAIN".into(),
        Some(23) => "ENFILE".into(),
        Some(24) => "EMFILE".into(),
        Some(32) => "EPIPE".into(),
        Some(98) => "EADDRINUSE".into(),
        Some(99) => "EADDRNOTAVAIL".into(),
        Some(101) => "ENETUNREACH".into(),
        Some(103) => "ECONNABORTED".into(),
        Some(104) => "ECONNRESET".into(),
        Some(105) => "ENOBUFS".into(),
        Some(110) => "ETIMEDOUT".into(),
        Some(111) => "ECONNREFUSED".into(),
        Some(113) => "EHOSTUNREACH".into(),
        Some(n) => format!("errno{n}"),
        None => format!("{:?}", e.kind()),
    }
}

pub(super) fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}
