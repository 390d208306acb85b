//! Command-line configuration. Every flag of the wire contract that the server implements
//! lives here, with its default and, for every flag an operator sets, an environment
//! variable (`--max-conns` is `COMET_MAX_CONNS`: `COMET_` and the flag in upper snake
//! case; a flag given on the command line wins); `Config::parse_from` builds one in tests too, so tests and
//! the binary share the same defaults.
//! Touches nothing at run time: the server reads it.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};

mod engine_url;
use engine_url::engine_url;
pub use engine_url::EngineUrl;

/// Parses a duration: a number with an optional unit `ms`, `s`, `m` or `h`; a bare number
/// is seconds (`30`, `250ms`, `10m`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration (try 30s, 250ms, 10m)"))?;
    let ms = match unit {
        "" | "s" => n.checked_mul(1000),
        "ms" => Some(n),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("unknown unit in `{text}` (use ms, s, m or h)")),
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("`{text}` is too long"))
}

const MS: Duration = Duration::from_millis(1);
const DAY: Duration = Duration::from_secs(24 * 3600);

/// Parses a duration and checks it lies in `min..=max`, so a zero heartbeat or a
/// deadline past the clock's range is refused at start-up with a message.
fn duration_in(text: &str, min: Duration, max: Duration) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d < min || d > max {
        return Err(format!(
            "`{text}` is out of range: use {} to {}",
            show(min),
            show(max)
        ));
    }
    Ok(d)
}

fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0".into()
    } else if ms.is_multiple_of(86_400_000) {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A timeout: 10 ms to 30 days.
fn timeout(text: &str) -> Result<Duration, String> {
    duration_in(text, 10 * MS, 30 * DAY)
}

/// A ttl where 0 means "never": 0 to 365 days.
fn ttl(text: &str) -> Result<Duration, String> {
    duration_in(text, Duration::ZERO, 365 * DAY)
}

/// How long an idle channel is kept: 10 ms to 365 days.
fn channel_ttl(text: &str) -> Result<Duration, String> {
    duration_in(text, 10 * MS, 365 * DAY)
}

/// The shutdown grace period: 0 (exit at once) to 1 hour.
fn grace(text: &str) -> Result<Duration, String> {
    duration_in(text, Duration::ZERO, DAY / 24)
}

fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (num, mult) = if let Some(n) = t.strip_suffix(['k', 'K']) {
        (n, 1024)
    } else if let Some(n) = t.strip_suffix(['m', 'M']) {
        (n, 1024 * 1024)
    } else {
        (t, 1)
    };
    num.parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("`{text}` is not a size (try 65536, 64k, 1m)"))
}

fn size_in(text: &str, min: usize, max: usize) -> Result<usize, String> {
    let n = parse_size(text)?;
    if n < min || n > max {
        return Err(format!("`{text}` is out of range: use {min} to {max}"));
    }
    Ok(n)
}

/// `--max-message`: 1 byte to 64 MiB.
fn message_size(text: &str) -> Result<usize, String> {
    size_in(text, 1, 64 << 20)
}

/// `--max-header-bytes`: 1 KiB to 1 MiB.
fn header_size(text: &str) -> Result<usize, String> {
    size_in(text, 1024, 1 << 20)
}

/// `--sndbuf`: 0 (the kernel's autotuning) or 4 KiB to 64 MiB.
fn sndbuf_size(text: &str) -> Result<usize, String> {
    match parse_size(text)? {
        0 => Ok(0),
        _ => size_in(text, 4096, 64 << 20),
    }
}

/// `--max-pending-bytes`: 4 KiB to 1 GiB.
fn pending_size(text: &str) -> Result<usize, String> {
    size_in(text, 4096, 1 << 30)
}

/// Comet Gateway: HTTP long-poll and streaming push on one thread.
///
/// Subscribers long-poll channels on the public listener; backends publish on the admin
/// listener. Durations take ms, s, m or h (a bare number is seconds); sizes take k or m.
#[derive(Parser, Debug, Clone)]
#[command(name = "comet-gateway", version, about, long_about)]
pub struct Config {
    /// Public listener: subscribing and control requests.
    #[arg(long, env = "COMET_LISTEN", default_value = "127.0.0.1:8100")]
    pub listen: SocketAddr,

