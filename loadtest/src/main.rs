//! The `comet-loadtest` binary: parses flags, runs, prints the summary.

use clap::Parser;
use comet_loadtest::{run, Config};

fn main() {
    let cfg = Config::parse();
    if let Err(e) = cfg.check() {
        eprintln!("comet-loadtest: {e}");
        std::process::exit(2);
    }
    match run(&cfg) {
        Ok(summary) => {
            print!("{}", summary.text());
            if let Some(path) = &cfg.json {
                if let Err(e) = std::fs::write(path, summary.json() + "\n") {
                    eprintln!("comet-loadtest: cannot write {}: {e}", path.display());
                    std::process::exit(1);
                }
            }
            std::process::exit(if summary.clean() { 0 } else { 1 });
        }
        Err(e) => {
            eprintln!("comet-loadtest: {e}");
            std::process::exit(1);
        }
    }
}
