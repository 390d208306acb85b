//! Request heads: httparse plus the gateway's limits and the few headers it reads.
//!
//! `parse` is called on whatever bytes have arrived. An incomplete head is a state
//! (`Status::Partial`), not an error; it becomes an error only once it outgrows a limit.

use super::HttpError;

/// The longest request target accepted (path and query), in bytes; longer gets 414.
pub const MAX_URI_BYTES: usize = 4096;
/// The most header lines accepted; more gets 431.
pub const MAX_HEADERS: usize = 64;

/// The request methods the gateway distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// GET
    Get,
    /// HEAD
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// OPTIONS
    Options,
    /// Anything else.
    Other,
}

/// A parsed request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The method.
    pub method: Method,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (after `?`), possibly empty.
    pub query: String,
    /// Whether the connection stays open after the response.
    pub keep_alive: bool,
    /// The request is HTTP/1.0: a streamed answer must not be chunked.
    pub http10: bool,
    /// Body length from `Content-Length` (0 when absent).
    pub content_length: usize,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    /// The `Origin` header, for CORS.
    pub origin: Option<String>,
    /// EventSource's `Last-Event-ID` header (a cursor).
    pub last_event_id: Option<String>,
    /// The `Authorization` header (never logged).
    pub authorization: Option<String>,
    /// The body is `application/x-ndjson` (`Content-Type`, parameters aside): a batch
    /// publish.
    pub ndjson: bool,
    /// A WebSocket opening handshake's headers (`Upgrade`, `Connection`,
    /// `Sec-WebSocket-Version`, `Sec-WebSocket-Key`), when the request has `Upgrade`.
    pub websocket: Option<Box<[Option<String>; 4]>>,
    /// Length of the head in bytes, including the blank line.
    pub len: usize,
}

/// Result of feeding bytes to the parser.
#[derive(Debug, PartialEq, Eq)]
pub enum Status {
    /// A whole head.
    Complete(Head),
    /// More bytes are needed.
    Partial,
}

fn header_tokens(value: &[u8]) -> impl Iterator<Item = String> + '_ {
    value
        .split(|b| *b == b',')
        .map(|t| String::from_utf8_lossy(t).trim().to_ascii_lowercase())
}

