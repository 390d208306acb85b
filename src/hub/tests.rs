use super::*;
use crate::engine::{EngineEvent, MemoryEngine};
use crate::event;
use std::panic::{catch_unwind, AssertUnwindSafe};
const T0: u64 = 1_000_000;
const POLL: Mode = Mode::Poll;
const STREAM: Mode = Mode::Stream;
/// A reactor connection, without a socket; the slab of them.
struct FakeConn {
    follower: Follower,
    mode: Mode,
}
struct Conns(GenSlab<FakeConn, Conn>);

impl Followers for Conns {
    fn follower_mut(&mut self, k: Key<Conn>) -> Option<(&mut Follower, Mode)> {
        self.0.get_mut(k).map(|c| (&mut c.follower, c.mode))
    }

    fn poll_auth_expires(&self, k: Key<Conn>) -> Option<u64> {
        self.0.get(k).filter(|c| c.mode == POLL).map(|_| 99)
    }
}

/// A hub, an engine, connections, and a fake clock with its wall clock at `T0`.
struct World {
    hub: Hub,
    engine: MemoryEngine,
    conns: Conns,
    now: Now,
}

type Want<'a> = (&'a str, Option<u64>);
/// What a session holds: (name, channel still alive, next) per channel.
type Held = Vec<(String, bool, Option<u64>)>;

fn world(buffer: usize, max_sessions: u64) -> World {
    World {
        hub: Hub::new(Limits {
            max_channels: 4,
            max_sessions,
            session_timeout_ms: 1000,
        }),
        engine: MemoryEngine::new(crate::engine::Limits {
            buffer,
            message_ttl_ms: 0,
            channel_ttl_ms: 60_000,
            max_channels: 100,
        }),
        conns: Conns(GenSlab::default()),
        now: Now::at(0, T0),
    }
}

fn id(n: u8) -> ClientId {
    ClientId([n; 16])
}
fn to(conn: Key<Conn>, mode: Mode) -> Delivery {
    Delivery { conn, mode }
}
fn held(name: &str, alive: bool, next: u64) -> (String, bool, Option<u64>) {
    (name.into(), alive, Some(next))
}
fn seqs(r: &Read) -> Vec<u64> {
    r.messages.iter().map(|m| m.seq).collect()
}
fn from_now_on<'a>(names: &[&'a str]) -> Vec<Want<'a>> {
    names.iter().map(|&n| (n, None)).collect()
}

impl World {
    /// A connection of client `c` subscribes to each channel at its cursor: open, read,
    /// attach. Its cursor is then the head (a stream was sent its catch-up).
    fn join(&mut self, c: u8, want: &[Want], mode: Mode) -> (Key<Conn>, Vec<Read>) {
        let names: Vec<&str> = want.iter().map(|w| w.0).collect();
        let keys = self.hub.open(&mut self.engine, &names, self.now);
        let (mut reads, mut subs) = (Vec::new(), Vec::new());
        for (&k, w) in keys.iter().zip(want) {
            let read = self.hub.read(&mut self.engine, k, w.1, self.now);
            let read = read.and_then(Reply::now).unwrap();
            subs.push(Sub::detached(k, read.head));
            reads.push(read);
        }
        let follower = Follower {
            client: id(c),
            subs: Subs::from_vec(subs),
        };
        let conn = self.conns.0.insert(FakeConn { follower, mode });
        let f = &mut self.conns.0.get_mut(conn).unwrap().follower;
        self.hub.attach(conn, f.subs.as_mut_slice());
        self.hub.release_unused(&mut self.engine, keys, self.now);
        (conn, reads)
    }

    fn one(&mut self, c: u8, want: Want, mode: Mode) -> (Key<Conn>, Read) {
        let (conn, mut reads) = self.join(c, &[want], mode);
        (conn, reads.remove(0))
    }
    fn subs(&self, conn: Key<Conn>) -> Vec<Sub> {
        let c = self.conns.0.get(conn).unwrap();
        c.follower.subs.as_slice().to_vec()
    }

