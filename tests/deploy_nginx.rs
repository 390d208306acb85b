//! `deploy/nginx.conf` run by Debian's nginx in front of the gateway: the test makes a
//! self-signed certificate with `openssl` in a temporary directory, fills in the file's
//! placeholders (loopback ports, that certificate, the gateway's public port) the way a
//! deployer would with sed, and speaks HTTPS to nginx: every transport end to end (curl for
//! the HTTP ones, Python's `websockets` with TLS for /ws), delivery while a stream stays
//! open (nothing buffered), the admin listener unreachable, and a long-poll held for
//! `--poll-timeout` passing through because of the file's `proxy_read_timeout` (with a
//! shorter one put in its place, nginx answers 504 instead).
//! Needs nginx, openssl and curl, and `tests/setup.sh` (tests/ws/.venv) for /ws.

mod util;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use util::{free_port, ChildGateway, WAIT};

const CONF: &str = include_str!("../deploy/nginx.conf");

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "comet-nginx-{tag}-{}-{}",
            std::process::id(),
            free_port()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// nginx running `deploy/nginx.conf` (placeholders filled in, `edit` applied to the text)
/// in the foreground as one process, killed when dropped.
struct Nginx {
    child: Child,
    https: SocketAddr,
    http: SocketAddr,
    cert: PathBuf,
    dir: TempDir,
}

