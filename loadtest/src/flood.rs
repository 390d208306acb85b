//! `comet-flood`: hostile traffic against a gateway's public listener, from one host, as
//! anonymous clients, counted by outcome. One thread, one mio loop, non-blocking sockets.
//!
//! Four attacks, each a pool of connections kept at its target size:
//!
//! - `park`: channel-table exhaustion with parked polls. Each connection sends one
//!   `GET /poll` naming `--channels-per-poll` brand-new random channels and no `seq` (so
//!   it parks), is held `--park-hold`, then closed; a fresh connection replaces it.
//! - `reset`: channel-table exhaustion with polls answered at once. A few keep-alive
//!   connections pipeline `GET /poll` naming `--channels-per-poll` new channels with
//!   `seq=1,…` (before every new channel's first seq, so the gateway answers with `reset`
//!   events), `--pipeline` requests in flight each, reading every answer.
//! - `session`: a session flood. Like `reset` with one new channel per poll: every answer
//!   leaves a server-side session (`X-Comet-Client`) that is never resumed.
//! - `hog`: never-reading pipeliners. Each connection writes `--hog-requests` pipelined
//!   `GET --hog-target` requests (default `/comet.js`, a large answer) with a small
//!   receive buffer, never reads a byte, and stays open until the end.
//!
//! Every pool is bounded by its target size and the `--max-conns` budget, new connections
//! by `--connect-rate`, and the whole run by `--duration`. Nothing aborts the run: connect
//! errors, time-outs, resets, closes and each answer status are counted, per attack, and
//! printed as one JSON object at the end.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use clap::Parser;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use socket2::{Domain, Socket, Type};

use crate::config::{parse_sources, Sources};

/// Most connections the tool will ever hold at once (its descriptor limit is 20,000).
pub const HARD_MAX_CONNS: usize = 19_000;

fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration"))?;
    match unit {
        "" | "s" => Ok(Duration::from_secs(n)),
        "ms" => Ok(Duration::from_millis(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("unknown unit in `{text}` (use ms, s or m)")),
    }
}

fn parse_source_flag(text: &str) -> Result<Sources, String> {
    if text == "os" {
        return Ok(Sources(Vec::new()));
    }
    parse_sources(text).map(Sources)
}

/// Which attacks run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Channel-table exhaustion: parked polls on closed connections (`park`) and polls
    /// answered at once with `reset` (`reset`), each naming new random channels.
    Channels,
    /// Session flood: pipelined polls answered at once, one new channel each (`session`).
    Sessions,
    /// Never-reading pipeliners (`hog`).
    Hog,
    /// All of the above at once.
    Mix,
}

/// comet-flood: hostile traffic against a Comet Gateway's public listener, counted by
/// outcome.
///
/// Attacks (all anonymous, on the public listener):
///
///   park     connections that each send one parked GET /poll naming --channels-per-poll
///            brand-new random channels (no seq), held --park-hold, then closed and
///            replaced (channel-table exhaustion);
///
///   reset    --reset-conns keep-alive connections pipelining GET /poll with
///            --channels-per-poll new channels and seq=1,... (answered at once with
///            `reset` events), --pipeline in flight each (channel-table exhaustion);
///
///   session  --session-conns keep-alive connections pipelining GET /poll with one new
///            channel and seq=1; every answer leaves a session that is never resumed;
///
///   hog      --hog-conns connections that each write --hog-requests pipelined
///            GET --hog-target (default /comet.js) with a tiny receive buffer, never read
///            a byte, and stay open.
///
/// --mode channels = park + reset, sessions = session, hog = hog, mix = all four.
///
/// Bounded: the run lasts --duration; at most --max-conns connections are open at once
/// (never more than 19,000), new ones are opened at most --connect-rate per second.
/// Nothing aborts the run: every outcome is counted per attack (connects, connect errors
/// and time-outs, requests, answers by HTTP status, `reset` events, sessions, closes by
/// the server, resets, stalls) and one JSON object is printed on stdout at the end.
/// Targets must be on loopback unless --allow-remote.
///
/// Example (loadtest/flood.sh runs it next to a measured legitimate load):
///
///   comet-flood --target 127.0.0.1:8100 --mode mix --duration 60s --json flood.json
#[derive(Parser, Debug, Clone)]
#[command(
    name = "comet-flood",
    version,
    about,
    long_about,
    verbatim_doc_comment,
    args_override_self = true
)]
pub struct FloodConfig {
    /// The gateway's public listener.
    #[arg(long, default_value = "127.0.0.1:8100")]
    pub target: SocketAddr,

