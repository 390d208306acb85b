//! The frames the server sends (RFC 6455 5.2): unmasked, final, as `Bytes`. Pure
//! functions; owns no state and touches no connection.
//!
//! Sharing: a server frame's header depends only on its opcode and payload length, so
//! one event can be sent to every subscriber without copying its payload. Either the
//! whole frame is built once ([`text`]) and its `Bytes` cloned for each subscriber, or
//! the payload `Bytes` stays as it is and a 2-10 byte [`Header`] goes before it in the
//! same vectored write ([`text_parts`]).

use bytes::{BufMut, Bytes, BytesMut};

use super::{close, Opcode, MAX_CONTROL_PAYLOAD};

/// The longest header: 2 bytes, then a 64-bit length (no mask from the server).
const MAX_HEADER: usize = 10;

/// The header of a final, unmasked frame: 2, 4 or 10 bytes, on the stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; MAX_HEADER],
    len: u8,
}

impl Header {
    /// The header of a frame of `opcode` carrying `payload_len` bytes, the length in its
    /// shortest form.
    pub fn new(opcode: Opcode, payload_len: usize) -> Header {
        let mut bytes = [0u8; MAX_HEADER];
        bytes[0] = 0x80 | opcode as u8;
        let len = match payload_len {
            0..=125 => {
                bytes[1] = payload_len as u8;
                2
            }
            126..=0xFFFF => {
                bytes[1] = 126;
                bytes[2..4].copy_from_slice(&(payload_len as u16).to_be_bytes());
                4
            }
            _ => {
                bytes[1] = 127;
                bytes[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
                10
            }
        };
        Header { bytes, len }
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// Its bytes, to queue before a shared payload.
    pub fn to_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.as_bytes())
    }
}

impl AsRef<[u8]> for Header {
    fn as_ref(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// The header of a text frame of `len` bytes.
pub fn text_header(len: usize) -> Header {
    Header::new(Opcode::Text, len)
}

/// A whole frame of `opcode` carrying `payload`, in one allocation.
pub fn frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let header = Header::new(opcode, payload.len());
    let mut out = BytesMut::with_capacity(header.as_bytes().len() + payload.len());
    out.put_slice(header.as_bytes());
    out.put_slice(payload);
    out.freeze()
}

/// A whole text frame (`payload` must be UTF-8: an event's JSON).
pub fn text(payload: &[u8]) -> Bytes {
    debug_assert!(
        std::str::from_utf8(payload).is_ok(),
        "text frame of non-UTF-8 {payload:x?}"
    );
    frame(Opcode::Text, payload)
}

/// A whole binary frame.
pub fn binary(payload: &[u8]) -> Bytes {
    frame(Opcode::Binary, payload)
}

/// A text frame as two parts for a vectored write: its header, then `payload` itself
/// (a reference-count increment, no copy).
pub fn text_parts(payload: &Bytes, out: &mut Vec<Bytes>) {
    debug_assert!(
        std::str::from_utf8(payload).is_ok(),
        "text frame of non-UTF-8 {payload:x?}"
    );
    out.push(text_header(payload.len()).to_bytes());
    out.push(payload.clone());
}

/// An empty ping: the heartbeat of the echo socket, the same two bytes for every
/// connection.
pub fn heartbeat() -> Bytes {
    Bytes::from_static(&[0x89, 0x00])
}

/// The heartbeat of `/ws`: an empty ping (the peer's pong, or any frame, proves it
/// alive), then a `noop` event in a text frame (a page sees no ping; its client tells a
/// dead connection by the silence, as on the HTTP streams). The same 19 bytes for every
/// connection.
pub fn heartbeat_with_noop() -> Bytes {
    const NOOP_FRAME: &[u8] = b"\x89\x00\x81\x0f{\"type\":\"noop\"}";
    Bytes::from_static(NOOP_FRAME)
}

/// A ping carrying `payload` (cut to 125 bytes).
pub fn ping(payload: &[u8]) -> Bytes {
    frame(Opcode::Ping, control_payload(payload))
}

/// A pong carrying `payload`: the answer to a ping carries the ping's payload.
pub fn pong(payload: &[u8]) -> Bytes {
    frame(Opcode::Pong, control_payload(payload))
}

fn control_payload(payload: &[u8]) -> &[u8] {
    debug_assert!(
        payload.len() <= MAX_CONTROL_PAYLOAD,
        "control payload of {} bytes",
        payload.len()
    );
    payload.get(..MAX_CONTROL_PAYLOAD).unwrap_or(payload)
}

/// A close frame with `code` and `reason` (cut to the 123 bytes that fit, on a
/// character boundary).
pub fn close(code: u16, reason: &str) -> Bytes {
    debug_assert!(close::is_valid(code), "close code {code} may not be sent");
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    frame(Opcode::Close, &payload[..2 + end])
}

/// A close frame without a code: the answer to a client's empty close.
pub fn close_empty() -> Bytes {
    Bytes::from_static(&[0x88, 0x00])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples() {
        // RFC 6455 5.7: the unmasked (server) frames.
        assert_eq!(&text(b"Hello")[..], b"\x81\x05Hello");
        assert_eq!(&frame(Opcode::Ping, b"Hello")[..], b"\x89\x05Hello");
        assert_eq!(&binary(&[0; 256])[..4], &[0x82, 0x7E, 0x01, 0x00]);
        assert_eq!(
            &binary(&[0; 65536])[..10],
            &[0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]
        );
    }

    #[test]
    fn header_lengths_at_the_edges() {
        for (len, size) in [
            (0, 2),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
            (1 << 33, 10),
        ] {
            let h = text_header(len);
            assert_eq!(h.as_bytes().len(), size, "len {len}");
            assert_eq!(h.as_bytes()[0], 0x81);
            let decoded = match h.as_bytes()[1] {
                126 => u64::from(u16::from_be_bytes([h.as_bytes()[2], h.as_bytes()[3]])),
                127 => u64::from_be_bytes(h.as_bytes()[2..10].try_into().unwrap()),
                n => u64::from(n),
            };
            assert_eq!(decoded, len as u64);
        }
    }

    #[test]
    fn parts_share_the_payload() {
        let json = Bytes::from_static(b"{\"type\":\"message\"}");
        let mut out = Vec::new();
        text_parts(&json, &mut out);
        assert_eq!(out[1].as_ptr(), json.as_ptr(), "the payload is not copied");
        assert_eq!([&out[0][..], &out[1][..]].concat(), &text(&json)[..]);
    }

    #[test]
    fn control_frames() {
        assert_eq!(&heartbeat()[..], &ping(b"")[..]);
        assert_eq!(&pong(b"abc")[..], b"\x8A\x03abc");
        assert_eq!(&close(1000, "")[..], &[0x88, 0x02, 0x03, 0xE8]);
        assert_eq!(&close(1001, "bye")[..], b"\x88\x05\x03\xE9bye");
        assert_eq!(&close_empty()[..], &[0x88, 0x00]);
        // A long reason is cut on a character boundary, within 125 bytes of payload.
        let long = "é".repeat(100);
        let c = close(1011, &long);
        assert_eq!(c[1], 124);
        assert!(std::str::from_utf8(&c[4..]).is_ok());
    }
}
