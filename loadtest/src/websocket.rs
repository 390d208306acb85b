//! The client side of RFC 6455 that the generator speaks: the opening handshake's key and
//! the accept value the server must answer with, server frames decoded from the front of a
//! connection's buffer, and masked client frames (pongs). Written here rather than taken
//! from the gateway so that the generator checks the server against the RFC, not against
//! the server's own code. Pure: bytes and random seeds in, texts and bytes out; it never
//! touches a socket, an account or an error count ([`crate::framer`] drives it).

use sha1::{Digest, Sha1};

/// The GUID of RFC 6455 §1.3, appended to the key before hashing.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest server frame the generator accepts (its messages are small; past this the
/// length is taken as garbage rather than something to wait for).
const MAX_FRAME: u64 = 16 << 20;

/// Opcodes (RFC 6455 §5.2).
const CONTINUATION: u8 = 0x0;
const TEXT: u8 = 0x1;
const BINARY: u8 = 0x2;
const CLOSE: u8 = 0x8;
const PING: u8 = 0x9;
const PONG: u8 = 0xA;

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= chunk.len() {
                out.push(ABC[(n >> shift) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The `Sec-WebSocket-Key` for a 16-byte nonce.
pub fn key(nonce: [u8; 16]) -> String {
    base64(&nonce)
}

/// The `Sec-WebSocket-Accept` a server must answer `key` with.
pub fn accept(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(GUID.as_bytes());
    base64(&h.finalize())
}

/// 16 random bytes for a key and a seed for the connection's masks, from the OS.
pub fn nonce() -> ([u8; 16], u64) {
    let mut b = [0u8; 24];
    // A failing OS source is not worth aborting a load run for: the clock stands in.
    if getrandom::getrandom(&mut b).is_err() {
        let t = crate::clock::now_us().to_le_bytes();
        for (i, x) in b.iter_mut().enumerate() {
            *x = t[i % 8] ^ (i as u8).wrapping_mul(151);
        }
    }
    let mut nonce = [0u8; 16];
    nonce.copy_from_slice(&b[..16]);
    let seed = u64::from_le_bytes(b[16..].try_into().unwrap_or([1; 8]));
    (nonce, seed | 1)
}

/// A client frame (FIN set) of `opcode` carrying `payload`, masked with `mask`.
pub fn client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(0x80 | opcode);
    match payload.len() {
        n @ 0..=125 => f.push(0x80 | n as u8),
        n @ 126..=0xffff => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// One server frame's header, once all of it is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Header {
    fin: bool,
    opcode: u8,
    /// Header bytes (2, 4 or 10: server frames carry no mask).
    len: usize,
    payload: usize,
}

/// The header at the front of `buf`: `Ok(None)` while incomplete.
fn header(buf: &[u8]) -> Result<Option<Header>, &'static str> {
    if buf.len() < 2 {
        return Ok(None);
    }
    if buf[0] & 0x70 != 0 {
        return Err("websocket: reserved bits set (nothing was negotiated)");
    }
    if buf[1] & 0x80 != 0 {
        return Err("websocket: masked server frame");
    }
    let (len, payload) = match buf[1] & 0x7f {
        126 if buf.len() < 4 => return Ok(None),
        126 => (4, u64::from(u16::from_be_bytes([buf[2], buf[3]]))),
        127 if buf.len() < 10 => return Ok(None),
        127 => {
            let mut l = [0u8; 8];
            l.copy_from_slice(&buf[2..10]);
            (10, u64::from_be_bytes(l))
        }
        n => (2, u64::from(n)),
    };
    if payload > MAX_FRAME {
        return Err("websocket: frame too large");
    }
    Ok(Some(Header {
        fin: buf[0] & 0x80 != 0,
        opcode: buf[0] & 0x0f,
        len,
        payload: payload as usize,
    }))
}

/// Where a connection stands after its buffered frames were read.
#[derive(Debug, PartialEq, Eq)]
pub enum Got {
    /// More to come.
    Open,
    /// The server sent a close frame, with this code if it gave one.
    Closed(Option<u16>),
    /// The frames made no sense.
    Broken(&'static str),
}

/// One connection's state after the 101: a message still arriving in fragments, the masked
/// replies owed to the server, and the state of the masks' generator.
#[derive(Debug)]
pub struct Client {
    /// `Sec-WebSocket-Accept` the 101 must carry.
    pub accept: String,
    /// Payload of a fragmented message so far (`None`: no message in flight).
    message: Option<Vec<u8>>,
    /// Masked frames to send (pongs), taken by the caller.
    reply: Vec<u8>,
    /// Xorshift state for mask keys (seeded from the OS, so masks are not predictable
    /// from the wire; nothing here needs them to be secret).
    rng: u64,
}

impl Client {
    /// The state of a connection opened with `key`; `seed` (not 0) drives its masks.
    pub fn new(key: &str, seed: u64) -> Client {
        Client {
            accept: accept(key),
            message: None,
            reply: Vec::new(),
            rng: seed | 1,
        }
    }

    fn mask(&mut self) -> [u8; 4] {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        (x as u32).to_le_bytes()
    }

    /// Masked frames owed to the server since the last call.
    pub fn take_reply(&mut self) -> Option<Vec<u8>> {
        (!self.reply.is_empty()).then(|| std::mem::take(&mut self.reply))
    }

    /// Reads every whole frame at the front of `buf` (a partial one stays for the next
    /// call): each text message goes to `out`, each ping gets a masked pong.
    pub fn read(&mut self, buf: &mut Vec<u8>, out: &mut Vec<String>) -> Got {
        let mut at = 0;
        let got = loop {
            let h = match header(&buf[at..]) {
                Ok(Some(h)) if buf.len() - at >= h.len + h.payload => h,
                Ok(_) => break Got::Open,
                Err(why) => break Got::Broken(why),
            };
            let payload = &buf[at + h.len..at + h.len + h.payload];
            at += h.len + h.payload;
            if h.opcode >= CLOSE && (!h.fin || h.payload > 125) {
                break Got::Broken("websocket: bad control frame");
            }
            match (h.opcode, self.message.as_mut()) {
                (TEXT | BINARY, Some(_)) => break Got::Broken("websocket: message inside one"),
                (CONTINUATION, None) => break Got::Broken("websocket: stray continuation"),
                (TEXT | BINARY, None) if h.fin => {
                    let Ok(text) = std::str::from_utf8(payload) else {
                        break Got::Broken("websocket: text not UTF-8");
                    };
                    out.push(text.to_owned());
                }
                (TEXT | BINARY, None) => self.message = Some(payload.to_vec()),
                (CONTINUATION, Some(m)) => {
                    m.extend_from_slice(payload);
                    if h.fin {
                        let m = self.message.take().unwrap_or_default();
                        let Ok(text) = String::from_utf8(m) else {
                            break Got::Broken("websocket: text not UTF-8");
                        };
                        out.push(text);
                    }
                }
                (PING, _) => {
                    let mask = self.mask();
                    let pong = client_frame(PONG, payload, mask);
                    self.reply.extend_from_slice(&pong);
                }
                (PONG, _) => {}
                (CLOSE, _) => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    break Got::Closed(code);
                }
                _ => break Got::Broken("websocket: unknown opcode"),
            }
        };
        buf.drain(..at);
        got
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshake_values() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
        assert_eq!(key(*b"the sample nonce"), "dGhlIHNhbXBsZSBub25jZQ==");
        for (raw, b64) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
        ] {
            assert_eq!(base64(raw.as_bytes()), b64);
        }
        let (a, _) = nonce();
        let (b, _) = nonce();
        assert_ne!(a, b);
        assert_eq!(key(a).len(), 24);
    }

    #[test]
    fn client_frames_are_masked() {
        let f = client_frame(PONG, b"hi", [1, 2, 3, 4]);
        assert_eq!(f, [0x8a, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
        let long = client_frame(TEXT, &[0u8; 300], [0; 4]);
        assert_eq!(&long[..4], &[0x81, 0x80 | 126, 1, 44]);
        assert_eq!(long.len(), 4 + 4 + 300);
    }

    #[test]
    fn refuses_what_a_server_must_not_send() {
        let mut c = Client::new("x", 1);
        let cases: [&[u8]; 5] = [
            &[0x81, 0x81, 0, 0, 0, 0, b'a'], // masked
            &[0xc1, 0x01, b'a'],             // RSV1 without an extension
            &[0x09, 0x00],                   // fragmented ping
            &[0x80, 0x00],                   // continuation of nothing
            &[0x83, 0x00],                   // reserved opcode
        ];
        for bytes in cases {
            let mut buf = bytes.to_vec();
            let got = c.read(&mut buf, &mut Vec::new());
            assert!(matches!(got, Got::Broken(_)), "{bytes:?}: {got:?}");
        }
        let mut huge = vec![0x81, 127];
        huge.extend_from_slice(&(MAX_FRAME + 1).to_be_bytes());
        assert!(matches!(c.read(&mut huge, &mut Vec::new()), Got::Broken(_)));
    }
}
