//! Thousands of parked long-polls on one channel, one publish: every poll receives that
//! message exactly once. Its own test binary, so its 10,000 descriptors (both ends of
//! 5,000 connections) never share the process limit with other tests.

mod util;

use util::{send_poll, Conn, TestServer};

const POLLS: usize = 5_000;

#[test]
fn five_thousand_parked_polls_each_get_one_publish_exactly_once() {
    let s = TestServer::start(|_| {});
    let mut conns: Vec<Conn> = (0..POLLS).map(|_| Conn::open(s.public)).collect();
    for c in &mut conns {
        send_poll(c, "channel=crowd");
    }
    s.wait_subscribers("crowd", POLLS as u64);
    let seq = s.publish_seq("crowd", "to everyone");
    for (i, c) in conns.iter_mut().enumerate() {
        let r = c.response();
        assert_eq!(r.status, 200, "poll {i}");
        let events = r.events();
        assert_eq!(events.len(), 1, "poll {i} got {events:?}");
        assert_eq!(events[0]["seq"], seq, "poll {i}");
        assert_eq!(events[0]["data"], "to everyone", "poll {i}");
    }
    // Every answer was written in the publish's reactor turn; nothing else may follow.
    s.wait_subscribers("crowd", 0);
    s.publish_seq("crowd", "nobody is parked for this one");
    for (i, c) in conns.iter_mut().enumerate() {
        assert!(c.nothing_pending(), "poll {i} got more than one answer");
    }
}
