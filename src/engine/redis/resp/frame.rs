//! RESP2 framing, without a socket: commands encoded, and the read buffer cut into whole
//! frames ([`Framer`]) that become [`Reply`] values whose strings are views of it.

use std::io::{self, Read};

use bytes::{Bytes, BytesMut};
use redis_protocol::resp2::decode::decode_range;
use redis_protocol::resp2::encode::extend_encode_borrowed;
use redis_protocol::resp2::types::{BorrowedFrame, RangeFrame};

use super::RespError;

/// Bytes asked of one `read`.
const READ_CHUNK: usize = 64 * 1024;
/// Array nesting accepted (decoding recurses once per level).
const MAX_DEPTH: usize = 32;
/// An empty read buffer bigger than this (left by a large reply) is freed.
const SHRINK_ABOVE: usize = 1 << 20;

/// A RESP2 value from Redis; its strings are views of the read buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// `+OK`.
    Simple(Bytes),
    /// `-ERR ...`: the command failed; the connection is fine.
    Error(Bytes),
    /// `:42`.
    Integer(i64),
    /// `$5 hello`, or the null bulk string `$-1`.
    Bulk(Option<Bytes>),
    /// `*N ...`, or the null array `*-1` (only told apart from `$-1` at the top level:
    /// the decoder has one null, so a null inside an array reads as `Bulk(None)`).
    Array(Option<Vec<Reply>>),
}

/// A command as Redis reads it: an array of bulk strings. Borrowed frames, so each
/// argument is copied once, straight into the command's buffer (`encode_bytes` would want
/// every argument as `Bytes` first, a copy more for a caller holding `&[u8]`).
pub(crate) fn encode_command(args: &[&[u8]]) -> Bytes {
    let frames: Vec<BorrowedFrame<'_>> =
        args.iter().map(|a| BorrowedFrame::BulkString(a)).collect();
    let mut buf = BytesMut::new();
    // Sized by the crate before it writes; an array of bulk strings cannot fail.
    let r = extend_encode_borrowed(&mut buf, &BorrowedFrame::Array(&frames), false);
    debug_assert!(r.is_ok(), "encoding {} args: {r:?}", args.len());
    buf.freeze()
}

/// The read buffer and the framing of what is in it; no socket, so tests feed it bytes.
pub(crate) struct Framer {
    /// Read bytes not yet framed (its front is always the start of a frame), then room
    /// for the next read, zeroed once when it was added rather than before every read.
    buf: BytesMut,
    /// How much of `buf` holds read bytes.
    filled: usize,
    scan: Scan,
    /// A frame's longest encoding.
    max: usize,
}

impl Framer {
    pub(crate) fn new(max: usize) -> Framer {
        Framer {
            buf: BytesMut::new(),
            filled: 0,
            scan: Scan::default(),
            max,
        }
    }

    /// Drops everything buffered.
    pub(super) fn clear(&mut self) {
        *self = Framer::new(self.max);
    }

    /// Read bytes not yet framed.
    pub(crate) fn buffered(&self) -> &[u8] {
        &self.buf[..self.filled]
    }

    /// One `read` from `src` straight into the buffer.
    pub(super) fn read_from(&mut self, src: &mut impl Read) -> io::Result<usize> {
        if self.buf.len() - self.filled < READ_CHUNK / 4 {
            self.buf.resize(self.filled + READ_CHUNK, 0);
        }
        let n = src.read(&mut self.buf[self.filled..])?;
        self.filled += n;
        Ok(n)
    }

    /// Appends `bytes`, as a read would.
    #[cfg(test)]
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.buf.truncate(self.filled);
        self.buf.extend_from_slice(bytes);
        self.filled = self.buf.len();
    }

    /// The next whole frame in the buffer, if there is one.
    pub(crate) fn next_frame(&mut self) -> Result<Option<Reply>, RespError> {
        let Some(len) = self.scan.walk(&self.buf[..self.filled], self.max)? else {
            if self.filled > self.max {
                return Err(RespError::TooBig);
            }
            if self.filled == 0 && self.buf.capacity() > SHRINK_ABOVE {
                self.buf = BytesMut::new();
            }
            return Ok(None);
        };
        match decode_range(&self.buf[..len]) {
            Ok(Some((frame, n))) if n == len => {
                let raw = self.buf.split_to(len).freeze();
                self.filled -= len;
                let top_null = if raw[0] == b'*' {
                    Reply::Array(None)
                } else {
                    Reply::Bulk(None)
                };
                Ok(Some(to_reply(&raw, &frame, top_null)))
            }
            _ => Err(RespError::Protocol),
        }
    }
}

fn to_reply(raw: &Bytes, frame: &RangeFrame, null: Reply) -> Reply {
    match frame {
        RangeFrame::SimpleString((a, b)) => Reply::Simple(raw.slice(a..b)),
        RangeFrame::Error((a, b)) => Reply::Error(raw.slice(a..b)),
        RangeFrame::Integer(i) => Reply::Integer(*i),
        RangeFrame::BulkString((a, b)) => Reply::Bulk(Some(raw.slice(a..b))),
        RangeFrame::Array(items) => Reply::Array(Some(
            items
                .iter()
                .map(|f| to_reply(raw, f, Reply::Bulk(None)))
                .collect(),
        )),
        RangeFrame::Null => null,
    }
}

/// How far the frame at the front of the buffer has been walked: `pos` is the start of
/// its next element, `open` the elements still due in each array entered.
#[derive(Default)]
struct Scan {
    pos: usize,
    open: Vec<u64>,
}

impl Scan {
    /// Walks on from where the last call stopped; `Some(len)` once `buf` starts with a
    /// whole frame of `len` bytes (and the walk starts over for the next one).
    fn walk(&mut self, buf: &[u8], max: usize) -> Result<Option<usize>, RespError> {
        loop {
            let Some(&kind) = buf.get(self.pos) else {
                return Ok(None);
            };
            let Some(eol) = buf[self.pos..].windows(2).position(|w| w == b"\r\n") else {
                return Ok(None);
            };
            let line = &buf[self.pos + 1..self.pos + eol.max(1)];
            let next = self.pos + eol + 2;
            let end = match kind {
                b'+' | b'-' | b':' => next,
                b'$' => match length(line)? {
                    None => next,
                    Some(n) if n > max as u64 => return Err(RespError::TooBig),
                    Some(n) if buf.len() < next + n as usize + 2 => return Ok(None),
                    Some(n) => next + n as usize + 2,
                },
                b'*' => match length(line)? {
                    None | Some(0) => next,
                    Some(_) if self.open.len() == MAX_DEPTH => return Err(RespError::Protocol),
                    Some(n) => {
                        self.open.push(n);
                        self.pos = next;
                        continue;
                    }
                },
                _ => return Err(RespError::Protocol),
            };
            if end > max {
                return Err(RespError::TooBig);
            }
            self.pos = end;
            // An element ended: close the arrays it completes.
            loop {
                let Some(left) = self.open.last_mut() else {
                    self.pos = 0;
                    return Ok(Some(end));
                };
                *left -= 1;
                if *left > 0 {
                    break;
                }
                self.open.pop();
            }
        }
    }
}

/// A `$`/`*` length: `None` for the null `-1`.
fn length(line: &[u8]) -> Result<Option<u64>, RespError> {
    match std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
    {
        Some(-1) => Ok(None),
        Some(n) if n >= 0 => Ok(Some(n as u64)),
        _ => Err(RespError::Protocol),
    }
}
