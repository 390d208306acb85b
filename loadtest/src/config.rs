//! Command-line flags of `comet-loadtest` ([`Config`], [`Kind`], [`Sources`]), their
//! parsers (durations and source ranges, shared with `comet-flood`) and the checks that
//! refuse remote targets and impossible shapes. Pure: it opens no socket, reads no clock
//! and knows nothing of the run.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use clap::Parser;

use crate::framer::Transport;

/// Parses `250ms`, `10s`, `2m` (a bare number is seconds).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
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

/// Source addresses for subscriber connections.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sources(pub Vec<IpAddr>);

fn parse_source_flag(text: &str) -> Result<Sources, String> {
    parse_sources(text).map(Sources)
}

/// Parses `127.0.0.2-127.0.0.20` (or one address) into the addresses it spans.
pub fn parse_sources(text: &str) -> Result<Vec<IpAddr>, String> {
    let (a, b) = text.split_once('-').unwrap_or((text, text));
    let a: Ipv4Addr = a.trim().parse().map_err(|_| format!("bad address `{a}`"))?;
    let b: Ipv4Addr = b.trim().parse().map_err(|_| format!("bad address `{b}`"))?;
    let (lo, hi) = (u32::from(a), u32::from(b));
    if hi < lo || hi - lo > 65_535 {
        return Err(format!("bad source range `{text}`"));
    }
    Ok((lo..=hi).map(|n| IpAddr::V4(Ipv4Addr::from(n))).collect())
}

/// The kind of server under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Comet Gateway: `/poll`, `/stream`, `/iframe`, `/events`, `/ws`, `POST /pub?channel=`.
    Gateway,
    /// nginx with Nchan: `GET /sub/CHANNEL` (long-poll, EventSource or WebSocket),
    /// `POST /pub/CHANNEL`; deliveries are counted by the sequence number stamped in each
    /// payload.
    Nchan,
}

/// comet-loadtest: subscribers on any Comet Gateway transport, a publisher, and an exact
/// account of every delivery (lost, duplicated, out of order) with latency percentiles.
///
/// The run is bounded: ramp (at most --ramp-limit), then --duration of publishing, then
/// at most --drain for the last deliveries. Targets must be on loopback unless
/// --allow-remote.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "comet-loadtest",
    version,
    about,
    long_about,
    args_override_self = true
)]
pub struct Config {
    /// The gateway's public listener (subscribers connect here).
    #[arg(long, default_value = "127.0.0.1:8100")]
    pub target: SocketAddr,

    /// The gateway's admin listener (the publisher posts here).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub admin: SocketAddr,

    /// Bearer token for the gateway's admin listener (its --admin-token).
    #[arg(long, env = "COMET_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// The server under test.
    #[arg(long, value_enum, default_value_t = Kind::Gateway)]
    pub target_kind: Kind,

    /// Number of subscriber connections.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,

    /// Transport of every subscriber.
    #[arg(long, value_enum, default_value_t = Transport::Stream)]
    pub transport: Transport,

    /// Number of channels messages are published to (round robin).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,

    /// Channels each subscriber subscribes to (consecutive ones, starting at its index).
    #[arg(long, default_value_t = 1)]
    pub channels_per_subscriber: usize,

    /// New connections per second while ramping up.
    #[arg(long, default_value_t = 5000)]
    pub ramp: u64,

    /// The longest ramp: publishing starts then even if some subscribers are not ready
    /// (they count as missing). Raise it with the count (1,000,000 at --ramp 10000 is 100 s).
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub ramp_limit: Duration,

    /// Source addresses for subscriber connections, e.g. 127.0.0.2-127.0.0.20, so that
    /// ephemeral ports never run short. Default: the OS picks.
    #[arg(long, value_parser = parse_source_flag)]
    pub source: Option<Sources>,

    /// Messages published per second, over all channels (0: only --burst). Each one is
    /// stamped with the time it was due at this rate, not the time it was sent, so a
    /// publisher that falls behind shows its delay in the latency (no coordinated omission).
    #[arg(long, default_value_t = 100)]
    pub rate: u64,

    /// How long every subscriber is held connected and idle once all are ready, before
    /// publishing starts (to measure what idle connections cost).
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub hold: Duration,

    /// Messages published at once at the start of publishing, before the steady rate.
    #[arg(long, default_value_t = 0)]
    pub burst: u64,

    /// Messages per publish request: above 1, the publisher posts up to this many at once
    /// in one ndjson batch (`POST /pub`, `Content-Type: application/x-ndjson`), each with
    /// its own stamp and number, and accounts each by the seq the answer gives it. The
    /// burst goes in batches of this size; at a steady rate a request carries the messages
    /// already due when it goes out (never one held back to fill it). Gateway only: Nchan
    /// has no batch publish.
    #[arg(long, default_value_t = 1)]
    pub batch: u64,

    /// Publish requests in flight at once on the publishing connection (pipelined, their
    /// answers read in order). 1 (the default): each request waits for its answer. Above
    /// 1, the steady rate is open-loop: a request goes out when its first message is due
    /// even while earlier answers are outstanding, so a server slow to answer does not
    /// slow the rate down (the other half of coordinated omission: the stamps are the due
    /// times either way); a burst goes out with up to this many requests unanswered.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub in_flight: u64,

    /// Longest wait for a publish's answer; past it the publish counts as failed. Under a
    /// fan-out to a million subscribers on a saturated box the gateway answers a publish
    /// only after its own worker has taken the message in, which can take longer than 10 s.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub publish_timeout: Duration,

    /// Payload size in bytes (the publish time stamp is part of it).
    #[arg(long, default_value_t = 64)]
    pub size: usize,

