//! One million simulated subscribers in one process, no sockets: the memory they take
//! and the CPU time of one publish's fan-out to all of them, through the real `Hub` and
//! `MemoryEngine` (gateway defaults) and the real transport framing. Each subscriber is a
//! stream in a stand-in connection slab (`GenSlab<FakeConn, Conn>`, as in
//! `src/hub/tests.rs`): its follower (client id, memberships), its `StreamOut`, and a
//! write queue shaped like the reactor's per-connection buffers (allocated when a part is
//! queued, freed once "written"). It subscribes as `handlers/stream.rs` does: `open`,
//! `read`, `attach`, `register` (no hello, no timer, no socket, no `Conn`).
//!
//! Reported per variant (each in a fresh child process, so one variant's freed memory is
//! not the next one's baseline): RSS growth per subscriber after building them (VmRSS),
//! the slowest single subscribe (hash-table growth), and, as medians of a few publishes,
//! the thread CPU time of `Hub::fan_out` alone and, as the reactor's `deliver` does one
//! message at a time, of `fan_out` + `StreamOut::message` + queueing, then of freeing
//! each queue in delivery order (a write that completed), with the RSS peak of a fan-out. Run: `cargo bench --bench sim` (optional name filters after `--`;
//! `COMET_SIM_N`, `COMET_SIM_REPS` override 1,000,000 subscribers and 5 publishes).

use std::collections::VecDeque;
use std::hint::black_box;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use comet_gateway::clock::Now;
use comet_gateway::engine::{self, Engine, EngineEvent, MemoryEngine};
use comet_gateway::handle::{GenSlab, Key};
use comet_gateway::hub::{self, Delivery, Follower, Followers, Hub, Mode, Sub, Subs};
use comet_gateway::server::Conn;
use comet_gateway::subscription::ClientId;
use comet_gateway::transport::{Format, StreamOut};
use comet_gateway::Config;
use measure::{ms, peak_kib, report, reset_peak, rss_kib, timed, Cost};

mod measure;

const PAYLOAD: &str = "t=1795836729771905;hello everyone, this is one message";

/// One simulated layout: `groups` channels share the subscribers round-robin
/// (subscriber `i` follows `c{i % groups}`, and `d{i % groups}` too when `two`); one
/// publish names every `c` channel, so every subscriber gets one message.
struct Variant {
    name: &'static str,
    format: Format,
    groups: usize,
    two: bool,
}

const fn v(name: &'static str, format: Format, groups: usize, two: bool) -> Variant {
    Variant {
        name,
        format,
        groups,
        two,
    }
}

const VARIANTS: [Variant; 5] = [
    v("ndjson, 1 channel", Format::Ndjson, 1, false),
    v("ndjson, 1000 channels", Format::Ndjson, 1000, false),
    v("sse, 1 channel", Format::Sse, 1, false),
    v("sse, 1000 channels", Format::Sse, 1000, false),
    v(
        "sse, 1000 channels, 2 per subscriber",
        Format::Sse,
        1000,
        true,
    ),
];

/// A stream's write queue, the shape (88 bytes) of the reactor's private per-connection
/// buffers: boxed, allocated on the first queued part, dropped once written out.
#[derive(Default)]
struct Io {
    wq: VecDeque<Bytes>,
    pending: usize,
    _rest: [u64; 6],
}

/// A streaming connection without a socket: what the hub and the transport use of it.
struct FakeConn {
    follower: Follower,
    out: StreamOut,
    io: Option<Box<Io>>,
}

struct Conns(GenSlab<FakeConn, Conn>);

impl Followers for Conns {
    fn follower_mut(&mut self, k: Key<Conn>) -> Option<(&mut Follower, Mode)> {
        self.0.get_mut(k).map(|c| (&mut c.follower, Mode::Stream))
    }

    fn poll_auth_expires(&self, _: Key<Conn>) -> Option<u64> {
        None
    }
}

