use super::*;

use crate::engine::Notice;
use crate::event;

const T0: u64 = 1_000_000;

fn engine(
    buffer: usize,
    message_ttl_ms: u64,
    channel_ttl_ms: u64,
    max_channels: u64,
) -> MemoryEngine {
    MemoryEngine::new(Limits {
        buffer,
        message_ttl_ms,
        channel_ttl_ms,
        max_channels,
    })
}

/// A clock that reads `T0` on the wall whatever the reactor time.
fn at(ms: u64) -> Now {
    Now::at(ms, T0)
}

fn publish(e: &mut MemoryEngine, name: &str, n: usize, now: Now) -> Vec<u64> {
    (0..n)
        .map(|i| e.publish(&[name], &format!("m{i}"), now).unwrap()[0])
        .collect()
}

fn seqs(r: &Read) -> Vec<u64> {
    r.messages.iter().map(|m| m.seq).collect()
}

fn drained(e: &mut MemoryEngine) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    e.drain_events(&mut out);
    out.into_iter()
        .map(|ev| match ev {
            EngineEvent::Message { channel, msg } => (channel.to_string(), msg.seq),
            other => panic!("the memory engine answers at once: {other:?}"),
        })
        .collect()
}

#[test]
fn a_channels_first_seq_is_the_wall_clock_in_microseconds() {
    let mut e = engine(8, 0, 1000, 10);
    assert_eq!(
        e.publish(&["a"], "x", Now::at(0, 5_000_000)),
        Ok(vec![5_000_000])
    );
    assert_eq!(
        e.publish(&["a"], "y", Now::at(1, 9_000_000)),
        Ok(vec![5_000_001])
    );
    assert_eq!(e.head("a"), Some(5_000_002));
    // A watched channel fixes its first seq when it is created, before any message.
    assert!(!e.watch("b", Now::at(2, 7_000_000)));
    assert_eq!(e.head("b"), Some(7_000_000));
    assert_eq!(
        e.publish(&["b"], "z", Now::at(3, 8_000_000)),
        Ok(vec![7_000_000])
    );
    // A wall clock at zero still gives seq 1: 0 is the "everything buffered" cursor.
    assert_eq!(e.publish(&["c"], "x", Now::at(4, 0)), Ok(vec![1]));
}

#[test]
fn a_channel_created_again_never_reuses_a_seq_of_its_earlier_life() {
    let mut e = engine(8, 0, 1000, 10);
    assert_eq!(publish(&mut e, "a", 3, at(0)), vec![T0, T0 + 1, T0 + 2]);
    assert!(e.delete("a"));
    assert!(!e.delete("a"), "nothing left to delete");
    assert_eq!(e.head("a"), None);
    // Same clock reading: the new life starts past the old head, so even the old head
    // (a cursor that had everything) is from an earlier life.
    let first = e.publish(&["a"], "again", at(1)).unwrap()[0];
    assert_eq!(first, T0 + 4);
    let r = e.read("a", Some(T0 + 3), at(1)).unwrap();
    assert_eq!(r.start.notice, Some(Notice::Reset { seq: T0 + 4 }));
    assert_eq!(r.notice, Some(event::reset("a", T0 + 4)));
    assert_eq!(seqs(&r), vec![T0 + 4]);

    // The same after an expiry (channel ttl 1000 ms, idle since 1).
    e.advance(at(5000));
    assert_eq!(e.head("a"), None, "expired");
    assert_eq!(e.publish(&["a"], "third", at(5001)), Ok(vec![T0 + 6]));
    // An unpublished channel that goes at unwatch also moves the floor.
    assert!(!e.watch("b", at(5002)));
    e.unwatch("b", at(5002));
    assert!(!e.watch("b", at(5003)));
    assert_eq!(e.head("b"), Some(T0 + 7));
}

