//! The frames a client sends (RFC 6455 5), parsed incrementally from the reactor's read
//! buffer: [`Parser::parse`] takes the bytes that have arrived, consumes one whole frame
//! and says how many bytes that was, or answers [`Status::Partial`] and consumes nothing
//! (like httparse: an incomplete frame is a state, not an error). Complete messages come
//! out as [`Incoming`]; anything the protocol forbids is an [`Error`] that names the close
//! code to fail the connection with. Owns the parser state of one connection; touches no
//! socket.
//!
//! Checked, each as soon as the byte that decides it has arrived: the mask (client frames
//! must be masked), the reserved bits (no extension is negotiated), the opcode, the
//! control-frame rules (final, at most 125 bytes), the order of fragments, the message
//! size limit (from the frame header, before its payload arrives), and UTF-8 of text,
//! across fragments and inside a frame that is still arriving. Close frames carry a code a
//! peer may send and a UTF-8 reason.
//!
//! State between calls is one `Option<Box<_>>`: `None` while idle (8 bytes per idle
//! connection); the box holds a fragmented message being assembled, or how far a text frame
//! still arriving has been checked, and is freed when the message is complete.
//!
//! ```
//! use comet_gateway::transport::websocket::{Parser, Status};
//! let mut parser = Parser::new();
//! let buf = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58, 0x81];
//! let mut at = 0;
//! while let Status::Complete { consumed, incoming } = parser.parse(&buf[at..], 4096).unwrap() {
//!     at += consumed;
//!     println!("{incoming:?}"); // Some(Text("Hello"))
//! }
//! assert_eq!(at, 11); // the last byte starts a frame still arriving: keep it
//! ```

use std::fmt;

use super::header::{parse_head, unmask, Head};
use super::utf8::Utf8;
use super::{close, Opcode};

#[cfg(test)]
mod tests;

/// A whole message or control frame from the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A text message (checked UTF-8), reassembled if it came in fragments.
    Text(String),
    /// A binary message, reassembled.
    Binary(Vec<u8>),
    /// A ping: answer with a pong carrying the same payload.
    Ping(Vec<u8>),
    /// A pong (an answer to a heartbeat, or unsolicited).
    Pong(Vec<u8>),
    /// The client starts or answers the closing handshake. `code` is `None` for an empty
    /// close frame (RFC 6455 calls that 1005). Nothing after it is to be parsed.
    Close {
        /// The status code, checked to be one a peer may send.
        code: Option<u16>,
        /// The reason, possibly empty.
        reason: String,
    },
}

/// What one call to [`Parser::parse`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// A whole frame, `consumed` bytes from the start of the input (at least 6: a client
    /// frame has a 2-byte header and a 4-byte mask). `incoming` is what it completed: a
    /// message, a control frame, or nothing (a fragment of a message still open).
    Complete {
        /// Bytes of the input the frame took.
        consumed: usize,
        /// What the frame completed.
        incoming: Option<Incoming>,
    },
    /// No whole frame yet; nothing consumed. Call again with the same bytes and more.
    Partial {
        /// The frame's whole length once its header is in, for the caller to reserve.
        frame_len: Option<usize>,
    },
}

/// A frame the protocol forbids: the connection is to be failed with
/// [`close_code`](Error::close_code). The parser is not to be used after one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A client frame without a mask (1002).
    Unmasked,
    /// A reserved bit set with no extension negotiated (1002).
    ReservedBits,
    /// A reserved opcode (1002).
    UnknownOpcode,
    /// A control frame without FIN (1002).
    FragmentedControl,
    /// A control frame with more than 125 bytes of payload (1002).
    ControlTooLong,
    /// A 64-bit payload length with its top bit set (1002).
    BadLength,
    /// A continuation frame with no fragmented message open (1002).
    UnexpectedContinuation,
    /// A new text or binary frame while a fragmented message is open (1002).
    UnfinishedMessage,
    /// A close frame with a 1-byte payload (1002).
    CloseTooShort,
    /// A close code a peer may not send (1002).
    BadCloseCode,
    /// A message over the caller's size limit (1009).
    TooBig,
    /// A text message that is not UTF-8 (1007).
    InvalidUtf8,
    /// A close reason that is not UTF-8 (1007).
    InvalidCloseReason,
}

