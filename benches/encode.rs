//! Encoding one published message: the JSON event (done once per message), then the
//! per-format stream frame a subscriber receives (ndjson and EventSource frames are made
//! once per message and shared; an iframe chunk wraps the shared JSON per subscriber).

use std::hint::black_box;

use bytes::Bytes;
use comet_gateway::engine::Message;
use comet_gateway::event;
use comet_gateway::transport::{self, Format};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    for size in [64usize, 1024, 16 * 1024] {
        // A realistic payload: text with some characters that need escaping.
        let payload: String = "chat message <b>\"hi\"</b> & more, "
            .chars()
            .cycle()
            .take(size)
            .collect();
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("json_event", size), &payload, |b, p| {
            b.iter(|| event::data(black_box("news"), 1_795_836_729_771_905, p))
        });
        for (name, format) in [
            ("ndjson", Format::Ndjson),
            ("iframe", Format::Iframe),
            ("sse", Format::Sse),
        ] {
            g.bench_with_input(
                BenchmarkId::new(format!("first_{name}_frame"), size),
                &payload,
                |b, p| {
                    let json = event::data("news", 1_795_836_729_771_905, p);
                    b.iter(|| {
                        // A fresh message each time: this is the once-per-message cost.
                        let m = Message::new(1_795_836_729_771_905, 0, json.clone());
                        let mut parts: Vec<Bytes> = Vec::with_capacity(3);
                        transport::stream::message_parts(
                            format,
                            true,
                            &m,
                            "news",
                            true,
                            String::new,
                            "cb",
                            &mut parts,
                        );
                        parts
                    })
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