#[test]
fn a_cursor_resolves_to_catch_up_lost_or_reset() {
    let mut e = engine(3, 0, 1000, 10);
    assert_eq!(e.read("a", None, at(0)).map(|r| r.head), None, "no log");
    publish(&mut e, "a", 5, at(0)); // T0..=T0+4, buffer holds T0+2..=T0+4
    let read = |e: &mut MemoryEngine, c| e.read("a", c, at(0)).unwrap();

    let r = read(&mut e, Some(T0 + 3));
    assert_eq!(
        (r.notice.clone(), seqs(&r), r.head),
        (None, vec![T0 + 3, T0 + 4], T0 + 5)
    );
    let r = read(&mut e, None);
    assert_eq!((r.start.seq, seqs(&r), r.head), (T0 + 5, vec![], T0 + 5));
    let r = read(&mut e, Some(0));
    assert_eq!(
        (r.notice.clone(), seqs(&r)),
        (None, vec![T0 + 2, T0 + 3, T0 + 4])
    );
    let r = read(&mut e, Some(T0 + 5));
    assert_eq!((r.notice.clone(), seqs(&r)), (None, vec![]));

    let r = read(&mut e, Some(T0 + 1));
    assert_eq!(
        r.start.notice,
        Some(Notice::Lost {
            from: T0 + 1,
            to: T0 + 1
        })
    );
    assert_eq!(r.notice, Some(event::lost("a", T0 + 1, T0 + 1)));
    assert_eq!(seqs(&r), vec![T0 + 2, T0 + 3, T0 + 4]);
    let r = read(&mut e, Some(T0));
    assert_eq!(r.notice, Some(event::lost("a", T0, T0 + 1)));

    // Before the first seq of this life: reset to the oldest buffered.
    let r = read(&mut e, Some(T0 - 1));
    assert_eq!(r.notice, Some(event::reset("a", T0 + 2)));
    assert_eq!(
        (r.start.seq, seqs(&r)),
        (T0 + 2, vec![T0 + 2, T0 + 3, T0 + 4])
    );
    // Ahead of the channel: reset to the head, nothing due.
    let r = read(&mut e, Some(T0 + 99));
    assert_eq!(r.notice, Some(event::reset("a", T0 + 5)));
    assert_eq!((r.start.seq, seqs(&r)), (T0 + 5, vec![]));

    assert_eq!(e.stats().evicted, 2);
    let info = e.info("a", at(0)).unwrap();
    assert_eq!(
        (
            info.first_seq,
            info.oldest_seq,
            info.next_seq,
            info.buffered
        ),
        (T0, T0 + 2, T0 + 5, 3)
    );
}

#[test]
fn only_published_channels_count_against_max_channels() {
    let mut e = engine(8, 0, 1000, 2);
    for name in ["w1", "w2", "w3"] {
        assert!(!e.watch(name, at(0)));
    }
    assert_eq!(e.publish(&["p"], "x", at(0)), Ok(vec![T0]));
    assert_eq!(
        e.stats(),
        EngineStats {
            channels: 4,
            published_channels: 1,
            published: 1,
            evicted: 0
        }
    );
    drained(&mut e);
    // w1 and w2 would both become published: 3 > 2, so nothing is published at all.
    assert_eq!(
        e.publish(&["p", "w1", "w2"], "y", at(1)),
        Err(EngineError::TooManyChannels)
    );
    assert_eq!(
        e.publish(&["w1", "new"], "y", at(1)),
        Err(EngineError::TooManyChannels)
    );
    assert_eq!(
        (e.head("p"), e.head("w1"), e.head("new")),
        (Some(T0 + 1), Some(T0), None)
    );
    assert!(drained(&mut e).is_empty());
    assert_eq!(e.stats().published, 1);
    // Republishing to a channel already counted is fine; one more fits exactly.
    assert_eq!(e.publish(&["p", "w1"], "z", at(2)), Ok(vec![T0 + 1, T0]));
    assert_eq!(
        e.publish(&["w2"], "z", at(2)),
        Err(EngineError::TooManyChannels)
    );
    assert_eq!(e.stats().published_channels, 2);
    // A deleted channel frees its place.
    assert!(e.delete("p"));
    assert_eq!(e.publish(&["w2"], "z", at(3)), Ok(vec![T0]));
}

