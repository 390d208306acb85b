//! The frame parser's tests: a table of client byte streams (the RFC 6455 5.7 examples,
//! fragmentation, UTF-8 across fragments, control and close rules, the size limit), each
//! fed whole, one byte at a time and in other pieces, with the byte at which an error
//! must surface; and a deterministic random run that must never panic and must not
//! depend on how the bytes are cut.

use super::*;
use Incoming::{Binary, Ping, Pong, Text};

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
const FIN: u8 = 0x80;
/// The size limit of the table's cases.
const MAX: usize = 1000;

/// A client frame: `b0` (FIN, reserved bits, opcode), the shortest length, `MASK`, the
/// masked payload.
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![b0];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n @ 126..=0xFFFF => {
            out.push(0x80 | 126);
            out.extend((n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend((n as u64).to_be_bytes());
        }
    }
    out.extend(MASK);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

fn close(code: u16, reason: &[u8]) -> Vec<u8> {
    frame(FIN | 8, &[&code.to_be_bytes()[..], reason].concat())
}

fn text(s: &str) -> Incoming {
    Text(s.into())
}

fn closed(code: Option<u16>, reason: &str) -> Incoming {
    Incoming::Close {
        code,
        reason: reason.into(),
    }
}

/// What a stream yields, and how it ends: `Ok(bytes left unconsumed)` or the error.
type Outcome = (Vec<Incoming>, Result<usize, Error>);

/// Feeds `input` whole.
fn whole(input: &[u8], max: usize) -> Outcome {
    let mut p = Parser::new();
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        match p.parse(&input[at..], max) {
            Ok(Status::Complete { consumed, incoming }) => {
                assert!(consumed >= 6, "a client frame is at least 6 bytes");
                at += consumed;
                out.extend(incoming);
            }
            Ok(Status::Partial { .. }) => return (out, Ok(input.len() - at)),
            Err(e) => return (out, Err(e)),
        }
    }
}

/// Feeds `input` in pieces of `sizes` (cycled) as the reactor does: what is left
/// unconsumed, then the next piece. Also returns how many bytes were fed when an error
/// surfaced, and whether the parser was idle at the end.
fn pieces(input: &[u8], max: usize, sizes: &[usize]) -> (Outcome, usize, bool) {
    let mut p = Parser::new();
    let mut out = Vec::new();
    let mut kept: Vec<u8> = Vec::new();
    let mut fed = 0;
    for &size in sizes.iter().cycle() {
        if fed == input.len() {
            break;
        }
        let end = (fed + size.max(1)).min(input.len());
        kept.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            match p.parse(&kept, max) {
                Ok(Status::Complete { consumed, incoming }) => {
                    kept.drain(..consumed);
                    out.extend(incoming);
                }
                Ok(Status::Partial { .. }) => break,
                Err(e) => return ((out, Err(e)), fed, p.is_idle()),
            }
        }
    }
    ((out, Ok(kept.len())), fed, p.is_idle())
}

struct Case {
    name: &'static str,
    input: Vec<u8>,
    want: Vec<Incoming>,
    /// `Ok(bytes left over)` or the error.
    end: Result<usize, Error>,
    /// For an error: how many bytes, fed one at a time, it takes to surface.
    fail_at: usize,
    /// A fragmented message is still open at the end.
    open: bool,
}

fn ok(name: &'static str, input: Vec<u8>, want: Vec<Incoming>) -> Case {
    Case {
        name,
        input,
        want,
        end: Ok(0),
        fail_at: 0,
        open: false,
    }
}

fn bad(name: &'static str, input: Vec<u8>, want: Vec<Incoming>, e: Error, fail_at: usize) -> Case {
    Case {
        name,
        input,
        want,
        end: Err(e),
        fail_at,
        open: false,
    }
}

