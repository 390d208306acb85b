//! `GET /ws` spoken to by Python's `websockets` (tests/ws/websockets_client.py, in the venv
//! at tests/ws/.venv): order, restart, commands, auth and slow-consumer checks from
//! `ws_common` (see tests/ws_common/mod.rs).
//! Needs `tests/setup.sh`.

mod ws_common;

use ws_common::Lib;

#[test]
fn order() {
    ws_common::order(Lib::PyWebsockets);
}

#[test]
fn resume_after_restart() {
    ws_common::restart(Lib::PyWebsockets);
}

#[test]
fn commands_over_the_socket() {
    ws_common::commands(Lib::PyWebsockets);
}

#[test]
fn auth_refusal() {
    ws_common::auth(Lib::PyWebsockets);
}

#[test]
fn slow_consumer_dropped() {
    ws_common::slow(Lib::PyWebsockets);
}
