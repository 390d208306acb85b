//! The floor: the bare cost of fan-out. A writer process accepts N connections and writes
//! the same payload to each of them, one `write` per socket per message, M times; this
//! process reads everything. Deliveries per second here are what a perfect gateway could
//! reach on this machine, so the gateway's rate can be stated as a share of it.
//!
//! The writer is this binary again (`--floor-serve`), so that the 2 × N descriptors are
//! split over two processes as they are in a gateway run. It owns its own sockets and the
//! writer child; it never talks to a gateway and shares nothing with the run.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

/// What a floor run measured.
#[derive(Clone, Copy, Debug)]
pub struct FloorResult {
    /// Connections.
    pub connections: usize,
    /// Messages written to each.
    pub messages: usize,
    /// Bytes per message.
    pub size: usize,
    /// From the first write to the last byte read.
    pub secs: f64,
}

impl FloorResult {
    /// Deliveries (message × connection) per second.
    pub fn deliveries_per_sec(&self) -> f64 {
        (self.connections * self.messages) as f64 / self.secs
    }
}

/// The writer side: accepts `n` connections on `listener`, then writes `m` messages of
/// `size` bytes to each, one write per socket per message, retrying sockets that would
/// block. Prints nothing; the reader measures.
pub fn serve(listener: TcpListener, n: usize, m: usize, size: usize) -> io::Result<()> {
    let mut socks = Vec::with_capacity(n);
    while socks.len() < n {
        let (s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        s.set_nonblocking(true)?;
        socks.push(s);
    }
    let payload = vec![b'x'; size];
    // Bytes still owed to each socket (a write that would block is finished later).
    let mut owed = vec![0usize; n];
    for _ in 0..m {
        for (s, debt) in socks.iter_mut().zip(owed.iter_mut()) {
            *debt += size;
            while *debt > 0 {
                let chunk = (*debt).min(size);
                match s.write(&payload[..chunk]) {
                    Ok(k) => *debt -= k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    // Finish what would not go at once.
    while owed.iter().any(|d| *d > 0) {
        for (s, debt) in socks.iter_mut().zip(owed.iter_mut()) {
            while *debt > 0 {
                match s.write(&payload[..(*debt).min(size)]) {
                    Ok(k) => *debt -= k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    // Keep the sockets open until the reader is done.
    let mut b = [0u8; 1];
    for mut s in socks {
        s.set_nonblocking(false)?;
        let _ = s.read(&mut b);
    }
    Ok(())
}

/// The reader side: starts the writer (through `taskset -c writer_cpus` if given),
/// connects `n` sockets, reads `m × size` bytes from each and times it.
pub fn measure(
    n: usize,
    m: usize,
    size: usize,
    sources: &[std::net::IpAddr],
    writer_cpus: Option<&str>,
) -> io::Result<FloorResult> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr: SocketAddr = listener.local_addr()?;
    drop(listener);
    let exe = std::env::current_exe()?;
    let mut cmd = match writer_cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", cpus]).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let mut child = cmd
        .args(["--floor-serve", &addr.to_string()])
        .args(["--subscribers", &n.to_string()])
        .args(["--burst", &m.to_string(), "--size", &size.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()?;
    let result = read_all(addr, n, m, size, sources);
    let _ = child.kill();
    let _ = child.wait();
    result
}

fn read_all(
    addr: SocketAddr,
    n: usize,
    m: usize,
    size: usize,
    sources: &[std::net::IpAddr],
) -> io::Result<FloorResult> {
    let mut poll = Poll::new()?;
    let mut socks = Vec::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..n {
        let s = loop {
            match connect(addr, i, sources) {
                Ok(s) => break s,
                // The writer may not be listening yet.
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => return Err(e),
            }
        };
        let mut s = TcpStream::from_std(s);
        poll.registry()
            .register(&mut s, Token(i), Interest::READABLE)?;
        socks.push(s);
    }
    let want = m * size;
    let mut got = vec![0usize; n];
    let mut done = 0;
    let mut buf = vec![0u8; 256 * 1024];
    let mut events = Events::with_capacity(4096);
    let mut first: Option<Instant> = None;
    while done < n {
        if Instant::now() > deadline + Duration::from_secs(60) {
            return Err(io::Error::other("floor: timed out"));
        }
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for ev in events.iter() {
            let i = ev.token().0;
            loop {
                match socks[i].read(&mut buf) {
                    Ok(0) => break,
                    Ok(k) => {
                        first.get_or_insert_with(Instant::now);
                        let before = got[i];
                        got[i] += k;
                        if before < want && got[i] >= want {
                            done += 1;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            }
        }
    }
    let secs = first.map_or(0.0, |f| f.elapsed().as_secs_f64());
    Ok(FloorResult {
        connections: n,
        messages: m,
        size,
        secs,
    })
}

fn connect(
    addr: SocketAddr,
    i: usize,
    sources: &[std::net::IpAddr],
) -> io::Result<std::net::TcpStream> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    if !sources.is_empty() {
        s.bind(&SocketAddr::new(sources[i % sources.len()], 0).into())?;
    }
    s.connect(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}
