//! `Later`: a `MemoryEngine` behind a wrapper that holds each answer (and the messages
//! it caused) for a while or for ever, as a networked engine answers after a round trip.

use std::sync::{Arc, Mutex};

use comet_gateway::clock::Now;
use comet_gateway::engine::{
    Answer, Engine, EngineError, EngineEvent, EngineStats, LogInfo, MemoryEngine, Read, Reply,
    Ticket,
};

/// How the wrapper answers: after this many ms, or never.
pub type Delay = Arc<Mutex<Option<u64>>>;

pub struct Later {
    inner: MemoryEngine,
    delay: Delay,
    /// Queue the answer at once (still under a ticket), as an engine that happened to
    /// read its reply while sending the call would.
    pub quick: bool,
    /// Answer subscribers' reads after this many ms (`None`: at once).
    pub read_delay: Option<u64>,
    next_ticket: u64,
    /// Answers (with the messages they caused) and when they are released.
    held: Vec<(u64, Ticket, Answer, Vec<EngineEvent>)>,
    out: Vec<EngineEvent>,
    now_ms: u64,
}

impl Later {
    pub fn new(delay: Delay) -> Later {
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
        items: &[(&str, &str)],
        now: Now,
    ) -> Reply<Result<Vec<u64>, EngineError>> {
        self.now_ms = now.ms;
        let r = MemoryEngine::publish_items(&mut self.inner, items, now);
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
