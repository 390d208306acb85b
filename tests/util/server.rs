//! `TestServer`: the gateway library running on its own thread on ephemeral loopback
//! ports, with helpers to publish and inspect channels through its admin listener.

use std::net::SocketAddr;
use std::thread::JoinHandle;

use comet_gateway::{Config, Server, ShutdownHandle};

use super::http::{get, request};
use super::wait_until;

/// A server running on its own thread; stopped when dropped.
pub struct TestServer {
    pub public: SocketAddr,
    pub admin: SocketAddr,
    handle: ShutdownHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts a server with the defaults, ephemeral ports, and `tweak` applied.
    pub fn start(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config::ephemeral();
        tweak(&mut config);
        TestServer::run(Server::bind(config).expect("bind"))
    }

    /// Starts a server with `engine` as its channel log.
    pub fn start_with_engine(
        tweak: impl FnOnce(&mut Config),
        engine: Box<dyn comet_gateway::engine::Engine + Send>,
    ) -> TestServer {
        let mut config = Config::ephemeral();
        tweak(&mut config);
        TestServer::run(Server::with_engine(config, engine).expect("bind"))
    }

    fn run(mut server: Server) -> TestServer {
        let public = server.public_addr().unwrap();
        let admin = server.admin_addr().unwrap();
        let handle = server.shutdown_handle();
        let thread = std::thread::spawn(move || server.run().expect("reactor"));
        TestServer {
            public,
            admin,
            handle,
            thread: Some(thread),
        }
    }

    /// Publishes `body` to `channels` (comma list); returns the JSON answer.
    pub fn publish(&self, channels: &str, body: &str) -> serde_json::Value {
        let r = request(
            self.admin,
            &format!(
                "POST /pub?channel={channels} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        );
        assert_eq!(r.status, 200, "publish failed: {}", r.text());
        r.json()
    }

    /// Publishes and returns the seq (single channel).
    pub fn publish_seq(&self, channel: &str, body: &str) -> u64 {
        self.publish(channel, body)["seq"].as_u64().expect("seq")
    }

    /// `GET /channels/NAME`: the info JSON, or `None` on 404.
    pub fn channel(&self, name: &str) -> Option<serde_json::Value> {
        let r = get(self.admin, &format!("/channels/{name}"));
        match r.status {
            200 => Some(r.json()),
            404 => None,
            s => panic!("channel info: status {s}"),
        }
    }

    /// Subscriber count of a channel (0 if it does not exist).
    pub fn subscribers(&self, name: &str) -> u64 {
        self.channel(name)
            .map_or(0, |c| c["subscribers"].as_u64().unwrap())
    }

    /// Waits until the channel has exactly `n` subscribers.
    pub fn wait_subscribers(&self, name: &str, n: u64) {
        wait_until(&format!("{name} has {n} subscribers"), || {
            self.subscribers(name) == n
        });
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.handle.shutdown();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A gateway on the Redis engine at `redis`, with `tweak` applied to its flags (the
/// engine's limits follow them, as in the binary).
pub fn redis_gateway(redis: SocketAddr, tweak: impl Fn(&mut Config)) -> TestServer {
    use comet_gateway::engine::{redis::RedisEngine, Limits};
    let mut config = Config::ephemeral();
    tweak(&mut config);
    let engine = RedisEngine::connect(redis, "comet:", Limits::of(&config)).expect("connects");
    TestServer::start_with_engine(move |c| *c = config, Box::new(engine))
}
