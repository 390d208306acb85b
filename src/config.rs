//! Command-line configuration. Every flag of the wire contract that the server implements
//! lives here, with its default; `Config::parse_from` builds one in tests too, so tests and
//! the binary share the same defaults.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

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

/// Comet Gateway: HTTP long-poll and streaming push on one thread.
///
/// Subscribers long-poll channels on the public listener; backends publish on the admin
/// listener. Durations take ms, s, m or h (a bare number is seconds); sizes take k or m.
#[derive(Parser, Debug, Clone)]
#[command(name = "comet-gateway", version, about, long_about)]
pub struct Config {
    /// Public listener: subscribing and control requests.
    #[arg(long, default_value = "127.0.0.1:8100")]
    pub listen: SocketAddr,

    /// Admin listener: publishing and management. Never expose it to the internet.
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub admin_listen: SocketAddr,

    /// Every admin request must carry `Authorization: Bearer TOKEN` (else 401).
    #[arg(long, env = "COMET_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// Subscribers must carry `token=` signed with this secret (see `/sign`); else 403.
    #[arg(long, env = "COMET_AUTH_SECRET", hide_env_values = true)]
    pub auth_secret: Option<String>,

    /// Messages kept per channel for subscribers that come back.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub buffer: u32,

    /// How long a buffered message is kept (0 = until pushed out by newer ones).
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub message_ttl: Duration,

    /// A channel with no subscribers and no publish for this long is dropped.
    #[arg(long, default_value = "3600s", value_parser = parse_duration)]
    pub channel_ttl: Duration,

    /// Most channels that may exist; a request that would create one more gets 503.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_channels: usize,

    /// Largest payload accepted by /pub, in bytes (413 past it).
    #[arg(long, default_value = "65536", value_parser = parse_size)]
    pub max_message: usize,

    /// Most channels one subscribe request may name (400 past it).
    #[arg(long, default_value_t = 16)]
    pub max_channels_per_subscriber: usize,

    /// How long a long-poll is held before it is answered with a noop.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub poll_timeout: Duration,

    /// A stream idle this long gets a heartbeat (`noop`, or an SSE comment).
    #[arg(long, default_value = "25s", value_parser = parse_duration)]
    pub heartbeat: Duration,

    /// A stream is ended with `reconnect` (carrying its cursor) after this long.
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub stream_max_age: Duration,

    /// A long-poll session not polled again within this is forgotten [default: 2 x
    /// --poll-timeout].
    #[arg(long, value_parser = parse_duration)]
    pub session_timeout: Option<Duration>,

    /// Largest request head accepted, in bytes (431 past it).
    #[arg(long, default_value = "8192", value_parser = parse_size)]
    pub max_header_bytes: usize,

    /// A connection that sends no complete request within this is closed.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub header_timeout: Duration,

    /// An idle keep-alive connection is closed after this.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub idle_timeout: Duration,

    /// Listen backlog of each listener: connections the kernel queues before they are
    /// accepted, for reconnect storms (capped by net.core.somaxconn).
    #[arg(long, default_value_t = 4096)]
    pub backlog: i32,

    /// Most open client connections (both listeners); past it, new ones get 503.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_conns: usize,

    /// A subscriber whose unsent output passes this is sent `error` (if it fits) and
    /// closed; on other connections, pipelined requests wait below it.
    #[arg(long, default_value = "256k", value_parser = parse_size)]
    pub max_pending_bytes: usize,

    /// On SIGTERM/SIGINT: how long to let answered polls and ended streams flush before
    /// exiting anyway. A second signal exits at once.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Log level: error, warn, info, debug, trace or off (RUST_LOG, if set, refines it).
    #[arg(long, default_value = "info", value_parser = ["error", "warn", "info", "debug", "trace", "off"])]
    pub log_level: String,

    /// Log one line per request (target `access`): peer, listener, method, path without
    /// the query (so no token is ever logged), and the status, or `parked`/`stream`.
    #[arg(long)]
    pub access_log: bool,

    /// Enable the demo: `POST /demo/pub?channel=demo.NAME` on the public listener (only
    /// `demo.` channels) and a tick published to `demo.ticker` every second.
    #[arg(long)]
    pub demo: bool,

    /// Origins allowed by CORS, comma-separated; `*` allows any.
    #[arg(long, default_value = "*", value_delimiter = ',')]
    pub allow_origin: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config::parse_from(["comet-gateway"])
    }
}

impl Config {
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
}