    /// Which attacks run.
    #[arg(long, value_enum, default_value_t = Mode::Mix)]
    pub mode: Mode,

    /// How long the flood lasts (ms, s or m).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Most connections open at once, over all attacks (at most 19,000).
    #[arg(long, default_value_t = 15_000)]
    pub max_conns: usize,

    /// Most new connections per second, over all attacks.
    #[arg(long, default_value_t = 10_000)]
    pub connect_rate: u64,

    /// A connect not completed within this is counted as a time-out and dropped.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,

    /// Source addresses, round robin, e.g. 127.0.0.2-127.0.0.41, so that ephemeral ports
    /// never run short; `os` lets the OS pick.
    #[arg(long, default_value = "127.0.0.2-127.0.0.41", value_parser = parse_source_flag)]
    pub source: Sources,

    /// park: connections kept parked at once.
    #[arg(long, default_value_t = 2000)]
    pub park_conns: usize,

    /// park: how long each parked poll is held before its connection is closed.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub park_hold: Duration,

    /// park: close with a reset (SO_LINGER 0) instead of a FIN.
    #[arg(long)]
    pub park_rst: bool,

    /// reset: keep-alive connections pipelining polls answered with `reset`.
    #[arg(long, default_value_t = 2)]
    pub reset_conns: usize,

    /// session: keep-alive connections pipelining one-channel polls answered at once.
    #[arg(long, default_value_t = 2)]
    pub session_conns: usize,

    /// reset, session: requests in flight per connection.
    #[arg(long, default_value_t = 64)]
    pub pipeline: usize,

    /// park, reset: new channels named by each poll (the gateway's default limit is 16).
    #[arg(long, default_value_t = 16)]
    pub channels_per_poll: usize,

    /// Length of each random channel name (1-128).
    #[arg(long, default_value_t = 128)]
    pub name_len: usize,

    /// hog: connections that write a burst and never read.
    #[arg(long, default_value_t = 5000)]
    pub hog_conns: usize,

    /// hog: pipelined requests in each connection's burst.
    #[arg(long, default_value_t = 2000)]
    pub hog_requests: usize,

    /// hog: the request target of the burst, e.g. /comet.js or /poll?channel=NAME&seq=0
    /// (a channel with buffered messages).
    #[arg(long, default_value = "/comet.js")]
    pub hog_target: String,

    /// hog: receive buffer of each connection, bytes (0: the OS default), so that the
    /// gateway's answers pile up on its side.
    #[arg(long, default_value_t = 4096)]
    pub hog_rcvbuf: usize,

    /// reset, session: a connection with answers due and no byte received for this long
    /// is counted as stalled, closed and replaced.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub stall_timeout: Duration,

    /// Also write the JSON summary to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,

    /// No progress line each second (on stderr).
    #[arg(long)]
    pub quiet: bool,

    /// Allow targets outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    pub allow_remote: bool,
}

impl FloodConfig {
    /// Refuses remote targets unless allowed, and impossible or unbounded shapes.
    pub fn check(&self) -> Result<(), String> {
        if !self.allow_remote {
            if !self.target.ip().is_loopback() {
                return Err(format!(
                    "{} is not on loopback (pass --allow-remote to allow it)",
                    self.target
                ));
            }
            if let Some(a) = self.source.0.iter().find(|a| !a.is_loopback()) {
                return Err(format!("source {a} is not on loopback"));
            }
        }
        if self.max_conns == 0 || self.max_conns > HARD_MAX_CONNS {
            return Err(format!("--max-conns must be 1..={HARD_MAX_CONNS}"));
        }
        if self.duration.is_zero() || self.duration > Duration::from_secs(3600) {
            return Err("--duration must be more than 0 and at most 1 hour".into());
        }
        if self.connect_rate == 0 || self.connect_timeout.is_zero() {
            return Err("--connect-rate and --connect-timeout must be more than 0".into());
        }
        if self.park_hold.is_zero() || self.stall_timeout.is_zero() {
            return Err("--park-hold and --stall-timeout must be more than 0".into());
        }
        if self.pipeline == 0 || self.pipeline > 100_000 {
            return Err("--pipeline must be 1..=100000".into());
        }
        if self.channels_per_poll == 0 || self.channels_per_poll > 1024 {
            return Err("--channels-per-poll must be 1..=1024".into());
        }
        if self.name_len == 0 || self.name_len > 128 {
            return Err("--name-len must be 1..=128".into());
        }
        if !self.hog_target.starts_with('/')
            || self.hog_target.len() > 8192
            || self.hog_target.bytes().any(|b| b <= b' ' || b == 0x7f)
        {
            return Err("--hog-target must be a path starting with / with no spaces".into());
        }
        if self.hog_requests == 0 || self.hog_requests > 1_000_000 {
            return Err("--hog-requests must be 1..=1000000".into());
        }
        Ok(())
    }