/// Parses a request head from the start of `buf`.
pub fn parse(buf: &[u8], max_header_bytes: usize) -> Result<Status, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            let line_end = buf.iter().position(|b| *b == b'\n');
            if line_end.map_or(buf.len(), |e| e) > MAX_URI_BYTES + 16 {
                return Err(HttpError::new(414, "request target too long"));
            }
            if buf.len() > max_header_bytes {
                return Err(HttpError::new(431, "request header too large"));
            }
            return Ok(Status::Partial);
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(431, "too many header fields"))
        }
        Err(_) => return Err(HttpError::new(400, "malformed request")),
    };
    let target = req.path.unwrap_or("");
    if target.len() > MAX_URI_BYTES {
        return Err(HttpError::new(414, "request target too long"));
    }
    if len > max_header_bytes {
        return Err(HttpError::new(431, "request header too large"));
    }
    let method = match req.method.unwrap_or("") {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "OPTIONS" => Method::Options,
        _ => Method::Other,
    };
    let path_like = target.starts_with('/') || method == Method::Options && target == "*";
    if !path_like {
        return Err(HttpError::new(400, "request target must be a path"));
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let http10 = req.version == Some(0);
    let mut keep_alive = !http10;
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut expect_continue = false;
    let mut origin = None;
    let mut last_event_id = None;
    let mut authorization = None;
    let mut ndjson = false;
    let mut ws: [Option<String>; 4] = Default::default();
    for h in req.headers.iter() {
        for (i, wanted) in [
            "upgrade",
            "connection",
            "sec-websocket-version",
            "sec-websocket-key",
        ]
        .iter()
        .enumerate()
        {
            if name_is(h.name, wanted) {
                ws[i] = std::str::from_utf8(h.value)
                    .ok()
                    .map(|v| v.trim().to_owned());
            }
        }
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let text = std::str::from_utf8(h.value).unwrap_or("").trim();
            if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::new(400, "bad Content-Length"));
            }
            // Anything longer than usize is surely over the body limit.
            let n = text.parse::<usize>().unwrap_or(usize::MAX);
            if content_length.is_some_and(|c| c != n) {
                return Err(HttpError::new(400, "conflicting Content-Length"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("connection") {
            for t in header_tokens(h.value) {
                match t.as_str() {
                    "close" => keep_alive = false,
                    "keep-alive" if http10 => keep_alive = true,
                    _ => {}
                }
            }
        } else if name.eq_ignore_ascii_case("expect") {
            expect_continue = header_tokens(h.value).any(|t| t == "100-continue");
        } else if name.eq_ignore_ascii_case("origin") {
            origin = std::str::from_utf8(h.value).ok().map(str::to_owned);
        } else if name.eq_ignore_ascii_case("authorization") {
            authorization = std::str::from_utf8(h.value).ok().map(str::to_owned);
        } else if name.eq_ignore_ascii_case("content-type") {
            let media = h.value.split(|&b| b == b';').next().unwrap_or(b"");
            ndjson = media
                .trim_ascii()
                .eq_ignore_ascii_case(b"application/x-ndjson");
        } else if name.eq_ignore_ascii_case("last-event-id") {
            last_event_id = std::str::from_utf8(h.value).ok().map(str::to_owned);
        }
    }
    if chunked {
        if content_length.is_some() {
            return Err(HttpError::new(
                400,
                "both Transfer-Encoding and Content-Length",
            ));
        }
        return Err(HttpError::new(
            411,
            "chunked request bodies are not supported; send Content-Length",
        ));
    }
    Ok(Status::Complete(Head {
        method,
        path: path.to_owned(),
        query: query.to_owned(),
        keep_alive,
        http10,
        content_length: content_length.unwrap_or(0),
        expect_continue,
        origin,
        last_event_id,
        authorization,
        ndjson,
        websocket: ws[0].is_some().then(|| Box::new(ws)),
        len,
    }))
}

fn name_is(name: &str, wanted: &str) -> bool {
    name.eq_ignore_ascii_case(wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> Head {
        match parse(buf, 8192) {
            Ok(Status::Complete(h)) => h,
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    #[test]
    fn byte_at_a_time_is_partial_until_the_blank_line() {
        let req = b"POST /pub?channel=a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc";
        let head_len = req.len() - 3;
        for end in 0..head_len {
            assert_eq!(parse(&req[..end], 8192), Ok(Status::Partial), "at {end}");
        }
        for end in head_len..=req.len() {
            let h = complete(&req[..end]);
            assert_eq!(h.len, head_len);
            assert_eq!(h.method, Method::Post);
            assert_eq!(h.path, "/pub");
            assert_eq!(h.query, "channel=a");
            assert_eq!(h.content_length, 3);
            assert!(h.keep_alive);
        }
    }

    #[test]
    fn keep_alive_rules() {
        assert!(complete(b"GET / HTTP/1.1\r\n\r\n").keep_alive);
        assert!(!complete(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!complete(b"GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(complete(b"GET / HTTP/1.0\r\n\r\n").http10);
        assert!(!complete(b"GET / HTTP/1.1\r\n\r\n").http10);
        assert!(complete(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
        assert!(complete(b"GET / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n").expect_continue);
    }

    #[test]
    fn limits_and_errors() {
        let status = |buf: &[u8]| parse(buf, 8192).err().map(|e| e.status);
        let long_uri = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_URI_BYTES));
        assert_eq!(status(long_uri.as_bytes()), Some(414));
        // Still arriving, already too long.
        let partial_uri = format!("GET /{}", "a".repeat(MAX_URI_BYTES + 100));
        assert_eq!(status(partial_uri.as_bytes()), Some(414));
        let big = format!("GET / HTTP/1.1\r\nX: {}\r\n", "b".repeat(9000));
        assert_eq!(status(big.as_bytes()), Some(431));
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("H{i}: v\r\n"))
            .collect();
        assert_eq!(
            status(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Some(431)
        );
        assert_eq!(status(b"GARBAGE\r\n\r\n"), Some(400));
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            Some(400)
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Some(411)
        );
        assert_eq!(
            status(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n"),
            Some(400)
        );
        assert_eq!(status(b"GET http://x/ HTTP/1.1\r\n\r\n"), Some(400));
        assert_eq!(status(b"GET /\xff HTTP/1.1\r\n\r\n"), Some(400));
    }
}
