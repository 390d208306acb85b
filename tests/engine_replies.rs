//! Admin requests against an engine that answers later, as a networked one does (a
//! `MemoryEngine` behind a wrapper that holds each answer, and the messages it caused,
//! for a while or for ever): the request waits in its connection, requests pipelined
//! behind it wait too, subscribers still get the message before the publisher its
//! answer, and an engine that never answers costs a 503 after `--engine-timeout`.

mod util;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use comet_gateway::clock::Now;
use comet_gateway::engine::{
    Answer, Engine, EngineError, EngineEvent, EngineStats, LogInfo, MemoryEngine, Read, Reply,
    Ticket,
};
use util::{send_poll, Conn, StreamClient, TestServer, Transport};

/// How the wrapper answers: after this many ms, or never.
type Delay = Arc<Mutex<Option<u64>>>;

struct Later {
    inner: MemoryEngine,
    delay: Delay,
    /// Queue the answer at once (still under a ticket), as an engine that happened to
    /// read its reply while sending the call would.
    quick: bool,
    /// Answer subscribers' reads after this many ms (`None`: at once).
    read_delay: Option<u64>,
    next_ticket: u64,
    /// Answers (with the messages they caused) and when they are released.
    held: Vec<(u64, Ticket, Answer, Vec<EngineEvent>)>,
    out: Vec<EngineEvent>,
    now_ms: u64,
}

impl Later {
    fn new(delay: Delay) -> Later {
        let limits = comet_gateway::engine::Limits::of(&comet_gateway::Config::ephemeral());
        Later {
            inner: MemoryEngine::new(limits),
            delay,
            quick: false,
            read_delay: None,
            next_ticket: 1,
            held: Vec::new(),
            out: Vec::new(),
            now_ms: 0,
        }
    }

    fn hold<T>(&mut self, answer: Answer) -> Reply<T> {
        let delay = *self.delay.lock().unwrap();
        self.hold_for(answer, delay)
    }

    fn hold_for<T>(&mut self, answer: Answer, delay: Option<u64>) -> Reply<T> {
        let ticket = Ticket(self.next_ticket);
        self.next_ticket += 1;
        let mut caused = Vec::new();
        self.inner.drain_events(&mut caused);
        if self.quick {
            self.out.extend(caused);
            self.out.push(EngineEvent::Answered { ticket, answer });
            return Reply::Later(ticket);
        }
        let due = match delay {
            Some(ms) => self.now_ms + ms,
            None => u64::MAX,
        };
        self.held.push((due, ticket, answer, caused));
        Reply::Later(ticket)
    }
}

