//! Response heads. Every response carries `Cache-Control: no-store` and the CORS headers
//! the request earned; bodies are separate `Bytes` so shared event encodings are never
//! copied into a response.

use bytes::{BufMut, Bytes, BytesMut};

use crate::event;

/// The CORS answer for one request, decided once from `--allow-origin` and `Origin`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cors {
    /// No CORS headers (the origin is not allowed, or the request had none).
    Omit,
    /// `Access-Control-Allow-Origin: *`.
    Any,
    /// Echo this allowed origin (with `Vary: Origin`).
    Origin(Box<str>),
}

impl Cors {
    /// Decides the CORS answer: `*` in `allowed` allows every origin; otherwise the
    /// request's `Origin` must be listed exactly.
    pub fn decide(allowed: &[String], origin: Option<&str>) -> Cors {
        if allowed.iter().any(|a| a == "*") {
            return Cors::Any;
        }
        match origin {
            Some(o) if allowed.iter().any(|a| a == o) => Cors::Origin(o.into()),
            _ => Cors::Omit,
        }
    }

    fn put(&self, out: &mut BytesMut) {
        let origin = match self {
            Cors::Omit => return,
            Cors::Any => "*",
            Cors::Origin(o) => {
                out.put_slice(b"Vary: Origin\r\n");
                o
            }
        };
        out.put_slice(b"Access-Control-Allow-Origin: ");
        out.put_slice(origin.as_bytes());
        out.put_slice(b"\r\nAccess-Control-Expose-Headers: X-Comet-Client\r\n");
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
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// Builds a response head. `extra` holds whole header lines, each ending in `\r\n`.
pub fn head(
    status: u16,
    content_type: &str,
    content_length: usize,
    keep_alive: bool,
    cors: &Cors,
    extra: &str,
) -> Bytes {
    let mut out = BytesMut::with_capacity(256 + extra.len());
    out.put_slice(b"HTTP/1.1 ");
    event::push_decimal(&mut out, status as u64);
    out.put_u8(b' ');
    out.put_slice(reason(status).as_bytes());
    out.put_slice(b"\r\n");
    if status != 204 {
        out.put_slice(b"Content-Type: ");
        out.put_slice(content_type.as_bytes());
        out.put_slice(b"\r\nContent-Length: ");
        event::push_decimal(&mut out, content_length as u64);
        out.put_slice(b"\r\n");
    }
    out.put_slice(b"Cache-Control: no-store\r\n");
    cors.put(&mut out);
    out.put_slice(extra.as_bytes());
    out.put_slice(if keep_alive {
        b"Connection: keep-alive\r\n\r\n".as_slice()
    } else {
        b"Connection: close\r\n\r\n".as_slice()
    });
    out.freeze()
}

/// The head of a streaming response: chunked, never cached, never buffered by proxies
/// (`X-Accel-Buffering: no`), and closed when the stream ends.
pub fn stream_head(content_type: &str, cors: &Cors, extra: &str) -> Bytes {
    let mut out = BytesMut::with_capacity(256 + extra.len());
    out.put_slice(b"HTTP/1.1 200 OK\r\nContent-Type: ");
    out.put_slice(content_type.as_bytes());
    out.put_slice(
        b"\r\nTransfer-Encoding: chunked\r\nCache-Control: no-store\r\nX-Accel-Buffering: no\r\n",
    );
    cors.put(&mut out);
    out.put_slice(extra.as_bytes());
    out.put_slice(b"Connection: close\r\n\r\n");
    out.freeze()
}

/// A JSON error response: head and body.
pub fn error(status: u16, message: &str, keep_alive: bool, cors: &Cors, extra: &str) -> [Bytes; 2] {
    let body = event::error_body(message);
    let head = head(
        status,
        "application/json",
        body.len(),
        keep_alive,
        cors,
        extra,
    );
    [head, body]
}

/// The raw 503 written to a connection refused at `--max-conns`, before it is closed.
pub const OVERLOADED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 32\r\nCache-Control: no-store\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{\"error\":\"too many connections\"}";

/// The interim response to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overloaded_content_length_is_right() {
        let text = std::str::from_utf8(OVERLOADED).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        let _: serde_json::Value = serde_json::from_str(body).unwrap();
    }

    #[test]
    fn heads() {
        let h = head(200, "application/json", 2, true, &Cors::Any, "X-A: b\r\n");
        assert_eq!(
            &h[..],
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nCache-Control: no-store\r\nAccess-Control-Allow-Origin: *\r\nAccess-Control-Expose-Headers: X-Comet-Client\r\nX-A: b\r\nConnection: keep-alive\r\n\r\n"
        );
        let allowed = vec!["https://a.example".to_string()];
        assert_eq!(
            Cors::decide(&allowed, Some("https://b.example")),
            Cors::Omit
        );
        let c = Cors::decide(&allowed, Some("https://a.example"));
        let h = head(204, "", 0, false, &c, "");
        let t = std::str::from_utf8(&h).unwrap();
        assert!(t.contains("Access-Control-Allow-Origin: https://a.example\r\n"));
        assert!(t.contains("Vary: Origin\r\n"));
        assert!(!t.contains("Content-Length"));
        assert!(t.ends_with("Connection: close\r\n\r\n"));
    }
}