// One row per case, so the table reads as a table.
#[rustfmt::skip]
fn cases() -> Vec<Case> {
    let hello = [0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    let hel = frame(0x01, b"Hel");
    let big = vec![0x5a; 256];
    let mut cases = vec![
        // RFC 6455 5.7, the client-side ones (masked), and the unmasked ones refused.
        ok("5.7 masked Hello", [&[0x81, 0x85][..], &hello].concat(), vec![text("Hello")]),
        ok("5.7 masked pong", [&[0x8a, 0x85][..], &hello].concat(), vec![Pong(b"Hello".to_vec())]),
        bad("5.7 unmasked Hello", b"\x81\x05Hello".to_vec(), vec![], Error::Unmasked, 2),
        bad("5.7 unmasked ping", b"\x89\x05Hello".to_vec(), vec![], Error::Unmasked, 2),
        ok("5.7 Hel + lo", [hel.clone(), frame(FIN, b"lo")].concat(), vec![text("Hello")]),
        ok("5.7 256 bytes, 16-bit length", frame(FIN | 2, &big), vec![Binary(big.clone())]),
        ok("non-minimal length", [&[0x82, 0xFE, 0, 1][..], &MASK, &[0x5a ^ 0x37]].concat(), vec![Binary(vec![0x5a])]),
        ok("empty text, empty binary", [frame(0x81, b""), frame(0x82, b"")].concat(), vec![text(""), Binary(vec![])]),
        Case {
            end: Ok(3),
            ..ok("several in one read, then a partial one", [frame(0x81, b"a"), frame(0x89, b""), vec![0x81, 0x85, 1]].concat(), vec![text("a"), Ping(vec![])])
        },
        // Fragmentation.
        ok("pings and pongs between fragments", [hel.clone(), frame(0x89, b"p"), frame(0, b"l"), frame(0x8A, b""), frame(FIN, b"o")].concat(), vec![Ping(b"p".to_vec()), Pong(vec![]), text("Hello")]),
        Case {
            open: true,
            ..ok("close between fragments", [hel.clone(), close(1000, b"")].concat(), vec![closed(Some(1000), "")])
        },
        ok("empty fragments", [frame(0x01, b""), frame(0, b""), frame(FIN, b"")].concat(), vec![text("")]),
        ok("binary fragments", [frame(0x02, &[0xFF]), frame(0, &[0xFE]), frame(FIN, &[0])].concat(), vec![Binary(vec![0xFF, 0xFE, 0])]),
        ok("two fragmented messages in a row", [hel.clone(), frame(FIN, b"lo"), frame(0x02, b"x"), frame(FIN, b"y")].concat(), vec![text("Hello"), Binary(b"xy".to_vec())]),
        bad("text inside a fragmented message", [hel.clone(), frame(0x81, b"x")].concat(), vec![], Error::UnfinishedMessage, 10),
        bad("binary inside a fragmented message", [hel.clone(), frame(0x02, b"x")].concat(), vec![], Error::UnfinishedMessage, 10),
        bad("continuation with nothing open", frame(FIN, b"x"), vec![], Error::UnexpectedContinuation, 1),
        bad("continuation after the end", [frame(0x81, b"a"), frame(0, b"b")].concat(), vec![text("a")], Error::UnexpectedContinuation, 8),
        // UTF-8, across fragments and inside frames still arriving.
        ok("euro split 1+1+1", [frame(0x01, b"x\xE2"), frame(0, b"\x82"), frame(FIN, b"\xACy")].concat(), vec![text("x€y")]),
        ok("emoji split 2+2, ping between", [frame(0x01, b"\xF0\x9F"), frame(0x89, b"p"), frame(FIN, b"\x98\x80")].concat(), vec![Ping(b"p".to_vec()), text("😀")]),
        bad("invalid continuation byte in the next fragment", [frame(0x01, b"x\xE2"), frame(FIN, b"(")].concat(), vec![], Error::InvalidUtf8, 8 + 7),
        bad("invalid byte in a frame still arriving", frame(0x81, b"ab\xFFcde"), vec![], Error::InvalidUtf8, 6 + 3),
        bad("only the invalid part has arrived", frame(0x81, b"ab\xFFcde")[..9].to_vec(), vec![], Error::InvalidUtf8, 9),
        bad("first fragment invalid, the rest never sent", frame(0x01, b"a\xC0\xAF"), vec![], Error::InvalidUtf8, 6 + 2),
        bad("surrogate in a continuation", [frame(0x01, b"a"), frame(FIN, b"\xED\xA0\x80")].concat(), vec![], Error::InvalidUtf8, 7 + 8),
        bad("message ends inside a code point", [frame(0x01, b"x\xE2\x82"), frame(FIN, b"")].concat(), vec![], Error::InvalidUtf8, 15),
        bad("single frame ends inside a code point", frame(0x81, b"x\xE2\x82"), vec![], Error::InvalidUtf8, 9),
        ok("binary is not UTF-8 checked", frame(0x82, b"\xFF\xC0"), vec![Binary(b"\xFF\xC0".to_vec())]),
        // Control frames.
        ok("ping of 125 bytes", frame(0x89, &[1; 125]), vec![Ping(vec![1; 125])]),
        bad("ping of 126 bytes", frame(0x89, &[1; 126]), vec![], Error::ControlTooLong, 2),
        bad("ping without FIN", frame(0x09, b""), vec![], Error::FragmentedControl, 1),
        bad("close without FIN", frame(0x08, b""), vec![], Error::FragmentedControl, 1),
        // The header's other rules, each at the byte that decides it.
        bad("64-bit length with its top bit set", [&[0x82, 0xFF, 0x80][..], &[0; 7], &MASK].concat(), vec![], Error::BadLength, 10),
        // Size limit: from the header, before the payload arrives.
        ok("text of exactly the limit", frame(0x81, &[b'a'; MAX]), vec![text(&"a".repeat(MAX))]),
        bad("text over the limit", frame(0x81, &[b'a'; MAX + 1]), vec![], Error::TooBig, 4),
        bad("huge 64-bit length", [&[0x82, 0xFF, 0, 0, 1][..], &[0; 5], &MASK].concat(), vec![], Error::TooBig, 10),
        ok("fragments adding up to the limit", [frame(0x01, &[b'a'; 600]), frame(0x89, &[0; 125]), frame(FIN, &[b'b'; 400])].concat(), vec![Ping(vec![0; 125]), text(&("a".repeat(600) + &"b".repeat(400)))]),
        bad("fragments over the limit", [frame(0x02, &[0; 600]), frame(FIN, &[0; 401])].concat(), vec![], Error::TooBig, 608 + 4),
        // Close frames.
        ok("empty close", frame(FIN | 8, b""), vec![closed(None, "")]),
        bad("close of 1 byte", frame(FIN | 8, &[3]), vec![], Error::CloseTooShort, 7),
        ok("close with a reason", close(1000, "bye ∑".as_bytes()), vec![closed(Some(1000), "bye ∑")]),
        ok("close of 125 bytes", close(4999, &[b'r'; 123]), vec![closed(Some(4999), &"r".repeat(123))]),
        bad("close reason not UTF-8", close(1000, b"\xFF"), vec![], Error::InvalidCloseReason, 9),
    ];
    for bit in [0x40, 0x20, 0x10] {
        cases.push(bad("reserved bit", frame(FIN | bit | 1, b"x"), vec![], Error::ReservedBits, 1));
    }
    for op in [3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        cases.push(bad("reserved opcode", frame(FIN | op, b""), vec![], Error::UnknownOpcode, 1));
    }
    for code in [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999] {
        cases.push(ok("valid close code", close(code, b"r"), vec![closed(Some(code), "r")]));
    }
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535] {
        cases.push(bad("invalid close code", close(code, b""), vec![], Error::BadCloseCode, 8));
    }
    cases
}