impl Nginx {
    fn start(gateway: SocketAddr, edit: impl FnOnce(String) -> String) -> Nginx {
        let dir = TempDir::new("run");
        let cert = dir.0.join("cert.pem");
        let key = dir.0.join("key.pem");
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("run openssl (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let https: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let http: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let text = CONF
            .replace("@PREFIX@", dir.0.to_str().unwrap())
            .replace("@LISTEN@", &https.to_string())
            .replace("@LISTEN_HTTP@", &http.to_string())
            .replace("@SERVER_NAME@", "localhost")
            .replace("@CERT@", cert.to_str().unwrap())
            .replace("@KEY@", key.to_str().unwrap())
            .replace("@GATEWAY@", &gateway.to_string());
        assert!(!text.contains('@'), "a placeholder left unfilled:\n{text}");
        let text = edit(text);
        let conf = dir.0.join("nginx.conf");
        std::fs::write(&conf, text).unwrap();
        // The file as it is, with only these on top: stay in the foreground, and one
        // process, so that killing the child stops all of nginx.
        let child = Command::new("nginx")
            .arg("-p")
            .arg(&dir.0)
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off; master_process off;"])
            .stdin(Stdio::null())
            .spawn()
            .expect("run nginx (apt-get install nginx)");
        let mut nginx = Nginx {
            child,
            https,
            http,
            cert,
            dir,
        };
        let deadline = Instant::now() + WAIT;
        while TcpStream::connect(https).is_err() || TcpStream::connect(http).is_err() {
            if let Some(status) = nginx.child.try_wait().unwrap() {
                panic!("nginx exited ({status}): {}", nginx.error_log());
            }
            assert!(Instant::now() < deadline, "nginx did not start listening");
            std::thread::sleep(Duration::from_millis(10));
        }
        nginx
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("error.log")).unwrap_or_default()
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https.port())
    }

    /// curl, trusting only the test's certificate, for `localhost` resolved to loopback.
    fn curl(&self) -> Command {
        let mut c = Command::new("curl");
        c.args(["-sS", "--cacert"])
            .arg(&self.cert)
            .arg("--resolve")
            .arg(format!("localhost:{}:127.0.0.1", self.https.port()));
        c
    }

    /// One request: (status, body).
    fn get(&self, path: &str, extra: &[&str]) -> (u16, String) {
        let out = self
            .curl()
            .args(extra)
            .args(["-w", "\n%{http_code}"])
            .arg(self.url(path))
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (code.trim().parse().unwrap(), body.to_string())
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn gateway() -> ChildGateway {
    ChildGateway::spawn(None, &["--poll-timeout", "3s"])
}

fn publish(gw: &ChildGateway, channel: &str, body: &str) -> u64 {
    let r = util::request(
        gw.admin,
        &format!(
            "POST /pub?channel={channel} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ),
    );
    assert_eq!(r.status, 200, "publish: {}", r.text());
    r.json()["seq"].as_u64().unwrap()
}

#[test]
fn long_poll_and_jsonp_over_https() {
    let gw = gateway();
    let nginx = Nginx::start(gw.public, |t| t);
    let seq = publish(&gw, "deploy-poll", "hello");
    let (status, body) = nginx.get("/poll?channel=deploy-poll&seq=0", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        format!(r#"[{{"type":"data","channel":"deploy-poll","seq":{seq},"data":"hello"}}]"#)
    );
    let (status, body) = nginx.get("/poll?channel=deploy-poll&seq=0&cb=got", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        format!(
            r#"/**/got([{{"type":"data","channel":"deploy-poll","seq":{seq},"data":"hello"}}]);"#
        )
    );
    // A parked poll (no seq) answered by a publish while it waits, over HTTP/1.1 this time.
    let poll = {
        let mut c = nginx.curl();
        c.args(["--http1.1", "-w", "\n%{http_code}"])
            .arg(nginx.url("/poll?channel=deploy-poll"))
            .stdout(Stdio::piped());
        c.spawn().unwrap()
    };
    util::wait_until("the poll is parked", || {
        util::get(gw.admin, "/channels/deploy-poll").json()["subscribers"].as_u64() == Some(1)
    });
    let seq = publish(&gw, "deploy-poll", "live");
    let out = poll.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        format!(r#"[{{"type":"data","channel":"deploy-poll","seq":{seq},"data":"live"}}]"#)
            + "\n200"
    );
}

/// Opens `path` with `curl -N`; every line it prints goes to the returned receiver.
fn open_stream(nginx: &Nginx, path: &str) -> (Child, mpsc::Receiver<String>) {
    let mut child = nginx
        .curl()
        .arg("-N")
        .arg(nginx.url(path))
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_line(rx: &mpsc::Receiver<String>, what: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(what) => return line,
            Ok(_) => {}
            Err(_) => panic!("no line with {what:?} within {within:?}"),
        }
    }
}

#[test]
fn streams_deliver_at_once_through_nginx() {
    let gw = gateway();
    let nginx = Nginx::start(gw.public, |t| t);
    for (i, path) in ["/stream", "/events", "/iframe"].iter().enumerate() {
        let channel = format!("deploy-stream-{i}");
        let query = if *path == "/iframe" { "&cb=f" } else { "" };
        let (mut curl, rx) = open_stream(&nginx, &format!("{path}?channel={channel}{query}"));
        wait_line(&rx, r#""type":"hello""#, WAIT);
        // Published after the stream is open: it must come through while the stream stays
        // open (no proxy buffer holding it until the response ends).
        let sent = Instant::now();
        let seq = publish(&gw, &channel, &format!("m{i}"));
        let line = wait_line(&rx, &format!(r#""seq":{seq}"#), Duration::from_secs(2));
        assert!(
            line.contains(&format!(r#""data":"m{i}""#)),
            "{path}: {line}"
        );
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "{path}: took {:?}",
            sent.elapsed()
        );
        assert!(
            curl.try_wait().unwrap().is_none(),
            "{path}: the stream ended"
        );
        let _ = curl.kill();
        let _ = curl.wait();
    }
}

#[test]
fn admin_listener_is_not_proxied() {
    let gw = gateway();
    let nginx = Nginx::start(gw.public, |t| t);
    for path in ["/stats", "/metrics", "/channels", "/healthz"] {
        assert_eq!(nginx.get(path, &[]).0, 404, "{path} reached through nginx");
    }
    let (status, _) = nginx.get("/pub?channel=deploy-admin", &["-d", "x"]);
    assert_eq!(status, 404);
    assert_eq!(
        util::get(gw.admin, "/channels/deploy-admin").status,
        404,
        "a publish went through nginx"
    );
    // Plain HTTP only redirects to HTTPS.
    let out = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{redirect_url}",
        ])
        .arg(format!(
            "http://127.0.0.1:{}/poll?channel=x",
            nginx.http.port()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("301 https://"), "{text}");
}

/// The shipped `proxy_read_timeout`, in seconds (every occurrence must agree).
fn shipped_read_timeout() -> u64 {
    let values: Vec<u64> = CONF
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("proxy_read_timeout "))
        .map(|l| {
            let v = l["proxy_read_timeout ".len()..].trim_end_matches(';');
            v.strip_suffix('s').unwrap().parse().unwrap()
        })
        .collect();
    assert_eq!(
        values.len(),
        1,
        "one proxy_read_timeout expected: {values:?}"
    );
    values[0]
}

#[test]
fn long_poll_outlives_the_proxy_timeout_it_is_given() {
    // The file's proxy_read_timeout covers the gateway's defaults, --poll-timeout 30s and
    // --heartbeat 25s, with room to spare: more than nginx's own default (60 s).
    let shipped = shipped_read_timeout();
    assert!(shipped > 60, "proxy_read_timeout {shipped}s");
    // The same ratio, scaled down so the test takes seconds: the gateway holds polls 3 s.
    // Through the shipped file the poll ends as the gateway ends it (a noop, 200)...
    let gw = gateway();
    let nginx = Nginx::start(gw.public, |t| t);
    let started = Instant::now();
    let (status, body) = nginx.get("/poll?channel=deploy-held", &[]);
    let held = started.elapsed();
    assert_eq!((status, body.as_str()), (200, r#"[{"type":"noop"}]"#));
    assert!(held >= Duration::from_millis(2900), "held {held:?}");
    // ...while the very same file with a proxy_read_timeout shorter than --poll-timeout
    // cuts it: nginx gives up first and answers 504. That setting is what lets it through.
    let short = Nginx::start(gw.public, |t| {
        t.replace(
            &format!("proxy_read_timeout {shipped}s;"),
            "proxy_read_timeout 1s;",
        )
    });
    let started = Instant::now();
    let (status, _) = short.get("/poll?channel=deploy-held", &[]);
    assert_eq!(status, 504, "{}", short.error_log());
    assert!(started.elapsed() < Duration::from_millis(2900));
    assert!(short.error_log().contains("upstream timed out"));
}

/// Python's `websockets` over TLS: `wss://localhost:PORT/ws`, trusting the test's
/// certificate; prints every message as a line and stops after `count` of them.
const WSS_CLIENT: &str = r#"
import asyncio, ssl, sys
from websockets.asyncio.client import connect

async def main(url, cafile, count):
    ctx = ssl.create_default_context(cafile=cafile)
    async with connect(url, ssl=ctx, ping_interval=None) as ws:
        for _ in range(count):
            print(await ws.recv(), flush=True)

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"#;

#[test]
fn websocket_over_tls_through_nginx() {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ws/.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `bash tests/setup.sh` first",
        python.display()
    );
    let gw = gateway();
    let nginx = Nginx::start(gw.public, |t| t);
    let script = nginx.dir.0.join("wss.py");
    std::fs::File::create(&script)
        .unwrap()
        .write_all(WSS_CLIENT.as_bytes())
        .unwrap();
    let url = format!(
        "wss://localhost:{}/ws?channel=deploy-ws",
        nginx.https.port()
    );
    // `localhost` is what the certificate names; it resolves to loopback.
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(&url)
        .arg(&nginx.cert)
        .arg("2")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let hello = match rx.recv_timeout(WAIT) {
        Ok(line) => line,
        Err(_) => {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "no hello over wss: {}\n{}",
                String::from_utf8_lossy(&out.stderr),
                nginx.error_log()
            )
        }
    };
    assert!(hello.contains(r#""type":"hello""#), "{hello}");
    let seq = publish(&gw, "deploy-ws", "over tls");
    let line = rx.recv_timeout(Duration::from_secs(2)).expect("data event");
    assert_eq!(
        line,
        format!(r#"{{"type":"data","channel":"deploy-ws","seq":{seq},"data":"over tls"}}"#)
    );
    let status = child.wait().unwrap();
    assert!(status.success());
}