    /// How long to publish.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// Longest wait for the last deliveries after publishing stops.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain: Duration,

    /// Percent of subscribers that drop their connection each second and resume from
    /// their cursor.
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,

    /// Read the gateway's `GET /stats` on the admin listener just before the first
    /// publish and write the answer to this file, so that a script can take the difference
    /// to another reading after the run (what publishing and its deliveries cost, the ramp
    /// left out). If it cannot be read (Nchan has no /stats), no file is written.
    #[arg(long)]
    pub stats_before: Option<std::path::PathBuf>,

    /// Write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,

    /// The gateway's pid, to report its resident memory.
    #[arg(long)]
    pub server_pid: Option<u32>,

    /// Allow targets outside 127.0.0.0/8 and ::1.
    #[arg(long)]
    pub allow_remote: bool,

    /// Measure the floor instead of a gateway: this process reads while a writer process
    /// writes --burst messages of --size bytes to --subscribers sockets, one write each.
    #[arg(long)]
    pub floor: bool,

    /// Pin the floor's writer process to these CPUs (`taskset -c` syntax, e.g. `0`), the
    /// way a script pins the server under test, so that the floor and the server get the
    /// same core; pin this process (the reader) as the generator is.
    #[arg(long)]
    pub floor_writer_cpus: Option<String>,

    /// Internal: be the floor's writer, listening on this address.
    #[arg(long, hide = true)]
    pub floor_serve: Option<SocketAddr>,

    /// No progress line each second.
    #[arg(long)]
    pub quiet: bool,

    /// Processes to spread the subscribers over, each opening its share (for more
    /// descriptors than one process may have). With more than 1 this process coordinates:
    /// it creates the channels, starts the others, is the one publisher once all of them
    /// report every subscriber ready, and merges their accounts into one summary.
    #[arg(long, default_value_t = 1)]
    pub processes: usize,

    /// Internal: be one of a coordinator's processes (its lines on stdin and stdout).
    #[arg(long, hide = true)]
    pub worker: bool,

    /// Internal: the index, in the whole run, of this process's first subscriber (it picks
    /// each subscriber's channels and source address).
    #[arg(long, hide = true, default_value_t = 0)]
    pub first_subscriber: usize,
}

impl Config {
    /// Refuses targets outside loopback unless allowed, and impossible shapes.
    pub fn check(&self) -> Result<(), String> {
        for addr in [self.target, self.admin] {
            if !addr.ip().is_loopback() && !self.allow_remote {
                return Err(format!(
                    "{addr} is not on loopback (pass --allow-remote to allow it)"
                ));
            }
        }
        if self.channels == 0 || self.channels_per_subscriber == 0 {
            return Err("--channels and --channels-per-subscriber must be at least 1".into());
        }
        if self.channels_per_subscriber > self.channels {
            return Err("--channels-per-subscriber exceeds --channels".into());
        }
        if self.size < 24 {
            return Err("--size must be at least 24 (room for the time stamp)".into());
        }
        if self.batch == 0 {
            return Err("--batch must be at least 1".into());
        }
        if self.target_kind == Kind::Nchan {
            if self.batch > 1 {
                return Err(
                    "--batch above 1 needs the gateway: Nchan has no batch publish (it publishes one message per request; leave --batch at 1)".into(),
                );
            }
            if !matches!(
                self.transport,
                Transport::Poll | Transport::Events | Transport::Ws
            ) {
                return Err("with --target-kind nchan, --transport is poll, events or ws".into());
            }
            if self.channels_per_subscriber != 1 || self.churn > 0.0 {
                return Err(
                    "with --target-kind nchan: one channel per subscriber, no churn".into(),
                );
            }
        }
        if self.ramp == 0 {
            return Err("--ramp must be at least 1".into());
        }
        if self.processes == 0 || self.processes > self.subscribers.max(1) {
            return Err("--processes must be between 1 and --subscribers".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_checks() {
        assert_eq!(parse_sources("127.0.0.2-127.0.0.4").unwrap().len(), 3);
        assert_eq!(parse_sources("127.0.0.9").unwrap().len(), 1);
        assert!(parse_sources("127.0.0.9-127.0.0.2").is_err());
        let c = Config::parse_from(["x", "--source", "127.0.0.2-127.0.0.3"]);
        assert_eq!(c.source.unwrap().0.len(), 2);
        let mut c = Config::parse_from(["x"]);
        assert!(c.check().is_ok());
        c.target = "10.1.2.3:80".parse().unwrap();
        assert!(c.check().unwrap_err().contains("loopback"));
        c.allow_remote = true;
        assert!(c.check().is_ok());
        c.processes = 0;
        assert!(c.check().unwrap_err().contains("--processes"));
        c.processes = 1001;
        assert!(c.check().unwrap_err().contains("--processes"));
        c.processes = 1000;
        assert!(c.check().is_ok());
    }

    #[test]
    fn batches_are_for_the_gateway_only() {
        let c = Config::parse_from(["x"]);
        assert_eq!(c.batch, 1, "one message per request unless asked");
        let c = Config::parse_from(["x", "--batch", "100"]);
        assert!(c.check().is_ok());
        let c = Config::parse_from(["x", "--batch", "0"]);
        assert!(c.check().unwrap_err().contains("--batch"));
        let nchan = ["x", "--target-kind", "nchan", "--transport", "events"];
        assert!(Config::parse_from(nchan).check().is_ok());
        assert!(Config::parse_from(nchan.iter().chain(&["--batch", "1"]))
            .check()
            .is_ok());
        let e = Config::parse_from(nchan.iter().chain(&["--batch", "2"]))
            .check()
            .unwrap_err();
        assert!(e.contains("Nchan has no batch publish"), "{e}");
    }
}