    /// Connections each attack keeps open, in [`ATTACKS`] order.
    pub fn targets(&self) -> [usize; 4] {
        let (park, reset, session, hog) = match self.mode {
            Mode::Channels => (true, true, false, false),
            Mode::Sessions => (false, false, true, false),
            Mode::Hog => (false, false, false, true),
            Mode::Mix => (true, true, true, true),
        };
        [
            if park { self.park_conns } else { 0 },
            if reset { self.reset_conns } else { 0 },
            if session { self.session_conns } else { 0 },
            if hog { self.hog_conns } else { 0 },
        ]
    }
}

/// Names of the attacks, in the order of [`FloodConfig::targets`] and [`Summary::attacks`].
pub const ATTACKS: [&str; 4] = ["park", "reset", "session", "hog"];
const PARK: usize = 0;
const RESET: usize = 1;
const SESSION: usize = 2;
const HOG: usize = 3;
/// hog: bytes written per turn of one connection.
const HOG_CHUNK: usize = 16 * 1024;
/// hog: chunks written per turn of the loop, over all connections.
const HOG_CHUNKS_PER_TURN: usize = 128;

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
    fn add(&mut self, o: &Counters) {
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

/// One parsed response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// Bytes it takes, head and body.
    pub len: usize,
    /// HTTP status.
    pub status: u16,
    /// Where its body starts.
    pub body_start: usize,
    /// It carries `X-Comet-Client`.
    pub session: bool,
    /// `Connection: close`.
    pub close: bool,
}

