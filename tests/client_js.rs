//! The browser client and the demo: `/comet.js`, `/comet.mjs` and `/` are served, the
//! `--demo` route publishes only with the flag and only to `demo.` channels, and the
//! client itself, run under Node against a real gateway, resumes with no gap or duplicate,
//! reports `lost`, and follows subscribe/unsubscribe/close (fetch streaming and fetch
//! long-polling; EventSource, iframe and JSONP need a browser).

mod util;

use std::process::Command;
use std::time::Duration;

use util::{get, request, TestServer};

#[test]
fn client_and_demo_page_are_served() {
    let s = TestServer::start(|_| {});
    let js = get(s.public, "/comet.js");
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("Content-Type"),
        Some("application/javascript; charset=utf-8")
    );
    assert!(js.text().contains("Comet.prototype.subscribe"));
    let mjs = get(s.public, "/comet.mjs");
    assert!(mjs.text().ends_with("export default globalThis.Comet;\n"));
    let page = get(s.public, "/");
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains("<script src=\"/comet.js\"></script>"));
    // Not on the admin listener.
    assert_eq!(get(s.admin, "/comet.js").status, 404);
}

#[test]
fn the_demo_route_needs_the_flag_and_demo_channels() {
    let off = TestServer::start(|_| {});
    let post = |s: &TestServer, ch: &str| {
        request(
            s.public,
            &format!("POST /demo/pub?channel={ch} HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi"),
        )
    };
    assert_eq!(post(&off, "demo.chat").status, 404);
    let on = TestServer::start(|c| c.demo = true);
    assert_eq!(post(&on, "demo.chat").status, 200);
    assert_eq!(post(&on, "news").status, 403);
    assert_eq!(post(&on, "demo.a,news").status, 403);
    // The ticker publishes by itself.
    util::wait_until("a demo tick", || {
        on.channel("demo.ticker")
            .is_some_and(|c| c["buffered"].as_u64() > Some(0))
    });
}

fn node_client(transport: &str) {
    let s = TestServer::start(|c| {
        c.buffer = 5;
        c.stream_max_age = Duration::from_millis(300);
        c.poll_timeout = Duration::from_millis(300);
    });
    let out = Command::new("node")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/js/node_client.mjs"
        ))
        .arg(s.public.to_string())
        .arg(s.admin.to_string())
        .arg(transport)
        .output()
        .expect("node must be installed (Debian package nodejs or the machine's node)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{transport}: {stdout}\n{stderr}");
    // 30 in the resume phase, 1 on the subscribed channel, 1 after unsubscribing.
    assert!(stdout.contains("\"received\":32"), "{stdout}");
}

#[test]
fn the_client_under_node_with_fetch_streaming() {
    node_client("stream");
}

#[test]
fn the_client_under_node_with_long_polling() {
    node_client("poll");
}
