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
//!
//! # Layout
//!
//! - `config`: the flags ([`FloodConfig`], [`Mode`]), their checks, the attack table.
//! - `counters`: what is counted ([`Counters`], [`Second`], [`Summary`]) and its JSON.
//! - `wire`: request bytes ([`poll_request`], [`Rng`]) and answer framing
//!   ([`parse_response`], [`count_resets`]).
//! - `engine`: the connection table, the pools, their connect budget and the timers; in
//!   it, `conn`: each connection's life, driven by mio events.
//! - [`run`] (here): the loop that drives the engine for `--duration` and sums it up.

mod config;
mod counters;
mod engine;
mod wire;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::time::{Duration, Instant};

use mio::{Events, Poll};

pub use config::{FloodConfig, Mode, ATTACKS, HARD_MAX_CONNS};
pub use counters::{Counters, Second, Summary};
pub use wire::{count_resets, parse_response, poll_request, Response, Rng};

use config::{HOG, PARK, RESET, SESSION};
use engine::{Flood, HOG_CHUNKS_PER_TURN};

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
