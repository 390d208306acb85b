//! A raw WebSocket client for the `/ws` tests: the handshake, server frames read whole
//! (and checked unmasked), masked client frames of any length, and the waits the tests
//! share (`sync`: a ping answered after everything sent before it; `close_frame` and
//! `closed_with`). Raw, so every byte on the wire is checked; the client libraries this
//! project did not write are in `ws_clients_*.rs`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::TestServer;

/// RFC 6455 1.3's example key and the accept value it gives.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Sends an upgrade for `/ws?query` (with `extra` header lines) on `s`; returns the
/// socket and the response head.
pub fn handshake_with(mut s: TcpStream, query: &str, extra: &str) -> (TcpStream, String) {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /ws?{query} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).unwrap(), 1, "closed before the head ended");
        head.push(b[0]);
    }
    (s, String::from_utf8(head).unwrap())
}

/// `handshake_with` on a new connection to `addr`.
pub fn handshake(addr: SocketAddr, query: &str, extra: &str) -> (TcpStream, String) {
    handshake_with(TcpStream::connect(addr).unwrap(), query, extra)
}

/// A version-13 upgrade on `s`.
pub fn handshake_on(s: TcpStream, query: &str) -> (TcpStream, String) {
    handshake_with(s, query, "Sec-WebSocket-Version: 13\r\n")
}

/// An open WebSocket at `addr`, past its `hello` (returned).
pub fn open_at(addr: SocketAddr, query: &str) -> (TcpStream, serde_json::Value) {
    let (mut s, head) = handshake_on(TcpStream::connect(addr).unwrap(), query);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let hello = event(&mut s);
    assert_eq!(hello["type"], "hello");
    (s, hello)
}

/// An open WebSocket on `g`, past its `hello`.
pub fn open(g: &TestServer, query: &str) -> TcpStream {
    open_at(g.public, query).0
}

/// One server frame: (opcode, payload).
pub fn try_frame(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    s.read_exact(&mut h)?;
    assert_eq!(h[1] & 0x80, 0, "a server frame must not be masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l)?;
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l)?;
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0u8; len];
    s.read_exact(&mut p)?;
    Ok((h[0] & 0x0f, p))
}

/// One server frame: (opcode, payload).
pub fn frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    try_frame(s).unwrap()
}

/// A heartbeat's `noop` event (it follows each ping, for pages, which see no ping).
pub fn is_noop(op: u8, p: &[u8]) -> bool {
    op == 0x1 && p == br#"{"type":"noop"}"#
}

/// A text frame's JSON, skipping heartbeats (pings and their `noop`).
pub fn event(s: &mut TcpStream) -> serde_json::Value {
    loop {
        let (op, p) = frame(s);
        if op == 0x9 || is_noop(op, &p) {
            continue;
        }
        assert_eq!(op, 0x1, "a text frame, got {op:#x} {p:?}");
        return serde_json::from_slice(&p).unwrap();
    }
}

/// A masked client frame (any length).
pub fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![first];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else if payload.len() <= 0xffff {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// Sends a masked frame whose first byte is `first` (FIN, opcode).
pub fn send(s: &mut TcpStream, first: u8, payload: &[u8]) {
    s.write_all(&masked(first, payload)).unwrap();
}

/// A command as a masked text frame.
pub fn command(s: &mut TcpStream, json: &str) {
    send(s, 0x81, json.as_bytes());
}

/// Waits until the gateway has handled everything sent before: a ping sent now is
/// answered after it (frames are handled in order). Returns the text events that came
/// before the pong.
pub fn sync(s: &mut TcpStream) -> Vec<serde_json::Value> {
    send(s, 0x89, b"sync");
    let mut events = Vec::new();
    loop {
        match frame(s) {
            (0x9, _) => {}
            (op, p) if is_noop(op, &p) => {}
            (0xA, p) if p == b"sync" => return events,
            (0x1, p) => events.push(serde_json::from_slice(&p).unwrap()),
            (op, p) => panic!("unexpected frame {op:#x} {p:?}"),
        }
    }
}

/// The close frame's code, after any text events (returned) and heartbeats.
pub fn close_frame(s: &mut TcpStream) -> (u16, Vec<serde_json::Value>) {
    let mut events = Vec::new();
    loop {
        match frame(s) {
            (0x9, _) => {}
            (op, p) if is_noop(op, &p) => {}
            (0x1, p) => events.push(serde_json::from_slice(&p).unwrap()),
            (0x8, p) => return (u16::from_be_bytes([p[0], p[1]]), events),
            (op, p) => panic!("unexpected frame {op:#x} {p:?}"),
        }
    }
}

/// `close_frame`, then the end of the connection with nothing after the close.
pub fn closed_with(s: &mut TcpStream) -> (u16, Vec<serde_json::Value>) {
    let closed = close_frame(s);
    let mut rest = Vec::new();
    // The gateway closes the TCP connection after its close frame.
    let _ = s.read_to_end(&mut rest);
    assert!(rest.is_empty(), "bytes after the close frame: {rest:?}");
    closed
}