    /// Publishes through the engine and fans every message out: the deliveries of each.
    fn publish(&mut self, names: &[&str], payload: &str) -> Vec<(u64, Vec<Delivery>)> {
        self.engine.publish(names, payload, self.now).unwrap();
        let (mut events, mut out) = (Vec::new(), Vec::new());
        self.engine.drain_events(&mut events);
        let fan_out = |ev: EngineEvent| {
            let (channel, msg) = ev.into_message().expect("memory answers at once");
            self.hub.fan_out(&channel, &msg, &mut self.conns, &mut out);
            (msg.seq, out.clone())
        };
        events.into_iter().map(fan_out).collect()
    }

    /// A parked poll is answered: its session holds its channels, then it leaves them.
    fn answer(&mut self, conn: Key<Conn>) {
        let c = self.conns.0.remove(conn).unwrap();
        assert_eq!(c.mode, POLL);
        let (subs, client, now) = (c.follower.subs.as_slice(), c.follower.client, self.now);
        self.hub.unregister(&client);
        self.hub.detach(&mut self.engine, client, subs, 99, now);
        self.hub.leave(&mut self.engine, conn, subs, now);
    }
    /// A stream closes.
    fn close(&mut self, conn: Key<Conn>) {
        let c = self.conns.0.remove(conn).unwrap();
        let subs = c.follower.subs.as_slice();
        self.hub.leave(&mut self.engine, conn, subs, self.now);
    }
    /// A poll of client `c` is parked on `names` and answered at once.
    fn polled(&mut self, c: u8, names: &[&str]) {
        let (p, _) = self.join(c, &from_now_on(names), POLL);
        self.answer(p);
    }
    /// The next poll of client `c` resumes its session, parked on `names`, and is answered.
    fn repolled(&mut self, c: u8, names: &[&str]) {
        let s = self.hub.take_session(self.session(c)).unwrap();
        let (p, _) = self.join(c, &from_now_on(names), POLL);
        self.hub.release_session(&mut self.engine, s, self.now);
        self.answer(p);
    }

    fn session(&self, c: u8) -> Key<Session> {
        match self.hub.client(&id(c)) {
            Some(ClientRef::Session(sk)) => sk,
            other => panic!("client {c} names {other:?}, no session"),
        }
    }
    /// What session `c` holds, and when its tokens expire.
    fn view(&mut self, c: u8) -> Option<(Held, u64)> {
        let (subs, expires) = self.hub.session_view(id(c), &mut self.conns).unwrap()?;
        let alive = |s: &SessionSub| self.hub.name(s.channel).is_some();
        let subs = subs.iter().map(|s| (s.name.to_string(), alive(s), s.next));
        Some((subs.collect(), expires))
    }
    fn sessions(&self) -> (usize, u64) {
        (self.hub.sessions(), self.hub.stats().sessions_evicted)
    }
    fn counts(&self, names: &[&str]) -> Vec<(usize, u32)> {
        names.iter().map(|n| self.hub.counts(n)).collect()
    }
}

#[test]
fn a_subscriber_opens_reads_attaches_and_leaves_keeping_the_lists_consistent() {
    let mut w = world(8, 10);
    let (a, read) = w.one(1, ("news", None), STREAM);
    // The engine watches it, its first seq fixed.
    assert_eq!(w.engine.head("news"), Some(T0));
    assert_eq!((read.start.seq, seqs(&read), read.head), (T0, vec![], T0));
    assert_eq!(read.notice, None);
    let k = w.hub.find("news").unwrap();
    assert_eq!(w.hub.name(k).map(|n| &**n), Some("news"));
    assert_eq!(w.hub.cursor(&w.subs(a)), format!("news:{T0}"));
    let (b, _) = w.join(2, &from_now_on(&["news", "sport"]), STREAM);
    assert_eq!(w.counts(&["news", "sport"]), vec![(2, 0), (1, 0)]);
    assert_eq!(w.hub.find("news"), Some(k), "one record per channel");
    // a leaves, and attaches again.
    let sa = w.subs(a);
    w.hub.leave(&mut w.engine, a, &sa, w.now);
    assert_eq!(w.hub.counts("news"), (1, 0));
    let f = &mut w.conns.0.get_mut(a).unwrap().follower;
    f.subs = Subs::One(Sub::detached(k, T0));
    w.hub.attach(a, f.subs.as_mut_slice());
    assert_eq!(w.hub.counts("news"), (2, 0));
    let both = vec![to(a, STREAM), to(b, STREAM)];
    assert_eq!(w.publish(&["news"], "m"), vec![(T0, both)]);
    w.close(b);
    assert_eq!(w.counts(&["news", "sport"]), vec![(1, 0), (0, 0)]);
    w.close(a);
    assert_eq!((w.hub.find("news"), w.hub.name(k)), (None, None));
    // Unwatched: a published channel stays in the engine, an unpublished one goes.
    assert_eq!(w.engine.head("news"), Some(T0 + 1));
    assert_eq!(w.engine.head("sport"), None);
}

