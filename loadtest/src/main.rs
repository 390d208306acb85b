//! Placeholder for the bundled load generator (`comet-loadtest`).
//!
//! The real generator (a mio client in the spirit of wrk) is not written yet; this binary
//! only says so, so that nobody mistakes it for a working tool.

fn main() {
    eprintln!("comet-loadtest: not implemented yet (see the load-generator issue)");
    std::process::exit(2);
}