    /// Admin listener: publishing and management. Never expose it to the internet.
    #[arg(long, env = "COMET_ADMIN_LISTEN", default_value = "127.0.0.1:8000")]
    pub admin_listen: SocketAddr,

    /// Every admin request must carry `Authorization: Bearer TOKEN` (else 401).
    #[arg(long, env = "COMET_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Subscribers must carry `token=` signed with this secret (see `/sign`); else 403.
    #[arg(long, env = "COMET_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,

    /// Messages kept per channel for subscribers that come back.
    #[arg(long, env = "COMET_BUFFER", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub buffer: u32,

    /// How long a buffered message is kept (0 = until pushed out by newer ones).
    #[arg(long, env = "COMET_MESSAGE_TTL", default_value = "0", value_parser = ttl)]
    pub message_ttl: Duration,

    /// A channel with no subscribers and no publish for this long is dropped.
    #[arg(long, env = "COMET_CHANNEL_TTL", default_value = "3600s", value_parser = channel_ttl)]
    pub channel_ttl: Duration,

    /// Most published channels (those that have had a message); a publish that would
    /// make one more gets 503. Channels only subscribers named do not count: they live
    /// while their subscribers do.
    #[arg(long, env = "COMET_MAX_CHANNELS", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub max_channels: u64,

    /// Largest payload accepted by /pub, in bytes (413 past it).
    #[arg(long, env = "COMET_MAX_MESSAGE", default_value = "65536", value_parser = message_size)]
    pub max_message: usize,

    /// Most channels one subscriber (a request, a stream, a session) may have (400 past it).
    #[arg(long, env = "COMET_MAX_CHANNELS_PER_SUBSCRIBER", default_value_t = 16, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub max_channels_per_subscriber: u16,

    /// How long a long-poll is held before it is answered with a noop.
    #[arg(long, env = "COMET_POLL_TIMEOUT", default_value = "30s", value_parser = timeout)]
    pub poll_timeout: Duration,

    /// A stream idle this long gets a heartbeat (`noop`, or an SSE comment); a WebSocket
    /// is pinged this often, and closed when it answers none of two pings.
    #[arg(long, env = "COMET_HEARTBEAT", default_value = "25s", value_parser = timeout)]
    pub heartbeat: Duration,

    /// An HTTP stream is ended with `reconnect` (carrying its cursor) after this long (a
    /// WebSocket is not).
    #[arg(long, env = "COMET_STREAM_MAX_AGE", default_value = "10m", value_parser = timeout)]
    pub stream_max_age: Duration,

    /// A long-poll session not polled again within this is forgotten [default: 2 x
    /// --poll-timeout].
    #[arg(long, env = "COMET_SESSION_TIMEOUT", value_parser = timeout)]
    pub session_timeout: Option<Duration>,

    /// Largest request head accepted, in bytes (431 past it).
    #[arg(long, env = "COMET_MAX_HEADER_BYTES", default_value = "8192", value_parser = header_size)]
    pub max_header_bytes: usize,

    /// A connection that sends no complete request within this is closed.
    #[arg(long, env = "COMET_HEADER_TIMEOUT", default_value = "10s", value_parser = timeout)]
    pub header_timeout: Duration,

    /// An idle keep-alive connection is closed after this.
    #[arg(long, env = "COMET_IDLE_TIMEOUT", default_value = "60s", value_parser = timeout)]
    pub idle_timeout: Duration,

    /// Listen backlog of each listener: connections the kernel queues before they are
    /// accepted, for reconnect storms (capped by net.core.somaxconn).
    #[arg(long, env = "COMET_BACKLOG", default_value_t = 4096, value_parser = clap::value_parser!(i32).range(1..=65535))]
    pub backlog: i32,

    /// Most open connections on the public listener; past it, new ones get 503.
    #[arg(long, env = "COMET_MAX_CONNS", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub max_conns: u64,