impl Error {
    /// The close code to fail the connection with.
    pub fn close_code(self) -> u16 {
        match self {
            Error::TooBig => close::TOO_BIG,
            Error::InvalidUtf8 | Error::InvalidCloseReason => close::INVALID_DATA,
            _ => close::PROTOCOL_ERROR,
        }
    }

    /// A short reason for the close frame (well under its 123-byte limit).
    pub fn reason(self) -> &'static str {
        match self {
            Error::Unmasked => "unmasked client frame",
            Error::ReservedBits => "reserved bits set",
            Error::UnknownOpcode => "unknown opcode",
            Error::FragmentedControl => "fragmented control frame",
            Error::ControlTooLong => "control frame over 125 bytes",
            Error::BadLength => "payload length with its top bit set",
            Error::UnexpectedContinuation => "continuation with no message open",
            Error::UnfinishedMessage => "new message before the last one ended",
            Error::CloseTooShort => "close payload of 1 byte",
            Error::BadCloseCode => "invalid close code",
            Error::TooBig => "message too big",
            Error::InvalidUtf8 => "text is not UTF-8",
            Error::InvalidCloseReason => "close reason is not UTF-8",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.reason(), self.close_code())
    }
}

impl std::error::Error for Error {}

/// The incremental parser of one connection's incoming frames.
#[derive(Debug, Default)]
pub struct Parser {
    /// `None` while idle. Boxed so an idle connection pays one pointer for it.
    pending: Option<Box<Pending>>,
}

/// What is in flight between two calls.
#[derive(Debug, Default)]
struct Pending {
    /// The fragmented message being assembled: `Text` or `Binary`, `None` if none is open
    /// (the box then exists only for `peek`).
    open: Option<Opcode>,
    /// Its payload so far, unmasked.
    buf: Vec<u8>,
    /// For text, the UTF-8 validator after `buf` (it may end inside a code point).
    utf8: Utf8,
    /// How far the text frame at the start of the input, still arriving, is checked.
    peek: Peek,
}

/// Progress through a text frame that has not fully arrived, so each call checks only
/// the bytes that are new. The frame is recognised by its length and mask.
#[derive(Debug, Default)]
struct Peek {
    len: u64,
    mask: [u8; 4],
    /// Payload bytes checked.
    checked: usize,
    /// The validator after them.
    utf8: Utf8,
}

impl Parser {
    /// An idle parser.
    pub fn new() -> Parser {
        Parser::default()
    }

    /// Whether nothing is in flight (no allocation is held).
    pub fn is_idle(&self) -> bool {
        self.pending.is_none()
    }

    /// Parses one frame from the start of `buf`. `max_message` caps the payload of a
    /// message, all its fragments together (pass the same value on every call).
    pub fn parse(&mut self, buf: &[u8], max_message: usize) -> Result<Status, Error> {
        let (open, open_len) = match &self.pending {
            Some(p) => (p.open, p.buf.len()),
            None => (None, 0),
        };
        let Some(head) = parse_head(buf, open, open_len, max_message)? else {
            return Ok(Status::Partial { frame_len: None });
        };
        let frame_len = usize::try_from(head.len)
            .ok()
            .and_then(|n| n.checked_add(head.size))
            .ok_or(Error::TooBig)?;
        let Some(payload) = buf.get(head.size..frame_len) else {
            if head.kind == Some(Opcode::Text) {
                self.peek(&head, buf.get(head.size..).unwrap_or_default())?;
            }
            return Ok(Status::Partial {
                frame_len: Some(frame_len),
            });
        };
        let incoming = match head.kind {
            None => Some(control(&head, payload)?),
            Some(kind) => self.data(&head, kind, payload)?,
        };
        // The frame is consumed: what was checked of it as it arrived is done with.
        if self.pending.as_ref().is_some_and(|p| p.open.is_none()) {
            self.pending = None;
        } else if let Some(p) = self.pending.as_deref_mut() {
            p.peek = Peek::default();
        }
        Ok(Status::Complete {
            consumed: frame_len,
            incoming,
        })
    }

