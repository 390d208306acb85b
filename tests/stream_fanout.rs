//! Five thousand open streams, mixing the three transports, and a burst of messages:
//! every stream receives every message exactly once, in order. Its own test binary for
//! its 10,000 descriptors.

mod util;

use util::{Conn, StreamClient, TestServer, TRANSPORTS};

const STREAMS: usize = 5_000;
const BURST: usize = 20;

#[test]
fn five_thousand_streams_get_a_burst_exactly_once_in_order() {
    let s = TestServer::start(|_| {});
    let mut streams: Vec<StreamClient> = (0..STREAMS)
        .map(|i| StreamClient::open(s.public, TRANSPORTS[i % 3], "channel=burst", ""))
        .collect();
    for c in &mut streams {
        assert_eq!(c.next_event().unwrap()["type"], "hello");
    }
    s.wait_subscribers("burst", STREAMS as u64);
    let mut admin = Conn::open(s.admin);
    let mut published = Vec::new();
    for i in 0..BURST {
        admin.send(&format!(
            "POST /pub?channel=burst HTTP/1.1\r\nContent-Length: {}\r\n\r\nmessage {i:02}",
            format!("message {i:02}").len()
        ));
        published.push(admin.response().json()["seq"].as_u64().unwrap());
    }
    for (i, c) in streams.iter_mut().enumerate() {
        let got: Vec<u64> = c
            .data(BURST)
            .iter()
            .map(|e| e["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(got, published, "stream {i} ({:?})", c.transport);
        assert!(c.conn.nothing_pending(), "stream {i} got more");
    }
}
