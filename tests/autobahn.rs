//! The Autobahn|Testsuite (a conformance suite this project did not write) against the
//! gateway's test-only echo socket (`--ws-echo`), which uses the very frame parser,
//! encoder, UTF-8 checks and close handling of `/ws`: every case of groups 1-7, 9
//! (messages up to 16 MiB) and 10 must end OK, NON-STRICT or INFORMATIONAL, and 12-13
//! (permessage-deflate, never negotiated) UNIMPLEMENTED. `tests/autobahn/run.sh` runs
//! `wstest` (installed by `tests/setup.sh`) and checks the report; its summary is printed
//! (`--nocapture` shows it). Without `--ws-echo` the endpoint does not exist.

mod util;

use util::ChildGateway;

#[test]
fn autobahn_fuzzing_client_passes_against_the_echo_socket() {
    let gw = ChildGateway::spawn(None, &["--ws-echo", "--log-level", "warn"]);
    let root = env!("CARGO_MANIFEST_DIR");
    let out = std::process::Command::new("bash")
        .arg(format!("{root}/tests/autobahn/run.sh"))
        .arg(format!("ws://{}/ws-echo", gw.public))
        .arg("all")
        .output()
        .expect("run tests/autobahn/run.sh (did tests/setup.sh run?)");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "Autobahn failed:\n{text}");
    assert!(text.contains("autobahn: PASS"), "{text}");
    // Every case ran: 517 of them.
    assert!(text.contains("517 cases"), "{text}");
}

#[test]
fn the_echo_socket_exists_only_with_its_flag() {
    let g = util::TestServer::start(|_| {});
    let r = util::get(g.public, "/ws-echo");
    assert_eq!(r.status, 404);
}