/// Parses the first response of `buf`: `Ok(None)` if incomplete (a close-delimited body
/// is complete only at `eof`), `Err` (in words) if it makes no sense.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    let head = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("bad response head"),
    };
    let status = r.code.unwrap_or(0);
    let (mut clen, mut chunked, mut close, mut session) = (None, false, false, false);
    for h in r.headers.iter() {
        let v = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            clen = Some(v.parse::<usize>().map_err(|_| "bad Content-Length")?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = v.eq_ignore_ascii_case("close");
        } else if h.name.eq_ignore_ascii_case("x-comet-client") {
            session = true;
        }
    }
    let done = |len| {
        Ok(Some(Response {
            len,
            status,
            body_start: head,
            session,
            close,
        }))
    };
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return done(head);
    }
    if chunked {
        let mut at = head;
        loop {
            let Some(nl) = find_crlf(&buf[at..]) else {
                return Ok(None);
            };
            let line = std::str::from_utf8(&buf[at..at + nl]).map_err(|_| "bad chunk size")?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| "bad chunk size")?;
            at += nl + 2;
            if size == 0 {
                // Trailers (none expected) end with an empty line.
                loop {
                    let Some(nl) = find_crlf(&buf[at..]) else {
                        return Ok(None);
                    };
                    at += nl + 2;
                    if nl == 0 {
                        return done(at);
                    }
                }
            }
            if buf.len() < at + size + 2 {
                return Ok(None);
            }
            at += size + 2;
        }
    }
    match clen {
        Some(n) if buf.len() >= head + n => done(head + n),
        Some(_) => Ok(None),
        None if eof => done(buf.len()),
        None => Ok(None),
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// How many `reset` events a body holds.
pub fn count_resets(body: &[u8]) -> u64 {
    const PAT: &[u8] = b"{\"type\":\"reset\"";
    let mut n = 0;
    let mut i = 0;
    while let Some(p) = body[i..].iter().position(|&b| b == b'{') {
        i += p;
        if body[i..].starts_with(PAT) {
            n += 1;
        }
        i += 1;
    }
    n
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// A small xorshift generator for channel names.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and the process id (never 0).
    pub fn new() -> Rng {
        let t = crate::run::now_us() ^ ((std::process::id() as u64) << 32);
        Rng(t | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Appends a random channel name of `len` bytes of `[A-Za-z0-9_-]`.
    pub fn name(&mut self, out: &mut Vec<u8>, len: usize) {
        let mut left = len;
        while left > 0 {
            let mut r = self.next();
            for _ in 0..left.min(10) {
                out.push(ALPHABET[(r & 63) as usize]);
                r >>= 6;
            }
            left -= left.min(10);
        }
    }
}

impl Default for Rng {
    fn default() -> Rng {
        Rng::new()
    }
}

/// Appends one `GET /poll` naming `channels` new channels, with `seq=1,…` if `seq`.
pub fn poll_request(out: &mut Vec<u8>, rng: &mut Rng, channels: usize, name_len: usize, seq: bool) {
    out.extend_from_slice(b"GET /poll?channel=");
    for i in 0..channels {
        if i > 0 {
            out.push(b',');
        }
        rng.name(out, name_len);
    }
    if seq {
        out.extend_from_slice(b"&seq=1");
        for _ in 1..channels {
            out.extend_from_slice(b",1");
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\nHost: flood\r\n\r\n");
}

fn errno_name(e: &io::Error) -> String {
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

fn is_reset(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
    )
}

struct Conn {
    kind: usize,
    sock: TcpStream,
    connecting: bool,
    /// Request bytes not yet written (park, reset, session).
    out: Vec<u8>,
    out_pos: usize,
    inbuf: Vec<u8>,
    /// Requests written or queued and not answered yet.
    in_flight: u64,
    /// hog: bytes of the burst written.
    written: usize,
    blocked_once: bool,
    /// hog: waiting in the queue of bursts to continue.
    queued: bool,
    last_progress: Instant,
}

/// How a connection ends, for the counters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    /// Nothing to count (already counted).
    Quiet,
    /// The server sent a FIN.
    ServerClosed,
}

struct Flood<'a> {
    cfg: &'a FloodConfig,
    poll: Poll,
    slots: Vec<Option<Conn>>,
    gens: Vec<u32>,
    free: Vec<usize>,
    open: [usize; 4],
    total_open: usize,
    peak_open: usize,
    targets: [usize; 4],
    c: [Counters; 4],
    errors: BTreeMap<String, u64>,
    rng: Rng,
    src_next: usize,
    tokens: f64,
    last_refill: Instant,
    /// (deadline, slot, generation): parked polls to close.
    park_q: VecDeque<(Instant, usize, u32)>,
    /// (deadline, slot, generation): connects to give up.
    connect_q: VecDeque<(Instant, usize, u32)>,
    hog_burst: Vec<u8>,
    hog_req_len: usize,
    /// (slot, generation): hogs with more of their burst to write and room to write it.
    hog_q: VecDeque<(usize, u32)>,
    scratch: Vec<u8>,
}

impl<'a> Flood<'a> {
    fn count_error(&mut self, e: &io::Error) {
        *self.errors.entry(errno_name(e)).or_default() += 1;
    }

    fn fill(&mut self, now: Instant) {
        let rate = self.cfg.connect_rate as f64;
        let dt = now.duration_since(self.last_refill).as_secs_f64();
        self.last_refill = now;
        self.tokens = (self.tokens + dt * rate).min((rate / 20.0).max(1.0));
        loop {
            let mut opened = false;
            for k in 0..4 {
                if self.tokens < 1.0 || self.total_open >= self.cfg.max_conns {
                    return;
                }
                if self.open[k] < self.targets[k] {
                    self.tokens -= 1.0;
                    self.open_conn(k, now);
                    opened = true;
                }
            }
            if !opened {
                return;
            }
        }
    }

    fn open_conn(&mut self, kind: usize, now: Instant) {
        self.c[kind].connects += 1;
        let sock = match self.new_socket(kind) {
            Ok(s) => s,
            Err(e) => {
                self.c[kind].connect_errors += 1;
                self.count_error(&e);
                return;
            }
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.gens.push(0);
                self.slots.len() - 1
            }
        };
        let mut sock = sock;
        if let Err(e) = self.poll.registry().register(
            &mut sock,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            self.c[kind].connect_errors += 1;
            self.count_error(&e);
            self.free.push(slot);
            return;
        }
        self.slots[slot] = Some(Conn {
            kind,
            sock,
            connecting: true,
            out: Vec::new(),
            out_pos: 0,
            inbuf: Vec::new(),
            in_flight: 0,
            written: 0,
            blocked_once: false,
            queued: false,
            last_progress: now,
        });
        self.open[kind] += 1;
        self.total_open += 1;
        self.peak_open = self.peak_open.max(self.total_open);
        self.connect_q
            .push_back((now + self.cfg.connect_timeout, slot, self.gens[slot]));
    }

    fn new_socket(&mut self, kind: usize) -> io::Result<TcpStream> {
        let target = self.cfg.target;
        let s = Socket::new(Domain::for_address(target), Type::STREAM, None)?;
        let sources = &self.cfg.source.0;
        if !sources.is_empty() {
            let ip: IpAddr = sources[self.src_next % sources.len()];
            self.src_next = self.src_next.wrapping_add(1);
            s.bind(&SocketAddr::new(ip, 0).into())?;
        }
        s.set_nonblocking(true)?;
        s.set_tcp_nodelay(true)?;
        if kind == HOG && self.cfg.hog_rcvbuf > 0 {
            s.set_recv_buffer_size(self.cfg.hog_rcvbuf)?;
        }
        if kind == PARK && self.cfg.park_rst {
            s.set_linger(Some(Duration::ZERO))?;
        }
        match s.connect(&target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(115) || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        Ok(TcpStream::from_std(s.into()))
    }

    /// Closes a connection; it is replaced by the next `fill`.
    fn close(&mut self, slot: usize, end: End) {
        let Some(mut conn) = self.slots[slot].take() else {
            return;
        };
        let k = conn.kind;
        let _ = self.poll.registry().deregister(&mut conn.sock);
        if end == End::ServerClosed {
            self.c[k].closed_by_server += 1;
        }
        self.settle(&conn);
        self.open[k] -= 1;
        self.total_open -= 1;
        self.gens[slot] = self.gens[slot].wrapping_add(1);
        self.free.push(slot);
    }

    /// Counts what a connection leaves behind when it ends (or the run does).
    fn settle(&mut self, conn: &Conn) {
        let k = conn.kind;
        if k != HOG && !conn.connecting {
            self.c[k].unanswered += conn.in_flight;
        }
    }

    fn io_failure(&mut self, slot: usize, e: &io::Error) {
        let Some(k) = self.slots[slot].as_ref().map(|c| c.kind) else {
            return;
        };
        if is_reset(e) {
            self.c[k].resets += 1;
        } else {
            self.c[k].io_errors += 1;
        }
        self.count_error(e);
        self.close(slot, End::Quiet);
    }

    fn handle(&mut self, slot: usize, ev: &mio::event::Event, now: Instant) {
        let Some(conn) = self.slots.get_mut(slot).and_then(|c| c.as_mut()) else {
            return;
        };
        let k = conn.kind;
        if conn.connecting {
            let err = match conn.sock.take_error() {
                Ok(Some(e)) | Err(e) => Some(e),
                Ok(None) => None,
            };
            let err = err.or_else(|| {
                conn.sock
                    .peer_addr()
                    .err()
                    .filter(|_| ev.is_error() || ev.is_read_closed() || ev.is_write_closed())
            });
            if let Some(e) = err {
                self.c[k].connect_errors += 1;
                self.count_error(&e);
                self.close(slot, End::Quiet);
                return;
            }
            if conn.sock.peer_addr().is_err() {
                return; // Not yet.
            }
            conn.connecting = false;
            conn.last_progress = now;
            self.c[k].connected += 1;
            match k {
                PARK => {
                    poll_request(
                        &mut conn.out,
                        &mut self.rng,
                        self.cfg.channels_per_poll,
                        self.cfg.name_len,
                        false,
                    );
                    conn.in_flight = 1;
                    self.c[k].requests += 1;
                    self.park_q
                        .push_back((now + self.cfg.park_hold, slot, self.gens[slot]));
                }
                RESET | SESSION => self.top_up(slot),
                _ => {}
            }
            self.write(slot);
            return self.after_write(slot, ev, now);
        }
        if ev.is_writable() {
            self.write(slot);
        }
        self.after_write(slot, ev, now);
    }

    fn after_write(&mut self, slot: usize, ev: &mio::event::Event, now: Instant) {
        let Some(conn) = self.slots[slot].as_ref() else {
            return;
        };
        if conn.kind == HOG {
            // Never read: only notice the server ending the connection.
            if ev.is_error() {
                let e = conn
                    .sock
                    .take_error()
                    .ok()
                    .flatten()
                    .unwrap_or_else(|| io::Error::from(io::ErrorKind::ConnectionReset));
                self.io_failure(slot, &e);
            } else if ev.is_read_closed() {
                self.close(slot, End::ServerClosed);
            }
            return;
        }
        if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
            self.read(slot, now);
        }
    }

    /// reset, session: queues requests until `--pipeline` are in flight.
    fn top_up(&mut self, slot: usize) {
        let Some(conn) = self.slots[slot].as_mut() else {
            return;
        };
        let k = conn.kind;
        let channels = if k == RESET {
            self.cfg.channels_per_poll
        } else {
            1
        };
        if conn.out_pos == conn.out.len() {
            conn.out.clear();
            conn.out_pos = 0;
        }
        while conn.in_flight < self.cfg.pipeline as u64 {
            poll_request(
                &mut conn.out,
                &mut self.rng,
                channels,
                self.cfg.name_len,
                true,
            );
            conn.in_flight += 1;
            self.c[k].requests += 1;
        }
    }

    fn write(&mut self, slot: usize) {
        let Some(conn) = self.slots[slot].as_mut() else {
            return;
        };
        if conn.connecting {
            return;
        }
        let k = conn.kind;
        loop {
            let pending: &[u8] = if k == HOG {
                // One chunk per turn, so that no burst holds up the loop (on loopback the
                // receiving side's work is done in the sender's system call).
                if conn.queued {
                    return;
                }
                let end = self.hog_burst.len().min(conn.written + HOG_CHUNK);
                &self.hog_burst[conn.written..end]
            } else {
                &conn.out[conn.out_pos..]
            };
            if pending.is_empty() {
                return;
            }
            match conn.sock.write(pending) {
                Ok(0) => return,
                Ok(n) => {
                    self.c[k].bytes_sent += n as u64;
                    if k == HOG {
                        let before = conn.written / self.hog_req_len;
                        conn.written += n;
                        self.c[k].requests += (conn.written / self.hog_req_len - before) as u64;
                        if conn.written == self.hog_burst.len() {
                            self.c[k].bursts_completed += 1;
                        } else {
                            conn.queued = true;
                            self.hog_q.push_back((slot, self.gens[slot]));
                        }
                        return;
                    } else {
                        conn.out_pos += n;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if !conn.blocked_once {
                        conn.blocked_once = true;
                        self.c[k].write_blocked += 1;
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.io_failure(slot, &e),
            }
        }
    }

    fn read(&mut self, slot: usize, now: Instant) {
        let Some(conn) = self.slots[slot].as_mut() else {
            return;
        };
        let k = conn.kind;
        let mut eof = false;
        let mut failure = None;
        loop {
            match conn.sock.read(&mut self.scratch) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    conn.inbuf.extend_from_slice(&self.scratch[..n]);
                    self.c[k].bytes_received += n as u64;
                    conn.last_progress = now;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let mut at = 0;
        let mut answered = 0u64;
        let mut close_after = false;
        let mut broken = false;
        while at < conn.inbuf.len() {
            match parse_response(&conn.inbuf[at..], eof || failure.is_some()) {
                Ok(Some(r)) => {
                    let c = &mut self.c[k];
                    c.answers += 1;
                    *c.status.entry(r.status).or_default() += 1;
                    c.reset_events += count_resets(&conn.inbuf[at + r.body_start..at + r.len]);
                    if r.session {
                        c.sessions += 1;
                    }
                    answered += 1;
                    at += r.len;
                    if r.close {
                        close_after = true;
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => {
                    broken = true;
                    break;
                }
            }
        }
        conn.inbuf.drain(..at);
        conn.in_flight = conn.in_flight.saturating_sub(answered);
        if broken || conn.inbuf.len() > 64 << 20 {
            self.c[k].protocol_errors += 1;
            return self.close(slot, End::Quiet);
        }
        if let Some(e) = failure {
            return self.io_failure(slot, &e);
        }
        if eof {
            return self.close(slot, End::ServerClosed);
        }
        if close_after {
            // The server said it closes: count it as a close by the server.
            return self.close(slot, End::ServerClosed);
        }
        if k == PARK {
            if answered > 0 {
                // Answered before the hold ended (noop, 503, 400…): replace it.
                self.close(slot, End::Quiet);
            }
            return;
        }
        if answered > 0 {
            self.top_up(slot);
            self.write(slot);
        }
    }

    /// Continues queued hog bursts, one chunk each, up to `budget` chunks.
    fn pump_hogs(&mut self, budget: usize) {
        for _ in 0..budget {
            let Some((slot, gen)) = self.hog_q.pop_front() else {
                return;
            };
            if self.gens[slot] != gen {
                continue;
            }
            if let Some(c) = self.slots[slot].as_mut() {
                c.queued = false;
                self.write(slot);
            }
        }
    }

    fn timers(&mut self, now: Instant) {
        while let Some(&(at, slot, gen)) = self.connect_q.front() {
            if at > now {
                break;
            }
            self.connect_q.pop_front();
            let live =
                self.gens[slot] == gen && self.slots[slot].as_ref().is_some_and(|c| c.connecting);
            if live {
                let k = self.slots[slot].as_ref().map_or(0, |c| c.kind);
                self.c[k].connect_timeouts += 1;
                self.close(slot, End::Quiet);
            }
        }
        while let Some(&(at, slot, gen)) = self.park_q.front() {
            if at > now {
                break;
            }
            self.park_q.pop_front();
            if self.gens[slot] == gen && self.slots[slot].is_some() {
                self.c[PARK].held_and_closed += 1;
                if let Some(c) = self.slots[slot].as_mut() {
                    // The poll is not unanswered: it was left on purpose.
                    c.in_flight = 0;
                }
                self.close(slot, End::Quiet);
            }
        }
    }

    fn stalls(&mut self, now: Instant) {
        for slot in 0..self.slots.len() {
            let stalled = self.slots[slot].as_ref().is_some_and(|c| {
                (c.kind == RESET || c.kind == SESSION)
                    && !c.connecting
                    && c.in_flight > 0
                    && now.duration_since(c.last_progress) >= self.cfg.stall_timeout
            });
            if stalled {
                let k = self.slots[slot].as_ref().map_or(0, |c| c.kind);
                self.c[k].stalled += 1;
                self.close(slot, End::Quiet);
            }
        }
    }

    fn snapshot(&self) -> Counters {
        let mut t = Counters::default();
        for c in &self.c {
            t.add(c);
        }
        t
    }
}

/// Runs the flood and returns its summary.
pub fn run(cfg: &FloodConfig) -> io::Result<Summary> {
    cfg.check().map_err(io::Error::other)?;
    let targets = cfg.targets();
    let wanted: usize = targets.iter().sum();
    if wanted > cfg.max_conns && !cfg.quiet {
        eprintln!(
            "comet-flood: the attacks want {wanted} connections; --max-conns {} caps them",
            cfg.max_conns
        );
    }
    let req = format!("GET {} HTTP/1.1\r\nHost: flood\r\n\r\n", cfg.hog_target);
    let hog_burst = req.as_bytes().repeat(cfg.hog_requests);
    let now = Instant::now();
    let mut f = Flood {
        cfg,
        poll: Poll::new()?,
        slots: Vec::new(),
        gens: Vec::new(),
        free: Vec::new(),
        open: [0; 4],
        total_open: 0,
        peak_open: 0,
        targets,
        c: Default::default(),
        errors: BTreeMap::new(),
        rng: Rng::new(),
        src_next: 0,
        tokens: 1.0,
        last_refill: now,
        park_q: VecDeque::new(),
        connect_q: VecDeque::new(),
        hog_burst,
        hog_req_len: req.len(),
        hog_q: VecDeque::new(),
        scratch: vec![0u8; 256 * 1024],
    };
    for (k, t) in targets.iter().enumerate() {
        f.c[k].target_conns = *t as u64;
    }
    let mut events = Events::with_capacity(4096);
    let t0 = Instant::now();
    let end = t0 + cfg.duration;
    let mut next_tick = t0 + Duration::from_secs(1);
    let mut last = f.snapshot();
    let mut per_second = Vec::new();
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        f.fill(now);
        let wait = end
            .saturating_duration_since(now)
            .min(Duration::from_millis(5));
        if let Err(e) = f.poll.poll(&mut events, Some(wait)) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        let now = Instant::now();
        for ev in events.iter() {
            f.handle(ev.token().0, ev, now);
        }
        f.pump_hogs(HOG_CHUNKS_PER_TURN);
        f.timers(now);
        if now >= next_tick {
            next_tick += Duration::from_secs(1);
            f.stalls(now);
            let cur = f.snapshot();
            let s = Second {
                connects: cur.connects - last.connects,
                requests: cur.requests - last.requests,
                answers: cur.answers - last.answers,
                status_503: cur.with_status(503) - last.with_status(503),
                failures: cur.failures() - last.failures(),
                open: f.total_open as u64,
            };
            per_second.push(s);
            if !cfg.quiet {
                eprintln!(
                    "[{:>4.0}s] open park {} reset {} session {} hog {} | +conn {} +req {} +ans {} +503 {} +fail {} | hog bursts done {}",
                    t0.elapsed().as_secs_f64(),
                    f.open[PARK],
                    f.open[RESET],
                    f.open[SESSION],
                    f.open[HOG],
                    s.connects,
                    s.requests,
                    s.answers,
                    s.status_503,
                    s.failures,
                    cur.bursts_completed
                );
            }
            last = cur;
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    // The end: count what is still open, then close everything.
    for slot in 0..f.slots.len() {
        if let Some(conn) = f.slots[slot].take() {
            f.c[conn.kind].open_at_end += 1;
            if conn.kind == PARK {
                // A parked poll left open at the end is not an unanswered request.
                let mut conn = conn;
                conn.in_flight = 0;
                f.settle(&conn);
            } else {
                f.settle(&conn);
            }
        }
    }
    let active = targets.map(|t| t > 0);
    Ok(Summary {
        mode: format!("{:?}", cfg.mode).to_lowercase(),
        target: cfg.target.to_string(),
        secs,
        sources: cfg.source.0.len(),
        max_conns: cfg.max_conns,
        peak_open: f.peak_open,
        attacks: f.c,
        active,
        errors_by_kind: f.errors,
        per_second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Comet-Client: ab\r\n\r\n[]HTTP/1.1 503 Service Unavailable\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{x}";
        let r = parse_response(two, false).unwrap().unwrap();
        assert_eq!(
            (r.len, r.status, r.session, r.close),
            (60, 200, true, false)
        );
        let r2 = parse_response(&two[r.len..], false).unwrap().unwrap();
        assert_eq!((r2.status, r2.close, r2.session), (503, true, false));
        assert_eq!(r.len + r2.len, two.len());
        assert_eq!(parse_response(&two[..40], false), Ok(None));
        assert_eq!(parse_response(&two[..r.len - 1], false), Ok(None));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nNEXT";
        let r = parse_response(chunked, false).unwrap().unwrap();
        assert_eq!(r.len, chunked.len() - 4);
        assert_eq!(
            parse_response(&chunked[..chunked.len() - 6], false),
            Ok(None)
        );
        let close = b"HTTP/1.0 200 OK\r\n\r\nbody";
        assert_eq!(parse_response(close, false), Ok(None));
        assert_eq!(
            parse_response(close, true).unwrap().unwrap().len,
            close.len()
        );
        assert!(parse_response(b"garbage\r\n\r\n", false).is_err());
    }

    #[test]
    fn resets_are_counted() {
        let body = br#"[{"type":"reset","channel":"a","seq":5},{"type":"data","channel":"b","seq":1,"data":"{\"type\":\"reset\""},{"type":"reset","channel":"c","seq":9}]"#;
        // The escaped one inside a payload does not start with `{"type"` unescaped.
        assert_eq!(count_resets(body), 2);
        assert_eq!(count_resets(b"[]"), 0);
    }

    #[test]
    fn requests_name_valid_new_channels() {
        let mut rng = Rng::new();
        let mut out = Vec::new();
        poll_request(&mut out, &mut rng, 16, 128, true);
        let text = String::from_utf8(out).unwrap();
        let target = text.split(' ').nth(1).unwrap();
        let query = target.strip_prefix("/poll?channel=").unwrap();
        let (names, seqs) = query.split_once("&seq=").unwrap();
        let names: Vec<&str> = names.split(',').collect();
        assert_eq!(names.len(), 16);
        for n in &names {
            assert_eq!(n.len(), 128);
            assert!(n.bytes().all(|b| ALPHABET.contains(&b)));
        }
        let uniq: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(uniq.len(), 16);
        assert_eq!(seqs, vec!["1"; 16].join(","));
        assert!(target.len() <= 4096);
        let mut out = Vec::new();
        poll_request(&mut out, &mut rng, 1, 7, false);
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("GET /poll?channel="));
    }

    #[test]
    fn checks_and_targets() {
        let c = FloodConfig::parse_from(["x"]);
        assert!(c.check().is_ok());
        assert_eq!(c.targets(), [2000, 2, 2, 5000]);
        assert_eq!(c.source.0.len(), 40);
        let c = FloodConfig::parse_from(["x", "--mode", "sessions", "--source", "os"]);
        assert_eq!(c.targets(), [0, 0, 2, 0]);
        assert!(c.source.0.is_empty());
        let mut c = FloodConfig::parse_from(["x", "--target", "10.0.0.1:80"]);
        assert!(c.check().unwrap_err().contains("loopback"));
        c.allow_remote = true;
        assert!(c.check().is_ok());
        let c = FloodConfig::parse_from(["x", "--max-conns", "30000"]);
        assert!(c.check().is_err());
        let c = FloodConfig::parse_from(["x", "--hog-target", "/a b"]);
        assert!(c.check().is_err());
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
    }
}
