//! WebSocket (RFC 6455, version 13), the server side, as pure pieces: the opening
//! handshake (`handshake`), the incremental parser of the frames a client sends
//! (`frame`, over `header` for each frame's header and `utf8` for text) and the frames
//! the server sends (`encode`). Nothing here touches a socket, a timer or a subscriber: the reactor reads
//! into its shared buffer and hands the bytes to a [`frame::Parser`], and writes what
//! `encode` builds.
//!
//! Density: an idle connection holds one [`frame::Parser`], one pointer wide (8 bytes);
//! it allocates only while a fragmented message or a partial text frame is in flight, and
//! frees that as soon as the message is complete. No extension (permessage-deflate) and
//! no subprotocol is ever negotiated, so the reserved bits must be clear.

pub mod command;
pub mod encode;
pub mod frame;
pub mod handshake;
mod header;
mod utf8;

pub use frame::{Error, Incoming, Parser, Status};

/// A frame's opcode (RFC 6455 5.2): what its payload is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opcode {
    /// A further fragment of the message in flight.
    Continuation = 0x0,
    /// UTF-8 text.
    Text = 0x1,
    /// Binary data.
    Binary = 0x2,
    /// The closing handshake.
    Close = 0x8,
    /// A ping, answered by a pong with the same payload.
    Ping = 0x9,
    /// A pong.
    Pong = 0xA,
}

impl Opcode {
    /// The opcode of the low four bits `b`, or `None` for a reserved one.
    pub fn from_bits(b: u8) -> Option<Opcode> {
        Some(match b {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes of payload.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

/// The longest payload of a control frame (RFC 6455 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Close codes (RFC 6455 7.4.1) the gateway sends or meets.
pub mod close {
    /// The purpose of the connection is fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down (after a `reconnect` event).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A kind of data the endpoint does not accept (binary on `/ws`).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Received in place of a code when a close frame carries none; never sent.
    pub const NO_STATUS: u16 = 1005;
    /// Text that is not UTF-8.
    pub const INVALID_DATA: u16 = 1007;
    /// A policy refused the peer (authentication).
    pub const POLICY: u16 = 1008;
    /// A message over the size limit.
    pub const TOO_BIG: u16 = 1009;
    /// Something went wrong on the server.
    pub const INTERNAL: u16 = 1011;

    /// Whether a peer may send `code` in a close frame (RFC 6455 7.4; 1012-1014 are
    /// registered with IANA since and are accepted too). 1004-1006 and 1015 are reserved
    /// and never sent on the wire, 1016-2999 are for future RFCs, below 1000 is unused.
    pub fn is_valid(code: u16) -> bool {
        matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
    }
}
