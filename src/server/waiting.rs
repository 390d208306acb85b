//! A connection that waits for an engine's answers (a networked engine): an admin call,
//! or a subscriber whose history reads are in flight. What it waits for, and what to do
//! when the answers come; the handlers do it.

use crate::engine::{Read as EngineRead, Ticket};
use crate::http::response::Cors;
use crate::hub::Follower;
use crate::transport::StreamOut;

/// An admin request waiting for an engine's answer: what to do with it when it comes.
#[derive(Debug)]
pub struct Waiting {
    /// The engine call's ticket.
    pub ticket: Ticket,
    /// When it is answered 503 `engine unavailable` (reactor ms), `--engine-timeout`
    /// after it was asked.
    pub deadline: u64,
    /// The request's keep-alive and CORS answer.
    pub keep_alive: bool,
    /// CORS answer decided when the request arrived.
    pub cors: Cors,
    /// What was asked.
    pub call: Call,
}

/// An admin call to the engine, remembered until its answer comes.
#[derive(Debug)]
pub enum Call {
    /// `POST /pub` to these channels.
    Publish(Box<[Box<str>]>),
    /// `POST /pub` with an ndjson batch: each line's channel, in order (answered with
    /// an array, whatever the number of lines).
    Batch(Box<[Box<str>]>),
    /// `GET /channels/NAME`.
    Info(Box<str>),
    /// `GET /channels`.
    List,
    /// `DELETE /channels/NAME`.
    Delete(Box<str>),
    /// A stream whose channels' history reads are in flight: it opens (head, `hello`,
    /// catch-up merged with the live messages kept meanwhile) once all are answered.
    Stream(Box<StreamSetup>),
    /// A poll whose channels' history reads are in flight: answered or parked once all
    /// are answered.
    Poll(Box<PollSetup>),
    /// `POST /clients/ID/subscribe` to a stream or parked poll whose new channels'
    /// history reads are in flight: answered 204 once all are in (503 if one failed).
    Control(Box<ControlSetup>),
}

/// A control subscribe waiting for the history reads of the channels it added.
#[derive(Debug)]
pub struct ControlSetup {
    /// Whom the channels were added to.
    pub target: Target,
    /// The reads still in flight: ticket, channel, and (for a connection) the token of
    /// the membership's sync (`Hub::sync_token`), so a read acts only on the membership
    /// it was sent for.
    pub tickets: Vec<(Ticket, crate::handle::Key<crate::hub::Channel>, u64)>,
    /// A read failed (the engine became unreachable): the answer is 503.
    pub failed: bool,
}

/// The subscriber a control subscribe added channels to.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    /// A stream or parked poll (its new memberships attached and syncing).
    Conn(crate::handle::Key<crate::server::Conn>),
    /// A long-poll session between polls (its new channels wait for their head).
    Session(crate::handle::Key<crate::hub::Session>),
}

/// A poll waiting for its history reads; what `try_poll` would answer or park.
#[derive(Debug)]
pub struct PollSetup {
    /// Its client id.
    pub client: crate::subscription::ClientId,
    /// Its memberships (attached, syncing); a read answered now has its cursor set.
    pub subs: Vec<crate::hub::Sub>,
    /// The events due so far (`close` for deleted channels, reads answered now).
    pub events: Vec<bytes::Bytes>,
    /// JSONP callback.
    pub cb: Option<Box<str>>,
    /// When its tokens expire (Unix seconds).
    pub auth_expires: u64,
    /// Per membership: the answered read of those answered later.
    pub reads: Vec<Option<EngineRead>>,
    /// The reads still in flight: ticket and membership index.
    pub tickets: Vec<(Ticket, usize)>,
    /// Memberships whose read is answered later (the others' are in `events`).
    pub later: Vec<bool>,
}

/// A stream waiting for its history reads.
#[derive(Debug)]
pub struct StreamSetup {
    /// Its client id and memberships (attached, syncing).
    pub follower: Follower,
    /// Its transport.
    pub out: StreamOut,
    /// When it will end (reactor ms).
    pub end_ms: u64,
    /// Per membership, in order: the read once answered (and whether `Hub::read`
    /// counted its messages as delivered already).
    pub reads: Vec<(Option<EngineRead>, bool)>,
    /// The reads still in flight: ticket and membership index.
    pub tickets: Vec<(Ticket, usize)>,
}
