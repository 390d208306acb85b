//! The lines a coordinator and its worker processes exchange over the workers' stdin and
//! stdout (`--processes`), one message a line: [`ToWorker`] (the channels, `GO`, `END` with
//! what was published) and [`FromWorker`] (`READY`, `TICK`, then the closing report: the
//! worker's summary as the very JSON a run writes, its latency histogram bucket by bucket,
//! its first error, `DONE`). It owns their text, the histogram's encoding and reading a
//! summary's JSON back; it spawns nothing, reads no pipe and opens no socket.

use std::collections::HashMap;
use std::io;

use hdrhistogram::Histogram;

use crate::report::{latency_histogram, Summary};

/// What the coordinator tells a worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ToWorker {
    /// The run's channels, `TAG-0` … `TAG-(n-1)`, with each one's first seq (first line).
    Channels { tag: String, first: Vec<u64> },
    /// Publishing starts.
    Go,
    /// Publishing has ended: per channel, the last seq published (None: nothing).
    End(Vec<Option<u64>>),
}

/// A worker's counts, once a second, for the coordinator's progress line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tick {
    pub(crate) open: usize,
    pub(crate) ready: usize,
    pub(crate) delivered: u64,
    pub(crate) errors: u64,
}

/// What a worker tells the coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum FromWorker {
    /// The ramp is over: `ready` of its `of` subscribers are ready (all, unless the ramp
    /// took too long); it waits for `GO`.
    Ready { ready: usize, of: usize },
    /// Its progress.
    Tick(Tick),
    /// Its summary, as [`Summary::json`] writes it.
    Summary(String),
    /// Its latency histogram, as [`encode_latency`] writes it.
    Latency(String),
    /// Its first error, in words.
    First(String),
    /// The report is complete.
    Done,
}

fn numbers<T: std::str::FromStr>(text: &str) -> Result<Vec<T>, String> {
    text.split(',')
        .filter(|t| !t.is_empty())
        .map(|t| t.parse().map_err(|_| format!("bad number `{t}`")))
        .collect()
}

impl ToWorker {
    /// The line, without its newline.
    pub(crate) fn line(&self) -> String {
        let list = |v: Vec<String>| v.join(",");
        match self {
            ToWorker::Channels { tag, first } => format!(
                "CHANNELS {tag} {}",
                list(first.iter().map(u64::to_string).collect())
            ),
            ToWorker::Go => "GO".into(),
            ToWorker::End(last) => format!(
                "END {}",
                list(
                    last.iter()
                        .map(|l| l.map_or("-".into(), |l| l.to_string()))
                        .collect()
                )
            ),
        }
    }

    /// Reads a line back.
    pub(crate) fn parse(line: &str) -> Result<ToWorker, String> {
        let (word, rest) = line
            .trim_end()
            .split_once(' ')
            .unwrap_or((line.trim_end(), ""));
        match word {
            "CHANNELS" => {
                let (tag, first) = rest.split_once(' ').ok_or("CHANNELS without seqs")?;
                Ok(ToWorker::Channels {
                    tag: tag.to_string(),
                    first: numbers(first)?,
                })
            }
            "GO" => Ok(ToWorker::Go),
            "END" => rest
                .split(',')
                .filter(|t| !t.is_empty())
                .map(|t| match t {
                    "-" => Ok(None),
                    n => n.parse().map(Some).map_err(|_| format!("bad seq `{n}`")),
                })
                .collect::<Result<_, _>>()
                .map(ToWorker::End),
            _ => Err(format!("unknown line `{line}`")),
        }
    }
}

impl FromWorker {
    /// The line, without its newline (a first error loses its line breaks).
    pub(crate) fn line(&self) -> String {
        match self {
            FromWorker::Ready { ready, of } => format!("READY {ready} {of}"),
            FromWorker::Tick(t) => {
                format!("TICK {} {} {} {}", t.open, t.ready, t.delivered, t.errors)
            }
            FromWorker::Summary(json) => format!("SUMMARY {json}"),
            FromWorker::Latency(h) => format!("LATENCY {h}"),
            FromWorker::First(f) => format!("FIRST {}", f.replace(['\n', '\r'], " ")),
            FromWorker::Done => "DONE".into(),
        }
    }

