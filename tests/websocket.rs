//! `GET /ws` (issue 12, in progress): the opening handshake (101 with the RFC 6455
//! accept key; 426, 400 and 403 for what is refused), events as text frames (`hello`
//! first, then published messages), pings answered with pongs, the closing handshake,
//! and a protocol error closed with its code. Spoken by a raw client here; clients this
//! project did not write come with the rest of the issue.

mod util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use util::TestServer;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

fn handshake(addr: std::net::SocketAddr, query: &str, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(addr).unwrap();
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

/// One server frame: (opcode, payload). Server frames are never masked.
fn frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    assert_eq!(h[1] & 0x80, 0, "a server frame must not be masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).unwrap();
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).unwrap();
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut p = vec![0u8; len];
    s.read_exact(&mut p).unwrap();
    (h[0] & 0x0f, p)
}

/// A text frame's JSON, skipping pings.
fn event(s: &mut TcpStream) -> serde_json::Value {
    loop {
        let (op, p) = frame(s);
        if op == 0x9 {
            continue;
        }
        assert_eq!(op, 0x1, "a text frame");
        return serde_json::from_slice(&p).unwrap();
    }
}

/// A masked client frame.
fn send(s: &mut TcpStream, first: u8, payload: &[u8]) {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![first, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&f).unwrap();
}

#[test]
fn a_websocket_subscriber_gets_hello_and_messages_as_text_frames_and_pongs() {
    let g = TestServer::start(|_| {});
    let (mut s, head) = handshake(g.public, "channel=news", "Sec-WebSocket-Version: 13\r\n");
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(
        head.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")),
        "{head}"
    );
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions"),
        "{head}"
    );
    let hello = event(&mut s);
    assert_eq!(hello["type"], "hello");
    let seq = g.publish_seq("news", "one");
    let data = event(&mut s);
    assert_eq!(
        (data["seq"].as_u64(), data["data"].as_str()),
        (Some(seq), Some("one"))
    );
    send(&mut s, 0x89, b"hi");
    loop {
        let (op, p) = frame(&mut s);
        if op == 0x9 {
            continue;
        }
        assert_eq!(
            (op, p.as_slice()),
            (0xA, &b"hi"[..]),
            "a pong with the ping's payload"
        );
        break;
    }
    // The closing handshake: our close comes back, then the connection ends.
    send(&mut s, 0x88, &1000u16.to_be_bytes());
    let (op, p) = frame(&mut s);
    assert_eq!((op, &p[..2]), (0x8, &1000u16.to_be_bytes()[..]));
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    g.wait_subscribers("news", 0);
}

#[test]
fn a_protocol_error_is_closed_with_1002_and_a_resumed_cursor_gets_what_it_missed() {
    let g = TestServer::start(|_| {});
    let first = g.publish_seq("news", "one");
    g.publish_seq("news", "two");
    let (mut s, _) = handshake(
        g.public,
        &format!("channel=news&seq={first}"),
        "Sec-WebSocket-Version: 13\r\n",
    );
    assert_eq!(event(&mut s)["type"], "hello");
    assert_eq!(event(&mut s)["data"], "one");
    assert_eq!(event(&mut s)["data"], "two");
    // An unmasked frame from a client breaks the protocol.
    s.write_all(&[0x81, 0x01, b'x']).unwrap();
    let (op, p) = frame(&mut s);
    assert_eq!((op, &p[..2]), (0x8, &1002u16.to_be_bytes()[..]));
}

#[test]
fn handshakes_that_are_refused() {
    let g = TestServer::start(|c| c.allow_origin = vec!["https://good.example".into()]);
    let (_, head) = handshake(g.public, "channel=news", "");
    assert!(
        head.starts_with("HTTP/1.1 426 Upgrade Required"),
        "no version: {head}"
    );
    assert!(head.contains("Sec-WebSocket-Version: 13\r\n"), "{head}");
    let (_, head) = handshake(
        g.public,
        "channel=news",
        "Sec-WebSocket-Version: 13\r\nOrigin: https://evil.example\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 403 "), "another site: {head}");
    let (_, head) = handshake(
        g.public,
        "channel=news",
        "Sec-WebSocket-Version: 13\r\nOrigin: https://good.example\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    let r = util::get(g.public, "/ws?channel=news");
    assert_eq!(r.status, 426, "a plain GET");
}