#[test]
fn table_whole_byte_at_a_time_and_in_pieces() {
    for c in cases() {
        let name = c.name;
        let want: Outcome = (c.want.clone(), c.end);
        assert_eq!(whole(&c.input, MAX), want, "{name}: fed whole");
        let (got, fed, idle) = pieces(&c.input, MAX, &[1]);
        assert_eq!(got, want, "{name}: one byte at a time");
        if c.end.is_err() {
            assert_eq!(
                fed, c.fail_at,
                "{name}: the error surfaces at the byte that decides it"
            );
        } else {
            assert_eq!(idle, !c.open, "{name}: idle once nothing is in flight");
        }
        for sizes in [&[2][..], &[3, 1], &[7, 5, 64]] {
            assert_eq!(
                pieces(&c.input, MAX, sizes).0,
                want,
                "{name}: in pieces of {sizes:?}"
            );
        }
    }
}

#[test]
fn sixty_four_bit_length() {
    // RFC 6455 5.7: 64 KiB in one frame takes the 8-byte length.
    let data: Vec<u8> = (0..65536u32).map(|i| i as u8).collect();
    let input = frame(FIN | 2, &data);
    assert_eq!(&input[..10], &[0x82, 0xFF, 0, 0, 0, 0, 0, 1, 0, 0]);
    let want = (vec![Binary(data)], Ok(0));
    assert_eq!(whole(&input, 1 << 20), want);
    assert_eq!(pieces(&input, 1 << 20, &[1]).0, want);
    assert_eq!(whole(&input, 65535).1, Err(Error::TooBig));
}

