//! What a WebSocket subscriber sends: frames parsed from its read buffer
//! (`transport::websocket::frame::Parser`, kept in its `StreamOut`), a pong for each ping,
//! the closing handshake, and close codes for what breaks the protocol. A partial frame
//! stays in the read buffer, which the message cap bounds (`WS_MAX_MESSAGE`).
//! Commands (`subscribe`, `unsubscribe`, `close` as JSON text) are not handled yet: a
//! text message is answered with an `error` event.

use crate::event;
use crate::handle::Key;
use crate::server::conn::{Conn, Phase};
use crate::server::Server;
use crate::transport::websocket::{close, encode, Incoming, Parser, Status};
use crate::transport::Input;

/// The largest message a subscriber may send (commands are small).
pub(in crate::server) const WS_MAX_MESSAGE: usize = 4096;

impl Server {
    /// Handles the frames a WebSocket subscriber has sent.
    pub(in crate::server) fn ws_input(&mut self, key: Key<Conn>) {
        loop {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let empty = conn.rbuf().is_empty();
            let Phase::Streaming(st) = &mut conn.phase else {
                return;
            };
            if st.out.input() != Input::WebSocket || empty {
                return;
            }
            let mut parser = std::mem::replace(&mut st.out.parser, Parser::new());
            let parsed = parser.parse(conn.rbuf(), WS_MAX_MESSAGE);
            if let Phase::Streaming(st) = &mut conn.phase {
                st.out.parser = parser;
            }
            let incoming = match parsed {
                Ok(Status::Partial { .. }) => return,
                Ok(Status::Complete { consumed, incoming }) => {
                    conn.consume(consumed);
                    incoming
                }
                Err(e) => {
                    let frame = encode::close(e.close_code(), e.reason());
                    return self.end_stream_with(key, &[], Some(frame));
                }
            };
            match incoming {
                None | Some(Incoming::Pong(_)) => {}
                Some(Incoming::Ping(payload)) => {
                    conn.queue(encode::pong(&payload));
                    self.flush(key);
                }
                Some(Incoming::Close { code, .. }) => {
                    // The closing handshake: answer with the code it sent (or 1000).
                    let code = code.unwrap_or(close::NORMAL);
                    return self.end_stream_with(key, &[], Some(encode::close(code, "")));
                }
                Some(Incoming::Binary(_)) => {
                    let frame =
                        encode::close(close::UNSUPPORTED_DATA, "binary messages are not commands");
                    return self.end_stream_with(key, &[], Some(frame));
                }
                Some(Incoming::Text(_)) => {
                    let e = event::error_event("commands over the WebSocket are not supported yet");
                    let frame = encode::text(&e);
                    conn.queue(frame);
                    self.flush(key);
                }
            }
        }
    }
}
