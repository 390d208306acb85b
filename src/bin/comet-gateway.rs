//! The `comet-gateway` binary: parses flags, starts logging, runs the server.

use clap::Parser;
use comet_gateway::{Config, Server};

fn main() {
    let config = Config::parse();
    let mut logger = env_logger::Builder::new();
    logger.parse_filters(&config.log_level);
    if let Ok(spec) = std::env::var("RUST_LOG") {
        logger.parse_filters(&spec);
    }
    logger.init();
    if config.workers > 1 {
        if let Err(e) = config.validate() {
            log::error!("{e}");
            std::process::exit(1);
        }
        let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
        match comet_gateway::workers::supervise(&args, config.workers as usize) {
            Ok(code) => std::process::exit(code),
            Err(e) => {
                log::error!("cannot run the workers: {e}");
                std::process::exit(1);
            }
        }
    }
    let mut server = match Server::bind(config) {
        Ok(s) => s,
        Err(e) => {
            log::error!("{e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = server.handle_signals() {
        log::error!("cannot install signal handlers: {e}");
        std::process::exit(1);
    }
    if let Err(e) = server.run() {
        log::error!("reactor failed: {e}");
        std::process::exit(1);
    }
}
