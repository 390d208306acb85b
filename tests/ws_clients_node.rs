//! `GET /ws` spoken to by npm `ws` in Node.js (tests/ws/node_ws.mjs): order, restart,
//! commands, auth and slow-consumer checks from `ws_common` (see tests/ws_common/mod.rs).
//! Needs `tests/setup.sh`.

mod ws_common;

use ws_common::Lib;

#[test]
fn order() {
    ws_common::order(Lib::NodeWs);
}

#[test]
fn resume_after_restart() {
    ws_common::restart(Lib::NodeWs);
}

#[test]
fn commands_over_the_socket() {
    ws_common::commands(Lib::NodeWs);
}

#[test]
fn auth_refusal() {
    ws_common::auth(Lib::NodeWs);
}

#[test]
fn slow_consumer_dropped() {
    ws_common::slow(Lib::NodeWs);
}
