//! The JSON events of the wire contract, encoded into `Bytes`.
//!
//! Every string is escaped so that the JSON is also safe inside a `<script>` element or a
//! JSONP body: `<`, `>`, `&`, U+2028 and U+2029 become `\u` escapes besides what JSON
//! itself requires. One encoding therefore serves plain JSON, JSONP and iframe script
//! chunks alike, and a published message is encoded exactly once. This module owns the
//! byte layout of events; it knows nothing about sockets or channels.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes that must be escaped: C0 controls, DEL, `"`, `\\`, `<`, `>`, `&`. (U+2028 and
/// U+2029 are multi-byte and handled by their lead byte 0xE2.)
const fn escape_table() -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[0x7f] = true;
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[b'&' as usize] = true;
    t
}
static ESCAPE: [bool; 256] = escape_table();

/// Appends `s` as a JSON string literal (with quotes), script-safe. Scans bytes and
/// copies the runs between escapes whole.
pub fn push_json_str(out: &mut BytesMut, s: &str) {
    out.reserve(s.len() + 2);
    out.put_u8(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // U+2028 and U+2029 are E2 80 A8 and E2 80 A9 in UTF-8.
        let line_sep = b == 0xE2
            && bytes.get(i + 1) == Some(&0x80)
            && matches!(bytes.get(i + 2), Some(0xA8) | Some(0xA9));
        if !ESCAPE[b as usize] && !line_sep {
            i += 1;
            continue;
        }
        out.put_slice(&bytes[start..i]);
        if line_sep {
            out.put_slice(if bytes[i + 2] == 0xA8 {
                b"\\u2028"
            } else {
                b"\\u2029"
            });
            i += 3;
        } else {
            match b {
                b'"' => out.put_slice(b"\\\""),
                b'\\' => out.put_slice(b"\\\\"),
                b'\n' => out.put_slice(b"\\n"),
                b'\r' => out.put_slice(b"\\r"),
                b'\t' => out.put_slice(b"\\t"),
                _ => {
                    const HEX: &[u8; 16] = b"0123456789abcdef";
                    out.put_slice(b"\\u00");
                    out.put_u8(HEX[(b >> 4) as usize]);
                    out.put_u8(HEX[(b & 15) as usize]);
                }
            }
            i += 1;
        }
        start = i;
    }
    out.put_slice(&bytes[start..]);
    out.put_u8(b'"');
}

fn push_u64(out: &mut BytesMut, n: u64) {
    use std::fmt::Write;
    // Writing into a BytesMut cannot fail.
    let _ = write!(out, "{n}");
}

/// `{"type":"data","channel":C,"seq":N,"data":D}`. Channel names are validated to a
/// character set that needs no escaping, but they are escaped anyway.
pub fn data(channel: &str, seq: u64, payload: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(payload.len() + channel.len() + 64);
    out.put_slice(b"{\"type\":\"data\",\"channel\":");
    push_json_str(&mut out, channel);
    out.put_slice(b",\"seq\":");
    push_u64(&mut out, seq);
    out.put_slice(b",\"data\":");
    push_json_str(&mut out, payload);
    out.put_u8(b'}');
    out.freeze()
}

/// `{"type":"lost","channel":C,"from":A,"to":B}`: seqs `from..=to` are gone.
pub fn lost(channel: &str, from: u64, to: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(channel.len() + 64);
    out.put_slice(b"{\"type\":\"lost\",\"channel\":");
    push_json_str(&mut out, channel);
    out.put_slice(b",\"from\":");
    push_u64(&mut out, from);
    out.put_slice(b",\"to\":");
    push_u64(&mut out, to);
    out.put_u8(b'}');
    out.freeze()
}

/// `{"type":"reset","channel":C,"seq":N}`: what follows starts at `seq`.
pub fn reset(channel: &str, seq: u64) -> Bytes {
    let mut out = BytesMut::with_capacity(channel.len() + 48);
    out.put_slice(b"{\"type\":\"reset\",\"channel\":");
    push_json_str(&mut out, channel);
    out.put_slice(b",\"seq\":");
    push_u64(&mut out, seq);
    out.put_u8(b'}');
    out.freeze()
}

/// `{"type":"hello","client":ID,"cursor":C}`: the first event of every stream.
pub fn hello(client: &str, cursor: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(client.len() + cursor.len() + 48);
    out.put_slice(b"{\"type\":\"hello\",\"client\":");
    push_json_str(&mut out, client);
    out.put_slice(b",\"cursor\":");
    push_json_str(&mut out, cursor);
    out.put_u8(b'}');
    out.freeze()
}