/// A client id that looks random (as `ClientId::random` makes), without the syscall.
fn client_id(i: u64) -> ClientId {
    let mix = |mut z: u64| {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let a = mix(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&a.to_le_bytes());
    b[8..].copy_from_slice(&mix(a).to_le_bytes());
    ClientId(b)
}

struct World {
    hub: Hub,
    engine: MemoryEngine,
    conns: Conns,
    now: Now,
}

/// Subscribes `n` streams as the stream handler does; returns the slowest subscribes
/// (ns, subscriber index), slowest first.
fn build(w: &mut World, v: &Variant, n: usize) -> Vec<(u64, usize)> {
    let names: Vec<(String, String)> = (0..v.groups)
        .map(|g| (format!("c{g}"), format!("d{g}")))
        .collect();
    let mut slowest = vec![(0u64, 0usize); 3];
    for i in 0..n {
        let t = Instant::now();
        let (c, d) = &names[i % v.groups];
        let wanted: Vec<&str> = if v.two { vec![c, d] } else { vec![c] };
        let keys = w.hub.open(&mut w.engine, &wanted, w.now);
        let mut subs = Vec::with_capacity(keys.len());
        for &ch in &keys {
            if let Some(read) = w
                .hub
                .read(&mut w.engine, ch, None, w.now)
                .and_then(engine::Reply::now)
            {
                subs.push(Sub::detached(ch, read.start.seq));
            }
        }
        let client = client_id(i as u64);
        let out = StreamOut::new(v.format, false, "".into());
        let follower = Follower {
            client,
            subs: Subs::from_vec(subs),
        };
        let key = w.conns.0.insert(FakeConn {
            follower,
            out,
            io: None,
        });
        if let Some(c) = w.conns.0.get_mut(key) {
            w.hub.attach(key, c.follower.subs.as_mut_slice());
        }
        w.hub.register(client, key);
        let ns = t.elapsed().as_nanos() as u64;
        if ns > slowest[2].0 {
            slowest[2] = (ns, i);
            slowest.sort_unstable_by(|a, b| b.cmp(a));
        }
    }
    slowest
}

/// One publish naming every `c` channel; its messages, as the engine reports them.
fn publish(w: &mut World, v: &Variant) -> Vec<EngineEvent> {
    let names: Vec<String> = (0..v.groups).map(|g| format!("c{g}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    w.engine.publish(&names, PAYLOAD, w.now).expect("publish");
    let mut events = Vec::new();
    w.engine.drain_events(&mut events);
    events
}

/// The hub's fan-out alone; returns the deliveries.
fn fan_out_only(w: &mut World, events: &[EngineEvent], out: &mut Vec<Delivery>) -> usize {
    let mut n = 0;
    for ev in events {
        let EngineEvent::Message { channel, msg } = ev else {
            continue;
        };
        w.hub.fan_out(channel, msg, &mut w.conns, out);
        n += out.len();
    }
    n
}

/// The reactor's `deliver` (`server/fanout.rs`), one message at a time: the hub's
/// fan-out and each stream's framing queued on it (`queue_message`), timed as one
/// stage; then, in delivery order, each queue freed as a flush that wrote it all would
/// (and the list dropped past 64 KiB, as the reactor does), timed as another.
fn deliver(w: &mut World, events: &[EngineEvent], out: &mut Vec<Delivery>) -> [(usize, Cost); 2] {
    let mut stages = [(0, Cost::default()); 2];
    for ev in events {
        let EngineEvent::Message { channel, msg } = ev else {
            continue;
        };
        let (bytes, cost) = timed(|| {
            let mut bytes = 0;
            w.hub.fan_out(channel, msg, &mut w.conns, out);
            let hub = &w.hub;
            for d in out.iter() {
                let Some(c) = w.conns.0.get_mut(d.conn) else {
                    continue;
                };
                let subs = c.follower.subs.as_slice();
                let mut parts = Vec::with_capacity(3);
                let cursor = || hub.cursor(subs);
                c.out
                    .message(msg, channel, subs.len() == 1, cursor, &mut parts);
                let io = c.io.get_or_insert_with(Box::default);
                for p in parts {
                    if !p.is_empty() {
                        io.pending += p.len();
                        bytes += p.len();
                        io.wq.push_back(p);
                    }
                }
            }
            bytes
        });
        stages[0].0 += bytes;
        stages[0].1.add(cost);
        let (bytes, cost) = timed(|| {
            let mut bytes = 0;
            for d in out.iter() {
                if let Some(io) = w.conns.0.get_mut(d.conn).and_then(|c| c.io.take()) {
                    bytes += io.pending;
                }
            }
            if out.capacity() * std::mem::size_of::<Delivery>() >= 64 * 1024 {
                *out = Vec::new();
            }
            bytes
        });
        stages[1].0 += bytes;
        stages[1].1.add(cost);
    }
    stages
}

fn run(v: &Variant, n: usize, reps: usize) {
    let config = Config::default();
    let unix_us = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    let mut w = World {
        hub: Hub::new(hub::Limits::of(&config)),
        engine: MemoryEngine::new(engine::Limits::of(&config)),
        conns: Conns(GenSlab::default()),
        now: Now::at(1, unix_us as u64),
    };
    reset_peak();
    let before = rss_kib();
    let (slowest, built) = timed(|| build(&mut w, v, n));
    let (after, peak) = (rss_kib(), peak_kib());
    let grown = after.saturating_sub(before);
    let slow: Vec<String> = slowest
        .iter()
        .map(|(ns, i)| format!("{} ms at #{i}", ms(*ns)))
        .collect();
    println!(
        "{} ({n} subscribers, {} channels):",
        v.name,
        w.engine.stats().channels
    );
    println!(
        "  build: {} ms CPU; RSS {before} -> {after} KiB, +{grown} KiB = {:.1} B/subscriber \
         (peak +{} KiB); slowest subscribes {}",
        ms(built.cpu),
        grown as f64 * 1024.0 / n as f64,
        peak.saturating_sub(before),
        slow.join(", ")
    );
    let mut out = Vec::new();
    let (mut only, mut queued, mut freed) = (Vec::new(), Vec::new(), Vec::new());
    let (mut bytes, mut queue_peak, mut left) = (0, 0, 0);
    for _ in 0..reps {
        let events = publish(&mut w, v);
        let (d, cost) = timed(|| fan_out_only(&mut w, &events, &mut out));
        assert_eq!(d, n, "every subscriber gets the message");
        only.push(cost);
        if out.capacity() * std::mem::size_of::<Delivery>() >= 64 * 1024 {
            out = Vec::new();
        }
        let events = publish(&mut w, v);
        reset_peak();
        let base = rss_kib();
        let [(b, q), (r, f)] = deliver(&mut w, &events, &mut out);
        assert_eq!(b, r, "every queued byte is written out");
        queued.push(q);
        freed.push(f);
        bytes = b;
        queue_peak = queue_peak.max(peak_kib().saturating_sub(base));
        left = rss_kib().saturating_sub(after);
        black_box(&events);
    }
    report("hub fan_out alone", &only, n);
    report("fan_out + StreamOut::message + queue", &queued, n);
    report("freeing each queue (write done)", &freed, n);
    println!(
        "  {:.1} bytes queued per delivery; a fan-out's RSS peak +{queue_peak} KiB \
         ({:.0} B/delivery); RSS after the last, over built: +{left} KiB",
        bytes as f64 / n as f64,
        queue_peak as f64 * 1024.0 / n as f64
    );
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env_usize("COMET_SIM_N", 1_000_000);
    let reps = env_usize("COMET_SIM_REPS", 5).max(1);
    if let Ok(i) = std::env::var("COMET_SIM_VARIANT") {
        let v = &VARIANTS[i.parse::<usize>().expect("variant index")];
        return run(v, n, reps);
    }
    // `cargo bench` passes `--bench`; other arguments filter variants by name.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    println!(
        "sizes: FakeConn {} B (real Conn {} B; both + ~8 B of slab slot), Follower {} B, \
         StreamOut {} B, Io {} B, Delivery {} B",
        std::mem::size_of::<FakeConn>(),
        std::mem::size_of::<Conn>(),
        std::mem::size_of::<Follower>(),
        std::mem::size_of::<StreamOut>(),
        std::mem::size_of::<Io>(),
        std::mem::size_of::<Delivery>()
    );
    let exe = std::env::current_exe().expect("own path");
    for (i, v) in VARIANTS.iter().enumerate() {
        if !filters.is_empty() && !filters.iter().any(|f| v.name.contains(f.as_str())) {
            continue;
        }
        let status = std::process::Command::new(&exe)
            .env("COMET_SIM_VARIANT", i.to_string())
            .status()
            .expect("run a variant");
        assert!(status.success(), "variant {} failed", v.name);
    }
}
