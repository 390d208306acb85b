//! The HTTP rules independent clients rely on: EventSource framing that no parser turns
//! into empty messages, `lastEventId=` for polyfills, CORS with credentials, a charset on
//! every text type, `HEAD` on every GET route, a `Date` on every response, and unchunked
//! streams for HTTP/1.0 clients.

mod util;

use std::time::Duration;

use util::{get, request, Conn, StreamClient, TestServer, Transport, TRANSPORTS};

/// Reads a chunked body until `done` holds for the decoded text (bounded by `WAIT`).
fn read_decoded(c: &mut Conn, mut done: impl FnMut(&str) -> bool) -> String {
    let mut decoded = Vec::new();
    let deadline = std::time::Instant::now() + util::WAIT;
    loop {
        while let Some(p) = c.buf.windows(2).position(|w| w == b"\r\n") {
            let len = usize::from_str_radix(std::str::from_utf8(&c.buf[..p]).unwrap(), 16)
                .expect("chunk size");
            if c.buf.len() < p + 2 + len + 2 {
                break;
            }
            decoded.extend_from_slice(&c.buf[p + 2..p + 2 + len]);
            c.buf.drain(..p + 2 + len + 2);
        }
        let text = String::from_utf8(decoded.clone()).unwrap();
        if done(&text) {
            return text;
        }
        assert!(std::time::Instant::now() < deadline, "waited for {text:?}");
        assert!(c.try_fill() > 0, "stream ended: {text:?}");
    }
}

#[test]
fn every_eventsource_block_carries_data() {
    let s = TestServer::start(|c| c.heartbeat = Duration::from_millis(50));
    let seq = s.publish_seq("sse", "first");
    let mut c = Conn::open(s.public);
    c.send(&format!(
        "GET /events?channel=sse&seq={seq} HTTP/1.1\r\n\r\n"
    ));
    assert_eq!(c.head_only().status, 200);
    // The retry hint rides in the first event's block.
    let start = read_decoded(&mut c, |t| t.contains("\n\n"));
    assert!(
        start.starts_with(&format!(
            "retry: 2000\nid: sse:{seq}\ndata: {{\"type\":\"hello\","
        )),
        "{start:?}"
    );
    // Heartbeats are comment lines, never a block of their own.
    let text = read_decoded(&mut c, |t| t.matches(":hb\n").count() >= 3);
    let more = s.publish_seq("sse", "second");
    let text = format!(
        "{text}{}",
        read_decoded(&mut c, |t| t.contains(&format!("\"seq\":{more}"))
            && t.ends_with("\n\n"))
    );
    assert!(
        !text.contains("\n\n:hb\n\n") && !text.contains(":hb\n\n"),
        "{text:?}"
    );
    for block in text.split("\n\n").filter(|b| !b.is_empty()) {
        assert!(
            block.lines().any(|l| l.starts_with("data: ")),
            "a block without data: {block:?} in {text:?}"
        );
    }
}

#[test]
fn last_event_id_in_the_query_resumes_and_the_header_wins() {
    let s = TestServer::start(|_| {});
    let seqs: Vec<u64> = (0..3)
        .map(|i| s.publish_seq("lei", &format!("m{i}")))
        .collect();
    // event-source-polyfill sends the resume point in the URL.
    let mut c = StreamClient::open(
        s.public,
        Transport::Events,
        &format!("channel=lei&lastEventId=lei:{}", seqs[1]),
        "",
    );
    assert_eq!(c.next_event().unwrap()["type"], "hello");
    assert_eq!(c.data(1)[0]["seq"], seqs[1]);
    // The header, where both are given, wins.
    let mut c = StreamClient::open(
        s.public,
        Transport::Events,
        &format!("channel=lei&lastEventId=lei:{}", seqs[0]),
        &format!("Last-Event-ID: lei:{}\r\n", seqs[2]),
    );
    assert_eq!(c.next_event().unwrap()["type"], "hello");
    assert_eq!(c.data(1)[0]["seq"], seqs[2]);
}

