//! Every flag an operator sets has an environment variable, `COMET_` and the flag in upper
//! snake case (for containers and unit files): the binary started with settings only in
//! its environment uses them, a flag on the command line wins over its variable, and
//! `--help` names each variable.

mod util;

use std::net::SocketAddr;

use util::{free_port, get, request, ChildGateway};

/// Publishes `body` to `channel` on the admin listener.
fn publish(admin: SocketAddr, channel: &str, body: &str) {
    let r = request(
        admin,
        &format!(
            "POST /pub?channel={channel} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
}

#[test]
fn settings_in_the_environment_take_effect() {
    let (public, admin) = (free_port(), free_port());
    let gw = ChildGateway::spawn_env(
        &[
            ("COMET_LISTEN", &format!("127.0.0.1:{public}")),
            ("COMET_ADMIN_LISTEN", &format!("127.0.0.1:{admin}")),
            ("COMET_BUFFER", "3"),
            ("COMET_ACCESS_LOG", "true"),
        ],
        &[],
    );
    assert_eq!(gw.public.port(), public);
    assert_eq!(gw.admin.port(), admin);
    for n in 0..5 {
        publish(gw.admin, "env.test", &format!("m{n}"));
    }
    let channel = get(gw.admin, "/channels/env.test").json();
    assert_eq!(channel["buffered"], 3, "{channel}");
    util::wait_until("an access log line", || gw.logged("/channels/env.test"));
}

#[test]
fn a_flag_wins_over_its_variable() {
    let gw = ChildGateway::spawn_env(
        &[
            ("COMET_LISTEN", "127.0.0.1:0"),
            ("COMET_ADMIN_LISTEN", "127.0.0.1:0"),
            ("COMET_BUFFER", "3"),
        ],
        &["--buffer", "4"],
    );
    for n in 0..5 {
        publish(gw.admin, "env.flag", &format!("m{n}"));
    }
    assert_eq!(get(gw.admin, "/channels/env.flag").json()["buffered"], 4);
}

#[test]
fn help_names_the_variable_of_every_visible_flag() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_comet-gateway"))
        .arg("--help")
        .env("COMET_ADMIN_TOKEN", "do-not-show")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    let flags: Vec<&str> = help
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .map(|l| l.split([' ', '=']).next().unwrap())
        .filter(|f| !["help", "version"].contains(f))
        .collect();
    assert!(flags.len() > 25, "{help}");
    for flag in flags {
        let var = format!("[env: COMET_{}", flag.to_uppercase().replace('-', "_"));
        assert!(help.contains(&var), "--{flag} lacks {var}]:\n{help}");
    }
    for hidden in ["REUSE_PORT", "WORKER_INDEX", "STATS_DIR", "WS_ECHO"] {
        assert!(!help.contains(hidden), "{hidden}");
    }
    assert!(help.contains("[env: COMET_ADMIN_TOKEN]"));
    assert!(!help.contains("do-not-show"), "a secret is shown:\n{help}");
}
