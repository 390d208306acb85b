//! comet.js in a real browser: runs tests/browser/run.mjs, which drives headless Chromium
//! (Debian's) with playwright-core against the gateway binary. For every transport it
//! checks in-order delivery, resuming after a gateway restart with no loss and no
//! duplicate, `lost` reporting, and subscribe/unsubscribe without a new data connection;
//! screenshots of the demo page land in target/browser-screenshots/. With no transport
//! forced it checks that Chromium gets the native WebSocket, and, behind a proxy that
//! strips `Upgrade` (tests/browser/proxy.mjs), that the client falls back to EventSource
//! from its cursor with nothing lost or repeated, both when /ws is refused from the start
//! and when an open WebSocket is cut and then refused. Needs `tests/setup.sh` (Chromium
//! and playwright-core), which the README's test command runs.

use std::process::Command;

#[test]
fn comet_js_in_headless_chromium() {
    let root = env!("CARGO_MANIFEST_DIR");
    assert!(
        std::path::Path::new(&format!(
            "{root}/tests/browser/node_modules/playwright-core"
        ))
        .exists()
            && std::path::Path::new("/usr/bin/chromium").exists(),
        "browser test prerequisites missing: run `bash tests/setup.sh` first"
    );
    let out = Command::new("node")
        .arg(format!("{root}/tests/browser/run.mjs"))
        .arg(env!("CARGO_BIN_EXE_comet-gateway"))
        .arg(format!("{root}/target/browser-screenshots"))
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for t in ["ws", "events", "stream", "iframe", "poll"] {
        assert!(
            stdout.contains(&format!("ok {t}: resumed after a gateway restart")),
            "{t}"
        );
        assert!(
            std::path::Path::new(&format!("{root}/target/browser-screenshots/demo-{t}.png"))
                .exists()
        );
    }
    for check in ["ok auto: picks ws", "ok fallback:", "ok switch:"] {
        assert!(stdout.contains(check), "{check}");
    }
}