    /// Reads a line back.
    pub(crate) fn parse(line: &str) -> Result<FromWorker, String> {
        let line = line.trim_end_matches(['\n', '\r']);
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let n = |t: &str| {
            t.parse::<u64>()
                .map_err(|_| format!("bad number in `{line}`"))
        };
        let fields: Vec<&str> = rest.split(' ').collect();
        match (word, fields.as_slice()) {
            ("READY", [r, o]) => Ok(FromWorker::Ready {
                ready: n(r)? as usize,
                of: n(o)? as usize,
            }),
            ("TICK", [o, r, d, e]) => Ok(FromWorker::Tick(Tick {
                open: n(o)? as usize,
                ready: n(r)? as usize,
                delivered: n(d)?,
                errors: n(e)?,
            })),
            ("SUMMARY", _) => Ok(FromWorker::Summary(rest.to_string())),
            ("LATENCY", _) => Ok(FromWorker::Latency(rest.to_string())),
            ("FIRST", _) => Ok(FromWorker::First(rest.to_string())),
            ("DONE", _) => Ok(FromWorker::Done),
            _ => Err(format!("unknown line `{line}`")),
        }
    }
}

/// A latency histogram as `value:count` pairs, one per bucket with counts, comma separated.
/// Each value is the lowest of its bucket, so recording it back into a histogram of the
/// same bounds ([`latency_histogram`]) fills exactly the same bucket: [`decode_latency`]
/// gives back an equal histogram (same counts, so the same percentiles, min and max).
pub(crate) fn encode_latency(h: &Histogram<u64>) -> String {
    h.iter_recorded()
        .map(|v| {
            let lowest = h.lowest_equivalent(v.value_iterated_to());
            format!("{lowest}:{}", v.count_at_value())
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads back what [`encode_latency`] wrote.
pub(crate) fn decode_latency(text: &str) -> io::Result<Histogram<u64>> {
    let mut h = latency_histogram()?;
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let bad = || io::Error::other(format!("bad latency bucket `{pair}`"));
        let (v, c) = pair.split_once(':').ok_or_else(bad)?;
        let (v, c): (u64, u64) = (v.parse().map_err(|_| bad())?, c.parse().map_err(|_| bad())?);
        h.record_n(v, c).map_err(|_| bad())?;
    }
    Ok(h)
}

/// A JSON object of numbers, booleans, `null`, strings without escapes and nested objects
/// (what [`Summary::json`] writes), flattened: `errors.connect` → `0`, strings unquoted.
fn flatten(json: &str) -> Result<HashMap<String, String>, String> {
    struct Reader<'a>(&'a str);
    impl Reader<'_> {
        fn skip(&mut self) {
            self.0 = self.0.trim_start();
        }
        fn eat(&mut self, c: char) -> Result<(), String> {
            self.skip();
            self.0 = self.0.strip_prefix(c).ok_or(format!("`{c}` expected"))?;
            Ok(())
        }
        fn string(&mut self) -> Result<String, String> {
            self.eat('"')?;
            let end = self.0.find('"').ok_or("unterminated string")?;
            let s = self.0[..end].to_string();
            self.0 = &self.0[end + 1..];
            Ok(s)
        }
        fn object(
            &mut self,
            prefix: &str,
            out: &mut HashMap<String, String>,
        ) -> Result<(), String> {
            self.eat('{')?;
            self.skip();
            if let Some(rest) = self.0.strip_prefix('}') {
                self.0 = rest;
                return Ok(());
            }
            loop {
                let key = format!("{prefix}{}", self.string()?);
                self.eat(':')?;
                self.skip();
                if self.0.starts_with('{') {
                    self.object(&format!("{key}."), out)?;
                } else if self.0.starts_with('"') {
                    let s = self.string()?;
                    out.insert(key, s);
                } else {
                    let end = self.0.find([',', '}']).ok_or("unterminated object")?;
                    out.insert(key, self.0[..end].trim().to_string());
                    self.0 = &self.0[end..];
                }
                self.skip();
                match self.0.chars().next() {
                    Some(',') => self.0 = &self.0[1..],
                    Some('}') => {
                        self.0 = &self.0[1..];
                        return Ok(());
                    }
                    _ => return Err("`,` or `}` expected".into()),
                }
            }
        }
    }
    let mut out = HashMap::new();
    Reader(json).object("", &mut out)?;
    Ok(out)
}

