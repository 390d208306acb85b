//! `Proxy`: a loopback TCP relay between a gateway and its Redis that the test can cut
//! and hold shut, so one gateway loses Redis (and cannot get it back) while another
//! goes on publishing: what that gateway misses meanwhile is then certain, not a race
//! against its reconnect backoff.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    /// New connections are closed at once instead of relayed.
    held: AtomicBool,
    stopped: AtomicBool,
    /// Both ends of every relayed connection, to cut them.
    socks: Mutex<Vec<TcpStream>>,
}

/// A relay to `upstream`, listening on a free loopback port; stopped on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
}

fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = [0u8; 16384];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let st = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if st.stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if st.held.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                {
                    let mut socks = st.socks.lock().unwrap();
                    socks.push(client.try_clone().unwrap());
                    socks.push(server.try_clone().unwrap());
                }
                std::thread::spawn(move || pump(client, s2));
                std::thread::spawn(move || pump(server, c2));
            }
        });
        Proxy { addr, state }
    }

    /// Cuts every relayed connection and refuses new ones until [`release`](Self::release).
    pub fn hold(&self) {
        self.state.held.store(true, Ordering::SeqCst);
        for s in self.state.socks.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Relays new connections again.
    pub fn release(&self) {
        self.state.held.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.hold();
        self.state.stopped.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees `stopped`.
        let _ = TcpStream::connect(self.addr);
    }
}
