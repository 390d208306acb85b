//! Response heads. Every response carries `Date`, `Cache-Control: no-store` and the CORS
//! headers the request earned; bodies are separate `Bytes` so shared event encodings are
//! never copied into a response. Every text type says `charset=utf-8`.

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, Bytes, BytesMut};

use crate::event;

/// The content types the gateway sends, each with its charset.
pub mod ctype {
    /// JSON bodies: poll answers, errors, admin answers.
    pub const JSON: &str = "application/json; charset=utf-8";
    /// JSONP poll answers and the browser client.
    pub const JS: &str = "application/javascript; charset=utf-8";
    /// Plain text (`/healthz`).
    pub const TEXT: &str = "text/plain; charset=utf-8";
    /// Prometheus text format 0.0.4 (`/metrics`).
    pub const METRICS: &str = "text/plain; version=0.0.4; charset=utf-8";
    /// HTML (the demo page, `/iframe`).
    pub const HTML: &str = "text/html; charset=utf-8";
    /// `/stream`.
    pub const NDJSON: &str = "application/x-ndjson; charset=utf-8";
    /// `/events`.
    pub const SSE: &str = "text/event-stream; charset=utf-8";
}

/// The CORS answer for one request, decided once from the policy and `Origin`. Small
/// and `Copy`, so a parked poll keeps it without a heap block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cors {
    /// No CORS headers (the origin is not allowed, or the request had none).
    Omit,
    /// `Access-Control-Allow-Origin: *`.
    Any,
    /// Echo the allowed origin with this index in the policy's list.
    Origin(u16),
}

/// `--allow-origin` and `--allow-credentials`, with the header lines of each answer
/// built once.
#[derive(Debug)]
pub struct CorsPolicy {
    any: bool,
    origins: Vec<Box<str>>,
    /// The header lines of `Cors::Any`, then of each origin in `origins` order.
    lines: Vec<Box<[u8]>>,
}

impl CorsPolicy {
    /// A policy: `*` in `allowed` allows every origin (without credentials); otherwise
    /// the request's `Origin` must be listed exactly, and is echoed with `Vary: Origin`
    /// (and `Access-Control-Allow-Credentials: true` with `credentials`).
    pub fn new(allowed: &[String], credentials: bool) -> CorsPolicy {
        let any = allowed.iter().any(|a| a == "*");
        let expose = "Access-Control-Expose-Headers: X-Comet-Client\r\n";
        let mut lines = vec![format!("Access-Control-Allow-Origin: *\r\n{expose}")
            .into_bytes()
            .into_boxed_slice()];
        let origins: Vec<Box<str>> = if any {
            Vec::new()
        } else {
            allowed.iter().map(|o| o.as_str().into()).collect()
        };
        for o in &origins {
            let cred = if credentials {
                "Access-Control-Allow-Credentials: true\r\n"
            } else {
                ""
            };
            let l = format!("Vary: Origin\r\nAccess-Control-Allow-Origin: {o}\r\n{cred}{expose}");
            lines.push(l.into_bytes().into_boxed_slice());
        }
        CorsPolicy {
            any,
            origins,
            lines,
        }
    }

    /// Decides the CORS answer for a request with this `Origin`.
    pub fn decide(&self, origin: Option<&str>) -> Cors {
        if self.any {
            return Cors::Any;
        }
        origin
            .and_then(|o| self.origins.iter().position(|a| **a == *o))
            .map_or(Cors::Omit, |i| Cors::Origin(i as u16))
    }

    /// The header lines of an answer (empty for `Omit`).
    pub fn lines(&self, c: Cors) -> &[u8] {
        match c {
            Cors::Omit => &[],
            Cors::Any => &self.lines[0],
            Cors::Origin(i) => self.lines.get(i as usize + 1).map_or(&[], |l| &l[..]),
        }
    }
}

/// The reason phrase of the statuses the gateway sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// `Date: Sat, 28 Nov 2026 21:21:43 GMT\r\n`: 37 bytes.
const DATE_LINE_LEN: usize = 37;

thread_local! {
    /// The `Date` line, formatted at most once per second (per reactor thread).
    static DATE: RefCell<(u64, [u8; DATE_LINE_LEN])> = const { RefCell::new((u64::MAX, [0; DATE_LINE_LEN])) };
}