    /// Most open connections on the admin listener (503 past it). Public accepts always
    /// leave some descriptors free for the admin listener, so publishers and health
    /// checks get in however busy the public side is.
    #[arg(long, env = "COMET_MAX_ADMIN_CONNS", default_value_t = 1024, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub max_admin_conns: u64,

    /// Most long-poll sessions kept between polls; past it the one idle longest is
    /// forgotten (its client starts a new session, keeping its cursor).
    #[arg(long, env = "COMET_MAX_SESSIONS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub max_sessions: u64,

    /// A subscriber whose unsent output passes this is sent `error` (if it fits) and
    /// closed; on other connections, pipelined requests wait below it.
    #[arg(long, env = "COMET_MAX_PENDING_BYTES", default_value = "256k", value_parser = pending_size)]
    pub max_pending_bytes: usize,

    /// Kernel send buffer of each client connection (SO_SNDBUF; the kernel doubles it
    /// for its bookkeeping). A client that never reads holds at most this much kernel
    /// memory until --idle-timeout closes it; without a cap, thousands of them push the
    /// host's TCP memory into pressure. 0 keeps the kernel's autotuning (up to
    /// net.ipv4.tcp_wmem's maximum): more throughput per connection on long, fast links.
    #[arg(long, env = "COMET_SNDBUF", default_value = "64k", value_parser = sndbuf_size)]
    pub sndbuf: usize,

    /// Where channel logs live: `memory` (this process only) or
    /// `redis://HOST:PORT[/DB]` (shared by every gateway process pointed at it, on one
    /// host or many: one seq space per channel; see README "Scaling out").
    #[arg(long, env = "COMET_ENGINE", default_value = "memory", value_parser = engine_url)]
    pub engine: EngineUrl,

    /// Run N single-threaded reactor processes sharing the listeners (SO_REUSEPORT), each
    /// with its own descriptor limit; a small parent starts them, restarts one that dies
    /// and passes SIGTERM/SIGINT on. N > 1 needs a shared engine (`--engine redis://…`)
    /// and explicit ports.
    #[arg(long, env = "COMET_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,

    /// Set by the parent of `--workers` for its workers: bind the listeners with
    /// SO_REUSEPORT.
    #[arg(long, hide = true)]
    pub reuse_port: bool,

    /// Set by the parent of `--workers`: this worker's index (its counters' file name).
    #[arg(long, hide = true)]
    pub worker_index: Option<u16>,

    /// Set by the parent of `--workers`: the private directory where the workers leave
    /// their counters, so `/stats` and `/metrics` describe the whole host.
    #[arg(long, hide = true)]
    pub stats_dir: Option<std::path::PathBuf>,

    /// Prefix of every Redis key and pub/sub channel of the Redis engine.
    #[arg(long, env = "COMET_REDIS_PREFIX", default_value = "comet:")]
    pub redis_prefix: String,

    /// How long an admin request waits for an engine that answers later (a networked
    /// engine); past it, the request is answered 503 `engine unavailable`.
    #[arg(long, env = "COMET_ENGINE_TIMEOUT", default_value = "5s", value_parser = timeout)]
    pub engine_timeout: Duration,

    /// On SIGTERM/SIGINT: how long to let answered polls and ended streams flush before
    /// exiting anyway. A second signal exits at once.
    #[arg(long, env = "COMET_SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = grace)]
    pub shutdown_timeout: Duration,

    /// Log level: error, warn, info, debug, trace or off (RUST_LOG, if set, refines it).
    #[arg(long, env = "COMET_LOG_LEVEL", default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace", "off"])]
    pub log_level: String,

    /// Log one line per request (target `access`): peer, listener, method, path without
    /// the query (so no token is ever logged), and the status, or `parked`/`stream`.
    #[arg(long, env = "COMET_ACCESS_LOG", value_parser = clap::builder::BoolishValueParser::new())]
    pub access_log: bool,

    /// Enable the demo: `POST /demo/pub?channel=demo.NAME` on the public listener (only
    /// `demo.` channels) and a tick published to `demo.ticker` every second.
    #[arg(long, env = "COMET_DEMO", value_parser = clap::builder::BoolishValueParser::new())]
    pub demo: bool,

