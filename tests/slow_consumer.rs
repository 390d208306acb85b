//! A subscriber that never reads is closed once its unsent output passes
//! `--max-pending-bytes`, and every subscriber that reads receives every message.

mod util;

use std::sync::mpsc;

use util::{Conn, StreamClient, TestServer, Transport};

const MESSAGES: usize = 300;
const SIZE: usize = 32 * 1024;

#[test]
fn a_reader_that_never_reads_is_dropped_and_the_others_get_everything() {
    let s = TestServer::start(|_| {});
    let mut stalled = StreamClient::open(s.public, Transport::Stream, "channel=slow", "");
    assert_eq!(stalled.next_event().unwrap()["type"], "hello");
    let (ready_tx, ready_rx) = mpsc::channel();
    let public = s.public;
    let readers: Vec<_> = [Transport::Stream, Transport::Iframe, Transport::Events]
        .into_iter()
        .map(|t| {
            let ready = ready_tx.clone();
            std::thread::spawn(move || {
                let mut c = StreamClient::open(public, t, "channel=slow", "");
                assert_eq!(c.next_event().unwrap()["type"], "hello");
                ready.send(()).unwrap();
                let seqs: Vec<u64> = c
                    .data(MESSAGES)
                    .iter()
                    .map(|e| e["seq"].as_u64().unwrap())
                    .collect();
                // Returned so it stays connected until the end of the test.
                (seqs, c)
            })
        })
        .collect();
    for _ in 0..3 {
        ready_rx.recv_timeout(util::WAIT).expect("reader ready");
    }
    s.wait_subscribers("slow", 4);
    let payload = "x".repeat(SIZE);
    let mut admin = Conn::open(s.admin);
    let mut published = Vec::new();
    for _ in 0..MESSAGES {
        admin.send(&format!(
            "POST /pub?channel=slow HTTP/1.1\r\nContent-Length: {SIZE}\r\n\r\n{payload}"
        ));
        published.push(admin.response().json()["seq"].as_u64().unwrap());
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