/// Formats `Date: <IMF-fixdate>\r\n` for a Unix time in seconds (RFC 9110 5.6.7).
pub fn format_date_line(unix: u64) -> [u8; DATE_LINE_LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = (yoe + era * 400 + i64::from(month <= 2)).clamp(0, 9999) as u64;
    let mut out = *b"Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n";
    let two = |o: &mut [u8], n: u64| {
        o[0] = b'0' + (n / 10) as u8;
        o[1] = b'0' + (n % 10) as u8;
    };
    out[6..9].copy_from_slice(DAYS[(days % 7) as usize]);
    two(&mut out[11..13], day as u64);
    out[14..17].copy_from_slice(MONTHS[month as usize - 1]);
    two(&mut out[18..20], year / 100);
    two(&mut out[20..22], year % 100);
    two(&mut out[23..25], secs / 3600);
    two(&mut out[26..28], secs / 60 % 60);
    two(&mut out[29..31], secs % 60);
    out
}

fn put_date(out: &mut BytesMut) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let mut d = d.borrow_mut();
        if d.0 != now {
            *d = (now, format_date_line(now));
        }
        out.put_slice(&d.1);
    });
}

fn status_line(out: &mut BytesMut, status: u16) {
    out.put_slice(b"HTTP/1.1 ");
    event::push_decimal(out, status as u64);
    out.put_u8(b' ');
    out.put_slice(reason(status).as_bytes());
    out.put_slice(b"\r\n");
}

fn build(
    status: u16,
    content_type: &str,
    content_length: Option<usize>,
    keep_alive: bool,
    cors: &[u8],
    extra: &str,
) -> Bytes {
    let mut out = BytesMut::with_capacity(200 + cors.len() + extra.len());
    status_line(&mut out, status);
    if status != 204 {
        out.put_slice(b"Content-Type: ");
        out.put_slice(content_type.as_bytes());
        out.put_slice(b"\r\n");
        if let Some(len) = content_length {
            out.put_slice(b"Content-Length: ");
            event::push_decimal(&mut out, len as u64);
            out.put_slice(b"\r\n");
        }
    }
    put_date(&mut out);
    out.put_slice(b"Cache-Control: no-store\r\n");
    out.put_slice(cors);
    out.put_slice(extra.as_bytes());
    out.put_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n".as_slice()
    } else {
        b"Connection: close\r\n\r\n".as_slice()
    });
    out.freeze()
}

/// Builds a response head. `cors` holds the CORS lines (`CorsPolicy::lines`), `extra`
/// whole header lines, each ending in `\r\n`.
pub fn head(
    status: u16,
    content_type: &str,
    content_length: usize,
    keep_alive: bool,
    cors: &[u8],
    extra: &str,
) -> Bytes {
    build(
        status,
        content_type,
        Some(content_length),
        keep_alive,
        cors,
        extra,
    )
}

/// A head without `Content-Length`: the answer to `HEAD` on a poll or a stream, whose
/// length is only known once it is made (RFC 9110 9.3.2 lets it be omitted).
pub fn head_without_length(
    content_type: &str,
    keep_alive: bool,
    cors: &[u8],
    extra: &str,
) -> Bytes {
    build(200, content_type, None, keep_alive, cors, extra)
}

/// The head of a streaming response: never cached, never buffered by proxies
/// (`X-Accel-Buffering: no`), closed when the stream ends. `chunked` for HTTP/1.1
/// clients; an HTTP/1.0 client gets a body delimited by the close (RFC 9112 6.3).
pub fn stream_head(content_type: &str, chunked: bool, cors: &[u8], extra: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(256 + cors.len() + extra.len());
    status_line(&mut out, 200);
    out.put_slice(b"Content-Type: ");
    out.put_slice(content_type.as_bytes());
    out.put_slice(b"\r\n");
    if chunked {
        out.put_slice(b"Transfer-Encoding: chunked\r\n");
    }
    put_date(&mut out);
    out.put_slice(b"Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n");
    out.put_slice(cors);
    out.put_slice(extra.as_bytes());
    out.put_slice(b"Connection: close\r\n\r\n");
    out.freeze()
}

/// A JSON error response: head and body.
pub fn error(status: u16, message: &str, keep_alive: bool, cors: &[u8], extra: &str) -> [Bytes; 2] {
    let body = event::error_body(message);
    let head = head(status, ctype::JSON, body.len(), keep_alive, cors, extra);
    [head, body]
}

