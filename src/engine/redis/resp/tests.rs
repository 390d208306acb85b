//! Framing and modes without a socket: bytes fed whole, byte by byte and in random
//! chunks; the pub/sub bookkeeping driven frame by frame.

use bytes::Bytes;

use super::frame::Framer;
use super::{encode_command, Mode, PubSub, Reply, RespError};

fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

fn bulk(s: &[u8]) -> Reply {
    Reply::Bulk(Some(b(s)))
}

#[test]
fn commands_encode_as_arrays_of_bulk_strings() {
    assert_eq!(encode_command(&[b"PING"]), &b"*1\r\n$4\r\nPING\r\n"[..]);
    assert_eq!(
        encode_command(&[b"SET", b"k\r\n", b"", b"\xff\x00"]),
        &b"*4\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n$2\r\n\xff\x00\r\n"[..]
    );
}

/// A reply stream as Redis sends it, and what it decodes to.
fn recorded() -> (Vec<u8>, Vec<Reply>) {
    let big: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut wire = b"+OK\r\n:-42\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n".to_vec();
    wire.extend_from_slice(b"-ERR unknown command '\xff\xfeA', with args beginning with: \r\n");
    wire.extend_from_slice(b"*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$4\r\na\r\nb\r\n");
    wire.extend_from_slice(b"*3\r\n*2\r\n:1\r\n$-1\r\n*0\r\n+\r\n");
    wire.extend_from_slice(format!("${}\r\n", big.len()).as_bytes());
    wire.extend_from_slice(&big);
    wire.extend_from_slice(b"\r\n:9223372036854775807\r\n");
    let replies = vec![
        Reply::Simple(b(b"OK")),
        Reply::Integer(-42),
        bulk(b"hello"),
        bulk(b""),
        Reply::Bulk(None),
        Reply::Array(None),
        Reply::Array(Some(vec![])),
        Reply::Error(b(
            b"ERR unknown command '\xff\xfeA', with args beginning with: ",
        )),
        Reply::Array(Some(vec![bulk(b"message"), bulk(b"ch"), bulk(b"a\r\nb")])),
        Reply::Array(Some(vec![
            Reply::Array(Some(vec![Reply::Integer(1), Reply::Bulk(None)])),
            Reply::Array(Some(vec![])),
            Reply::Simple(b(b"")),
        ])),
        Reply::Bulk(Some(big.into())),
        Reply::Integer(i64::MAX),
    ];
    (wire, replies)
}

/// Reads `wire` in pieces of the sizes `next_size` gives, framing after each one.
fn feed(wire: &[u8], mut next_size: impl FnMut() -> usize) -> Vec<Reply> {
    let mut f = Framer::new(1 << 20);
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        // Through the socket's read path: a `&[u8]` reads like a socket that has `n` bytes.
        let n = next_size().clamp(1, rest.len());
        let mut piece = &rest[..n];
        while !piece.is_empty() {
            f.read_from(&mut piece).unwrap();
        }
        rest = &rest[n..];
        while let Some(reply) = f.next_frame().expect("valid stream") {
            out.push(reply);
        }
    }
    assert!(
        f.buffered().is_empty(),
        "{} bytes left unframed",
        f.buffered().len()
    );
    out
}

#[test]
fn a_recorded_stream_decodes_whole_byte_by_byte_and_in_random_chunks() {
    let (wire, want) = recorded();
    assert_eq!(feed(&wire, || wire.len()), want);
    assert_eq!(feed(&wire, || 1), want);
    // xorshift: reproducible sizes from 1 byte to 8 KiB, several seeds.
    for seed in 1..=20u64 {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let sizes = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % 8192) as usize + 1
        };
        assert_eq!(feed(&wire, sizes), want, "seed {seed}");
    }
}

#[test]
fn the_crate_decoder_rejects_what_redis_really_sends() {
    // Why `decode_range` is used and not `decode_bytes_mut`: the latter wants error lines
    // in UTF-8. If this starts to pass, the crate changed and `frame.rs` could use it.
    let mut buf = bytes::BytesMut::from(&b"-ERR unknown command '\xff'\r\n"[..]);
    assert!(redis_protocol::resp2::decode::decode_bytes_mut(&mut buf).is_err());
}

#[test]
fn bulk_strings_are_views_of_the_read_buffer() {
    let mut f = Framer::new(1 << 20);
    f.feed(b"$5\r\nhello\r\n");
    let start = f.buffered().as_ptr() as usize;
    let Ok(Some(Reply::Bulk(Some(s)))) = f.next_frame() else {
        panic!("no bulk string");
    };
    assert_eq!(s.as_ptr() as usize, start + 4, "the payload was copied");
}

