//! Flags that make no sense are refused at start-up with a message that says why: zero
//! or absurd durations (a zero heartbeat floods; a huge one overflows deadline
//! arithmetic), sizes out of range, CORS credentials with a wildcard origin.

mod util;

use util::refused_to_start;

#[test]
fn zero_or_absurd_values_are_refused_with_a_message() {
    for args in [
        &["--heartbeat", "0"][..],
        &["--poll-timeout", "0ms"],
        &["--idle-timeout", "99999999h"],
        &["--header-timeout", "18446744073709551615ms"],
        &["--session-timeout", "0"],
        &["--stream-max-age", "100000h"],
        &["--channel-ttl", "0"],
        &["--message-ttl", "10000000h"],
        &["--shutdown-timeout", "2h"],
        &["--max-pending-bytes", "1"],
        &["--max-header-bytes", "10"],
        &["--max-message", "0"],
        &["--max-sessions", "0"],
        &["--max-admin-conns", "0"],
        &["--max-conns", "0"],
        &["--max-channels-per-subscriber", "0"],
        &["--backlog", "0"],
    ] {
        let (code, text) = refused_to_start(args);
        assert_eq!(code, 2, "{args:?}: {text}");
        assert!(
            text.contains(args[0]),
            "{args:?}: the message names the flag: {text}"
        );
        let why = ["out of range", "is not in", "too long", "not a duration"];
        assert!(why.iter().any(|w| text.contains(w)), "{args:?}: {text}");
    }
}
