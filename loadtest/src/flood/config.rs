//! The flags of `comet-flood` ([`FloodConfig`], [`Mode`]), their parsers and the checks
//! that refuse remote targets and unbounded shapes, and the attack table: [`ATTACKS`] and
//! the indices the pools and counters are kept in. Pure: no sockets, no clock.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::config::{parse_duration, parse_sources, Sources};

/// Most connections the tool will ever hold at once (its descriptor limit is 20,000).
pub const HARD_MAX_CONNS: usize = 19_000;

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
/// Names of the attacks, in the order of [`FloodConfig::targets`] and
/// [`Summary::attacks`](super::Summary::attacks).
pub const ATTACKS: [&str; 4] = ["park", "reset", "session", "hog"];
pub(super) const PARK: usize = 0;
pub(super) const RESET: usize = 1;
pub(super) const SESSION: usize = 2;
pub(super) const HOG: usize = 3;

#[cfg(test)]
mod tests {
    use super::*;

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