/// Reads back the JSON [`Summary::json`] writes (a worker's report): everything but the
/// first error, which that JSON does not carry, and the processes, which a worker has not.
pub(crate) fn summary_from_json(json: &str) -> Result<Summary, String> {
    let f = flatten(json)?;
    let raw = |k: &str| f.get(k).map(String::as_str).ok_or(format!("no `{k}`"));
    let u = |k: &str| raw(k)?.parse::<u64>().map_err(|_| format!("bad `{k}`"));
    let x = |k: &str| raw(k)?.parse::<f64>().map_err(|_| format!("bad `{k}`"));
    let mut s = Summary {
        transport: raw("transport")?.to_string(),
        subscribers: u("subscribers")? as usize,
        channels: u("channels")? as usize,
        channels_per_subscriber: u("channels_per_subscriber")? as usize,
        ramp_secs: x("ramp_secs")?,
        connects: u("connects")?,
        answers: u("answers")?,
        published: u("published")?,
        publish_errors: u("publish_errors")?,
        publish_requests: u("publish_requests")?,
        publish_secs: x("publish_secs")?,
        delivery_secs: x("delivery_secs")?,
        expected: u("expected")?,
        received: u("received")?,
        duplicates: u("duplicates")?,
        out_of_order: u("out_of_order")?,
        skipped: u("skipped")?,
        lost: u("lost")?,
        resets: u("resets")?,
        missing: u("missing")?,
        server_rss_kib: raw("server_rss_kib")?.parse().ok(),
        generator_cpu_secs: x("generator_cpu_secs")?,
        ..Summary::default()
    };
    for (i, p) in ["p50", "p90", "p99", "p999", "max"].iter().enumerate() {
        s.latency_us[i] = u(&format!("latency_us.{p}"))?;
    }
    let e = &mut s.errors;
    for (slot, k) in [
        (&mut e.connect, "connect"),
        (&mut e.write, "write"),
        (&mut e.read, "read"),
        (&mut e.closed_by_server, "closed_by_server"),
        (&mut e.http, "http"),
        (&mut e.protocol, "protocol"),
        (&mut e.server_error_events, "server_error_events"),
        (&mut e.churned, "churned"),
    ] {
        *slot = u(&format!("errors.{k}"))?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_line_reads_back_as_written() {
        for m in [
            ToWorker::Channels {
                tag: "lt1x2".into(),
                first: vec![2, 7, 2],
            },
            ToWorker::Go,
            ToWorker::End(vec![Some(9), None, Some(2)]),
        ] {
            assert_eq!(ToWorker::parse(&m.line()).unwrap(), m);
        }
        let tick = Tick {
            open: 1,
            ready: 2,
            delivered: 3,
            errors: 4,
        };
        for m in [
            FromWorker::Ready { ready: 5, of: 6 },
            FromWorker::Tick(tick),
            FromWorker::Summary("{\"a\":1}".into()),
            FromWorker::Latency("1:2,3:4".into()),
            FromWorker::First("connect: refused".into()),
            FromWorker::Done,
        ] {
            assert_eq!(FromWorker::parse(&(m.line() + "\n")).unwrap(), m);
        }
        assert!(ToWorker::parse("END 1,x").is_err());
        assert!(FromWorker::parse("READY 1").is_err());
        assert!(FromWorker::parse("hello").is_err());
    }

    #[test]
    fn a_histogram_comes_back_equal_bucket_by_bucket() {
        let mut h = latency_histogram().unwrap();
        let mut v = 7u64;
        for _ in 0..10_000 {
            v = v
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            h.record(1 + (v >> 40) % 5_000_000).unwrap();
        }
        h.record_n(599_999_999, 3).unwrap();
        h.record(1).unwrap();
        let back = decode_latency(&encode_latency(&h)).unwrap();
        assert!(back == h);
        assert_eq!(
            (back.len(), back.min(), back.max()),
            (h.len(), h.min(), h.max())
        );
        for q in [0.5, 0.9, 0.99, 0.999] {
            assert_eq!(back.value_at_quantile(q), h.value_at_quantile(q));
        }
        let empty = latency_histogram().unwrap();
        assert_eq!(decode_latency(&encode_latency(&empty)).unwrap().len(), 0);
        assert!(decode_latency("12").is_err());
    }

    #[test]
    fn a_summary_reads_back_from_its_json() {
        let mut s = Summary {
            transport: "events".into(),
            subscribers: 1,
            channels: 2,
            channels_per_subscriber: 3,
            ramp_secs: 4.125,
            connects: 5,
            answers: 6,
            published: 7,
            publish_errors: 8,
            publish_requests: 4,
            publish_secs: 9.5,
            delivery_secs: 10.25,
            expected: 11,
            received: 12,
            duplicates: 13,
            out_of_order: 14,
            skipped: 15,
            lost: 16,
            resets: 17,
            missing: 18,
            latency_us: [19, 20, 21, 22, 23],
            server_rss_kib: Some(24),
            generator_cpu_secs: 2.5,
            ..Summary::default()
        };
        let e = &mut s.errors;
        (e.connect, e.write, e.read, e.closed_by_server) = (25, 26, 27, 28);
        (e.http, e.protocol, e.server_error_events, e.churned) = (29, 30, 31, 32);
        let back = summary_from_json(&s.json()).unwrap();
        assert_eq!(back.json(), s.json());
        s.server_rss_kib = None;
        assert_eq!(summary_from_json(&s.json()).unwrap().json(), s.json());
        assert!(summary_from_json("{\"transport\":\"poll\"}").is_err());
        assert!(summary_from_json("{\"a\":1").is_err());
    }
}
