//! The run: a flat, preallocated table of subscribers driven by one mio loop (in the
//! spirit of wrk), a publisher thread posting stamped messages to the admin listener, and
//! the per-subscriber, per-channel account that proves what was delivered.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::clock::now_us;
use crate::config::{Config, Kind};
use crate::framer::{Framer, Status, Transport};
use crate::publisher::{publisher, Admin, Published};
use crate::report::{Errors, Summary};
use crate::scan::{self, Event};

/// The account of one subscriber on one channel.
#[derive(Clone, Copy, Debug, Default)]
struct Account {
    /// The next seq it should receive.
    next: u64,
    received: u64,
    duplicates: u64,
    /// Deliveries that skipped seqs without a `lost` event.
    out_of_order: u64,
    /// Seqs skipped without a `lost` event.
    skipped: u64,
    /// Seqs announced lost.
    lost: u64,
    resets: u64,
}

struct Sub {
    /// Indices of its channels.
    channels: Vec<usize>,
    acc: Vec<Account>,
    sock: Option<TcpStream>,
    framer: Framer,
    /// Request bytes not yet written.
    out: Vec<u8>,
    connected: bool,
    /// Saw its hello (streams) or sent its first poll.
    ready: bool,
    /// Opened at least once (for the ramp).
    started: bool,
    /// Nchan long-poll: `Last-Modified` and `Etag` of the last answer.
    nchan_cursor: Option<(String, String)>,
}

fn new_framer(cfg: &Config) -> Framer {
    match cfg.target_kind {
        Kind::Gateway => Framer::new(cfg.transport),
        Kind::Nchan => Framer::raw(cfg.transport),
    }
}

