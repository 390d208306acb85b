//! Runs the generator in-process against a gateway on loopback and checks its accounting:
//! every transport clean, with and without churn; and a deliberately lossy setup (a tiny
//! buffer and clients that churn) shows up as announced `lost`, never as missing.

use std::time::Duration;

use clap::Parser;
use comet_loadtest::{run, Config, Summary, Transport};

mod common;

use common::Gateway;

/// Runs the generator in-process against the gateway.
trait Load {
    fn load(&self, transport: Transport, extra: &[&str]) -> Summary;
}

impl Load for Gateway {
    fn load(&self, transport: Transport, extra: &[&str]) -> Summary {
        let mut args = vec![
            "comet-loadtest".to_string(),
            "--quiet".into(),
            format!("--target={}", self.public),
            format!("--admin={}", self.admin),
            format!("--transport={}", format!("{transport:?}").to_lowercase()),
            "--subscribers=300".into(),
            "--channels=3".into(),
            "--channels-per-subscriber=2".into(),
            "--rate=40".into(),
            "--duration=2s".into(),
            "--drain=10s".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let cfg = Config::parse_from(args);
        run(&cfg).expect("run")
    }
}

fn assert_clean(s: &Summary, what: &str) {
    assert!(s.published >= 40, "{what}: published only {}", s.published);
    // 300 subscribers × 2 channels × a third of the messages each.
    assert_eq!(s.expected, s.published * 300 * 2 / 3, "{what}: expected");
    assert_eq!(s.received, s.expected, "{what}: {}", s.text());
    assert_eq!(
        (s.duplicates, s.out_of_order, s.missing, s.lost),
        (0, 0, 0, 0),
        "{what}: {}",
        s.text()
    );
    assert_eq!(s.errors.total(), 0, "{what}: {}", s.text());
    assert!(s.clean());
}

#[test]
fn every_transport_is_accounted_exactly() {
    let g = Gateway::start(|_| {});
    for t in [
        Transport::Poll,
        Transport::Stream,
        Transport::Iframe,
        Transport::Events,
        Transport::Ws,
    ] {
        let s = g.load(t, &[]);
        assert_clean(&s, &format!("{t:?}"));
        assert!(s.latency_us[4] > 0, "latency was measured");
    }
}

#[test]
fn churned_clients_resume_without_loss() {
    let g = Gateway::start(|_| {});
    for t in [
        Transport::Poll,
        Transport::Stream,
        Transport::Events,
        Transport::Ws,
    ] {
        let s = g.load(t, &["--churn=20"]);
        assert_clean(&s, &format!("{t:?} with churn"));
        assert!(
            s.errors.churned >= 60,
            "{t:?}: churned {}",
            s.errors.churned
        );
        assert!(s.connects > 300);
    }
}

#[test]
fn overflowing_the_buffer_is_reported_as_lost_not_missing() {
    // A buffer of 2 and a burst of 50 before the steady rate: subscribers that churn
    // come back behind the buffer and must be told what they lost.
    let g = Gateway::start(|c| {
        c.buffer = 2;
        c.poll_timeout = Duration::from_secs(5);
    });
    let s = g.load(Transport::Poll, &["--burst=200", "--rate=0"]);
    assert_eq!(s.missing, 0, "{}", s.text());
    assert_eq!(s.duplicates + s.out_of_order, 0, "{}", s.text());
    assert!(
        s.lost > 0,
        "a 2-message buffer under a 200-message burst must lose some: {}",
        s.text()
    );
    assert_eq!(s.received + s.lost, s.expected, "{}", s.text());
}

#[test]
fn batched_publishes_are_accounted_like_single_ones() {
    // A burst in batches of 7 (the last one short) and a steady rate fast enough that
    // several messages are sometimes due at once: each message still has its own seq.
    let g = Gateway::start(|_| {});
    for t in [Transport::Events, Transport::Poll] {
        let s = g.load(
            t,
            &["--burst=50", "--batch=7", "--rate=400", "--duration=1s"],
        );
        assert_clean(&s, &format!("{t:?} with --batch 7"));
        assert!(s.published >= 50 + 40, "{t:?}: {}", s.text());
        assert!(
            s.publish_requests <= s.published - 50 + 8,
            "{t:?}: the burst took 8 requests at most: {}",
            s.text()
        );
    }
}

#[test]
fn pipelined_publishes_are_accounted_like_waited_ones() {
    // Up to 8 requests in flight, single and batched: every answer is read in order and
    // each message keeps its own seq.
    let g = Gateway::start(|_| {});
    for extra in [&["--in-flight=8"][..], &["--in-flight=8", "--batch=5"][..]] {
        let mut args = vec!["--burst=60", "--rate=300", "--duration=1s"];
        args.extend_from_slice(extra);
        let s = g.load(Transport::Events, &args);
        assert_clean(&s, &format!("{extra:?}"));
        assert!(s.published >= 60 + 30, "{extra:?}: {}", s.text());
    }
}