#[test]
fn cors_with_credentials_echoes_the_origin() {
    let s = TestServer::start(|c| {
        c.allow_origin = vec!["https://a.example".into(), "https://b.example".into()];
        c.allow_credentials = true;
    });
    let r = request(
        s.public,
        "GET /poll?channel=cred&seq=1 HTTP/1.1\r\nOrigin: https://b.example\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("https://b.example")
    );
    assert_eq!(r.header("Access-Control-Allow-Credentials"), Some("true"));
    assert_eq!(r.header("Vary"), Some("Origin"));
    let mut c = StreamClient::open(
        s.public,
        Transport::Events,
        "channel=cred",
        "Origin: https://a.example\r\n",
    );
    assert_eq!(
        c.head.header("Access-Control-Allow-Origin"),
        Some("https://a.example")
    );
    assert_eq!(
        c.head.header("Access-Control-Allow-Credentials"),
        Some("true")
    );
    assert_eq!(c.next_event().unwrap()["type"], "hello");
    // An origin not listed gets no CORS headers at all.
    let r = request(
        s.public,
        "GET /poll?channel=cred&seq=1 HTTP/1.1\r\nOrigin: https://evil.example\r\n\r\n",
    );
    assert_eq!(r.header("Access-Control-Allow-Origin"), None);
    assert_eq!(r.header("Access-Control-Allow-Credentials"), None);
    // Credentials with a wildcard origin: refused at start-up.
    let mut bad = comet_gateway::Config::ephemeral();
    bad.allow_credentials = true;
    let e = comet_gateway::Server::bind(bad).err().expect("refused");
    assert!(e.to_string().contains("--allow-credentials"), "{e}");
    let (code, text) = util::refused_to_start(&["--allow-credentials"]);
    assert_ne!(code, 0);
    assert!(text.contains("--allow-origin"), "{text}");
}

#[test]
fn every_text_type_names_its_charset() {
    let s = TestServer::start(|_| {});
    s.publish_seq("cs", "x");
    let mut types = Vec::new();
    for path in [
        "/poll?channel=cs&seq=0",
        "/poll?channel=cs&seq=0&cb=f",
        "/comet.js",
        "/comet.mjs",
        "/",
        "/nope",
    ] {
        types.push((
            path,
            get(s.public, path).header("Content-Type").map(String::from),
        ));
    }
    for t in TRANSPORTS {
        let c = StreamClient::open(s.public, t, "channel=cs", "");
        types.push((t.path(), c.head.header("Content-Type").map(String::from)));
    }
    for path in [
        "/healthz",
        "/stats",
        "/metrics",
        "/channels",
        "/channels/cs",
        "/nope",
    ] {
        types.push((
            path,
            get(s.admin, path).header("Content-Type").map(String::from),
        ));
    }
    for (path, ctype) in types {
        let ctype = ctype.unwrap_or_else(|| panic!("{path}: no Content-Type"));
        assert!(ctype.ends_with("; charset=utf-8"), "{path}: {ctype}");
    }
}

/// `Date: Sat, 28 Nov 2026 21:21:43 GMT`, within a minute of the test's clock.
fn check_date(r: &util::Response, what: &str) {
    let date = r
        .header("Date")
        .unwrap_or_else(|| panic!("{what}: no Date"));
    let parts: Vec<&str> = date.split(' ').collect();
    assert_eq!(parts.len(), 6, "{what}: {date}");
    assert!(
        parts[0].ends_with(',') && parts[5] == "GMT",
        "{what}: {date}"
    );
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = months.iter().position(|m| *m == parts[2]).expect("month") as u32 + 1;
    let (day, year): (u32, i64) = (parts[1].parse().unwrap(), parts[3].parse().unwrap());
    let hms: Vec<u64> = parts[4].split(':').map(|x| x.parse().unwrap()).collect();
    // Days since the epoch of a civil date (the inverse of the gateway's formatter,
    // written differently: by counting).
    let mut days: i64 = 0;
    for y in 1970..year {
        days += if y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) {
            366
        } else {
            365
        };
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let lens = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    days += lens[..month as usize - 1].iter().sum::<i64>() + day as i64 - 1;
    let secs = days as u64 * 86_400 + hms[0] * 3600 + hms[1] * 60 + hms[2];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(secs.abs_diff(now) < 60, "{what}: {date} is not now");
}

