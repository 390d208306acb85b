//! Subscriber auth (`--auth-secret`): tokens from `/sign` and tokens made by an
//! independent HMAC-SHA256 (written here from SHA-256 alone) agree; subscribe requests and
//! control subscribes with missing, forged, expired, wrong-channel and prefix tokens get
//! 403 or succeed as due.

mod util;

use sha2::{Digest, Sha256};
use util::{get, request, StreamClient, TestServer, Transport};

const SECRET: &str = "backend-shared-secret";

/// HMAC-SHA256 by its definition (RFC 2104), independent of the gateway's `hmac` crate.
fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let ipad: Vec<u8> = k.iter().map(|b| b ^ 0x36).collect();
    let opad: Vec<u8> = k.iter().map(|b| b ^ 0x5c).collect();
    let inner = Sha256::new()
        .chain_update(&ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(&opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// A token as a backend would make it without asking the gateway.
fn token(scope: &str, expires: u64) -> String {
    let sig: String = hmac_sha256(SECRET.as_bytes(), format!("{scope}~{expires}").as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{scope}~{expires}~{sig}")
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn server() -> TestServer {
    TestServer::start(|c| c.auth_secret = Some(SECRET.into()))
}

fn poll_status(s: &TestServer, query: &str) -> u16 {
    get(s.public, &format!("/poll?{query}&seq=0")).status
}

#[test]
fn signed_tokens_agree_with_an_independent_hmac() {
    let s = server();
    let r = request(
        s.admin,
        "POST /sign?channel=news&ttl=600 HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    let j = r.json();
    let expires = j["expires"].as_u64().unwrap();
    assert!(expires >= now() + 599 && expires <= now() + 601);
    assert_eq!(j["token"], token("news", expires));
    // RFC 4231 test case 2, to show the independent HMAC is right.
    let tc2 = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(tc2[..4], [0x5b, 0xdc, 0xc1, 0x46]);
}

#[test]
fn subscribe_requests_need_a_valid_token() {
    let s = server();
    s.publish_seq("news", "x");
    let t = now() + 600;
    assert_eq!(poll_status(&s, "channel=news"), 403, "missing");
    assert_eq!(
        poll_status(&s, &format!("channel=news&token={}", token("news", t))),
        200
    );
    let forged = token("news", t).replace(&format!("~{t}~"), &format!("~{}~", t + 1));
    assert_eq!(
        poll_status(&s, &format!("channel=news&token={forged}")),
        403,
        "forged"
    );
    assert_eq!(
        poll_status(
            &s,
            &format!("channel=news&token={}", token("news", now() - 1))
        ),
        403,
        "expired"
    );
    assert_eq!(
        poll_status(&s, &format!("channel=news&token={}", token("chat", t))),
        403,
        "wrong channel"
    );
    assert_eq!(
        poll_status(&s, "channel=news&token=garbage"),
        403,
        "malformed"
    );
    // A prefix token covers its channels only.
    s.publish_seq("room.1", "x");
    assert_eq!(
        poll_status(&s, &format!("channel=room.1&token={}", token("room.*", t))),
        200
    );
    assert_eq!(
        poll_status(&s, &format!("channel=news&token={}", token("room.*", t))),
        403
    );
    // One token per channel, in order.
    let pair = format!(
        "channel=news,room.1&token={},{}",
        token("news", t),
        token("room.*", t)
    );
    assert_eq!(poll_status(&s, &pair), 200);
    let swapped = format!(
        "channel=news,room.1&token={},{}",
        token("room.*", t),
        token("news", t)
    );
    assert_eq!(poll_status(&s, &swapped), 403);
    // Streams too.
    let r = get(s.public, "/events?channel=news");
    assert_eq!(r.status, 403);
    let mut ok = StreamClient::open(
        s.public,
        Transport::Events,
        &format!("channel=news&token={}", token("news", t)),
        "",
    );
    assert_eq!(ok.next_event().unwrap()["type"], "hello");
    // The error is JSON and the counter moves.
    assert!(get(s.public, "/poll?channel=news").json()["error"]
        .as_str()
        .unwrap()
        .contains("token"));
    let m = get(s.admin, "/metrics").text();
    assert!(!m.contains("comet_auth_failures_total 0"), "{m}");
}

#[test]
fn control_subscribe_needs_a_token_too() {
    let s = server();
    let t = now() + 600;
    let mut c = StreamClient::open(
        s.public,
        Transport::Stream,
        &format!("channel=a&token={}", token("a", t)),
        "",
    );
    let hello = c.next_event().unwrap();
    let id = hello["client"].as_str().unwrap();
    let sub = |q: &str| {
        request(
            s.public,
            &format!("POST /clients/{id}/subscribe?{q} HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
        )
        .status
    };
    assert_eq!(sub("channel=b"), 403);
    assert_eq!(sub(&format!("channel=b&token={}", token("a", t))), 403);
    assert_eq!(sub(&format!("channel=b&token={}", token("b", t))), 204);
    let seq = s.publish_seq("b", "authorized");
    assert_eq!(c.data(1)[0]["seq"], seq);
}

#[test]
fn sign_is_off_without_a_secret() {
    let s = TestServer::start(|_| {});
    let r = request(
        s.admin,
        "POST /sign?channel=news HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 404);
    // And subscribing needs no token.
    s.publish_seq("news", "x");
    assert_eq!(get(s.public, "/poll?channel=news&seq=0").status, 200);
}