    /// Test only: `/ws-echo` on the public listener, a WebSocket that echoes every
    /// message (up to 16 MiB) with the very framing, checks and close handling of `/ws`,
    /// for the Autobahn|Testsuite's fuzzing client.
    #[arg(long, hide = true)]
    pub ws_echo: bool,

    /// Origins allowed by CORS, comma-separated; `*` allows any.
    #[arg(
        long,
        env = "COMET_ALLOW_ORIGIN",
        default_value = "*",
        value_delimiter = ','
    )]
    pub allow_origin: Vec<String>,

    /// CORS with credentials (cookies): the allowed origin is echoed with
    /// `Access-Control-Allow-Credentials: true`. Needs an explicit --allow-origin list.
    #[arg(long, env = "COMET_ALLOW_CREDENTIALS", value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_credentials: bool,
}

impl Default for Config {
    /// The defaults alone: the `COMET_*` environment is the binary's to read (through
    /// `Config::parse`), not that of a test or an embedding program.
    fn default() -> Self {
        let cmd = Config::command().mut_args(|a| a.env(None));
        let matches = cmd.get_matches_from(["comet-gateway"]);
        Config::from_arg_matches(&matches).expect("the defaults parse")
    }
}

impl Config {
    /// Checks what the flags cannot check one by one. The server refuses to start with
    /// the message.
    pub fn validate(&self) -> Result<(), String> {
        if self.allow_credentials && self.allow_origin.iter().any(|o| o == "*") {
            return Err(
                "--allow-credentials needs an explicit --allow-origin list, not `*` \
                 (browsers refuse credentials with a wildcard origin)"
                    .into(),
            );
        }
        let bad = |o: &String| o.is_empty() || !o.bytes().all(|b| b.is_ascii_graphic());
        if self.allow_origin.iter().any(bad) {
            return Err("--allow-origin has an empty or malformed entry".into());
        }
        if self.allow_origin.len() > u16::MAX as usize {
            return Err("--allow-origin lists too many origins".into());
        }
        if self.workers > 1 && self.engine == EngineUrl::Memory {
            return Err(
                "--workers N > 1 needs a shared engine: each worker would have its own \
                        channels with --engine memory (use --engine redis://HOST:PORT)"
                    .into(),
            );
        }
        if self.workers > 1 && (self.listen.port() == 0 || self.admin_listen.port() == 0) {
            return Err(
                "--workers N > 1 needs explicit ports (with port 0 each worker \
                        would listen somewhere else)"
                    .into(),
            );
        }
        Ok(())
    }

    /// `--session-timeout`, or its default of twice the poll timeout.
    pub fn session_timeout(&self) -> Duration {
        self.session_timeout.unwrap_or(self.poll_timeout * 2)
    }

    /// A configuration with the defaults, except both listeners on ephemeral loopback
    /// ports: what tests and benches start from.
    pub fn ephemeral() -> Self {
        let mut c = Config::default();
        c.listen = "127.0.0.1:0".parse().expect("valid address");
        c.admin_listen = c.listen;
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("5d").is_err());
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert!(parse_size("lots").is_err());
    }

    #[test]
    fn defaults_match_the_protocol() {
        let c = Config::default();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8100");
        assert_eq!(c.admin_listen.to_string(), "127.0.0.1:8000");
        assert_eq!(c.buffer, 100);
        assert_eq!(c.poll_timeout, Duration::from_secs(30));
        assert_eq!(c.max_message, 65536);
        assert_eq!(c.max_header_bytes, 8192);
        assert_eq!(c.allow_origin, vec!["*".to_string()]);
        assert_eq!(c.max_pending_bytes, 256 * 1024);
    }

    #[test]
    fn every_visible_flag_has_its_environment_variable() {
        let cmd = Config::command();
        for arg in cmd.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if arg.is_hide_set() || ["help", "version"].contains(&long) {
                assert_eq!(arg.get_env(), None, "--{long} is internal");
                continue;
            }
            let want = format!("COMET_{}", long.to_uppercase().replace('-', "_"));
            assert_eq!(
                arg.get_env().and_then(|e| e.to_str()),
                Some(want.as_str()),
                "--{long}"
            );
        }
    }
}