#[test]
fn every_get_route_answers_head_and_every_response_has_a_date() {
    let s = TestServer::start(|_| {});
    s.publish_seq("hd", "x");
    let public = [
        "/",
        "/comet.js",
        "/comet.mjs",
        "/poll?channel=hd-new",
        "/stream?channel=hd-new",
        "/iframe?channel=hd-new&cb=f",
        "/events?channel=hd-new",
    ];
    let admin = [
        "/healthz",
        "/stats",
        "/metrics",
        "/channels",
        "/channels/hd",
    ];
    for (addr, paths) in [(s.public, &public[..]), (s.admin, &admin[..])] {
        for path in paths {
            let mut c = Conn::open(addr);
            c.send(&format!(
                "HEAD {path} HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\n"
            ));
            let head = c.head_only();
            assert_eq!(head.status, 200, "HEAD {path}");
            assert!(head.header("Content-Type").is_some(), "HEAD {path}");
            // What GET would send, where GET answers at once (polls and streams would
            // wait): the same type and, for fixed bodies, the same length.
            let subscribes = ["/poll", "/stream", "/iframe", "/events"]
                .iter()
                .any(|p| path.starts_with(p));
            if !subscribes {
                let get_r = get(addr, path);
                assert_eq!(
                    head.header("Content-Type"),
                    get_r.header("Content-Type"),
                    "HEAD {path}"
                );
                let fixed = !path.starts_with("/stats") && !path.starts_with("/metrics");
                if fixed {
                    assert_eq!(
                        head.header("Content-Length"),
                        get_r.header("Content-Length"),
                        "HEAD {path}"
                    );
                }
            }
            check_date(&head, path);
            // No body: the next response on the connection follows right away.
            let next = c.response();
            assert_eq!(next.status, 404, "after HEAD {path}");
            check_date(&next, "404");
        }
    }
    // HEAD subscribes to nothing.
    assert!(s.channel("hd-new").is_none());
    // Other methods still get 405 with HEAD in `Allow`.
    let r = request(
        s.public,
        "PUT /poll?channel=x HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD, OPTIONS"));
    check_date(&r, "405");
}

#[test]
fn an_http10_client_gets_an_unchunked_stream() {
    let s = TestServer::start(|_| {});
    for (path, first) in [
        ("/stream?channel=old", "{\"type\":\"hello\""),
        ("/events?channel=old", "retry: 2000\nid: old:"),
        ("/iframe?channel=old&cb=f", "<!DOCTYPE html>"),
    ] {
        let mut c = Conn::open(s.public);
        c.send(&format!("GET {path} HTTP/1.0\r\n\r\n"));
        let head = c.head_only();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("Transfer-Encoding"), None, "{path}");
        assert_eq!(head.header("Connection"), Some("close"));
        let id = head.header("X-Comet-Client").unwrap().to_string();
        while !String::from_utf8_lossy(&c.buf).contains("hello") {
            assert!(c.try_fill() > 0);
        }
        assert!(String::from_utf8_lossy(&c.buf).starts_with(first), "{path}");
        let seq = s.publish_seq("old", "raw");
        let needle = format!("\"seq\":{seq},\"data\":\"raw\"}}");
        while !String::from_utf8_lossy(&c.buf).contains(&needle) {
            assert!(c.try_fill() > 0, "{path}");
        }
        // The body ends with the connection.
        let r = request(
            s.public,
            &format!("POST /clients/{id}/close HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        );
        assert_eq!(r.status, 204);
        while c.try_fill() > 0 {}
        let text = String::from_utf8_lossy(&c.buf).to_string();
        assert!(
            !text.contains("\r\n0\r\n"),
            "{path}: no chunk framing: {text:?}"
        );
        assert!(
            text.contains("{\"type\":\"close\",\"channel\":\"old\"}"),
            "{path}"
        );
    }
    // A parked HTTP/1.0 poll is answered and closed as before.
    let mut c = Conn::open(s.public);
    c.send("GET /poll?channel=old10 HTTP/1.0\r\n\r\n");
    s.wait_subscribers("old10", 1);
    s.publish_seq("old10", "p");
    assert_eq!(c.response().status, 200);
    assert!(c.closed_by_server());
}