#[test]
fn the_size_limit_holds_from_the_header_and_while_buffering() {
    let frame = |bytes: &[u8], max: usize| {
        let mut f = Framer::new(max);
        f.feed(bytes);
        f.next_frame()
    };
    // Exactly at the limit passes; one byte more does not, even before the body arrives.
    assert_eq!(frame(b"$2\r\nab\r\n", 8), Ok(Some(bulk(b"ab"))));
    assert_eq!(frame(b"$3\r\nabc\r\n", 8), Err(RespError::TooBig));
    assert_eq!(frame(b"$1000000\r\n", 1000), Err(RespError::TooBig));
    // An array of small elements, incomplete but already past the limit.
    assert_eq!(frame(b"*1000\r\n", 100), Ok(None));
    let many: Vec<u8> = [&b"*1000\r\n"[..], &b":1\r\n".repeat(30)].concat();
    assert_eq!(frame(&many, 100), Err(RespError::TooBig));
}

#[test]
fn malformed_input_is_a_protocol_error() {
    for bad in [
        &b"?what\r\n"[..],
        b"$abc\r\n",
        b"$-2\r\n",
        b"*-5\r\n",
        b":12x\r\n",
        b"\r\n",
        &b"*1\r\n".repeat(40),
    ] {
        let mut f = Framer::new(1 << 20);
        f.feed(bad);
        assert_eq!(
            f.next_frame(),
            Err(RespError::Protocol),
            "{:?}",
            bad.escape_ascii().to_string()
        );
    }
}

fn push(kind: &[u8], channel: &[u8], third: Reply) -> Reply {
    Reply::Array(Some(vec![bulk(kind), bulk(channel), third]))
}

#[test]
fn pubsub_confirmations_are_counted_per_channel() {
    let mut ps = PubSub::default();
    assert!(ps.want(b"a", true));
    assert!(!ps.want(b"a", true), "asked twice, sent once");
    assert!(!ps.want(b"never", false), "nothing to unsubscribe");
    assert_eq!(ps.in_flight(), 1);
    ps.on_frame(push(b"subscribe", b"a", Reply::Integer(1)))
        .unwrap();
    assert_eq!((ps.in_flight(), ps.confirmed.len()), (0, 1));
    ps.on_frame(push(b"message", b"a", bulk(b"p1"))).unwrap();
    assert_eq!(ps.messages, vec![(b(b"a"), b(b"p1"))]);

    // Off and on again before Redis answers: one confirmation per command, and only the
    // last one (a subscribe) reports the channel.
    assert!(ps.want(b"a", false) && ps.want(b"a", true));
    ps.on_frame(push(b"unsubscribe", b"a", Reply::Integer(0)))
        .unwrap();
    assert_eq!(ps.confirmed.len(), 1);
    ps.on_frame(push(b"subscribe", b"a", Reply::Integer(1)))
        .unwrap();
    assert_eq!((ps.in_flight(), ps.confirmed.len()), (0, 2));

    // Let go: messages still in flight are dropped, and the entry goes with the last ack.
    assert!(ps.want(b"a", false));
    ps.on_frame(push(b"message", b"a", bulk(b"late"))).unwrap();
    assert_eq!(ps.messages.len(), 1);
    ps.on_frame(push(b"unsubscribe", b"a", Reply::Integer(0)))
        .unwrap();
    assert!(ps.subs.is_empty());
}

#[test]
fn pubsub_frames_out_of_place_kill_the_connection() {
    let mut ps = PubSub::default();
    let ack = push(b"subscribe", b"a", Reply::Integer(1));
    assert_eq!(
        ps.on_frame(ack.clone()),
        Err(RespError::Unexpected),
        "never asked"
    );
    ps.want(b"a", true);
    let wrong = push(b"unsubscribe", b"a", Reply::Integer(0));
    assert_eq!(ps.on_frame(wrong), Err(RespError::Unexpected), "wrong kind");
    assert_eq!(
        ps.on_frame(Reply::Simple(b(b"PONG"))),
        Err(RespError::Unexpected)
    );
    assert_eq!(
        ps.on_frame(Reply::Error(b(b"NOPERM"))),
        Err(RespError::Rejected)
    );
    assert_eq!(ps.on_frame(ack), Ok(()));
}

#[test]
fn pubsub_pongs_count_in_both_forms() {
    let mut ps = PubSub::default();
    let pong = Reply::Simple(b(b"PONG"));
    assert_eq!(
        ps.on_frame(pong.clone()),
        Err(RespError::Unexpected),
        "no PING sent"
    );
    ps.pings_due = 2;
    // Before any subscription Redis answers `+PONG`; once subscribed, `["pong", ""]`.
    ps.on_frame(pong).unwrap();
    ps.on_frame(Reply::Array(Some(vec![bulk(b"pong"), bulk(b"")])))
        .unwrap();
    assert_eq!((ps.pings_due, ps.pongs, ps.in_flight()), (0, 2, 0));
}