impl Engine for Later {
    fn watch(&mut self, name: &str, now: Now) -> bool {
        self.inner.watch(name, now)
    }
    fn unwatch(&mut self, name: &str, now: Now) {
        self.inner.unwatch(name, now)
    }
    fn publish(
        &mut self,
        names: &[&str],
        payload: &str,
        now: Now,
    ) -> Reply<Result<Vec<u64>, EngineError>> {
        self.now_ms = now.ms;
        let r = MemoryEngine::publish(&mut self.inner, names, payload, now);
        self.hold(Answer::Published(r))
    }
    fn read(&mut self, name: &str, cursor: Option<u64>, now: Now) -> Reply<Option<Read>> {
        self.now_ms = now.ms;
        let r = MemoryEngine::read(&mut self.inner, name, cursor, now);
        match self.read_delay {
            Some(ms) => self.hold_for(Answer::Read(r), Some(ms)),
            None => Reply::Now(r),
        }
    }
    fn head(&self, name: &str) -> Option<u64> {
        self.inner.head(name)
    }
    fn delete(&mut self, name: &str) -> Reply<Result<bool, EngineError>> {
        let r = MemoryEngine::delete(&mut self.inner, name);
        self.hold(Answer::Deleted(Ok(r)))
    }
    fn info(&mut self, name: &str, now: Now) -> Reply<Result<Option<LogInfo>, EngineError>> {
        self.now_ms = now.ms;
        let r = MemoryEngine::info(&mut self.inner, name, now);
        self.hold(Answer::Info(Ok(r)))
    }
    fn list(&mut self, prefix: &str, limit: usize) -> Reply<Result<Vec<LogInfo>, EngineError>> {
        let r = MemoryEngine::list(&self.inner, prefix, limit);
        self.hold(Answer::List(Ok(r)))
    }
    fn stats(&self) -> EngineStats {
        self.inner.stats()
    }
    fn next_deadline(&self) -> Option<u64> {
        let held = self
            .held
            .iter()
            .map(|h| h.0)
            .filter(|&d| d != u64::MAX)
            .min();
        [held, self.inner.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }
    fn advance(&mut self, now: Now) {
        self.now_ms = now.ms;
        self.inner.advance(now);
        let (due, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.0 <= now.ms);
        self.held = kept;
        for (_, ticket, answer, caused) in due {
            self.out.extend(caused);
            self.out.push(EngineEvent::Answered { ticket, answer });
        }
    }
    fn drain_events(&mut self, out: &mut Vec<EngineEvent>) {
        self.inner.drain_events(&mut self.out);
        out.append(&mut self.out);
    }
}

fn start(delay_ms: Option<u64>, tweak: impl FnOnce(&mut comet_gateway::Config)) -> TestServer {
    let delay = Arc::new(Mutex::new(delay_ms));
    TestServer::start_with_engine(tweak, Box::new(Later::new(delay)))
}

fn post(channel: &str, body: &str) -> String {
    format!(
        "POST /pub?channel={channel} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn a_publish_waits_for_the_engine_and_requests_behind_it_wait_too() {
    let s = start(Some(150), |_| {});
    let mut sub = StreamClient::open(s.public, Transport::Stream, "channel=news", "");
    assert_eq!(sub.next_event().unwrap()["type"], "hello");
    let mut admin = Conn::open(s.admin);
    // Pipelined: the publish, then the channel's info, then the list.
    admin.send(&format!(
        "{}GET /channels/news HTTP/1.1\r\nHost: t\r\n\r\nGET /channels HTTP/1.1\r\nHost: t\r\n\r\n",
        post("news", "hello")
    ));
    let published = admin.response();
    assert_eq!(published.status, 200, "{}", published.text());
    let seq = published.json()["seq"].as_u64().unwrap();
    let info = admin.response();
    assert_eq!(info.status, 200);
    assert_eq!(info.json()["next_seq"].as_u64(), Some(seq + 1));
    assert_eq!(info.json()["subscribers"].as_u64(), Some(1));
    let list = admin.response();
    assert_eq!(list.json()[0]["channel"], "news");
    let got = sub.data(1);
    assert_eq!(
        (got[0]["seq"].as_u64(), got[0]["data"].as_str()),
        (Some(seq), Some("hello"))
    );
}

#[test]
fn an_engine_that_never_answers_costs_a_503_after_the_engine_timeout() {
    let s = start(None, |c| c.engine_timeout = Duration::from_millis(200));
    let mut admin = Conn::open(s.admin);
    admin.send(&post("news", "lost in the engine"));
    let r = admin.response();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "engine unavailable");
    // The connection goes on: a request that needs no engine answer is served.
    admin.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(admin.response().status, 200);
}

#[test]
fn a_delete_answered_later_closes_its_subscribers_then_answers() {
    let s = start(Some(50), |_| {});
    let mut admin = Conn::open(s.admin);
    admin.send(&post("doomed", "x"));
    assert_eq!(admin.response().status, 200);
    let mut poll = Conn::open(s.public);
    send_poll(&mut poll, "channel=doomed");
    s.wait_subscribers("doomed", 1);
    admin.send("DELETE /channels/doomed HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(admin.response().status, 204);
    let events = poll.response().events();
    assert_eq!(events[0]["type"], "close");
    assert_eq!(events[0]["channel"], "doomed");
    admin.send("GET /channels/doomed HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(admin.response().status, 404);
}

#[test]
fn a_publisher_that_hangs_up_while_waiting_leaves_nothing_behind() {
    let s = start(Some(100), |_| {});
    {
        let mut admin = Conn::open(s.admin);
        admin.send(&post("news", "orphan"));
    }
    // The answer finds nobody; the gateway goes on.
    std::thread::sleep(Duration::from_millis(300));
    assert!(s.publish("news", "next")["seq"].as_u64().is_some());
    let info = s.channel("news").unwrap();
    assert_eq!(info["buffered"].as_u64(), Some(2));
}

#[test]
fn a_publisher_that_half_closes_while_waiting_still_gets_its_answer() {
    let s = start(Some(300), |_| {});
    let mut admin = Conn::open(s.admin);
    admin.send(&post("hc", "x"));
    // The request is waiting by now; then the client says it will send no more.
    std::thread::sleep(Duration::from_millis(100));
    admin.sock.shutdown(std::net::Shutdown::Write).unwrap();
    let r = admin.response();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(admin.ends_cleanly());
}

#[test]
fn a_head_request_and_a_connection_close_wait_like_any_other() {
    let s = start(Some(100), |_| {});
    s.publish("h", "x");
    let mut admin = Conn::open(s.admin);
    admin.send(concat!(
        "HEAD /channels/h HTTP/1.1\r\nHost: t\r\n\r\n",
        "GET /channels/h HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        "GET /healthz HTTP/1.1\r\n\r\n"
    ));
    let r = admin.head_only();
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
            > 0
    );
    let r = admin.response();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["channel"], "h");
    assert_eq!(r.header("Connection"), Some("close"));
    assert!(
        admin.ends_cleanly(),
        "nothing answered past Connection: close"
    );
}

#[test]
fn an_answer_after_the_timeout_goes_nowhere() {
    let s = start(Some(400), |c| c.engine_timeout = Duration::from_millis(150));
    let mut admin = Conn::open(s.admin);
    admin.send(&post("late", "x"));
    assert_eq!(admin.response().status, 503);
    std::thread::sleep(Duration::from_millis(400));
    admin.send("GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(admin.response().status, 200);
    assert!(admin.nothing_pending(), "the late answer was not written");
}

#[test]
fn an_answer_the_engine_queued_during_the_call_is_not_lost() {
    let mut engine = Later::new(Arc::new(Mutex::new(Some(0))));
    engine.quick = true;
    let s = TestServer::start_with_engine(|_| {}, Box::new(engine));
    let mut sub = StreamClient::open(s.public, Transport::Stream, "channel=q", "");
    assert_eq!(sub.next_event().unwrap()["type"], "hello");
    let mut admin = Conn::open(s.admin);
    admin.send(&post("q", "x"));
    let r = admin.response();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(sub.data(1)[0]["data"], "x");
}

#[test]
fn a_stream_whose_history_read_comes_later_gets_every_message_once_in_order() {
    let mut engine = Later::new(Arc::new(Mutex::new(Some(0))));
    engine.read_delay = Some(300);
    let s = TestServer::start_with_engine(|_| {}, Box::new(engine));
    let first = s.publish_seq("news", "m1");
    s.publish_seq("news", "m2");
    s.publish_seq("news", "m3");
    // While the stream's read is in flight, two more are published.
    let admin = s.admin;
    let live = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        for m in ["m4", "m5"] {
            let r = util::request(admin, &post("news", m));
            assert_eq!(r.status, 200);
        }
    });
    let query = format!("channel=news&seq={first}");
    let mut sub = StreamClient::open(s.public, Transport::Stream, &query, "");
    live.join().unwrap();
    let hello = sub.next_event().unwrap();
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["cursor"], format!("news:{first}"));
    let got: Vec<(u64, String)> = sub
        .data(5)
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["data"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = (0..5).map(|i| (first + i, format!("m{}", i + 1))).collect();
    assert_eq!(got, want);
    // And live delivery goes on after the merge.
    s.publish_seq("news", "m6");
    assert_eq!(sub.data(1)[0]["data"], "m6");
}

