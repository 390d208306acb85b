//! A gateway from the library, on its own thread on ephemeral loopback ports, for the
//! load generator's tests; stopped when dropped.
#![allow(dead_code)]

use comet_gateway::{Config, Server, ShutdownHandle};

pub struct Gateway {
    pub public: std::net::SocketAddr,
    pub admin: std::net::SocketAddr,
    handle: ShutdownHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Gateway {
    /// Starts one with the defaults and `tweak` applied.
    pub fn start(tweak: impl FnOnce(&mut Config)) -> Gateway {
        let mut c = Config::ephemeral();
        tweak(&mut c);
        let mut s = Server::bind(c).unwrap();
        let (public, admin) = (s.public_addr().unwrap(), s.admin_addr().unwrap());
        let handle = s.shutdown_handle();
        let thread = Some(std::thread::spawn(move || s.run().unwrap()));
        Gateway {
            public,
            admin,
            handle,
            thread,
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
