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

use crate::batch;
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

    /// Sends one request (`head` is its request line and any headers but `Host`,
    /// `Authorization` and `Content-Length`) and returns the body of its 2xx answer.
    fn exchange(&mut self, head: &str, body: &str) -> io::Result<String> {
        self.send(head, body)?;
        self.answer()
    }

    /// Sends one request without waiting for its answer.
    fn send(&mut self, head: &str, body: &str) -> io::Result<()> {
        write!(
            self.sock,
            "{head}Host: lt\r\n{}Content-Length: {}\r\n\r\n{body}",
            self.auth,
            body.len()
        )
    }

    /// The body of the next answer (2xx), waiting at most the connection's timeout.
    fn answer(&mut self) -> io::Result<String> {
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
                    return Ok(body);
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

    /// `GET path`: the body of its 2xx answer.
    pub(crate) fn get(&mut self, path: &str) -> io::Result<String> {
        self.exchange(&format!("GET {path} HTTP/1.1\r\n"), "")
    }

    /// Publishes message number `n` of a channel; returns its seq (the gateway's, or `n`
    /// for Nchan, whose deliveries are counted by the stamped number).
    pub(crate) fn publish(&mut self, channel: &str, body: &str, n: u64) -> io::Result<u64> {
        self.send_publish(channel, body)?;
        let answer = self.answer()?;
        self.seq_of(&answer, n)
    }

    /// Sends the publish of a message, not waiting for its answer.
    fn send_publish(&mut self, channel: &str, body: &str) -> io::Result<()> {
        let head = match self.kind {
            Kind::Gateway => format!("POST /pub?channel={channel} HTTP/1.1\r\n"),
            Kind::Nchan => format!("POST /pub/{channel} HTTP/1.1\r\n"),
        };
        self.send(&head, body)
    }

    /// The seq an answer to a single publish gives message number `n`.
    fn seq_of(&self, answer: &str, n: u64) -> io::Result<u64> {
        if self.kind == Kind::Nchan {
            return Ok(n);
        }
        answer
            .split("\"seq\":")
            .nth(1)
            .and_then(|s| {
                s.trim_end_matches(['}', ']'])
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .ok_or_else(|| io::Error::other(format!("publish: no seq in {answer}")))
    }

    /// Publishes `lines` (channel, payload) in one ndjson batch request (the gateway's
    /// only; Nchan has none, which [`Config::check`] refuses); returns each line's seq in
    /// order, None for a line the answer gives no seq.
    pub(crate) fn publish_batch(&mut self, lines: &[(&str, &str)]) -> io::Result<Vec<Option<u64>>> {
        debug_assert_eq!(
            self.kind,
            Kind::Gateway,
            "batch publishing is the gateway's"
        );
        self.send_batch(lines)?;
        let answer = self.answer()?;
        batch::seqs(&answer, lines).map_err(|e| io::Error::other(format!("publish batch: {e}")))
    }

    /// Sends a batch publish, not waiting for its answer.
    fn send_batch(&mut self, lines: &[(&str, &str)]) -> io::Result<()> {
        let head = "POST /pub HTTP/1.1\r\nContent-Type: application/x-ndjson\r\n";
        self.send(head, &batch::body(lines))
    }
}

/// What the publisher thread reports when done.
pub(crate) struct Published {
    /// Per channel: the last seq published in the run (None: nothing published).
    pub(crate) last: Vec<Option<u64>>,
    pub(crate) count: u64,
    pub(crate) errors: u64,
    /// Publish requests sent (fewer than messages with `--batch` above 1).
    pub(crate) requests: u64,
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

/// How many messages go in the next request of the steady rate, message `k` being the
/// first: every one due by `now` (`due(j)` is when message `j` is due), at most `batch`,
/// and always message `k` itself (the publisher only sends once it is due). A message is
/// never held back to fill a batch: batches form only from messages that are already due,
/// when the publisher has fallen behind or the rate is faster than one request's round
/// trip.
fn due_now(k: u64, batch: u64, now: Instant, due: impl Fn(u64) -> Instant) -> u64 {
    let mut n = 1;
    while n < batch && due(k + n) <= now {
        n += 1;
    }
    n
}

/// Posts numbered messages round robin over the channels and keeps the account of what
/// was published: each message's channel, its number on that channel, its seq.
struct Sender<'a> {
    cfg: &'a Config,
    names: &'a [String],
    admin: Admin,
    /// Messages sent so far (the next one's channel is this modulo the channel count).
    i: usize,
    /// Per channel, messages numbered so far.
    counts: Vec<u64>,
    out: Published,
    /// Requests sent whose answers are still to be read, oldest first: each one's
    /// messages (channel, number), and whether it was a batch.
    pending: std::collections::VecDeque<(Vec<(usize, u64)>, bool)>,
}

impl Sender<'_> {
    /// Publishes one message per stamp, in order: one request per message with
    /// `--batch 1`, else one ndjson batch request for all of them (the caller gives at most
    /// `--batch` stamps). A failed request counts every message in it as failed.
    fn send(&mut self, stamps: &[u64]) {
        if self.cfg.in_flight > 1 {
            return self.send_pipelined(stamps);
        }
        let msgs = self.number(stamps);
        if self.cfg.batch <= 1 {
            for (ch, n, body) in &msgs {
                self.out.requests += 1;
                match self.admin.publish(&self.names[*ch], body, *n) {
                    Ok(seq) => self.published(*ch, Some(seq)),
                    Err(_) => self.out.errors += 1,
                }
            }
            return;
        }
        let lines: Vec<(&str, &str)> = msgs
            .iter()
            .map(|(ch, _, body)| (self.names[*ch].as_str(), body.as_str()))
            .collect();
        self.out.requests += 1;
        match self.admin.publish_batch(&lines) {
            Ok(seqs) => {
                for ((ch, _, _), seq) in msgs.iter().zip(seqs) {
                    self.published(*ch, seq);
                }
            }
            Err(_) => self.out.errors += msgs.len() as u64,
        }
    }

    /// The next messages, one per stamp, round robin over the channels: each one's
    /// channel, its number on that channel, and its payload.
    fn number(&mut self, stamps: &[u64]) -> Vec<(usize, u64, String)> {
        stamps
            .iter()
            .map(|&stamp| {
                let ch = self.i % self.names.len();
                self.i += 1;
                self.counts[ch] += 1;
                let n = self.counts[ch];
                (ch, n, payload(self.cfg.size, stamp, n))
            })
            .collect()
    }

    /// `send` with `--in-flight` above 1: the request goes out at once, its answer is read
    /// later (`read_answers`), first waiting for the oldest while `--in-flight` are out.
    fn send_pipelined(&mut self, stamps: &[u64]) {
        while self.pending.len() as u64 >= self.cfg.in_flight {
            if !self.read_answer() {
                break;
            }
        }
        let (msgs, bodies): (Vec<(usize, u64)>, Vec<String>) = self
            .number(stamps)
            .into_iter()
            .map(|(ch, n, body)| ((ch, n), body))
            .unzip();
        let batch = self.cfg.batch > 1;
        let sent = if batch {
            let lines: Vec<(&str, &str)> = msgs
                .iter()
                .zip(&bodies)
                .map(|(&(ch, _), b)| (self.names[ch].as_str(), b.as_str()))
                .collect();
            self.out.requests += 1;
            self.admin.send_batch(&lines).map(|()| vec![(msgs, true)])
        } else {
            let mut reqs = Vec::new();
            let mut r = Ok(());
            for (&(ch, n), b) in msgs.iter().zip(&bodies) {
                self.out.requests += 1;
                r = self.admin.send_publish(&self.names[ch], b);
                if r.is_err() {
                    break;
                }
                reqs.push((vec![(ch, n)], false));
            }
            r.map(|()| reqs)
        };
        match sent {
            Ok(reqs) => self.pending.extend(reqs),
            Err(_) => self.out.errors += stamps.len() as u64,
        }
    }

    /// Reads the answer to the oldest request in flight and accounts its messages; false
    /// if none could be read (the connection failed or timed out: everything still in
    /// flight counts as failed).
    fn read_answer(&mut self) -> bool {
        let Some((msgs, batch)) = self.pending.pop_front() else {
            return false;
        };
        let answer = self.admin.answer();
        let seqs: Option<Vec<Option<u64>>> = match (&answer, batch) {
            (Ok(a), true) => {
                let lines: Vec<(&str, &str)> = msgs
                    .iter()
                    .map(|&(ch, _)| (self.names[ch].as_str(), ""))
                    .collect();
                batch::seqs(a, &lines).ok()
            }
            (Ok(a), false) => self.admin.seq_of(a, msgs[0].1).ok().map(|s| vec![Some(s)]),
            (Err(_), _) => None,
        };
        match seqs {
            Some(seqs) => {
                for (&(ch, _), seq) in msgs.iter().zip(seqs) {
                    self.published(ch, seq);
                }
                true
            }
            None => {
                self.out.errors += msgs.len() as u64;
                if answer.is_err() {
                    let left: usize = self.pending.drain(..).map(|(m, _)| m.len()).sum();
                    self.out.errors += left as u64;
                    return false;
                }
                true
            }
        }
    }

    /// Reads every answer still in flight (at the end of the run).
    fn read_answers(&mut self) {
        while !self.pending.is_empty() {
            self.read_answer();
        }
    }

    /// Accounts one message of channel `ch`: published with `seq`, or failed (None).
    fn published(&mut self, ch: usize, seq: Option<u64>) {
        match seq {
            Some(seq) => {
                self.out.last[ch] = Some(seq);
                self.out.count += 1;
            }
            None => self.out.errors += 1,
        }
    }
}

/// The publisher thread: `--burst` messages back to back, then `--rate` messages per
/// second until `--duration` has passed since it started or `stop` is set, round robin
/// over the channels; with `--batch N`, up to N messages in each request.
///
/// Coordinated omission: a steady-rate message is stamped with the time it was *due* on
/// the schedule (the start of the steady phase + k / `--rate`), not the time it was sent.
/// When the publisher falls behind (a slow publish answer, a stalled server), it sends the
/// overdue messages back to back without sleeping (with `--batch`, together, at most N to
/// a request), and their latency includes how late they went out, as wrk2 measures it,
/// instead of hiding the stall. A request never waits for a batch to fill: it goes out
/// when its first message is due (see [`due_now`]). Burst messages have no schedule (they
/// are due as fast as the admin listener answers), so each carries the time its request
/// was built.
pub(crate) fn publisher(cfg: Config, names: Vec<String>, stop: Arc<AtomicBool>) -> Published {
    let started = Instant::now();
    let mut out = Published {
        last: vec![None; names.len()],
        count: 0,
        errors: 0,
        requests: 0,
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
    if let Some(path) = &cfg.stats_before {
        // Before the first publish, on the connection that will publish: nothing of the
        // run's publishing is in it, all of the ramp is.
        if let Ok(stats) = admin.get("/stats") {
            let _ = std::fs::write(path, stats);
        }
    }
    let batch = cfg.batch.max(1);
    let mut s = Sender {
        cfg: &cfg,
        names: &names,
        admin,
        i: 0,
        counts: vec![0; names.len()],
        out,
        pending: std::collections::VecDeque::new(),
    };
    let mut left = cfg.burst;
    while left > 0 {
        let n = left.min(batch);
        let stamp = now_us();
        s.send(&vec![stamp; n as usize]);
        left -= n;
    }
    if cfg.rate > 0 {
        let schedule = Schedule::starting_now(cfg.rate);
        let mut k = 0u64;
        while started.elapsed() < cfg.duration && !stop.load(Ordering::Relaxed) {
            let n = due_now(k, batch, Instant::now(), |j| schedule.due(j));
            let stamps: Vec<u64> = (k..k + n).map(|j| schedule.due_us(j)).collect();
            s.send(&stamps);
            k += n;
            if let Some(wait) = schedule.due(k).checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
    s.read_answers();
    let mut out = s.out;
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

    /// A one-request admin listener: reads one request with a body, answers `answer` with
    /// `status`, and hands back the request's bytes.
    fn one_answer(
        status: &str,
        answer: &'static str,
    ) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let status = status.to_string();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                let n = s.read(&mut buf).unwrap();
                assert!(n > 0, "the publisher closed before its request was whole");
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let clen: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Content-Length: "))
                        .unwrap()
                        .parse()
                        .unwrap();
                    if req.len() >= end + 4 + clen {
                        break;
                    }
                }
            }
            write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            )
            .unwrap();
            String::from_utf8(req).unwrap()
        });
        (addr, t)
    }

    #[test]
    fn a_batch_is_one_ndjson_post_and_its_answer_gives_each_seq() {
        let (addr, server) = one_answer(
            "200 OK",
            r#"[{"channel":"a","seq":1700000000000001},{"channel":"b","seq":9},{"channel":"a","seq":1700000000000002}]"#,
        );
        let mut admin =
            Admin::connect(addr, Kind::Gateway, Some("tok"), Duration::from_secs(5)).unwrap();
        let lines = [("a", "t=1;n=1;x"), ("b", "t=1;n=1;x"), ("a", "t=2;n=2;x")];
        let seqs = admin.publish_batch(&lines).unwrap();
        assert_eq!(
            seqs,
            vec![
                Some(1_700_000_000_000_001),
                Some(9),
                Some(1_700_000_000_000_002)
            ]
        );
        let body = "{\"channel\":\"a\",\"data\":\"t=1;n=1;x\"}\n\
                    {\"channel\":\"b\",\"data\":\"t=1;n=1;x\"}\n\
                    {\"channel\":\"a\",\"data\":\"t=2;n=2;x\"}\n";
        assert_eq!(
            server.join().unwrap(),
            format!(
                "POST /pub HTTP/1.1\r\nContent-Type: application/x-ndjson\r\nHost: lt\r\n\
                 Authorization: Bearer tok\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
        );
    }

    #[test]
    fn a_refused_batch_is_an_error_for_all_of_it() {
        let (addr, server) = one_answer("413 Payload Too Large", r#"{"error":"body too large"}"#);
        let mut admin = Admin::connect(addr, Kind::Gateway, None, Duration::from_secs(5)).unwrap();
        let e = admin.publish_batch(&[("a", "x")]).unwrap_err();
        assert!(e.to_string().contains("HTTP 413"), "{e}");
        server.join().unwrap();
    }

    #[test]
    fn a_steady_batch_takes_only_messages_already_due() {
        let start = Instant::now();
        // One message every 10 ms.
        let due = |j: u64| start + Duration::from_millis(10 * j);
        // On time: message 3 is due, 4 is not: alone, whatever the batch.
        assert_eq!(due_now(3, 100, due(3), due), 1);
        assert_eq!(due_now(3, 100, due(4) - Duration::from_nanos(1), due), 1);
        // 25 ms late: 3, 4 and 5 are due, 6 is not.
        assert_eq!(due_now(3, 100, due(3) + Duration::from_millis(25), due), 3);
        // Far behind: at most the batch.
        assert_eq!(due_now(0, 100, due(1000), due), 100);
        // --batch 1: one at a time, as before batches.
        assert_eq!(due_now(0, 1, due(1000), due), 1);
        // Called early (never, but): still the first message, nothing more.
        assert_eq!(due_now(5, 100, start, due), 1);
    }
}