#[test]
fn a_stream_whose_read_never_comes_is_refused_after_the_engine_timeout() {
    let mut engine = Later::new(Arc::new(Mutex::new(Some(0))));
    engine.read_delay = None;
    engine.read_delay = Some(u64::MAX / 4);
    let s = TestServer::start_with_engine(
        |c| c.engine_timeout = Duration::from_millis(200),
        Box::new(engine),
    );
    let r = util::get(s.public, "/stream?channel=news");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "engine unavailable");
    // Nothing of it is left: the channel has no subscriber.
    assert_eq!(s.subscribers("news"), 0);
}

#[test]
fn a_poll_whose_reads_come_later_is_answered_with_everything_once_in_order() {
    let mut engine = Later::new(Arc::new(Mutex::new(Some(0))));
    engine.read_delay = Some(300);
    let s = TestServer::start_with_engine(|_| {}, Box::new(engine));
    let first = s.publish_seq("news", "m1");
    s.publish_seq("news", "m2");
    let admin = s.admin;
    let live = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(util::request(admin, &post("news", "m3")).status, 200);
    });
    let r = util::get(s.public, &format!("/poll?channel=news&seq={first}"));
    live.join().unwrap();
    let got: Vec<(u64, String)> = r
        .events()
        .iter()
        .map(|e| {
            (
                e["seq"].as_u64().unwrap(),
                e["data"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = (0..3).map(|i| (first + i, format!("m{}", i + 1))).collect();
    assert_eq!(got, want);
    // The session resumes past all of them.
    let id = r.header("X-Comet-Client").unwrap().to_string();
    let mut poll = Conn::open(s.public);
    send_poll(&mut poll, &format!("client={id}"));
    s.wait_subscribers("news", 1);
    s.publish_seq("news", "m4");
    let next = poll.response().events();
    assert_eq!((next[0]["seq"].as_u64(), next.len()), (Some(first + 3), 1));
}

#[test]
fn a_poll_with_nothing_due_after_a_later_read_parks_until_a_message() {
    let mut engine = Later::new(Arc::new(Mutex::new(Some(0))));
    engine.read_delay = Some(100);
    let s = TestServer::start_with_engine(|_| {}, Box::new(engine));
    let mut poll = Conn::open(s.public);
    send_poll(&mut poll, "channel=quiet");
    s.wait_subscribers("quiet", 1);
    let seq = s.publish_seq("quiet", "finally");
    let events = poll.response().events();
    assert_eq!(events.len(), 1);
    assert_eq!(
        (events[0]["seq"].as_u64(), events[0]["data"].as_str()),
        (Some(seq), Some("finally"))
    );
}
