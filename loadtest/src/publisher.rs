//! The publisher: posts time-stamped, numbered messages to the server's publish endpoint
//! on one kept-alive connection, at the configured rate and/or as a burst, and reports
//! the last seq it got per channel so the run knows what every subscriber was due.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::now_us;
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
    pub(crate) fn connect(addr: SocketAddr, kind: Kind, token: Option<&str>) -> io::Result<Admin> {
        let sock = StdStream::connect(addr)?;
        sock.set_read_timeout(Some(Duration::from_secs(10)))?;
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

fn payload(size: usize, n: u64) -> String {
    let stamp = format!("t={};n={n};", now_us());
    let mut p = String::with_capacity(size);
    p.push_str(&stamp);
    while p.len() < size {
        p.push('x');
    }
    p
}

pub(crate) fn publisher(cfg: Config, names: Vec<String>, stop: Arc<AtomicBool>) -> Published {
    let started = Instant::now();
    let mut out = Published {
        last: vec![None; names.len()],
        count: 0,
        errors: 0,
        elapsed: Duration::ZERO,
    };
    let mut admin = match Admin::connect(cfg.admin, cfg.target_kind, cfg.admin_token.as_deref()) {
        Ok(a) => a,
        Err(_) => {
            out.errors += 1;
            return out;
        }
    };
    let mut i = 0usize;
    let mut counts = vec![0u64; names.len()];
    let mut publish_one = |out: &mut Published, admin: &mut Admin| {
        let ch = i % names.len();
        i += 1;
        counts[ch] += 1;
        match admin.publish(&names[ch], &payload(cfg.size, counts[ch]), counts[ch]) {
            Ok(seq) => {
                out.last[ch] = Some(seq);
                out.count += 1;
            }
            Err(_) => out.errors += 1,
        }
    };
    for _ in 0..cfg.burst {
        publish_one(&mut out, &mut admin);
    }
    if cfg.rate > 0 {
        let interval = Duration::from_secs_f64(1.0 / cfg.rate as f64);
        let mut next = Instant::now();
        while started.elapsed() < cfg.duration && !stop.load(Ordering::Relaxed) {
            publish_one(&mut out, &mut admin);
            next += interval;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    out.elapsed = started.elapsed();
    out
}
