//! The request handlers, one file per endpoint family: `poll` (`GET /poll`), `stream`
//! (`/stream`, `/iframe`, `/events`), `control` (`POST /clients/ID/…`), `publish`
//! (`POST /pub`, channel info, list and delete) and `manage` (tokens, admin auth,
//! `/sign`, `/stats`, `/metrics`). A handler parses its request, calls the hub and the
//! engine, and answers; what they own stays theirs.

mod control;
mod control_sync;
mod manage;
mod poll;
mod publish;
pub(super) mod stream;
mod stream_sync;
pub(super) mod websocket;

pub(super) use control::Action;

use super::Server;
use crate::http::query::Query;
use crate::http::HttpError;
use crate::subscription::{self, ClientId};

impl Server {
    /// The parameters of a subscribe request, checked (for `HEAD`).
    fn check_subscribe_params(&mut self, q: &Query, poll: bool) -> Result<(), HttpError> {
        subscription::parse_callback(q)?;
        if poll
            && q.get("client")
                .is_some_and(|c| ClientId::parse(c).is_none())
        {
            return Err(HttpError::new(400, "bad client id (32 hex digits)"));
        }
        if poll && q.get("channel").is_none() {
            return Ok(());
        }
        let wanted = subscription::parse_channels(q, self.hub.max_channels())?;
        let names: Vec<&str> = wanted.iter().map(|w| w.channel.as_str()).collect();
        self.authorize(q, &names).map(|_| ())
    }
}
