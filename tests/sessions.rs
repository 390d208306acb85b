//! Long-poll sessions and subscriber tokens: a session is only as good as its tokens
//! (resuming it after they expired gets 403; a stream ends with `reconnect` when its
//! token expires), and a resume the gateway refuses leaves the session as it was.

mod util;

use comet_gateway::auth;
use util::{get, StreamClient, TestServer, Transport};

const SECRET: &str = "session-secret";

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token for `scope` that expires in `secs` seconds.
fn token(scope: &str, secs: u64) -> (String, u64) {
    let expires = unix_now() + secs;
    (auth::sign(SECRET.as_bytes(), scope, expires), expires)
}

#[test]
fn a_session_does_not_outlive_its_token() {
    let s = TestServer::start(|c| c.auth_secret = Some(SECRET.into()));
    let seq = s.publish_seq("tok", "x");
    let (short, expires) = token("tok", 2);
    let r = get(
        s.public,
        &format!("/poll?channel=tok&seq={seq}&token={short}"),
    );
    assert_eq!(r.status, 200);
    let id = r.header("X-Comet-Client").unwrap().to_string();
    // While the token is valid the session resumes without one...
    let next = s.publish_seq("tok", "y");
    let r = get(s.public, &format!("/poll?client={id}"));
    assert_eq!((r.status, r.events()[0]["seq"].as_u64()), (200, Some(next)));
    // ...after it expired, it does not.
    util::wait_until("the token expired", || unix_now() > expires);
    let r = get(s.public, &format!("/poll?client={id}"));
    assert_eq!(r.status, 403, "{}", r.text());
    // The client comes back with a fresh token and its cursor, and misses nothing.
    let later = s.publish_seq("tok", "z");
    let (fresh, _) = token("tok", 600);
    let r = get(
        s.public,
        &format!("/poll?client={id}&channel=tok&seq={later}&token={fresh}"),
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.events()[0]["seq"], later);
}

#[test]
fn a_stream_ends_when_its_token_expires() {
    let s = TestServer::start(|c| c.auth_secret = Some(SECRET.into()));
    for t in [Transport::Stream, Transport::Events] {
        let (short, expires) = token("tick", 2);
        let mut c = StreamClient::open(s.public, t, &format!("channel=tick&token={short}"), "");
        assert_eq!(c.next_event().unwrap()["type"], "hello");
        let e = c.next_non_noop().expect("reconnect");
        assert_eq!(e["type"], "reconnect", "{t:?}: {e}");
        assert!(unix_now() >= expires, "ended before its token expired");
        assert!(c.next_event().is_none(), "{t:?}: the stream ends");
    }
}

#[test]
fn a_refused_resume_leaves_the_session_intact() {
    let s = TestServer::start(|c| c.max_channels_per_subscriber = 3);
    let a = s.publish_seq("ra", "a");
    let b = s.publish_seq("rb", "b");
    let r = get(s.public, &format!("/poll?channel=ra,rb&seq={a},{b}"));
    let id = r.header("X-Comet-Client").unwrap().to_string();
    // Two more channels would make four: refused...
    let r = get(s.public, &format!("/poll?client={id}&channel=rc,rd"));
    assert_eq!(r.status, 400, "{}", r.text());
    // ...and the session is still there, with its channels and cursors.
    let next = s.publish_seq("rb", "b2");
    let r = get(s.public, &format!("/poll?client={id}"));
    assert_eq!(r.header("X-Comet-Client"), Some(id.as_str()));
    let events = r.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(
        (events[0]["channel"].as_str(), events[0]["seq"].as_u64()),
        (Some("rb"), Some(next))
    );
}
