//! The server side of the opening handshake (RFC 6455 4.2), as pure functions over the
//! request's header values: [`check`] says whether a request may be upgraded and with
//! which `Sec-WebSocket-Accept`, or what to answer instead; [`Accept::response`] is the
//! 101 head. The caller routes (`GET`, HTTP/1.1, the path), checks `Origin` and auth,
//! and passes the values from its own request head type. No extension
//! (permessage-deflate) and no subprotocol is ever negotiated: their request headers are
//! ignored and the answer names none. Touches no socket.

use bytes::{BufMut, Bytes, BytesMut};
use sha1::{Digest, Sha1};

/// The GUID the accept key is derived with (RFC 6455 1.3).
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The only version spoken.
pub const VERSION: &str = "13";

/// The handshake headers of a request, `None` when absent. A header sent on several
/// lines is passed joined by `,` (all but the key are token lists).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Request<'a> {
    /// `Upgrade`: must list `websocket`.
    pub upgrade: Option<&'a str>,
    /// `Connection`: must list `upgrade`.
    pub connection: Option<&'a str>,
    /// `Sec-WebSocket-Version`: must be 13.
    pub version: Option<&'a str>,
    /// `Sec-WebSocket-Key`: base64 of 16 bytes.
    pub key: Option<&'a str>,
}

/// Why a request is not upgraded, and what to answer: `status`, an error `message`,
/// and `headers`, whole header lines (each ending in `\r\n`) to add to the answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// 400 or 426.
    pub status: u16,
    /// For `{"error": …}`.
    pub message: &'static str,
    /// Header lines the answer must carry (426 names what to upgrade to).
    pub headers: &'static str,
}

/// The `Sec-WebSocket-Accept` value of an accepted handshake (28 base64 characters).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Accept([u8; 28]);

impl Accept {
    /// The value.
    pub fn as_str(&self) -> &str {
        // Base64 is ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The 101 response head that completes the handshake; `extra` is whole header
    /// lines (each ending in `\r\n`) to add. Frames may follow it at once.
    pub fn response(&self, extra: &str) -> Bytes {
        let mut out = BytesMut::with_capacity(160 + extra.len());
        out.put_slice(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n");
        out.put_slice(b"Connection: Upgrade\r\nSec-WebSocket-Accept: ");
        out.put_slice(&self.0);
        out.put_slice(b"\r\n");
        out.put_slice(extra.as_bytes());
        out.put_slice(b"\r\n");
        out.freeze()
    }
}

impl std::fmt::Debug for Accept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Accept").field(&self.as_str()).finish()
    }
}

const NOT_WEBSOCKET: Refusal = Refusal {
    status: 426,
    message: "websocket upgrade required",
    headers: "Upgrade: websocket\r\nConnection: Upgrade\r\n",
};
const NO_CONNECTION_UPGRADE: Refusal = Refusal {
    status: 400,
    message: "Connection header lacks upgrade",
    headers: "",
};
const BAD_VERSION: Refusal = Refusal {
    status: 426,
    message: "unsupported websocket version",
    headers: "Sec-WebSocket-Version: 13\r\n",
};
const BAD_KEY: Refusal = Refusal {
    status: 400,
    message: "missing or malformed Sec-WebSocket-Key",
    headers: "",
};

/// Checks a request's handshake headers, in this order: `Upgrade` lists `websocket`
/// (else 426 naming it), `Connection` lists `upgrade` (else 400), the version is 13
/// (else 426 with `Sec-WebSocket-Version: 13`), the key is base64 of 16 bytes (else 400).
pub fn check(req: &Request<'_>) -> Result<Accept, Refusal> {
    if !req.upgrade.is_some_and(|v| has_token(v, "websocket")) {
        return Err(NOT_WEBSOCKET);
    }
    if !req.connection.is_some_and(|v| has_token(v, "upgrade")) {
        return Err(NO_CONNECTION_UPGRADE);
    }
    if req.version.map(str::trim) != Some(VERSION) {
        return Err(BAD_VERSION);
    }
    match req.key.map(str::trim) {
        Some(key) if is_key(key) => Ok(accept_key(key)),
        _ => Err(BAD_KEY),
    }
}

