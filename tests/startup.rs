//! Flags that make no sense are refused at start-up with a message that says why: zero
//! or absurd durations (a zero heartbeat floods; a huge one overflows deadline
//! arithmetic), sizes out of range, CORS credentials with a wildcard origin. And what the
//! gateway does for itself at start-up: it raises its soft descriptor limit to the hard
//! one and says so.

mod util;

use util::{refused_to_start, wait_until, ChildGateway};

/// The soft and hard `Max open files` of a running process, from `/proc/PID/limits`.
fn open_files_limits(pid: u32) -> (String, String) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap_or_else(|| panic!("no `Max open files` in\n{text}"));
    let mut fields = line["Max open files".len()..].split_whitespace();
    let soft = fields.next().unwrap().to_string();
    let hard = fields.next().unwrap().to_string();
    (soft, hard)
}

#[test]
fn the_soft_descriptor_limit_is_raised_to_the_hard_limit() {
    let gw = ChildGateway::spawn_soft_fd_limit(256, &["--max-conns", "1000"]);
    let (soft, hard) = open_files_limits(gw.pid());
    assert_eq!(soft, hard, "the soft limit was left below the hard one");
    assert_ne!(
        soft, "256",
        "the hard limit here must be above 256 for this test"
    );
    let said = format!("descriptor limit {hard} (soft limit raised from 256 to the hard limit)");
    wait_until("the limit is logged", || gw.logged(&said));
    let line = gw
        .log_lines()
        .into_iter()
        .find(|l| l.contains(&said))
        .unwrap();
    assert!(
        line.contains("room for about") && line.contains("--max-conns 1000"),
        "{line}"
    );
}

#[test]
fn max_conns_past_the_descriptor_limit_is_one_warning() {
    let gw = ChildGateway::spawn(Some(512), &["--max-conns", "100000"]);
    let said = "descriptor limit 512 (the hard limit): room for about";
    wait_until("the limit is logged", || gw.logged(said));
    let lines = gw.log_lines();
    let line = lines.iter().find(|l| l.contains(said)).unwrap();
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains("fewer than --max-conns 100000"), "{line}");
    let about_limits = lines.iter().filter(|l| l.contains("descriptor")).count();
    assert_eq!(about_limits, 1, "{lines:#?}");
}

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
