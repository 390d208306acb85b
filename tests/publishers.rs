//! Publishers never lose data silently: pipelined publishes larger than the read buffer
//! are slowed by TCP back-pressure and every one is answered; a body over the limit gets
//! a 413 that the client actually reads (the connection is drained before it closes).

mod util;

use std::io::Write;

use util::{Conn, TestServer};

#[test]
fn pipelined_large_publishes_are_all_answered() {
    let s = TestServer::start(|_| {});
    let payload = "p".repeat(60 * 1024);
    let one = format!(
        "POST /pub?channel=big HTTP/1.1\r\nContent-Length: {}\r\n\r\n{payload}",
        payload.len()
    );
    let mut c = Conn::open(s.admin);
    // Ten at once: 600 KiB, far more than one connection's read buffer.
    let burst = one.repeat(10);
    let mut writer = c.sock.try_clone().unwrap();
    let t = std::thread::spawn(move || writer.write_all(burst.as_bytes()).unwrap());
    let mut seqs = Vec::new();
    for i in 0..10 {
        let r = c.response();
        assert_eq!(r.status, 200, "publish {i}: {}", r.text());
        seqs.push(r.json()["seq"].as_u64().unwrap());
    }
    t.join().unwrap();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    assert_eq!(s.channel("big").unwrap()["buffered"], 10);
}

#[test]
fn an_oversized_body_gets_a_413_the_client_reads() {
    let s = TestServer::start(|_| {});
    let body = vec![b'x'; 1 << 20];
    for i in 0..30 {
        let mut c = Conn::open(s.admin);
        c.send(&format!(
            "POST /pub?channel=huge HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            body.len()
        ));
        // The client goes on sending its body, as curl does, while the answer comes.
        let mut writer = c.sock.try_clone().unwrap();
        let b = body.clone();
        let t = std::thread::spawn(move || {
            let _ = writer.write_all(&b);
        });
        let r = c.response();
        assert_eq!(r.status, 413, "attempt {i}");
        assert_eq!(r.header("Connection"), Some("close"));
        assert!(
            c.ends_cleanly(),
            "attempt {i}: closed after the answer, not reset"
        );
        t.join().unwrap();
    }
    assert!(s.channel("huge").is_none());
}

#[test]
fn requests_sent_before_a_half_close_are_all_answered() {
    let s = TestServer::start(|_| {});
    for i in 0..20 {
        let mut c = Conn::open(s.admin);
        // Three publishes and the FIN in one go.
        let one = "POST /pub?channel=hc HTTP/1.1\r\nContent-Length: 1\r\n\r\nx";
        c.send(&one.repeat(3));
        c.sock.shutdown(std::net::Shutdown::Write).unwrap();
        for j in 0..3 {
            assert_eq!(c.response().status, 200, "trial {i}, publish {j}");
        }
        assert!(c.closed_by_server());
    }
    assert_eq!(s.channel("hc").unwrap()["buffered"], 60);
}

#[test]
fn pipelined_requests_after_connection_close_do_not_reset_its_answer() {
    let s = TestServer::start(|_| {});
    for i in 0..20 {
        let mut c = Conn::open(s.admin);
        c.send("GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n");
        // More requests behind it, arriving while the answer is on its way.
        c.send(&"GET /healthz HTTP/1.1\r\n\r\n".repeat(50));
        let r = c.response();
        assert_eq!((r.status, r.text().as_str()), (200, "ok\n"), "trial {i}");
        assert!(c.ends_cleanly(), "trial {i}: a reset after the answer");
    }
}