    /// Checks the UTF-8 of the part of a text frame that has arrived, from where the last
    /// call stopped, so an invalid sequence fails before the rest of the frame comes.
    fn peek(&mut self, head: &Head, arrived: &[u8]) -> Result<(), Error> {
        if arrived.is_empty() {
            return Ok(());
        }
        let p = self.pending.get_or_insert_with(Box::default);
        let peek = &mut p.peek;
        if peek.len != head.len || peek.mask != head.mask || peek.checked > arrived.len() {
            *peek = Peek {
                len: head.len,
                mask: head.mask,
                checked: 0,
                // A continuation goes on from the fragments before it.
                utf8: match head.opcode {
                    Opcode::Continuation => p.utf8,
                    _ => Utf8::new(),
                },
            };
        }
        let mut scratch = [0u8; 256];
        let mut offset = peek.checked;
        for piece in arrived.get(offset..).unwrap_or_default().chunks(256) {
            let plain = scratch.get_mut(..piece.len()).unwrap_or_default();
            plain.copy_from_slice(piece);
            unmask(plain, head.mask, offset);
            peek.utf8.feed(plain).map_err(|_| Error::InvalidUtf8)?;
            offset += piece.len();
        }
        peek.checked = offset;
        Ok(())
    }

    /// A whole data frame: a whole message, or a fragment added to the open one.
    fn data(
        &mut self,
        head: &Head,
        kind: Opcode,
        payload: &[u8],
    ) -> Result<Option<Incoming>, Error> {
        if head.fin && head.opcode != Opcode::Continuation {
            let mut data = payload.to_vec();
            unmask(&mut data, head.mask, 0);
            return message(kind, data).map(Some);
        }
        let p = self.pending.get_or_insert_with(Box::default);
        if head.opcode != Opcode::Continuation {
            debug_assert!(
                p.open.is_none() && p.buf.is_empty(),
                "{:?} opened over {:?}",
                kind,
                p.open
            );
            p.open = Some(kind);
            p.utf8 = Utf8::new();
        }
        let start = p.buf.len();
        p.buf.extend_from_slice(payload);
        let fresh = p.buf.get_mut(start..).unwrap_or_default();
        unmask(fresh, head.mask, 0);
        if kind == Opcode::Text {
            p.utf8.feed(fresh).map_err(|_| Error::InvalidUtf8)?;
        }
        if !head.fin {
            return Ok(None);
        }
        p.open = None;
        message(kind, std::mem::take(&mut p.buf)).map(Some)
    }
}

/// The message of kind `Text` or `Binary` made of `data`.
fn message(kind: Opcode, data: Vec<u8>) -> Result<Incoming, Error> {
    match kind {
        Opcode::Text => String::from_utf8(data)
            .map(Incoming::Text)
            .map_err(|_| Error::InvalidUtf8),
        _ => Ok(Incoming::Binary(data)),
    }
}

/// A whole control frame.
fn control(head: &Head, payload: &[u8]) -> Result<Incoming, Error> {
    let mut data = payload.to_vec();
    unmask(&mut data, head.mask, 0);
    match head.opcode {
        Opcode::Ping => Ok(Incoming::Ping(data)),
        Opcode::Pong => Ok(Incoming::Pong(data)),
        _ => close_frame(&data),
    }
}

/// A close frame's payload: nothing, or a code a peer may send and a UTF-8 reason.
fn close_frame(data: &[u8]) -> Result<Incoming, Error> {
    match data {
        [] => Ok(Incoming::Close {
            code: None,
            reason: String::new(),
        }),
        [_] => Err(Error::CloseTooShort),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !close::is_valid(code) {
                return Err(Error::BadCloseCode);
            }
            let reason = std::str::from_utf8(reason).map_err(|_| Error::InvalidCloseReason)?;
            Ok(Incoming::Close {
                code: Some(code),
                reason: reason.to_owned(),
            })
        }
    }
}
