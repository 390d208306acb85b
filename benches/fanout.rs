//! Fan-out of one message to 100,000 subscribers in memory, no sockets: the user-space
//! share of the work (take the message's shared encoding, queue it on every subscriber)
//! that the gateway does before its `writev` calls. Each simulated subscriber is a write
//! queue and a cursor, as in the gateway; the resident memory of these simulated records
//! is printed once. The real per-subscriber memory of the gateway (its connection entry,
//! timer, channel slot, client id) is measured by `tests/memory.rs` and in BENCHMARKS.md.

use std::collections::VecDeque;
use std::hint::black_box;

use bytes::Bytes;
use comet_gateway::engine::Log;
use comet_gateway::transport::{self, Format};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const SUBSCRIBERS: usize = 100_000;

struct SimSub {
    queue: VecDeque<Bytes>,
    next: u64,
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn subscribers() -> Vec<SimSub> {
    (0..SUBSCRIBERS)
        .map(|_| SimSub {
            queue: VecDeque::new(),
            next: 1,
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let before = rss_kib();
    let subs = subscribers();
    let after = rss_kib();
    eprintln!(
        "fanout: {} simulated subscribers take {} KiB of RSS ({:.0} bytes each)",
        SUBSCRIBERS,
        after.saturating_sub(before),
        (after.saturating_sub(before) * 1024) as f64 / SUBSCRIBERS as f64
    );
    drop(subs);
    let mut g = c.benchmark_group("fanout_100k");
    g.throughput(Throughput::Elements(SUBSCRIBERS as u64));
    g.sample_size(20);
    for (name, format) in [
        ("ndjson", Format::Ndjson),
        ("sse", Format::Sse),
        ("iframe", Format::Iframe),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let mut log = Log::new("news".into(), 1);
                    let (msg, _) = log.publish(
                        "t=1795836729771905;hello everyone, this is one message",
                        0,
                        100,
                    );
                    (msg, subscribers())
                },
                |(msg, mut subs)| {
                    let msg = &*msg;
                    for s in subs.iter_mut() {
                        let mut parts = Vec::with_capacity(3);
                        transport::stream::message_parts(
                            format,
                            true,
                            msg,
                            "news",
                            true,
                            String::new,
                            "cb",
                            &mut parts,
                        );
                        s.next = msg.seq + 1;
                        s.queue.extend(parts);
                    }
                    black_box(subs)
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
