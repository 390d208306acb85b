use super::*;

use crate::engine::{Engine, MemoryEngine};
use crate::hub::Limits;

const T0: u64 = 5_000_000;

fn hub_and_engine() -> (Hub, MemoryEngine, Now) {
    let hub = Hub::new(Limits {
        max_channels: 8,
        max_sessions: 100,
        session_timeout_ms: 1000,
    });
    let engine = MemoryEngine::new(crate::engine::Limits {
        buffer: 2,
        message_ttl_ms: 0,
        channel_ttl_ms: 60_000,
        max_channels: 100,
    });
    (hub, engine, Now::at(0, T0))
}

fn want(name: &str, seq: Option<u64>) -> Wanted {
    Wanted {
        channel: name.into(),
        seq,
    }
}

#[test]
fn a_request_merged_with_its_session_wins_on_cursors_and_adds_channels() {
    let (mut hub, mut engine, now) = hub_and_engine();
    let keys = hub.open(&mut engine, &["a", "b"], now);
    let held = vec![
        SessionSub {
            channel: keys[0],
            name: "a".into(),
            next: Some(5),
        },
        SessionSub {
            channel: keys[1],
            name: "b".into(),
            next: Some(6),
        },
    ];
    let merged = merge_poll(&held, vec![want("b", Some(9)), want("c", None)]);
    let expect = |name: &str, held, seq, named| PollChannel {
        name: name.into(),
        held,
        seq,
        named,
    };
    assert_eq!(
        merged,
        vec![
            expect("a", Some(keys[0]), Some(5), false),
            expect("b", Some(keys[1]), Some(9), true),
            expect("c", None, None, true),
        ]
    );
    // A request without a cursor keeps the session's.
    let merged = merge_poll(&held, vec![want("a", None)]);
    assert_eq!(merged[0], expect("a", Some(keys[0]), Some(5), true));
    assert!(merge_poll(&[], Vec::new()).is_empty());
}

#[test]
fn a_poll_reads_what_is_due_and_is_told_about_channels_deleted_since() {
    let (mut hub, mut engine, now) = hub_and_engine();
    // A channel the session held, deleted since: its record is gone, its key stale.
    let gone = hub.open(&mut engine, &["gone"], now)[0];
    hub.release_unused(&mut engine, [gone], now);
    assert_eq!(hub.name(gone), None);
    let seqs = engine.publish(&["news"], "1", now).unwrap();
    engine.publish(&["news"], "2", now).unwrap();
    engine.publish(&["news"], "3", now).unwrap();
    let first = seqs[0];
    let wanted = vec![
        PollChannel {
            name: "gone".into(),
            held: Some(gone),
            seq: Some(1),
            named: false,
        },
        PollChannel {
            name: "news".into(),
            held: None,
            seq: Some(first),
            named: true,
        },
        PollChannel {
            name: "quiet".into(),
            held: None,
            seq: None,
            named: true,
        },
    ];
    let read = hub.poll_read(&mut engine, wanted, now);
    let text: Vec<String> = read
        .events
        .iter()
        .map(|e| String::from_utf8(e.to_vec()).unwrap())
        .collect();
    // The buffer holds 2: the first message is lost.
    assert_eq!(
        text,
        vec![
            String::from_utf8(event::close("gone").to_vec()).unwrap(),
            String::from_utf8(event::lost("news", first, first).to_vec()).unwrap(),
            String::from_utf8(event::data("news", first + 1, "2").to_vec()).unwrap(),
            String::from_utf8(event::data("news", first + 2, "3").to_vec()).unwrap(),
        ]
    );
    // Both live channels are followed from their heads, not yet attached.
    let heads: Vec<(Option<&str>, u64, u32)> = read
        .subs
        .iter()
        .map(|s| (hub.name(s.channel).map(|n| &**n), s.next, s.slot))
        .collect();
    let quiet_head = engine.head("quiet").unwrap();
    assert_eq!(
        heads,
        vec![
            (Some("news"), first + 3, Sub::DETACHED),
            (Some("quiet"), quiet_head, Sub::DETACHED),
        ]
    );
    assert_eq!(hub.stats().delivered, 2);
    // Nobody holds them yet: released, the unpublished one goes.
    hub.release_unused(&mut engine, read.keys, now);
    assert_eq!((hub.find("news"), hub.find("quiet")), (None, None));
    assert_eq!(engine.head("quiet"), None);
    assert_eq!(engine.head("news"), Some(first + 3));
}

#[test]
fn a_deleted_channel_the_request_names_again_is_followed_anew() {
    let (mut hub, mut engine, now) = hub_and_engine();
    let old = hub.open(&mut engine, &["x"], now)[0];
    hub.release_unused(&mut engine, [old], now);
    let wanted = vec![PollChannel {
        name: "x".into(),
        held: Some(old),
        seq: None,
        named: true,
    }];
    let read = hub.poll_read(&mut engine, wanted, now);
    assert!(read.events.is_empty(), "no close: the request asked for it");
    assert_eq!(read.subs.len(), 1);
    assert_ne!(read.subs[0].channel, old);
}
