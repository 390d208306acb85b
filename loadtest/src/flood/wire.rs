//! The bytes on the wire: the `GET /poll` requests the attacks send ([`poll_request`],
//! channel names from [`Rng`]) and the framing of the answers ([`parse_response`],
//! [`count_resets`]). Pure functions over byte slices: no sockets, no counters.

/// One parsed response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    /// Bytes it takes, head and body.
    pub len: usize,
    /// HTTP status.
    pub status: u16,
    /// Where its body starts.
    pub body_start: usize,
    /// It carries `X-Comet-Client`.
    pub session: bool,
    /// `Connection: close`.
    pub close: bool,
}

/// Parses the first response of `buf`: `Ok(None)` if incomplete (a close-delimited body
/// is complete only at `eof`), `Err` (in words) if it makes no sense.
pub fn parse_response(buf: &[u8], eof: bool) -> Result<Option<Response>, &'static str> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut r = httparse::Response::new(&mut headers);
    let head = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(_) => return Err("bad response head"),
    };
    let status = r.code.unwrap_or(0);
    let (mut clen, mut chunked, mut close, mut session) = (None, false, false, false);
    for h in r.headers.iter() {
        let v = std::str::from_utf8(h.value).unwrap_or("").trim();
        if h.name.eq_ignore_ascii_case("content-length") {
            clen = Some(v.parse::<usize>().map_err(|_| "bad Content-Length")?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v.to_ascii_lowercase().contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = v.eq_ignore_ascii_case("close");
        } else if h.name.eq_ignore_ascii_case("x-comet-client") {
            session = true;
        }
    }
    let done = |len| {
        Ok(Some(Response {
            len,
            status,
            body_start: head,
            session,
            close,
        }))
    };
    if (100..200).contains(&status) || status == 204 || status == 304 {
        return done(head);
    }
    if chunked {
        let mut at = head;
        loop {
            let Some(nl) = find_crlf(&buf[at..]) else {
                return Ok(None);
            };
            let line = std::str::from_utf8(&buf[at..at + nl]).map_err(|_| "bad chunk size")?;
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| "bad chunk size")?;
            at += nl + 2;
            if size == 0 {
                // Trailers (none expected) end with an empty line.
                loop {
                    let Some(nl) = find_crlf(&buf[at..]) else {
                        return Ok(None);
                    };
                    at += nl + 2;
                    if nl == 0 {
                        return done(at);
                    }
                }
            }
            if buf.len() < at + size + 2 {
                return Ok(None);
            }
            at += size + 2;
        }
    }
    match clen {
        Some(n) if buf.len() >= head + n => done(head + n),
        Some(_) => Ok(None),
        None if eof => done(buf.len()),
        None => Ok(None),
    }
}

fn find_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// How many `reset` events a body holds.
pub fn count_resets(body: &[u8]) -> u64 {
    const PAT: &[u8] = b"{\"type\":\"reset\"";
    let mut n = 0;
    let mut i = 0;
    while let Some(p) = body[i..].iter().position(|&b| b == b'{') {
        i += p;
        if body[i..].starts_with(PAT) {
            n += 1;
        }
        i += 1;
    }
    n
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// A small xorshift generator for channel names.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded from the clock and the process id (never 0).
    pub fn new() -> Rng {
        let t = crate::clock::now_us() ^ ((std::process::id() as u64) << 32);
        Rng(t | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Appends a random channel name of `len` bytes of `[A-Za-z0-9_-]`.
    pub fn name(&mut self, out: &mut Vec<u8>, len: usize) {
        let mut left = len;
        while left > 0 {
            let mut r = self.next();
            for _ in 0..left.min(10) {
                out.push(ALPHABET[(r & 63) as usize]);
                r >>= 6;
            }
            left -= left.min(10);
        }
    }
}

impl Default for Rng {
    fn default() -> Rng {
        Rng::new()
    }
}

/// Appends one `GET /poll` naming `channels` new channels, with `seq=1,…` if `seq`.
pub fn poll_request(out: &mut Vec<u8>, rng: &mut Rng, channels: usize, name_len: usize, seq: bool) {
    out.extend_from_slice(b"GET /poll?channel=");
    for i in 0..channels {
        if i > 0 {
            out.push(b',');
        }
        rng.name(out, name_len);
    }
    if seq {
        out.extend_from_slice(b"&seq=1");
        for _ in 1..channels {
            out.extend_from_slice(b",1");
        }
    }
    out.extend_from_slice(b" HTTP/1.1\r\nHost: flood\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed() {
        let two = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Comet-Client: ab\r\n\r\n[]HTTP/1.1 503 Service Unavailable\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{x}";
        let r = parse_response(two, false).unwrap().unwrap();
        assert_eq!(
            (r.len, r.status, r.session, r.close),
            (60, 200, true, false)
        );
        let r2 = parse_response(&two[r.len..], false).unwrap().unwrap();
        assert_eq!((r2.status, r2.close, r2.session), (503, true, false));
        assert_eq!(r.len + r2.len, two.len());
        assert_eq!(parse_response(&two[..40], false), Ok(None));
        assert_eq!(parse_response(&two[..r.len - 1], false), Ok(None));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nNEXT";
        let r = parse_response(chunked, false).unwrap().unwrap();
        assert_eq!(r.len, chunked.len() - 4);
        assert_eq!(
            parse_response(&chunked[..chunked.len() - 6], false),
            Ok(None)
        );
        let close = b"HTTP/1.0 200 OK\r\n\r\nbody";
        assert_eq!(parse_response(close, false), Ok(None));
        assert_eq!(
            parse_response(close, true).unwrap().unwrap().len,
            close.len()
        );
        assert!(parse_response(b"garbage\r\n\r\n", false).is_err());
    }

    #[test]
    fn resets_are_counted() {
        let body = br#"[{"type":"reset","channel":"a","seq":5},{"type":"data","channel":"b","seq":1,"data":"{\"type\":\"reset\""},{"type":"reset","channel":"c","seq":9}]"#;
        // The escaped one inside a payload does not start with `{"type"` unescaped.
        assert_eq!(count_resets(body), 2);
        assert_eq!(count_resets(b"[]"), 0);
    }

    #[test]
    fn requests_name_valid_new_channels() {
        let mut rng = Rng::new();
        let mut out = Vec::new();
        poll_request(&mut out, &mut rng, 16, 128, true);
        let text = String::from_utf8(out).unwrap();
        let target = text.split(' ').nth(1).unwrap();
        let query = target.strip_prefix("/poll?channel=").unwrap();
        let (names, seqs) = query.split_once("&seq=").unwrap();
        let names: Vec<&str> = names.split(',').collect();
        assert_eq!(names.len(), 16);
        for n in &names {
            assert_eq!(n.len(), 128);
            assert!(n.bytes().all(|b| ALPHABET.contains(&b)));
        }
        let uniq: std::collections::HashSet<_> = names.iter().collect();
        assert_eq!(uniq.len(), 16);
        assert_eq!(seqs, vec!["1"; 16].join(","));
        assert!(target.len() <= 4096);
        let mut out = Vec::new();
        poll_request(&mut out, &mut rng, 1, 7, false);
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("GET /poll?channel="));
    }
}
