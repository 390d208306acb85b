//! The publisher: posts time-stamped, numbered messages to the server's publish endpoint
//! on one kept-alive connection, at the configured rate and/or as a burst, and reports
//! the last seq it got per channel so the run knows what every subscriber was due.
//!
//! It owns the admin connection and the payload format (`t=<µs>;n=<number>;x…`, read back
//! by [`crate::scan`]); it never touches a subscriber, the account or the summary, and
//! knows the run only through what it returns ([`Published`]).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::{now_us, Schedule};
use crate::config::{Config, Kind};

/// One blocking request to the admin listener on a kept-alive connection.
pub(crate) struct Admin {
    sock: StdStream,
    buf: Vec<u8>,
    kind: Kind,
    /// `Authorization` header line, if a token was given.
    auth: String,
}

impl Admin {
    /// Connects to the admin listener; a publish whose answer takes longer than
    /// `timeout` fails.
    pub(crate) fn connect(
        addr: SocketAddr,
        kind: Kind,
        token: Option<&str>,
        timeout: Duration,
    ) -> io::Result<Admin> {
        let sock = StdStream::connect(addr)?;
        sock.set_read_timeout(Some(timeout))?;
        sock.set_nodelay(true)?;
        Ok(Admin {
            sock,
            buf: Vec::new(),
            kind,
            auth: token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n")),
        })
    }

    /// Publishes message number `n` of a channel; returns its seq (the gateway's, or `n`
    /// for Nchan, whose deliveries are counted by the stamped number).
    pub(crate) fn publish(&mut self, channel: &str, body: &str, n: u64) -> io::Result<u64> {
        let path = match self.kind {
            Kind::Gateway => format!("/pub?channel={channel}"),
            Kind::Nchan => format!("/pub/{channel}"),
        };
        write!(
            self.sock,
            "POST {path} HTTP/1.1\r\nHost: lt\r\n{}Content-Length: {}\r\n\r\n{body}",
            self.auth,
            body.len()
        )?;
        loop {
            let mut headers = [httparse::EMPTY_HEADER; 16];
            let mut resp = httparse::Response::new(&mut headers);
            if let Ok(httparse::Status::Complete(len)) = resp.parse(&self.buf) {
                let clen: usize = resp
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                    .and_then(|h| std::str::from_utf8(h.value).ok()?.parse().ok())
                    .unwrap_or(0);
                if self.buf.len() >= len + clen {
                    let code = resp.code.unwrap_or(0);
                    let body = String::from_utf8_lossy(&self.buf[len..len + clen]).to_string();
                    self.buf.drain(..len + clen);
                    if !(200..300).contains(&code) {
                        return Err(io::Error::other(format!("publish: HTTP {code}: {body}")));
                    }
                    if self.kind == Kind::Nchan {
                        return Ok(n);
                    }
                    let seq = body
                        .split("\"seq\":")
                        .nth(1)
                        .and_then(|s| {
                            s.trim_end_matches(['}', ']'])
                                .split(|c: char| !c.is_ascii_digit())
                                .next()?
                                .parse()
                                .ok()
                        })
                        .ok_or_else(|| io::Error::other(format!("publish: no seq in {body}")))?;
                    return Ok(seq);
                }
            }
            let mut tmp = [0u8; 4096];
            let n = self.sock.read(&mut tmp)?;
            if n == 0 {
                return Err(io::Error::other("publish: admin closed the connection"));
            }
            self.buf.extend_from_slice(&tmp[..n]);
        }
    }
}

/// What the publisher thread reports when done.
pub(crate) struct Published {
    /// Per channel: the last seq published in the run (None: nothing published).
    pub(crate) last: Vec<Option<u64>>,
    pub(crate) count: u64,
    pub(crate) errors: u64,
    pub(crate) elapsed: Duration,
}

/// The payload of message number `n`: `t=<stamp_us>;n=<n>;` padded with `x` to `size`
/// bytes. `stamp_us` is the time the latency is measured from (see [`publisher`]).
fn payload(size: usize, stamp_us: u64, n: u64) -> String {
    let stamp = format!("t={stamp_us};n={n};");
    let mut p = String::with_capacity(size);
    p.push_str(&stamp);
    while p.len() < size {
        p.push('x');
    }
    p
}

/// The publisher thread: `--burst` messages back to back, then `--rate` messages per
/// second until `--duration` has passed since it started or `stop` is set, round robin
/// over the channels.
///
/// Coordinated omission: a steady-rate message is stamped with the time it was *due* on
/// the schedule (the start of the steady phase + k / `--rate`), not the time it was sent.
/// When the publisher falls behind (a slow publish answer, a stalled server), it sends the
/// overdue messages back to back without sleeping, and their latency includes how late
/// they went out, as wrk2 measures it, instead of hiding the stall. Burst messages have no
/// schedule (they are due as fast as the admin listener answers), so each carries the time
/// it was sent.
pub(crate) fn publisher(cfg: Config, names: Vec<String>, stop: Arc<AtomicBool>) -> Published {
    let started = Instant::now();
    let mut out = Published {
        last: vec![None; names.len()],
        count: 0,
        errors: 0,
        elapsed: Duration::ZERO,
    };
    let token = cfg.admin_token.as_deref();
    let mut admin = match Admin::connect(cfg.admin, cfg.target_kind, token, cfg.publish_timeout) {
        Ok(a) => a,
        Err(_) => {
            out.errors += 1;
            return out;
        }
    };
    let mut i = 0usize;
    let mut counts = vec![0u64; names.len()];
    let mut publish_one = |out: &mut Published, admin: &mut Admin, stamp_us: u64| {
        let ch = i % names.len();
        i += 1;
        counts[ch] += 1;
        let body = payload(cfg.size, stamp_us, counts[ch]);
        match admin.publish(&names[ch], &body, counts[ch]) {
            Ok(seq) => {
                out.last[ch] = Some(seq);
                out.count += 1;
            }
            Err(_) => out.errors += 1,
        }
    };
    for _ in 0..cfg.burst {
        publish_one(&mut out, &mut admin, now_us());
    }
    if cfg.rate > 0 {
        let schedule = Schedule::starting_now(cfg.rate);
        let mut k = 0u64;
        while started.elapsed() < cfg.duration && !stop.load(Ordering::Relaxed) {
            publish_one(&mut out, &mut admin, schedule.due_us(k));
            k += 1;
            if let Some(wait) = schedule.due(k).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    out.elapsed = started.elapsed();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan;

    #[test]
    fn the_payload_carries_the_stamp_it_is_given_in_the_format_scan_reads() {
        let p = payload(64, 1_700_000_000_123_456, 42);
        assert_eq!(p.len(), 64);
        assert!(p.starts_with("t=1700000000123456;n=42;x"), "{p}");
        assert_eq!(scan::stamp(&p), Some(1_700_000_000_123_456));
        assert_eq!(scan::payload_seq(&p), Some(42));
    }
}
