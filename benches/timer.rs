//! The timer wheel at a million pending timers: insert, cancel, and expire. Most network
//! timeouts are cancelled before they fire (a long-poll answered by a publish), so cancel
//! matters as much as insert.

use std::hint::black_box;

use comet_gateway::timer::TimerWheel;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const N: u64 = 1_000_000;

/// Deadlines spread like poll timeouts and keep-alive timers: 1 ms to ~60 s ahead.
fn deadline(i: u64) -> u64 {
    1 + (i.wrapping_mul(2654435761) % 60_000)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("timer_wheel_1M");
    g.throughput(Throughput::Elements(N));
    g.sample_size(10);
    g.bench_function("insert", |b| {
        b.iter_batched(
            || TimerWheel::<u64>::new(0),
            |mut w| {
                for i in 0..N {
                    w.insert(deadline(i), i);
                }
                w
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("cancel", |b| {
        b.iter_batched(
            || {
                let mut w = TimerWheel::<u64>::new(0);
                let keys: Vec<_> = (0..N).map(|i| w.insert(deadline(i), i)).collect();
                (w, keys)
            },
            |(mut w, keys)| {
                for k in keys {
                    black_box(w.cancel(k));
                }
                w
            },
            BatchSize::PerIteration,
        )
    });
    g.bench_function("expire_all_1ms_steps", |b| {
        b.iter_batched(
            || {
                let mut w = TimerWheel::<u64>::new(0);
                for i in 0..N {
                    w.insert(deadline(i), i);
                }
                w
            },
            |mut w| {
                let mut out = Vec::with_capacity(1024);
                let mut now = 0;
                while !w.is_empty() {
                    now += 1;
                    w.advance(now, &mut out);
                    black_box(out.len());
                    out.clear();
                }
                w
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