#[test]
fn a_cursor_catches_up_or_is_told_what_it_lost_or_that_it_was_reset() {
    let mut w = world(2, 10);
    assert_eq!(w.publish(&["news"], "a"), vec![(T0, vec![])]);
    for p in ["b", "c", "d"] {
        w.publish(&["news"], p);
    }
    // Buffered: T0 + 2 and T0 + 3. A catch-up counts as delivered.
    let (_, r) = w.one(1, ("news", Some(T0 + 2)), POLL);
    assert_eq!((seqs(&r), r.head), (vec![T0 + 2, T0 + 3], T0 + 4));
    assert_eq!(r.notice, None);
    assert_eq!(r.messages[0].json, event::data("news", T0 + 2, "c"));
    assert_eq!(w.hub.stats().delivered, 2);
    let (_, r) = w.one(2, ("news", Some(T0)), STREAM);
    assert_eq!(r.notice, Some(event::lost("news", T0, T0 + 1)));
    assert_eq!((r.start.seq, seqs(&r)), (T0 + 2, vec![T0 + 2, T0 + 3]));
    // Ahead of the channel: reset to its head.
    let (_, r) = w.one(3, ("news", Some(T0 + 9)), STREAM);
    assert_eq!(r.notice, Some(event::reset("news", T0 + 4)));
    assert_eq!((r.start.seq, seqs(&r)), (T0 + 4, vec![]));
    // From an earlier life: reset to the start of the new one.
    assert!(w.engine.delete("news") && w.hub.delete("news").is_some());
    let new = w.publish(&["news"], "new life")[0].0;
    assert!(new > T0 + 4, "{new} reuses a seq of the old life");
    let (_, r) = w.one(4, ("news", Some(T0 + 3)), STREAM);
    assert_eq!(r.notice, Some(event::reset("news", new)));
    assert_eq!(seqs(&r), vec![new]);
}

#[test]
fn fan_out_answers_parked_polls_and_sends_to_streams_not_yet_past_the_message() {
    let mut w = world(8, 10);
    let (poll, _) = w.one(1, ("news", None), POLL);
    let (s1, _) = w.one(2, ("news", None), STREAM);
    // A message is published, and before its fan-out a stream joins with a cursor at
    // it: its catch-up carries it.
    w.engine.publish(&["news"], "m1", w.now).unwrap();
    let (s2, read) = w.one(3, ("news", Some(T0)), STREAM);
    assert_eq!((seqs(&read), w.hub.stats().delivered), (vec![T0], 1));
    let mut events = Vec::new();
    w.engine.drain_events(&mut events);
    let (channel, msg) = events.pop().and_then(EngineEvent::into_message).unwrap();
    let mut out = vec![to(s2, STREAM)];
    w.hub.fan_out(&channel, &msg, &mut w.conns, &mut out);
    // `out` was cleared; s2 is skipped.
    assert_eq!(out, vec![to(poll, POLL), to(s1, STREAM)]);
    assert_eq!(w.hub.stats().delivered, 3);
    for c in [poll, s1, s2] {
        assert_eq!(w.subs(c)[0].next, T0 + 1, "every cursor past the message");
    }
    // The poll is answered; the next message goes to the streams only.
    w.answer(poll);
    let both = vec![to(s1, STREAM), to(s2, STREAM)];
    assert_eq!(w.publish(&["news"], "m2"), vec![(T0 + 1, both)]);
    assert_eq!(w.hub.stats().delivered, 5);
    assert_eq!(w.hub.cursor(&w.subs(s2)), format!("news:{}", T0 + 2));
    assert_eq!(w.hub.counts("news"), (2, 1), "two streams, one session");
}

