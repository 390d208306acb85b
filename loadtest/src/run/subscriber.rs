//! The subscriber table: [`Subscribers`] owns every subscriber's socket and its mio
//! registration (the [`Poll`]), its framer, the bytes not yet written (requests, and a
//! WebSocket's pongs) and its Nchan cursor, and the counts of open and ready subscribers,
//! kept up to date as each one changes state so that no turn of the loop walks the table. It builds subscribe requests
//! from the accounts' cursors but never changes an account, never counts an error (a
//! failure goes back to the caller) and knows nothing of the publisher.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::account::Account;
use crate::config::{Config, Kind};
use crate::framer::{Framer, Status, Transport};
use crate::websocket;

/// One subscriber; its index in the table is its mio token.
struct Sub {
    /// Indices of its channels.
    channels: Vec<usize>,
    /// Its account on each of `channels`, in the same order.
    acc: Vec<Account>,
    sock: Option<TcpStream>,
    framer: Framer,
    /// Request bytes not yet written.
    out: Vec<u8>,
    connected: bool,
    /// Saw its hello (streams), sent its first poll, or got a payload (Nchan). Never
    /// cleared: it counts for the ramp.
    ready: bool,
    /// Nchan long-poll: `Last-Modified` and `Etag` of the last answer.
    nchan_cursor: Option<(String, String)>,
}

/// A framer for a new connection; a WebSocket's is made with the connection's key.
fn new_framer(cfg: &Config, ws_key: Option<(&str, u64)>) -> Framer {
    match (cfg.target_kind, ws_key) {
        (kind, Some((key, seed))) => Framer::websocket(key, seed, kind == Kind::Nchan),
        (Kind::Gateway, None) => Framer::new(cfg.transport),
        (Kind::Nchan, None) => Framer::raw(cfg.transport),
    }
}

/// The flat, preallocated table of subscribers and their sockets' poll.
pub(super) struct Subscribers {
    poll: Poll,
    subs: Vec<Sub>,
    /// Source addresses to bind, round robin by index in the whole run (empty: the OS
    /// picks).
    sources: Vec<IpAddr>,
    /// The index in the whole run of the table's first subscriber (`--first-subscriber`:
    /// not 0 only in a worker).
    offset: usize,
    /// Subscribers with a socket.
    open: usize,
    /// Subscribers whose `ready` is set.
    ready: usize,
}

impl Subscribers {
    /// `cfg.subscribers` subscribers, none open; subscriber `i` (`i` counted in the whole
    /// run) takes the `--channels-per-subscriber` channels from `i` on, each account
    /// starting at the channel's `first` seq.
    pub(super) fn new(cfg: &Config, first: &[u64]) -> io::Result<Subscribers> {
        let offset = cfg.first_subscriber;
        let subs = (offset..offset + cfg.subscribers)
            .map(|i| {
                let channels: Vec<usize> = (0..cfg.channels_per_subscriber)
                    .map(|k| (i + k) % cfg.channels)
                    .collect();
                let acc = channels
                    .iter()
                    .map(|&c| Account::starting_at(first[c]))
                    .collect();
                Sub {
                    channels,
                    acc,
                    sock: None,
                    framer: new_framer(cfg, None),
                    out: Vec::new(),
                    nchan_cursor: None,
                    connected: false,
                    ready: false,
                }
            })
            .collect();
        Ok(Subscribers {
            poll: Poll::new()?,
            subs,
            sources: cfg.source.clone().map(|s| s.0).unwrap_or_default(),
            offset,
            open: 0,
            ready: 0,
        })
    }

    /// Number of subscribers.
    pub(super) fn len(&self) -> usize {
        self.subs.len()
    }

    /// Subscribers with an open socket.
    pub(super) fn open_count(&self) -> usize {
        self.open
    }

    /// Subscribers that were ready at least once.
    pub(super) fn ready_count(&self) -> usize {
        self.ready
    }

