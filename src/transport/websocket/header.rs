//! A client frame's header (RFC 6455 5.2), read and checked byte by byte as it arrives,
//! and the unmasking of its payload. Every rule the header alone decides is checked as
//! soon as the byte that decides it is in: the reserved bits, the opcode, the order of
//! fragments, FIN and length of control frames, the mask bit, the length's top bit and
//! the message size limit. Pure functions over the bytes; the parser (`frame`) keeps
//! the state they are given.

use super::frame::Error;
use super::{Opcode, MAX_CONTROL_PAYLOAD};

/// A frame header, checked.
pub(super) struct Head {
    /// The final fragment of its message.
    pub(super) fin: bool,
    pub(super) opcode: Opcode,
    /// The message a data frame belongs to (`Text` or `Binary`); `None` for control.
    pub(super) kind: Option<Opcode>,
    /// Payload bytes.
    pub(super) len: u64,
    pub(super) mask: [u8; 4],
    /// Bytes of header, mask included.
    pub(super) size: usize,
}

/// Reads and checks the header at the start of `buf`, each rule as soon as its byte is
/// in; `Ok(None)` while the header is incomplete. `open` is the kind of the fragmented
/// message in flight and `open_len` its size so far.
pub(super) fn parse_head(
    buf: &[u8],
    open: Option<Opcode>,
    open_len: usize,
    max_message: usize,
) -> Result<Option<Head>, Error> {
    let Some(&b0) = buf.first() else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(Error::ReservedBits);
    }
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(Error::UnknownOpcode)?;
    let fin = b0 & 0x80 != 0;
    let kind = match opcode {
        Opcode::Continuation => Some(open.ok_or(Error::UnexpectedContinuation)?),
        Opcode::Text | Opcode::Binary if open.is_some() => return Err(Error::UnfinishedMessage),
        Opcode::Text | Opcode::Binary => Some(opcode),
        _ if !fin => return Err(Error::FragmentedControl),
        _ => None,
    };
    let Some(&b1) = buf.get(1) else {
        return Ok(None);
    };
    if b1 & 0x80 == 0 {
        return Err(Error::Unmasked);
    }
    let len7 = b1 & 0x7F;
    if kind.is_none() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
        return Err(Error::ControlTooLong);
    }
    let (len, at) = match len7 {
        126 => match buf.get(2..4) {
            Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
            _ => return Ok(None),
        },
        127 => match buf.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(b) => (u64::from_be_bytes(b), 10),
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    if len >> 63 != 0 {
        return Err(Error::BadLength);
    }
    if kind.is_some() && (open_len as u64).saturating_add(len) > max_message as u64 {
        return Err(Error::TooBig);
    }
    let Some(mask) = buf
        .get(at..at + 4)
        .and_then(|m| <[u8; 4]>::try_from(m).ok())
    else {
        return Ok(None);
    };
    Ok(Some(Head {
        fin,
        opcode,
        kind,
        len,
        mask,
        size: at + 4,
    }))
}

/// XORs `data` with `mask`; `offset` is where `data` starts in the frame's payload.
pub(super) fn unmask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = mask;
    m.rotate_left(offset % 4);
    let [a, b, c, d] = m;
    let wide = u64::from_ne_bytes([a, b, c, d, a, b, c, d]);
    let mut words = data.chunks_exact_mut(8);
    for w in &mut words {
        let mut x = [0u8; 8];
        x.copy_from_slice(w);
        w.copy_from_slice(&(u64::from_ne_bytes(x) ^ wide).to_ne_bytes());
    }
    // The remainder starts a multiple of 8 (so of 4) bytes in: the mask's phase is m[0].
    for (byte, k) in words.into_remainder().iter_mut().zip(m.iter().cycle()) {
        *byte ^= k;
    }
}
