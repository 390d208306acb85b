//! Replays the fixed corpus of hostile requests in fuzz/corpus/request through the same
//! entry point the fuzz target uses, so CI exercises it without a nightly toolchain; and
//! sends each one to a real server over loopback, which must survive them all.

mod util;

use std::io::{Read, Write};
use std::time::Duration;

use util::{get, TestServer};

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus/request");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("corpus directory")
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn the_corpus_never_panics_the_parsers() {
    let files = corpus();
    assert!(files.len() >= 25, "corpus has {} files", files.len());
    for (name, data) in &files {
        let r = std::panic::catch_unwind(|| comet_gateway::fuzzing::request_path(data));
        assert!(r.is_ok(), "{name} panicked");
    }
}

#[test]
fn a_real_server_survives_the_corpus() {
    let s = TestServer::start(|c| c.header_timeout = Duration::from_millis(300));
    for (name, data) in corpus() {
        for addr in [s.public, s.admin] {
            let mut c = std::net::TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let _ = c.write_all(&data);
            let _ = c.shutdown(std::net::Shutdown::Write);
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            drop(c);
            let _ = name;
        }
    }
    // Still serving, on both listeners.
    assert_eq!(get(s.admin, "/healthz").status, 200);
    s.publish_seq("after", "x");
    assert_eq!(get(s.public, "/poll?channel=after&seq=0").status, 200);
}