    /// Subscriber `i` has a socket.
    pub(super) fn is_open(&self, i: usize) -> bool {
        self.subs[i].sock.is_some()
    }

    /// Subscriber `i`'s connect has completed.
    pub(super) fn is_connected(&self, i: usize) -> bool {
        self.subs[i].connected
    }

    /// Subscriber `i`'s channels.
    pub(super) fn channels(&self, i: usize) -> &[usize] {
        &self.subs[i].channels
    }

    /// Subscriber `i`'s channels and its accounts on them, to change.
    pub(super) fn accounts_mut(&mut self, i: usize) -> (&[usize], &mut [Account]) {
        let s = &mut self.subs[i];
        (&s.channels, &mut s.acc)
    }

    /// Every (channel, account) pair of every subscriber.
    pub(super) fn accounts(&self) -> impl Iterator<Item = (usize, &Account)> + '_ {
        self.subs
            .iter()
            .flat_map(|s| s.channels.iter().copied().zip(&s.acc))
    }

    /// Marks subscriber `i` ready (once).
    pub(super) fn mark_ready(&mut self, i: usize) {
        if !self.subs[i].ready {
            self.subs[i].ready = true;
            self.ready += 1;
        }
    }

    /// Waits at most `timeout` for socket events.
    pub(super) fn poll(&mut self, events: &mut Events, timeout: Duration) -> io::Result<()> {
        self.poll.poll(events, Some(timeout))
    }

    /// Opens subscriber `i`: a non-blocking connect (from its source address, if any),
    /// registered under token `i`, with its subscribe request queued for its cursor.
    pub(super) fn open(&mut self, i: usize, cfg: &Config, names: &[String]) -> io::Result<()> {
        use socket2::{Domain, Socket, Type};
        let s = Socket::new(Domain::for_address(cfg.target), Type::STREAM, None)?;
        if !self.sources.is_empty() {
            let src = SocketAddr::new(self.sources[(self.offset + i) % self.sources.len()], 0);
            s.bind(&src.into())?;
        }
        s.set_nonblocking(true)?;
        s.set_tcp_nodelay(true)?;
        match s.connect(&cfg.target.into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(115) || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let mut sock = TcpStream::from_std(s.into());
        self.poll.registry().register(
            &mut sock,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let sub = &mut self.subs[i];
        if sub.sock.replace(sock).is_none() {
            self.open += 1;
        }
        sub.connected = false;
        // A WebSocket gets a fresh random key (and a seed for its masks) per connection.
        let ws = (cfg.transport == Transport::Ws).then(|| {
            let (nonce, seed) = websocket::nonce();
            (websocket::key(nonce), seed)
        });
        let ws_key = ws.as_ref().map(|(k, seed)| (k.as_str(), *seed));
        sub.framer = new_framer(cfg, ws_key);
        sub.out = request(cfg, sub, names, ws_key.map(|(k, _)| k)).into_bytes();
        Ok(())
    }

    /// Closes subscriber `i`'s socket, if it has one.
    pub(super) fn close(&mut self, i: usize) {
        let sub = &mut self.subs[i];
        if let Some(mut s) = sub.sock.take() {
            let _ = self.poll.registry().deregister(&mut s);
            self.open -= 1;
        }
        sub.connected = false;
    }

    /// Closes every socket.
    pub(super) fn close_all(&mut self) {
        for i in 0..self.subs.len() {
            self.close(i);
        }
    }

    /// Subscriber `i` became writable while connecting: false if the connect failed;
    /// else it is connected (and a poll subscriber is ready: its request goes out now).
    pub(super) fn complete_connect(&mut self, i: usize, transport: Transport) -> bool {
        let sub = &mut self.subs[i];
        let connected = sub.sock.as_ref().is_some_and(|s| s.peer_addr().is_ok());
        if !connected {
            return false;
        }
        sub.connected = true;
        if transport == Transport::Poll {
            self.mark_ready(i);
        }
        true
    }

    /// One write of subscriber `i`'s pending request bytes, once connected; a write that
    /// would block is not an error.
    pub(super) fn flush(&mut self, i: usize) -> io::Result<()> {
        let sub = &mut self.subs[i];
        if !sub.connected || sub.out.is_empty() {
            return Ok(());
        }
        if let Some(s) = sub.sock.as_mut() {
            match s.write(&sub.out) {
                Ok(n) => {
                    sub.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// One read from subscriber `i`'s socket into `buf` (None: it has no socket).
    pub(super) fn read(&mut self, i: usize, buf: &mut [u8]) -> Option<io::Result<usize>> {
        self.subs[i].sock.as_mut().map(|s| s.read(buf))
    }

    /// Feeds bytes read to subscriber `i`'s framer; its texts are appended to `out`. What
    /// the framer owes the server (a WebSocket's pongs) is written at once; what does not
    /// fit waits for `flush`.
    pub(super) fn feed(&mut self, i: usize, data: &[u8], out: &mut Vec<String>) -> Status {
        let sub = &mut self.subs[i];
        let status = sub.framer.feed(data, out);
        if let Some(reply) = sub.framer.take_reply() {
            sub.out.extend_from_slice(&reply);
            if let Some(s) = sub.sock.as_mut() {
                if let Ok(n) = s.write(&sub.out) {
                    sub.out.drain(..n);
                }
            }
        }
        status
    }

    /// Subscriber `i`'s poll was answered: remembers Nchan's cursor and writes the next
    /// request for its (already updated) accounts; what does not fit waits for `flush`.
    pub(super) fn poll_again(&mut self, i: usize, cfg: &Config, names: &[String]) {
        let sub = &mut self.subs[i];
        if let (Some(lm), Some(et)) = (&sub.framer.last_modified, &sub.framer.etag) {
            sub.nchan_cursor = Some((lm.clone(), et.clone()));
        }
        let req = request(cfg, sub, names, None);
        sub.out.extend_from_slice(req.as_bytes());
        if let Some(s) = sub.sock.as_mut() {
            if let Ok(n) = s.write(&sub.out) {
                sub.out.drain(..n);
            }
        }
    }
}

/// The subscribe request for a subscriber's current cursor (`ws_key`: a WebSocket
/// upgrade with this key).
fn request(cfg: &Config, sub: &Sub, names: &[String], ws_key: Option<&str>) -> String {
    let transport = cfg.transport;
    let upgrade = ws_key.map(|k| {
        format!(
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {k}\r\nSec-WebSocket-Version: 13\r\n"
        )
    });
    let upgrade = upgrade.as_deref().unwrap_or("");
    if cfg.target_kind == Kind::Nchan {
        let ch = &names[sub.channels[0]];
        return match (transport, &sub.nchan_cursor) {
            (Transport::Ws, _) => format!("GET /sub/{ch} HTTP/1.1\r\nHost: lt\r\n{upgrade}\r\n"),
            (Transport::Poll, Some((lm, et))) => format!(
                "GET /sub/{ch} HTTP/1.1\r\nHost: lt\r\nIf-Modified-Since: {lm}\r\nIf-None-Match: {et}\r\n\r\n"
            ),
            (Transport::Poll, None) => format!("GET /sub/{ch} HTTP/1.1\r\nHost: lt\r\n\r\n"),
            _ => format!("GET /sub/{ch} HTTP/1.1\r\nHost: lt\r\nAccept: text/event-stream\r\n\r\n"),
        };
    }
    let chans: Vec<&str> = sub.channels.iter().map(|&c| names[c].as_str()).collect();
    let seqs: Vec<String> = sub.acc.iter().map(|a| a.next.to_string()).collect();
    format!(
        "GET {}channel={}&seq={} HTTP/1.1\r\nHost: lt\r\n{upgrade}\r\n",
        transport.path(),
        chans.join(","),
        seqs.join(",")
    )
}