/// The 503 written to a connection refused at `--max-conns` or `--max-admin-conns`,
/// before it is closed.
pub fn overloaded() -> Bytes {
    let [h, b] = error(
        503,
        "too many connections",
        false,
        &[],
        "Retry-After: 1\r\n",
    );
    let mut out = BytesMut::with_capacity(h.len() + b.len());
    out.put_slice(&h);
    out.put_slice(&b);
    out.freeze()
}

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    fn text(b: &Bytes) -> &str {
        std::str::from_utf8(b).unwrap()
    }

    #[test]
    fn overloaded_content_length_is_right() {
        let o = overloaded();
        let (head, body) = text(&o).split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert!(head.contains("Retry-After: 1\r\n"));
        let _: serde_json::Value = serde_json::from_str(body).unwrap();
    }

    #[test]
    fn heads() {
        let any = CorsPolicy::new(&["*".into()], false);
        let h = head(
            200,
            ctype::JSON,
            2,
            true,
            any.lines(Cors::Any),
            "X-A: b\r\n",
        );
        let t = text(&h);
        let date_at = t.find("Date: ").unwrap();
        let without_date = format!("{}{}", &t[..date_at], &t[date_at + DATE_LINE_LEN..]);
        assert_eq!(
            without_date,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: 2\r\nCache-Control: no-store\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: X-Comet-Client\r\nX-A: b\r\nConnection: keep-alive\r\n\r\n"
        );
        assert!(t[date_at..].starts_with("Date: ") && t[date_at..].contains(" GMT\r\n"));
        let list = CorsPolicy::new(&["https://a.example".into()], false);
        assert_eq!(list.decide(Some("https://b.example")), Cors::Omit);
        assert_eq!(list.decide(None), Cors::Omit);
        let c = list.decide(Some("https://a.example"));
        let h = head(204, "", 0, false, list.lines(c), "");
        let t = text(&h);
        assert!(t.contains("Access-Control-Allow-Origin: https://a.example\r\n"));
        assert!(t.contains("Vary: Origin\r\n"));
        assert!(!t.contains("Credentials"));
        assert!(!t.contains("Content-Length"));
        assert!(t.ends_with("Connection: close\r\n\r\n"));
        let cred = CorsPolicy::new(
            &["https://a.example".into(), "https://b.example".into()],
            true,
        );
        let c = cred.decide(Some("https://b.example"));
        assert_eq!(c, Cors::Origin(1));
        let l = std::str::from_utf8(cred.lines(c)).unwrap();
        assert!(l.contains("Access-Control-Allow-Origin: https://b.example\r\n"));
        assert!(l.contains("Access-Control-Allow-Credentials: true\r\n"));
        assert!(l.contains("Vary: Origin\r\n"));
        let s = stream_head(ctype::SSE, false, &[], "");
        assert!(!text(&s).contains("Transfer-Encoding"));
        assert!(text(&stream_head(ctype::SSE, true, &[], ""))
            .contains("Transfer-Encoding: chunked\r\n"));
    }

    #[test]
    fn dates_are_imf_fixdates() {
        let line = |t| String::from_utf8(format_date_line(t).to_vec()).unwrap();
        assert_eq!(line(0), "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n");
        assert_eq!(line(784_111_777), "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
        assert_eq!(line(951_782_400), "Date: Tue, 29 Feb 2000 00:00:00 GMT\r\n");
        assert_eq!(
            line(1_795_900_903),
            "Date: Sat, 28 Nov 2026 21:21:43 GMT\r\n"
        );
        assert_eq!(
            line(4_102_444_799),
            "Date: Thu, 31 Dec 2099 23:59:59 GMT\r\n"
        );
        // Every day for 200 years: the weekday advances by one and the day of month is
        // 1 after a month's last day.
        let mut prev = line(0);
        for d in 1..73_000u64 {
            let cur = line(d * 86_400);
            let (pd, cd) = (&prev[11..13], &cur[11..13]);
            assert!(
                cd == "01" || cd.parse::<u32>().unwrap() == pd.parse::<u32>().unwrap() + 1,
                "{prev} -> {cur}"
            );
            prev = cur;
        }
    }
}