/// Whether the comma-separated `list` holds `token` (ASCII case-insensitive).
pub fn has_token(list: &str, token: &str) -> bool {
    list.split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Whether `key` is base64 of 16 bytes: 22 characters of the alphabet and `==`.
fn is_key(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() == 24 && b.ends_with(b"==") && b.iter().take(22).all(|&c| sextet(c).is_some())
}

/// `Sec-WebSocket-Accept` for `key`: base64 of the SHA-1 of the key and the GUID.
pub fn accept_key(key: &str) -> Accept {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    let digest: [u8; 20] = sha.finalize().into();
    let mut out = [0u8; 28];
    base64(&digest, &mut out);
    Accept(out)
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// The value of a base64 character.
fn sextet(c: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == c).map(|i| i as u8)
}

/// Base64 (RFC 4648, padded) of `src` into `out`, which holds exactly
/// `4 * ceil(len / 3)` bytes.
fn base64(src: &[u8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), src.len().div_ceil(3) * 4, "base64 output size");
    for (chunk, dst) in src.chunks(3).zip(out.chunks_mut(4)) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for (i, d) in dst.iter_mut().enumerate() {
            *d = if i <= chunk.len() {
                ALPHABET[(n >> (18 - 6 * i) & 63) as usize]
            } else {
                b'='
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn req<'a>(
        upgrade: &'a str,
        connection: &'a str,
        version: &'a str,
        key: &'a str,
    ) -> Request<'a> {
        let some = |v: &'a str| (!v.is_empty()).then_some(v);
        Request {
            upgrade: some(upgrade),
            connection: some(connection),
            version: some(version),
            key: some(key),
        }
    }

    #[test]
    fn rfc_example_key() {
        // RFC 6455 1.3 (also what Python's hashlib and base64 give).
        assert_eq!(accept_key(KEY).as_str(), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
        let head = check(&req("websocket", "Upgrade", "13", KEY))
            .unwrap()
            .response("");
        assert_eq!(
            &head[..],
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
        );
    }

    #[test]
    fn base64_rfc4648_vectors() {
        for (src, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = vec![0u8; want.len()];
            base64(src.as_bytes(), &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), want, "{src:?}");
        }
    }

    #[test]
    fn requests_table() {
        let accepted = Ok(accept_key(KEY));
        for (upgrade, connection, version, key, want) in [
            ("websocket", "Upgrade", "13", KEY, accepted),
            // Browsers' spellings: Firefox sends `keep-alive, Upgrade`.
            ("WebSocket", "keep-alive, Upgrade", "13", KEY, accepted),
            ("websocket, h2c", "upgrade ,close", " 13 ", KEY, accepted),
            (
                "websocket",
                "Upgrade",
                "13",
                " dGhlIHNhbXBsZSBub25jZQ== ",
                accepted,
            ),
            ("", "Upgrade", "13", KEY, Err(NOT_WEBSOCKET)),
            ("h2c", "Upgrade", "13", KEY, Err(NOT_WEBSOCKET)),
            ("websockets", "Upgrade", "13", KEY, Err(NOT_WEBSOCKET)),
            ("websocket", "", "13", KEY, Err(NO_CONNECTION_UPGRADE)),
            (
                "websocket",
                "keep-alive",
                "13",
                KEY,
                Err(NO_CONNECTION_UPGRADE),
            ),
            ("websocket", "Upgrade", "", KEY, Err(BAD_VERSION)),
            ("websocket", "Upgrade", "8", KEY, Err(BAD_VERSION)),
            ("websocket", "Upgrade", "13, 8", KEY, Err(BAD_VERSION)),
            ("websocket", "Upgrade", "13", "", Err(BAD_KEY)),
            // base64 of 15, 17 and 19 bytes, a character outside the alphabet, no padding.
            (
                "websocket",
                "Upgrade",
                "13",
                "AAAAAAAAAAAAAAAAAAAA",
                Err(BAD_KEY),
            ),
            (
                "websocket",
                "Upgrade",
                "13",
                "AAAAAAAAAAAAAAAAAAAAAAA=",
                Err(BAD_KEY),
            ),
            (
                "websocket",
                "Upgrade",
                "13",
                "AAAAAAAAAAAAAAAAAAAAAAAAAA==",
                Err(BAD_KEY),
            ),
            (
                "websocket",
                "Upgrade",
                "13",
                "dGhlIHNhbXBsZSBub25j*Q==",
                Err(BAD_KEY),
            ),
            (
                "websocket",
                "Upgrade",
                "13",
                "dGhlIHNhbXBsZSBub25jZQAA",
                Err(BAD_KEY),
            ),
            (
                "websocket",
                "Upgrade",
                "13",
                "dGhlIHNhbXBsZSBub25jZQ==x",
                Err(BAD_KEY),
            ),
        ] {
            let r = req(upgrade, connection, version, key);
            assert_eq!(check(&r), want, "{r:?}");
        }
        assert_eq!(BAD_VERSION.headers, "Sec-WebSocket-Version: 13\r\n");
    }

    #[test]
    fn never_panics_on_odd_values() {
        for v in [
            "",
            ",",
            " , ",
            "\u{e9}",
            "dGhlIHNhbXBsZSBub25jZ\u{e9}=",
            "==========================",
        ] {
            let _ = check(&req("websocket", "upgrade", "13", v));
            let _ = check(&req(v, v, v, v));
        }
    }
}
