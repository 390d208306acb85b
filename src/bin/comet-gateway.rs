//! The `comet-gateway` binary: parses flags, starts logging, runs the server.

use clap::Parser;
use comet_gateway::{Config, Server};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let config = Config::parse();
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