/// `{"type":"reconnect","cursor":C}`: the server ends the stream; resume from C.
pub fn reconnect(cursor: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(cursor.len() + 40);
    out.put_slice(b"{\"type\":\"reconnect\",\"cursor\":");
    push_json_str(&mut out, cursor);
    out.put_u8(b'}');
    out.freeze()
}

/// `{"type":"close","channel":C}`: the channel was deleted or the subscriber closed.
pub fn close(channel: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(channel.len() + 40);
    out.put_slice(b"{\"type\":\"close\",\"channel\":");
    push_json_str(&mut out, channel);
    out.put_u8(b'}');
    out.freeze()
}

/// `{"type":"error","message":M}`: the server closes the stream because of an error.
pub fn error_event(message: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 40);
    out.put_slice(b"{\"type\":\"error\",\"message\":");
    push_json_str(&mut out, message);
    out.put_u8(b'}');
    out.freeze()
}

/// `{"type":"noop"}`.
pub const NOOP: &[u8] = b"{\"type\":\"noop\"}";

/// `{"error":MESSAGE}`: the body of every error response.
pub fn error_body(message: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 16);
    out.put_slice(b"{\"error\":");
    push_json_str(&mut out, message);
    out.put_u8(b'}');
    out.freeze()
}

/// Appends a decimal number; used by the response builders.
pub fn push_decimal(out: &mut BytesMut, n: u64) {
    push_u64(out, n);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> String {
        let mut out = BytesMut::new();
        push_json_str(&mut out, s);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn escapes_what_json_and_script_need() {
        assert_eq!(json("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(json("</script>"), r#""\u003c/script\u003e""#);
        assert_eq!(json("a&b"), r#""a\u0026b""#);
        assert_eq!(json("\u{2028}\u{2029}"), r#""\u2028\u2029""#);
        assert_eq!(
            json("\n\r\t\u{1}\u{1f}\u{7f}"),
            r#""\n\r\t\u0001\u001f\u007f""#
        );
        assert_eq!(json("héllo ✓ 😀"), "\"héllo ✓ 😀\"");
        assert_eq!(json(""), "\"\"");
    }

    #[test]
    fn every_char_below_0x100_round_trips() {
        let s: String = (0u32..0x100).filter_map(char::from_u32).collect();
        let text = json(&s);
        assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'));
        let mut out = BytesMut::new();
        out.put_slice(b"[");
        out.put_slice(text.as_bytes());
        out.put_slice(b"]");
        let back: Vec<String> = serde_json::from_slice(&out).unwrap();
        assert_eq!(back[0], s);
    }

    #[test]
    fn every_code_point_to_u3000_round_trips_script_safe() {
        let s: String = (0u32..0x3000).filter_map(char::from_u32).collect();
        let text = json(&s);
        for forbidden in ['<', '>', '&', '\u{2028}', '\u{2029}'] {
            assert!(!text.contains(forbidden), "raw {forbidden:?} in output");
        }
        let back: String = serde_json::from_str(&text).unwrap();
        assert_eq!(back, s);
        // Neighbours of the line separators share their lead bytes and pass unescaped.
        assert_eq!(json("\u{2027}\u{202a}€"), "\"\u{2027}\u{202a}€\"");
    }

    #[test]
    fn events_are_valid_json() {
        let d = data("news", 1_700_000_000_000_000, "x</script>\"");
        let v: serde_json::Value = serde_json::from_slice(&d).unwrap();
        assert_eq!(v["type"], "data");
        assert_eq!(v["seq"], 1_700_000_000_000_000u64);
        assert_eq!(v["data"], "x</script>\"");
        let l: serde_json::Value = serde_json::from_slice(&lost("a", 3, 5)).unwrap();
        assert_eq!((l["from"].as_u64(), l["to"].as_u64()), (Some(3), Some(5)));
        let r: serde_json::Value = serde_json::from_slice(&reset("a", 0)).unwrap();
        assert_eq!(r["seq"], 0);
        let e: serde_json::Value = serde_json::from_slice(&error_body("bad <x>")).unwrap();
        assert_eq!(e["error"], "bad <x>");
        let _: serde_json::Value = serde_json::from_slice(NOOP).unwrap();
        for b in [
            hello("id", "a:1,b:2"),
            reconnect("a:3"),
            close("a"),
            error_event("slow"),
        ] {
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert!(v["type"].is_string());
        }
    }
}