/// Runs a whole load test and returns its summary.
pub fn run(cfg: &Config) -> io::Result<Summary> {
    cfg.check().map_err(io::Error::other)?;
    let tag = format!("lt{}x{}", std::process::id(), now_us() % 1_000_000_000);
    let names: Vec<String> = (0..cfg.channels).map(|i| format!("{tag}-{i}")).collect();
    // Create every channel with one message; subscribers start right after it, so each
    // one's expected deliveries are exactly what the run publishes.
    let mut admin = Admin::connect(cfg.admin, cfg.target_kind, cfg.admin_token.as_deref())?;
    let mut start = Vec::with_capacity(names.len());
    for n in &names {
        // Stamped number 0: Nchan subscribers receive it first (`oldest`) and skip it.
        start.push(admin.publish(n, "t=0;n=0;warm-up", 0)? + 1);
    }
    drop(admin);

    let mut poll = Poll::new()?;
    let mut events = Events::with_capacity(4096);
    let mut subs: Vec<Sub> = (0..cfg.subscribers)
        .map(|i| {
            let channels: Vec<usize> = (0..cfg.channels_per_subscriber)
                .map(|k| (i + k) % cfg.channels)
                .collect();
            let acc = channels
                .iter()
                .map(|&c| Account {
                    next: start[c],
                    ..Account::default()
                })
                .collect();
            Sub {
                channels,
                acc,
                sock: None,
                framer: new_framer(cfg),
                out: Vec::new(),
                nchan_cursor: None,
                connected: false,
                ready: false,
                started: false,
            }
        })
        .collect();
    let sources = cfg.source.clone().map(|s| s.0).unwrap_or_default();
    let mut errors = Errors::default();
    let mut latency = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)
        .map_err(|e| io::Error::other(e.to_string()))?;
    let t0 = Instant::now();
    let ramp_deadline = t0 + Duration::from_secs(120);
    let mut opened = 0usize;
    let mut connects = 0u64;
    let mut ramp_done_at: Option<Duration> = None;
    let mut publisher_thread: Option<std::thread::JoinHandle<Published>> = None;
    let mut published: Option<Published> = None;
    let mut publish_done_at: Option<Instant> = None;
    let stop = Arc::new(AtomicBool::new(false));
    let mut last_tick = Instant::now();
    let mut churn_carry = 0.0f64;
    let mut rng = now_us() | 1;
    let mut scratch = vec![0u8; 64 * 1024];
    let mut texts: Vec<String> = Vec::new();
    let mut reopen: Vec<usize> = Vec::new();
    let mut delivered_total = 0u64;
    let mut answers = 0u64;
    let mut last_delivered = 0u64;

    loop {
        // Ramp: open as many as the rate allows by now.
        let allowed = ((t0.elapsed().as_secs_f64() * cfg.ramp as f64) as usize + 1).min(subs.len());
        while opened < allowed {
            let i = opened;
            opened += 1;
            subs[i].started = true;
            connects += 1;
            if let Err(e) = open(&mut poll, &mut subs[i], i, cfg, &sources, &names) {
                errors.connect += 1;
                log_first(&mut errors, format!("connect: {e}"));
                reopen.push(i);
            }
        }
        let all_ready = opened == subs.len() && subs.iter().all(|s| s.ready);
        if ramp_done_at.is_none() && (all_ready || Instant::now() > ramp_deadline) {
            ramp_done_at = Some(t0.elapsed());
            let (c, n, s) = (cfg.clone(), names.clone(), stop.clone());
            publisher_thread = Some(std::thread::spawn(move || publisher(c, n, s)));
        }
        if publisher_thread.as_ref().is_some_and(|t| t.is_finished()) {
            if let Some(t) = publisher_thread.take() {
                published = Some(
                    t.join()
                        .map_err(|_| io::Error::other("publisher panicked"))?,
                );
                publish_done_at = Some(Instant::now());
            }
        }
        if let (Some(p), Some(done)) = (&published, publish_done_at) {
            let complete = subs.iter().all(|s| {
                s.channels
                    .iter()
                    .zip(&s.acc)
                    .all(|(&c, a)| p.last[c].is_none_or(|last| a.next > last))
            });
            if complete || done.elapsed() >= cfg.drain {
                break;
            }
        }

        poll.poll(&mut events, Some(Duration::from_millis(20)))?;
        for ev in events.iter() {
            let i = ev.token().0;
            let Some(sub) = subs.get_mut(i) else { continue };
            if ev.is_writable() && !sub.connected {
                let ok = sub.sock.as_ref().is_some_and(|s| s.peer_addr().is_ok());
                if !ok {
                    errors.connect += 1;
                    close(&mut poll, sub);
                    reopen.push(i);
                    continue;
                }
                sub.connected = true;
                if cfg.transport == Transport::Poll {
                    sub.ready = true;
                }
            }
            if sub.connected && !sub.out.is_empty() {
                if let Some(s) = sub.sock.as_mut() {
                    match s.write(&sub.out) {
                        Ok(n) => {
                            sub.out.drain(..n);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => {
                            errors.write += 1;
                            close(&mut poll, sub);
                            reopen.push(i);
                            continue;
                        }
                    }
                }
            }
            if !(ev.is_readable() || ev.is_read_closed()) || !sub.connected {
                continue;
            }
            // Drain the socket.
            while let Some(s) = sub.sock.as_mut() {
                match s.read(&mut scratch) {
                    Ok(0) => {
                        errors.closed_by_server += 1;
                        close(&mut poll, sub);
                        reopen.push(i);
                        break;
                    }
                    Ok(n) => {
                        texts.clear();
                        let status = sub.framer.feed(&scratch[..n], &mut texts);
                        let now = now_us();
                        for t in &texts {
                            let ev = match cfg.target_kind {
                                Kind::Gateway => scan::event(t),
                                // A raw payload: its stamped number is its seq; 0 is the
                                // warm-up, which only shows the subscription is live.
                                Kind::Nchan => {
                                    sub.ready = true;
                                    match scan::payload_seq(t) {
                                        Some(n) if n > 0 => Event::Data {
                                            channel: &names[sub.channels[0]],
                                            seq: n,
                                            sent_us: scan::stamp(t),
                                        },
                                        _ => Event::Noop,
                                    }
                                }
                            };
                            delivered_total +=
                                account(sub, &names, ev, now, &mut latency, &mut errors);
                        }
                        match status {
                            Status::Open => {}
                            Status::Answered => {
                                answers += 1;
                                if let (Some(lm), Some(et)) =
                                    (&sub.framer.last_modified, &sub.framer.etag)
                                {
                                    sub.nchan_cursor = Some((lm.clone(), et.clone()));
                                }
                                let req = request(cfg, sub, &names);
                                sub.out.extend_from_slice(req.as_bytes());
                                if let Some(s) = sub.sock.as_mut() {
                                    if let Ok(n) = s.write(&sub.out) {
                                        sub.out.drain(..n);
                                    }
                                }
                            }
                            Status::Ended => {
                                close(&mut poll, sub);
                                reopen.push(i);
                                break;
                            }
                            Status::Refused(code) => {
                                errors.http += 1;
                                log_first(&mut errors, format!("HTTP {code}"));
                                close(&mut poll, sub);
                                reopen.push(i);
                                break;
                            }
                            Status::Broken(why) => {
                                errors.protocol += 1;
                                log_first(&mut errors, why.to_string());
                                close(&mut poll, sub);
                                reopen.push(i);
                                break;
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        errors.read += 1;
                        close(&mut poll, sub);
                        reopen.push(i);
                        break;
                    }
                }
            }
        }
        // Reconnect whatever dropped, resuming from its cursor.
        for i in reopen.drain(..) {
            if subs[i].sock.is_none() {
                connects += 1;
                if open(&mut poll, &mut subs[i], i, cfg, &sources, &names).is_err() {
                    errors.connect += 1;
                }
            }
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            // Churn: a share of the open subscribers drop and resume.
            if cfg.churn > 0.0 && ramp_done_at.is_some() && published.is_none() {
                churn_carry += subs.len() as f64 * cfg.churn / 100.0;
                while churn_carry >= 1.0 {
                    churn_carry -= 1.0;
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let i = (rng % subs.len() as u64) as usize;
                    if subs[i].sock.is_some() {
                        close(&mut poll, &mut subs[i]);
                        errors.churned += 1;
                        connects += 1;
                        if open(&mut poll, &mut subs[i], i, cfg, &sources, &names).is_err() {
                            errors.connect += 1;
                        }
                    }
                }
            }
            if !cfg.quiet {
                let open_now = subs.iter().filter(|s| s.sock.is_some()).count();
                eprintln!(
                    "[{:>5.1}s] open {open_now}/{} ready {} delivered {} (+{}/s) p99 {} us errors {}",
                    t0.elapsed().as_secs_f64(),
                    subs.len(),
                    subs.iter().filter(|s| s.ready).count(),
                    delivered_total,
                    delivered_total - last_delivered,
                    latency.value_at_quantile(0.99),
                    errors.total()
                );
            }
            last_delivered = delivered_total;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let published = match published {
        Some(p) => p,
        None => match publisher_thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| io::Error::other("publisher panicked"))?,
            None => Published {
                last: vec![None; names.len()],
                count: 0,
                errors: 0,
                elapsed: Duration::ZERO,
            },
        },
    };
    let mut s = Summary::new(cfg);
    s.ramp_secs = ramp_done_at.unwrap_or_default().as_secs_f64();
    s.connects = connects;
    s.answers = answers;
    s.published = published.count;
    s.publish_errors = published.errors;
    s.publish_secs = published.elapsed.as_secs_f64();
    for sub in &subs {
        for (&c, a) in sub.channels.iter().zip(&sub.acc) {
            let expected = published.last[c].map_or(0, |last| last + 1 - start[c]);
            s.expected += expected;
            s.received += a.received;
            s.duplicates += a.duplicates;
            s.out_of_order += a.out_of_order;
            s.skipped += a.skipped;
            s.lost += a.lost;
            s.resets += a.resets;
            let accounted = a.received + a.lost + a.skipped;
            s.missing += expected.saturating_sub(accounted);
        }
    }
    s.delivery_secs =
        publish_done_at.map_or(0.0, |d| (d.elapsed() + published.elapsed).as_secs_f64());
    s.set_latency(&latency);
    s.errors = errors;
    if let Some(pid) = cfg.server_pid {
        s.server_rss_kib = crate::report::rss_kib(pid);
    }
    for sub in &mut subs {
        close(&mut poll, sub);
    }
    Ok(s)
}

fn log_first(errors: &mut Errors, what: String) {
    if errors.first.is_none() {
        errors.first = Some(what);
    }
}

/// Applies one event to a subscriber's account; returns 1 for a delivered message.
fn account(
    sub: &mut Sub,
    names: &[String],
    ev: Event<'_>,
    now: u64,
    latency: &mut Histogram<u64>,
    errors: &mut Errors,
) -> u64 {
    // Channel names are `TAG-INDEX`: the index is read back, then checked.
    let find = |sub: &mut Sub, channel: &str| {
        let idx: usize = channel.rsplit_once('-')?.1.parse().ok()?;
        if names.get(idx).map(String::as_str) != Some(channel) {
            return None;
        }
        sub.channels.iter().position(|&c| c == idx)
    };
    match ev {
        Event::Data {
            channel,
            seq,
            sent_us,
        } => {
            let Some(j) = find(sub, channel) else {
                errors.protocol += 1;
                return 0;
            };
            let a = &mut sub.acc[j];
            if seq < a.next {
                a.duplicates += 1;
                return 0;
            }
            if seq > a.next {
                a.out_of_order += 1;
                a.skipped += seq - a.next;
            }
            a.next = seq + 1;
            a.received += 1;
            if let Some(t) = sent_us {
                let _ = latency.record(now.saturating_sub(t).max(1));
            }
            1
        }
        Event::Lost { channel, from, to } => {
            if let Some(j) = find(sub, channel) {
                let a = &mut sub.acc[j];
                if from <= a.next && to >= a.next {
                    a.lost += to + 1 - a.next;
                    a.next = to + 1;
                } else {
                    errors.protocol += 1;
                }
            }
            0
        }
        Event::Reset { channel, seq } => {
            if let Some(j) = find(sub, channel) {
                sub.acc[j].resets += 1;
                sub.acc[j].next = seq;
            }
            0
        }
        Event::Hello { .. } => {
            sub.ready = true;
            0
        }
        Event::Error => {
            errors.server_error_events += 1;
            0
        }
        Event::Reconnect { .. } | Event::Noop | Event::Close | Event::Unknown => 0,
    }
}

/// The subscribe request for a subscriber's current cursor.
fn request(cfg: &Config, sub: &Sub, names: &[String]) -> String {
    let transport = cfg.transport;
    if cfg.target_kind == Kind::Nchan {
        let ch = &names[sub.channels[0]];
        return match (transport, &sub.nchan_cursor) {
            (Transport::Poll, Some((lm, et))) => format!(
                "GET /sub/{ch} HTTP/1.1\r\nHost: lt\r\nIf-Modified-Since: {lm}\r\nIf-None-Match: {et}\r\n\r\n"
            ),
            (Transport::Poll, None) => format!("GET /sub/{ch} HTTP/1.1\r\nHost: lt\r\n\r\n"),
            _ => format!("GET /sub/{ch} HTTP/1.1\r\nHost: lt\r\nAccept: text/event-stream\r\n\r\n"),
        };
    }
    let chans: Vec<&str> = sub.channels.iter().map(|&c| names[c].as_str()).collect();
    let seqs: Vec<String> = sub.acc.iter().map(|a| a.next.to_string()).collect();
    format!(
        "GET {}channel={}&seq={} HTTP/1.1\r\nHost: lt\r\n\r\n",
        transport.path(),
        chans.join(","),
        seqs.join(",")
    )
}

fn open(
    poll: &mut Poll,
    sub: &mut Sub,
    i: usize,
    cfg: &Config,
    sources: &[std::net::IpAddr],
    names: &[String],
) -> io::Result<()> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(cfg.target), Type::STREAM, None)?;
    if !sources.is_empty() {
        let src = SocketAddr::new(sources[i % sources.len()], 0);
        s.bind(&src.into())?;
    }
    s.set_nonblocking(true)?;
    s.set_tcp_nodelay(true)?;
    match s.connect(&cfg.target.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(115) || e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(e),
    }
    let mut sock = TcpStream::from_std(s.into());
    poll.registry()
        .register(&mut sock, Token(i), Interest::READABLE | Interest::WRITABLE)?;
    sub.sock = Some(sock);
    sub.connected = false;
    sub.framer = new_framer(cfg);
    sub.out = request(cfg, sub, names).into_bytes();
    Ok(())
}

fn close(poll: &mut Poll, sub: &mut Sub) {
    if let Some(mut s) = sub.sock.take() {
        let _ = poll.registry().deregister(&mut s);
    }
    sub.connected = false;
}
