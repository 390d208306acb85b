//! `Proxy`: a loopback TCP relay between a gateway and its Redis that the test can cut
//! and hold shut, so one gateway loses Redis (and cannot get it back) while another
//! goes on publishing: what that gateway misses meanwhile is then certain, not a race
//! against its reconnect backoff. It can also cut only some connections, or hold back
//! Redis's answers on some (so a command stays in flight), chosen by what the gateway
//! sent first on them (`SUBSCRIBE`: the pub/sub connection; `SCRIPT`: the command one),
//! and tell what a gateway sent on the connections it made since some point.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the gateway sent on a connection is kept up to this many bytes.
const KEPT: usize = 64 << 10;
/// Its kind is told by what it sent within this many bytes.
const KIND_BYTES: usize = 64;

/// One relayed connection.
struct Relay {
    /// Its number, in the order connections were accepted.
    n: usize,
    client: TcpStream,
    server: TcpStream,
    /// What the gateway sent on it (its first `KEPT` bytes).
    sent: Arc<Mutex<Vec<u8>>>,
    cut: Arc<AtomicBool>,
}

impl Relay {
    fn is(&self, kind: &str) -> bool {
        let sent = self.sent.lock().unwrap();
        contains(&sent[..sent.len().min(KIND_BYTES)], kind.as_bytes())
    }
}

#[derive(Default)]
struct State {
    /// Its port is closed: connecting is refused.
    held: AtomicBool,
    /// Its port is open (false while held).
    listening: AtomicBool,
    stopped: AtomicBool,
    accepted: AtomicUsize,
    /// Redis's answers are held back on connections whose first bytes contain this.
    paused: Mutex<Option<Vec<u8>>>,
    relays: Mutex<Vec<Relay>>,
}

impl State {
    fn paused_for(&self, sent: &Mutex<Vec<u8>>) -> bool {
        let sent = sent.lock().unwrap();
        self.paused
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|k| contains(&sent[..sent.len().min(KIND_BYTES)], k))
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// A relay to `upstream`, listening on a free loopback port; stopped on drop.
pub struct Proxy {
    pub addr: SocketAddr,
    state: Arc<State>,
}

/// Copies `from` to `to` until either ends; keeps what it copies in `sent` (gateway to
/// Redis), or waits while the connection is paused (Redis to gateway).
fn pump(
    mut from: TcpStream,
    mut to: TcpStream,
    up: bool,
    r: (Arc<Mutex<Vec<u8>>>, Arc<AtomicBool>),
    st: Arc<State>,
) {
    let (sent, cut) = r;
    let mut buf = [0u8; 16384];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if up {
            let mut kept = sent.lock().unwrap();
            let room = KEPT.saturating_sub(kept.len());
            kept.extend_from_slice(&buf[..n.min(room)]);
        } else {
            while st.paused_for(&sent) && !cut.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        if cut.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

/// Relays the connections `listener` accepts; while held, closes it and binds its
/// address again once released.
fn serve(mut listener: TcpListener, upstream: SocketAddr, st: &Arc<State>) {
    let addr = listener.local_addr().unwrap();
    loop {
        for client in listener.incoming() {
            if st.stopped.load(Ordering::SeqCst) {
                return;
            }
            if st.held.load(Ordering::SeqCst) {
                break;
            }
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(upstream) else {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            };
            relay(client, server, st);
        }
        drop(listener);
        st.listening.store(false, Ordering::SeqCst);
        while st.held.load(Ordering::SeqCst) && !st.stopped.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if st.stopped.load(Ordering::SeqCst) {
            return;
        }
        // The same port again (SO_REUSEADDR, as std sets it, so no TIME_WAIT stops it).
        listener = TcpListener::bind(addr).expect("the proxy binds its port again");
        st.listening.store(true, Ordering::SeqCst);
    }
}

fn relay(client: TcpStream, server: TcpStream, st: &Arc<State>) {
    let relay = Relay {
        n: st.accepted.fetch_add(1, Ordering::SeqCst),
        client: client.try_clone().unwrap(),
        server: server.try_clone().unwrap(),
        sent: Arc::default(),
        cut: Arc::default(),
    };
    let r = (relay.sent.clone(), relay.cut.clone());
    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    st.relays.lock().unwrap().push(relay);
    let (r2, st2, st3) = (r.clone(), st.clone(), st.clone());
    std::thread::spawn(move || pump(client, s2, true, r, st2));
    std::thread::spawn(move || pump(server, c2, false, r2, st3));
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        state.listening.store(true, Ordering::SeqCst);
        let st = state.clone();
        std::thread::spawn(move || serve(listener, upstream, &st));
        Proxy { addr, state }
    }

    /// Cuts every relayed connection and closes its port (connecting is refused, as by
    /// a Redis that is down) until [`release`](Self::release).
    pub fn hold(&self) {
        self.state.held.store(true, Ordering::SeqCst);
        self.cut("");
        // Wakes the accept loop, which closes the port; then nothing gets through.
        let _ = TcpStream::connect(self.addr);
        super::wait_until("the proxy's port is closed", || {
            !self.state.listening.load(Ordering::SeqCst)
        });
        self.cut("");
    }

    /// Opens its port again and relays new connections.
    pub fn release(&self) {
        self.state.held.store(false, Ordering::SeqCst);
        super::wait_until("the proxy's port is open again", || {
            self.state.listening.load(Ordering::SeqCst)
        });
    }

    /// Cuts the relayed connections on which the gateway's first bytes contain `kind`
    /// ("" for all); returns how many.
    pub fn cut(&self, kind: &str) -> usize {
        let mut relays = self.state.relays.lock().unwrap();
        let before = relays.len();
        relays.retain(|r| {
            if !r.is(kind) {
                return true;
            }
            r.cut.store(true, Ordering::SeqCst);
            let _ = r.client.shutdown(Shutdown::Both);
            let _ = r.server.shutdown(Shutdown::Both);
            false
        });
        before - relays.len()
    }

    /// How many connections it has relayed so far.
    pub fn accepted(&self) -> usize {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// True if the gateway sent `needle` on a connection of `kind` that is not cut and
    /// was accepted after the first `since`.
    pub fn sent_since(&self, since: usize, kind: &str, needle: &str) -> bool {
        self.count_since(since, kind, needle) > 0
    }

    /// How many times the gateway sent `needle` on the connections of `kind` that are
    /// not cut and were accepted after the first `since`.
    pub fn count_since(&self, since: usize, kind: &str, needle: &str) -> usize {
        let relays = self.state.relays.lock().unwrap();
        relays
            .iter()
            .filter(|r| r.n >= since && !r.cut.load(Ordering::SeqCst) && r.is(kind))
            .map(|r| {
                let sent = r.sent.lock().unwrap();
                sent.windows(needle.len())
                    .filter(|w| *w == needle.as_bytes())
                    .count()
            })
            .sum()
    }

    /// From now on, Redis's answers are held back (`Some(kind)`) on every connection,
    /// present or future, on which the gateway's first bytes contain `kind`; `None` lets
    /// them go.
    pub fn pause(&self, kind: Option<&str>) {
        *self.state.paused.lock().unwrap() = kind.map(|k| k.as_bytes().to_vec());
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        self.cut("");
        // Wakes the accept loop so that it sees `stopped`.
        let _ = TcpStream::connect(self.addr);
    }
}