#[test]
fn partial_reports_the_frame_length() {
    let input = frame(0x81, &[b'a'; 300]);
    let mut p = Parser::new();
    let partial = |n| Ok(Status::Partial { frame_len: n });
    assert_eq!(p.parse(&input[..3], MAX), partial(None));
    assert_eq!(p.parse(&input[..8], MAX), partial(Some(308)));
    assert_eq!(p.parse(&input[..307], MAX), partial(Some(308)));
    assert!(
        !p.is_idle(),
        "a text frame being checked as it arrives holds its progress"
    );
    let done = p.parse(&input, MAX).unwrap();
    assert!(matches!(
        done,
        Status::Complete {
            consumed: 308,
            incoming: Some(Text(_))
        }
    ));
    assert!(p.is_idle());
}

/// The idle parser is one `Option<Box<_>>`: `size_of::<Parser>()` is 8 bytes on 64-bit,
/// and nothing is allocated while no message is in flight.
#[test]
fn idle_parser_is_one_pointer() {
    assert_eq!(std::mem::size_of::<Parser>(), std::mem::size_of::<usize>());
    let mut p = Parser::new();
    assert!(p.is_idle());
    let _ = p.parse(&frame(0x01, b"Hel"), MAX).unwrap();
    assert!(!p.is_idle());
    let _ = p.parse(&frame(FIN, b"lo"), MAX).unwrap();
    assert!(p.is_idle());
}

#[test]
fn errors_name_their_close_codes() {
    assert_eq!(Error::TooBig.close_code(), 1009);
    assert_eq!(Error::InvalidUtf8.close_code(), 1007);
    assert_eq!(Error::InvalidCloseReason.close_code(), 1007);
    assert_eq!(Error::Unmasked.close_code(), 1002);
    assert_eq!(Error::BadCloseCode.to_string(), "invalid close code (1002)");
}

#[test]
fn unmask_at_every_offset_and_length() {
    for len in 0..40 {
        let data: Vec<u8> = (0..len as u8).collect();
        for offset in 0..8 {
            let mut x = data.clone();
            unmask(&mut x, MASK, offset);
            let want: Vec<u8> = data
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ MASK[(i + offset) % 4])
                .collect();
            assert_eq!(x, want, "len {len} offset {offset}");
        }
    }
}

/// xorshift64*: deterministic, so a failure repeats.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A stream of 1 to 6 frames that follows the rules (fragments only inside a message,
/// short control frames, UTF-8 text cut anywhere), so that bit flips land everywhere.
fn plausible_stream(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let mut open = false;
    for _ in 0..1 + rng.below(6) {
        let control = rng.below(4) == 0;
        let len = if control {
            rng.below(126)
        } else {
            [0, 1, 3, 7, 126, 300][rng.below(6)]
        };
        let payload: Vec<u8> = match rng.below(3) {
            0 => (0..len).map(|_| rng.next() as u8).collect(),
            1 if control => [&[0x03, 0xE8][..], "bye".as_bytes()].concat(),
            _ => "aé€😀"
                .bytes()
                .cycle()
                .skip(rng.below(4))
                .take(len)
                .collect(),
        };
        let fin = if rng.below(2) == 0 { FIN } else { 0 };
        let b0 = if control {
            FIN | [8, 9, 0xA][rng.below(3)]
        } else if open {
            fin
        } else {
            fin | [1, 2][rng.below(2)]
        };
        if !control {
            open = fin == 0;
        }
        out.extend(frame(b0, &payload));
    }
    out
}

/// Random bytes, and plausible streams with a few bits flipped: no input panics, and the
/// outcome does not depend on where the input is cut.
#[test]
fn random_input_never_panics_and_cuts_do_not_matter() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut messages, mut errors) = (0, 0);
    for round in 0..6000 {
        let mut input = Vec::new();
        if round % 4 == 0 {
            input.extend((0..rng.below(40)).map(|_| rng.next() as u8));
        } else {
            input = plausible_stream(&mut rng);
            for _ in 0..rng.below(3) {
                let i = rng.below(input.len());
                input[i] ^= 1 << rng.below(8);
            }
        }
        let max = [10, 400, MAX, 1 << 20][rng.below(4)];
        let want = whole(&input, max);
        messages += want.0.len();
        errors += usize::from(want.1.is_err());
        let sizes: Vec<usize> = (0..4).map(|_| 1 + rng.below(20)).collect();
        assert_eq!(
            pieces(&input, max, &sizes).0,
            want,
            "round {round}: {input:x?} in {sizes:?}"
        );
    }
    // The run reaches both sides: messages out, and errors.
    assert!(
        messages > 3000 && errors > 1000,
        "{messages} messages, {errors} errors"
    );
}
