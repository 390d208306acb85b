//! The `comet-flood` binary: parses flags, floods, prints the JSON summary on stdout.

use clap::Parser;
use comet_loadtest::flood::{run, FloodConfig};

fn main() {
    let cfg = FloodConfig::parse();
    if let Err(e) = cfg.check() {
        eprintln!("comet-flood: {e}");
        std::process::exit(2);
    }
    match run(&cfg) {
        Ok(summary) => {
            let json = summary.json();
            println!("{json}");
            if let Some(path) = &cfg.json {
                if let Err(e) = std::fs::write(path, json + "\n") {
                    eprintln!("comet-flood: cannot write {}: {e}", path.display());
                    std::process::exit(1);
                }
            }
        }
        Err(e) => {
            eprintln!("comet-flood: {e}");
            std::process::exit(1);
        }
    }
}
