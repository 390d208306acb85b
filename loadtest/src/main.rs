//! The `comet-loadtest` binary: parses flags, raises its descriptor limit (children
//! inherit it), runs (in this process, over several with
//! `--processes`, or as one of those with `--worker`) or measures the floor, prints the
//! summary and writes its JSON, and picks the exit code (0 clean, 1 not clean or failed, 2
//! bad flags). It holds no logic of the run itself.

use clap::Parser;
use comet_loadtest::{floor, multi, run, work, Config};

fn main() {
    let cfg = Config::parse();
    // First, so that every process this one starts (--processes, --floor) inherits it.
    let limits = comet_loadtest::fd_limit::raise();
    if !cfg.worker && cfg.floor_serve.is_none() {
        eprintln!("comet-loadtest: {}", limits.describe());
        // With --processes the coordinator warns per process share.
        // A few descriptors beyond the subscribers: stdio, the poll, the admin connection.
        if cfg.processes <= 1 && cfg.subscribers as u64 + 16 > limits.soft {
            eprintln!(
                "comet-loadtest: warning: {} subscribers in one process, past its descriptor \
                 limit {}: raise --processes or the hard limit",
                cfg.subscribers, limits.soft
            );
        }
    }
    if let Some(addr) = cfg.floor_serve {
        let result = std::net::TcpListener::bind(addr)
            .and_then(|l| floor::serve(l, cfg.subscribers, cfg.burst as usize, cfg.size));
        std::process::exit(if result.is_ok() { 0 } else { 1 });
    }
    if cfg.floor && cfg.processes > 1 {
        eprintln!("comet-loadtest: --floor runs in one process (no --processes)");
        std::process::exit(2);
    }
    if cfg.floor {
        let messages = cfg.burst.max(1) as usize;
        let sources = cfg.source.clone().map(|s| s.0).unwrap_or_default();
        match floor::measure(
            cfg.subscribers,
            messages,
            cfg.size,
            &sources,
            cfg.floor_writer_cpus.as_deref(),
        ) {
            Ok(r) => {
                println!(
                    "floor: {} connections x {} messages of {} bytes in {:.3}s = {:.0} deliveries/s",
                    r.connections,
                    r.messages,
                    r.size,
                    r.secs,
                    r.deliveries_per_sec()
                );
                if let Some(path) = &cfg.json {
                    let json = format!(
                        "{{\"floor\":true,\"connections\":{},\"messages\":{},\"size\":{},\"secs\":{:.4},\"deliveries_per_sec\":{:.1}}}\n",
                        r.connections, r.messages, r.size, r.secs, r.deliveries_per_sec()
                    );
                    let _ = std::fs::write(path, json);
                }
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("comet-loadtest: floor: {e}");
                std::process::exit(1);
            }
        }
    }
    if let Err(e) = cfg.check() {
        eprintln!("comet-loadtest: {e}");
        std::process::exit(2);
    }
    if cfg.worker {
        // The coordinator reads the report; the exit code only says whether it went out.
        let result = work(&cfg);
        if let Err(e) = &result {
            eprintln!("comet-loadtest: worker: {e}");
        }
        std::process::exit(if result.is_ok() { 0 } else { 1 });
    }
    let result = if cfg.processes > 1 {
        let args: Vec<_> = std::env::args_os().skip(1).collect();
        std::env::current_exe().and_then(|exe| multi::coordinate(&cfg, &exe, &args))
    } else {
        run(&cfg)
    };
    match result {
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