#[test]
fn an_answered_poll_leaves_a_session_that_the_next_poll_resumes() {
    let mut w = world(8, 10);
    let (poll, _) = w.join(1, &from_now_on(&["news", "quiet"]), POLL);
    w.hub.register(id(1), poll);
    // A parked poll is viewed as its session.
    let parked = vec![held("news", true, T0), held("quiet", true, T0)];
    assert_eq!(w.view(1), Some((parked, 99)));
    w.publish(&["news"], "m");
    w.answer(poll);
    let kept = vec![held("news", true, T0 + 1), held("quiet", true, T0)];
    assert_eq!(w.view(1), Some((kept, 99)));
    assert_eq!(w.counts(&["news", "quiet"]), vec![(0, 1), (0, 1)]);
    assert_eq!(w.engine.head("quiet"), Some(T0), "held: still watched");
    // The next poll takes the session, joins at its cursors, then lets it go.
    let s = w.hub.take_session(w.session(1)).unwrap();
    assert_eq!(
        (s.id, w.hub.client(&id(1)), w.hub.sessions()),
        (id(1), None, 0)
    );
    let want: Vec<_> = s.channels.iter().map(|c| (&*c.name, c.next)).collect();
    let (again, reads) = w.join(1, &want, POLL);
    assert_eq!((reads[0].head, reads[1].head), (T0 + 1, T0));
    w.hub.release_session(&mut w.engine, s, w.now);
    assert_eq!(w.counts(&["news", "quiet"]), vec![(1, 0), (1, 0)]);
    w.hub.register(id(1), again);
    assert_eq!(w.hub.client(&id(1)), Some(ClientRef::Conn(again)));
    // A stream's id names no session; an unknown id names nothing.
    let (stream, _) = w.one(2, ("news", None), STREAM);
    w.hub.register(id(2), stream);
    let err = w.hub.session_view(id(2), &mut w.conns).unwrap_err();
    assert_eq!((err.status, w.view(3)), (400, None));
}

#[test]
fn a_session_expires_after_the_session_timeout() {
    let mut w = world(8, 10);
    w.publish(&["news"], "m");
    w.now = Now::at(100, T0);
    w.polled(1, &["news", "quiet"]);
    assert!(w.hub.next_deadline().is_some_and(|d| d >= 1100));
    w.hub.advance(&mut w.engine, Now::at(1099, T0));
    assert_eq!(w.hub.sessions(), 1, "not yet");
    w.hub.advance(&mut w.engine, Now::at(1300, T0));
    assert_eq!((w.hub.sessions(), w.hub.client(&id(1))), (0, None));
    assert_eq!((w.hub.counts("news"), w.hub.find("quiet")), ((0, 0), None));
    // Unpublished: gone with its last holder; published: kept by the engine.
    assert_eq!(w.engine.head("quiet"), None);
    assert_eq!(w.engine.head("news"), Some(T0 + 1));
    assert_eq!((w.sessions(), w.hub.next_deadline()), ((0, 0), None));
}

