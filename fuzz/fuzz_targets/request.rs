//! Bytes in, the request path's parsers run, nothing may panic.
//!
//! cargo install cargo-fuzz
//! RUSTC_BOOTSTRAP=1 cargo fuzz run request CORPUS_DIR -- -max_total_time=600
//! (seed CORPUS_DIR with a copy of fuzz/corpus/request).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    comet_gateway::fuzzing::request_path(data);
});