#[test]
fn an_unpublished_channel_goes_at_unwatch_and_a_published_one_expires_when_idle() {
    let mut e = engine(8, 0, 1000, 10);
    assert!(!e.watch("quiet", at(0)));
    assert_eq!(e.stats().channels, 1);
    e.unwatch("quiet", at(10));
    assert_eq!((e.head("quiet"), e.stats().channels), (None, 0));
    assert_eq!(
        e.next_deadline(),
        None,
        "no timer for an unpublished channel"
    );

    // Published at 0 (ttl 1000), watched from 100: kept however long it is watched,
    // then idle from its unwatch at 5500.
    let s = e.publish(&["news"], "x", at(0)).unwrap()[0];
    assert_eq!(s, T0 + 1, "past the seqs \"quiet\" could have had");
    assert!(e.watch("news", at(100)), "watch says it was published");
    e.advance(at(5000));
    assert_eq!(e.head("news"), Some(s + 1));
    e.unwatch("news", at(5500));
    assert!(e.next_deadline().is_some_and(|d| (6000..6500).contains(&d)));
    e.advance(at(6499));
    assert_eq!(e.head("news"), Some(s + 1), "idle for less than the ttl");
    assert!(e.next_deadline().is_some_and(|d| d >= 6500));
    e.advance(at(7000));
    assert_eq!(e.head("news"), None, "idle for the ttl");
    assert_eq!(e.stats().channels, 0);

    // A publish restarts the idle clock: published at 0 and 800, idle from 800.
    let s = e.publish(&["b"], "x", at(7000)).unwrap()[0];
    e.publish(&["b"], "y", at(7800)).unwrap();
    e.advance(at(8100));
    e.advance(at(8799));
    assert_eq!(e.head("b"), Some(s + 2), "published 999 ms ago");
    e.advance(at(9000));
    assert_eq!(e.head("b"), None);
    assert_eq!(e.next_deadline(), None);
}

#[test]
fn message_ttl_drops_old_messages_at_read() {
    let mut e = engine(8, 1000, 60_000, 10);
    e.publish(&["a"], "old", at(0)).unwrap();
    e.publish(&["a"], "new", at(500)).unwrap();
    let r = e.read("a", Some(T0), at(999)).unwrap();
    assert_eq!((r.notice.clone(), seqs(&r)), (None, vec![T0, T0 + 1]));
    let r = e.read("a", Some(T0), at(1000)).unwrap();
    assert_eq!(r.notice, Some(event::lost("a", T0, T0)));
    assert_eq!(seqs(&r), vec![T0 + 1]);
    assert_eq!(e.stats().evicted, 1);
    let r = e.read("a", Some(0), at(1500)).unwrap();
    assert_eq!((r.start.seq, seqs(&r), r.head), (T0 + 2, vec![], T0 + 2));
    let info = e.info("a", at(1500)).unwrap();
    assert_eq!(
        (info.buffered, info.oldest_seq, info.next_seq),
        (0, T0 + 2, T0 + 2)
    );
    assert_eq!(e.stats().evicted, 2);
}

#[test]
fn every_published_message_comes_out_of_drain_events_once_in_order() {
    let mut e = engine(8, 0, 1000, 10);
    assert!(!e.watch("b", Now::at(0, 2000)));
    e.publish(&["a", "b"], "one", Now::at(0, 1000)).unwrap();
    e.publish(&["b"], "two", Now::at(1, 3000)).unwrap();
    let mut out = Vec::new();
    e.drain_events(&mut out);
    let got: Vec<_> = out
        .iter()
        .map(|ev| match ev {
            EngineEvent::Message { channel, msg } => {
                (channel.to_string(), msg.seq, msg.json.clone())
            }
            other => panic!("the memory engine answers at once: {other:?}"),
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("a".into(), 1000, event::data("a", 1000, "one")),
            ("b".into(), 2000, event::data("b", 2000, "one")),
            ("b".into(), 2001, event::data("b", 2001, "two")),
        ]
    );
    assert!(drained(&mut e).is_empty(), "drained once");
}

#[test]
fn list_gives_published_channels_by_prefix_in_name_order_up_to_a_limit() {
    let mut e = engine(2, 0, 1000, 10);
    for name in ["news.c", "other", "news.a", "new", "news.b"] {
        e.publish(&[name], "x", at(0)).unwrap();
    }
    e.publish(&["news.b"], "y", at(0)).unwrap();
    e.publish(&["news.b"], "z", at(0)).unwrap();
    assert!(
        !e.watch("news.watched", at(0)),
        "watched, not published: not listed"
    );
    let names = |v: Vec<LogInfo>| v.iter().map(|i| i.name.to_string()).collect::<Vec<_>>();
    assert_eq!(
        names(e.list("news.", 10)),
        vec!["news.a", "news.b", "news.c"]
    );
    assert_eq!(names(e.list("news.", 2)), vec!["news.a", "news.b"]);
    assert_eq!(
        names(e.list("", 100)),
        vec!["new", "news.a", "news.b", "news.c", "other"]
    );
    assert_eq!(names(e.list("news.d", 10)), Vec::<String>::new());
    assert_eq!(names(e.list("x", 10)), Vec::<String>::new());
    assert_eq!(
        e.list("news.b", 1),
        vec![LogInfo {
            name: "news.b".into(),
            first_seq: T0,
            oldest_seq: T0 + 1,
            next_seq: T0 + 3,
            buffered: 2
        }]
    );
}