#[test]
fn past_max_sessions_or_held_unpublished_channels_the_session_idle_longest_goes() {
    let mut w = world(8, 2);
    // One session holding three unpublished channels is past the cap on its own.
    w.polled(1, &["a", "b", "c"]);
    assert_eq!(w.sessions(), (0, 1));
    assert_eq!(w.engine.stats().channels, 0, "all three unwatched");
    // Two held unpublished channels are at the cap; a publish to one (held, nobody
    // attached) stops it counting, so a third one fits.
    w.polled(2, &["a", "b"]);
    assert_eq!(w.publish(&["a"], "m"), vec![(T0 + 1, vec![])]);
    w.polled(3, &["d"]);
    assert_eq!(w.sessions(), (2, 1));
    // A deleted one stops counting too: session 3 resumes on nothing alive, and a
    // new session holding "e" makes two, with "b".
    assert!(w.hub.delete("d").is_some() && w.engine.delete("d"));
    let s3 = w.hub.take_session(w.session(3)).unwrap();
    w.hub.release_session(&mut w.engine, s3, w.now);
    w.polled(4, &["e"]);
    assert_eq!(w.sessions(), (2, 1));
    // Session 2 polls again, so session 4 has been idle longest: a third session
    // evicts it (and "e" is let go: "b" and "f" are held).
    w.repolled(2, &["a", "b"]);
    w.polled(5, &["f"]);
    assert_eq!(w.sessions(), (2, 2));
    assert_eq!((w.hub.client(&id(4)), w.hub.find("e")), (None, None));
    assert!(w.view(2).is_some() && w.view(5).is_some());
    assert_eq!(w.counts(&["a", "b", "f"]), vec![(0, 1), (0, 1), (0, 1)]);
}

#[test]
fn delete_returns_the_connections_and_sessions_see_the_channel_gone() {
    let mut w = world(8, 10);
    w.publish(&["news"], "m");
    w.polled(1, &["news", "sport"]);
    let (poll, _) = w.one(2, ("news", None), POLL);
    let (stream, _) = w.one(3, ("news", None), STREAM);
    assert!(w.engine.delete("news"));
    let (k, conns) = w.hub.delete("news").unwrap();
    assert_eq!(conns, vec![poll, stream]);
    assert_eq!((w.hub.name(k), w.hub.find("news")), (None, None));
    assert_eq!((w.hub.counts("news"), w.hub.delete("news")), ((0, 0), None));
    let gone = vec![held("news", false, T0 + 1), held("sport", true, T0)];
    assert_eq!(w.view(1), Some((gone, 99)));
    // Deleted channels are left out of a cursor.
    assert_eq!(w.hub.cursor(&w.subs(stream)), "");
    // The connections go (a session of deleted channels only is not kept); a new life
    // starts past the old seqs and reaches only its own subscribers.
    w.answer(poll);
    assert_eq!(w.view(2), None);
    w.close(stream);
    let (s, _) = w.one(4, ("news", None), STREAM);
    let fresh = vec![(T0 + 2, vec![to(s, STREAM)])];
    assert_eq!(w.publish(&["news"], "again"), fresh);
    let sk = w.session(1);
    w.hub.forget_session(&mut w.engine, sk, w.now);
    assert_eq!((w.hub.counts("news"), w.hub.find("sport")), ((1, 0), None));
}

/// Connections a, b, c (indexes 0, 1, 2): a leaves, c takes a's old slot, and a
/// leaves again with its stale membership.
fn leave_twice(w: &mut World) {
    let (a, _) = w.one(1, ("news", None), STREAM);
    w.one(2, ("news", None), STREAM);
    let sa = w.subs(a);
    w.hub.leave(&mut w.engine, a, &sa, w.now);
    let (c, _) = w.one(3, ("news", None), STREAM);
    assert_eq!(w.subs(c)[0].slot, sa[0].slot, "the slot is reused");
    w.hub.leave(&mut w.engine, a, &sa, w.now);
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "it does not own")]
fn leaving_a_slot_twice_trips_the_ownership_assertion() {
    leave_twice(&mut world(8, 10));
}

#[test]
fn leaving_twice_does_not_remove_another_connections_membership() {
    let mut w = world(8, 10);
    let r = catch_unwind(AssertUnwindSafe(|| leave_twice(&mut w)));
    // It asserts in debug builds only.
    assert_eq!(r.is_err(), cfg!(debug_assertions));
    assert_eq!(w.hub.counts("news"), (2, 0));
    // b and c still get messages, a does not.
    let (_, got) = w.publish(&["news"], "m").remove(0);
    let mut got: Vec<usize> = got.iter().map(|d| d.conn.index()).collect();
    got.sort_unstable();
    assert_eq!(got, vec![1, 2]);
}
