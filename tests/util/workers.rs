//! `Workers`: the gateway binary run with `--workers N` on fixed free loopback ports,
//! its log (the parent's and the workers') in a file, the pids of the workers it
//! started, and which worker holds the server end of a client's connection (from
//! `/proc`). Stopped with SIGTERM (then SIGKILL) when dropped.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

use super::WAIT;

/// A loopback port free right now (for a server a test starts).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Workers {
    pub parent: Child,
    pub public: SocketAddr,
    pub admin: SocketAddr,
    log_path: PathBuf,
}

impl Workers {
    /// `comet-gateway --workers n` with `args`, on two free ports.
    pub fn spawn(n: usize, args: &[&str]) -> Workers {
        let (public, admin) = (free_port(), free_port());
        let log_path = std::env::temp_dir().join(format!("comet-workers-{public}.log"));
        let log_file = std::fs::File::create(&log_path).unwrap();
        let parent = Command::new(env!("CARGO_BIN_EXE_comet-gateway"))
            .args(["--workers", &n.to_string()])
            .args(["--listen", &format!("127.0.0.1:{public}")])
            .args(["--admin-listen", &format!("127.0.0.1:{admin}")])
            .args(args)
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .unwrap();
        Workers {
            parent,
            public: ([127, 0, 0, 1], public).into(),
            admin: ([127, 0, 0, 1], admin).into(),
            log_path,
        }
    }

    /// Everything logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The pids of worker `i`, in the order the parent started them.
    pub fn started(&self, i: usize) -> Vec<u32> {
        let needle = format!("worker {i} started (pid ");
        self.log()
            .lines()
            .filter_map(|l| l.split_once(&needle).map(|(_, rest)| rest))
            .filter_map(|rest| rest.trim_end_matches(')').parse().ok())
            .collect()
    }

    /// The index and pid of the running worker that holds the server end of `client`
    /// (a connection to the public port).
    pub fn serving(&self, client: &TcpStream) -> Option<(usize, u32)> {
        // The server end's local address is the client's peer, and the other way round.
        let inode = socket_inode(client.peer_addr().ok()?, client.local_addr().ok()?)?;
        let link = format!("socket:[{inode}]");
        (0..)
            .map_while(|i| self.started(i).last().map(|&pid| (i, pid)))
            .find(|&(_, pid)| {
                std::fs::read_dir(format!("/proc/{pid}/fd"))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == &*link))
            })
    }

    /// SIGTERM to the parent, and its exit status (bounded by `WAIT`).
    pub fn stop(&mut self) -> ExitStatus {
        // SAFETY: kill(2) on the child we started.
        unsafe { libc::kill(self.parent.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.parent.try_wait().unwrap() {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "the parent did not exit: {}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// The inode of the TCP socket whose local end is `local` and remote end `peer`, looked
/// up by the kernel (sock_diag, an exact match: `/proc/net/tcp` would list every socket
/// of the host, which may be millions).
fn socket_inode(local: SocketAddr, peer: SocketAddr) -> Option<u32> {
    use std::mem::size_of;
    #[repr(C)]
    struct SockId {
        sport: [u8; 2],
        dport: [u8; 2],
        src: [u8; 16],
        dst: [u8; 16],
        ifindex: u32,
        cookie: [u32; 2],
    }
    /// `nlmsghdr` + `inet_diag_req_v2`.
    #[repr(C)]
    struct Req {
        len: u32,
        kind: u16,
        flags: u16,
        seq: u32,
        pid: u32,
        family: u8,
        protocol: u8,
        ext: u8,
        pad: u8,
        states: u32,
        id: SockId,
    }
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    let (SocketAddr::V4(l), SocketAddr::V4(p)) = (local, peer) else {
        return None;
    };
    let mut id = SockId {
        sport: l.port().to_be_bytes(),
        dport: p.port().to_be_bytes(),
        src: [0; 16],
        dst: [0; 16],
        ifindex: 0,
        cookie: [u32::MAX; 2],
    };
    id.src[..4].copy_from_slice(&l.ip().octets());
    id.dst[..4].copy_from_slice(&p.ip().octets());
    let req = Req {
        len: size_of::<Req>() as u32,
        kind: SOCK_DIAG_BY_FAMILY,
        flags: libc::NLM_F_REQUEST as u16,
        seq: 1,
        pid: 0,
        family: libc::AF_INET as u8,
        protocol: libc::IPPROTO_TCP as u8,
        ext: 0,
        pad: 0,
        states: u32::MAX,
        id,
    };
    let mut buf = [0u8; 4096];
    // SAFETY: a netlink socket of our own; `req` and `buf` outlive the calls that use
    // them, with their true sizes.
    let n = unsafe {
        let fd = libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        );
        if fd < 0 {
            return None;
        }
        let sent = libc::send(fd, (&req as *const Req).cast(), size_of::<Req>(), 0);
        let n = if sent < 0 {
            -1
        } else {
            libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0)
        };
        libc::close(fd);
        n
    };
    // nlmsghdr (16 bytes), then inet_diag_msg: its inode at offset 68.
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    (n >= 16 + 72 && kind == SOCK_DIAG_BY_FAMILY)
        .then(|| u32::from_ne_bytes(buf[84..88].try_into().unwrap()))
}

impl Drop for Workers {
    fn drop(&mut self) {
        if self.parent.try_wait().ok().flatten().is_none() {
            // SAFETY: kill(2) on the child we started.
            unsafe { libc::kill(self.parent.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + WAIT;
            while self.parent.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            let _ = self.parent.kill();
            let _ = self.parent.wait();
        }
        let _ = std::fs::remove_file(&self.log_path);
    }
}
