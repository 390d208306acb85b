//! Parsing and routing one request: the head (httparse under the gateway's limits), the
//! query string, and the subscribe parameters.

use std::hint::black_box;

use comet_gateway::http::query::Query;
use comet_gateway::http::request::{self, Status};
use comet_gateway::subscription;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const POLL: &[u8] = b"GET /poll?channel=news,chat,sports&seq=1795836729771905,1795836729771999,0&cb=jQuery_123 HTTP/1.1\r\nHost: comet.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36\r\nAccept: */*\r\nAccept-Language: en-US,en;q=0.9\r\nOrigin: https://app.example.com\r\nConnection: keep-alive\r\n\r\n";
const PUB: &[u8] = b"POST /pub?channel=news HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nContent-Type: text/plain\r\nContent-Length: 64\r\n\r\n";

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("http");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse_poll_head", |b| {
        b.iter(|| request::parse(black_box(POLL), 8192))
    });
    g.bench_function("parse_pub_head", |b| {
        b.iter(|| request::parse(black_box(PUB), 8192))
    });
    g.bench_function("poll_head_query_and_params", |b| {
        b.iter(|| {
            let Ok(Status::Complete(head)) = request::parse(black_box(POLL), 8192) else {
                panic!("complete head expected")
            };
            let q = Query::parse(&head.query).unwrap();
            let wanted = subscription::parse_channels(&q, 16).unwrap();
            let cb = subscription::parse_callback(&q).unwrap();
            (wanted, cb)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
