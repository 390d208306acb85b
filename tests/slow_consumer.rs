//! A subscriber that never reads is closed once its unsent output passes
//! `--max-pending-bytes`, and every subscriber that reads receives every message.

mod util;

use std::sync::mpsc;

use util::{Conn, StreamClient, TestServer, Transport};

const MESSAGES: usize = 300;
const SIZE: usize = 32 * 1024;
/// Messages published before waiting for the readers: 128 KiB, under the 256 KiB limit.
const ROUND: usize = 4;

#[test]
fn a_reader_that_never_reads_is_dropped_and_the_others_get_everything() {
    let s = TestServer::start(|_| {});
    let mut stalled = StreamClient::open(s.public, Transport::Stream, "channel=slow", "");
    assert_eq!(stalled.next_event().unwrap()["type"], "hello");
    // Readers report each message they get, so the publisher can go at their pace: a
    // reader that fell behind would rightly be dropped too.
    let (progress_tx, progress_rx) = mpsc::channel::<usize>();
    let public = s.public;
    let readers: Vec<_> = [Transport::Stream, Transport::Iframe, Transport::Events]
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let progress = progress_tx.clone();
            std::thread::spawn(move || {
                let mut c = StreamClient::open(public, t, "channel=slow", "");
                assert_eq!(c.next_event().unwrap()["type"], "hello");
                progress.send(i).unwrap();
                let mut seqs = Vec::new();
                for _ in 0..MESSAGES {
                    seqs.push(c.data(1)[0]["seq"].as_u64().unwrap());
                    progress.send(i).unwrap();
                }
                // Returned so it stays connected until the end of the test.
                (seqs, c)
            })
        })
        .collect();
    let mut seen = [0usize; 3];
    let mut wait_for = |n: usize| {
        while seen.iter().any(|&k| k < n) {
            let i = progress_rx
                .recv_timeout(util::WAIT)
                .expect("reader progress");
            seen[i] += 1;
        }
    };
    wait_for(1);
    s.wait_subscribers("slow", 4);
    let payload = "x".repeat(SIZE);
    let mut admin = Conn::open(s.admin);
    let mut published = Vec::new();
    for round in 0..MESSAGES / ROUND {
        for _ in 0..ROUND {
            admin.send(&format!(
                "POST /pub?channel=slow HTTP/1.1\r\nContent-Length: {SIZE}\r\n\r\n{payload}"
            ));
            published.push(admin.response().json()["seq"].as_u64().unwrap());
        }
        // Hello plus every message so far.
        wait_for(1 + (round + 1) * ROUND);
    }
    let mut kept = Vec::new();
    for r in readers {
        let (seqs, client) = r.join().expect("reader");
        assert_eq!(seqs, published, "a reader missed or reordered");
        kept.push(client);
    }
    // The stalled subscriber was dropped; the readers are still subscribed.
    s.wait_subscribers("slow", 3);
    // What it did receive is an in-order prefix, then the stream ends.
    let mut got = Vec::new();
    while let Some(e) = stalled.next_event() {
        match e["type"].as_str() {
            Some("data") => got.push(e["seq"].as_u64().unwrap()),
            Some("error") => assert!(e["message"].as_str().unwrap().contains("slow")),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got.len() < MESSAGES, "the stalled reader was never dropped");
    assert_eq!(got, published[..got.len()]);
}
