//! How a run over several processes is shared out: each process's [`Share`] of the
//! subscribers (as even as the count allows, in index order), of the `--source` addresses
//! and of the `--ramp` (a rate for the whole run), and the warnings when a share will not fit (more connections from one
//! address than there are ephemeral ports, more subscribers in one process than it may
//! open descriptors). Arithmetic on the flags, plus reading those two limits from `/proc`;
//! it starts nothing and opens no socket.

use std::net::IpAddr;

/// One process's part of the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Share {
    /// The index in the whole run of its first subscriber.
    pub(crate) first: usize,
    /// Its subscribers.
    pub(crate) subscribers: usize,
    /// The source addresses it connects from, as a `--source` value (None: the OS picks).
    pub(crate) sources: Option<String>,
    /// How many addresses `sources` spans (0: the OS picks).
    pub(crate) source_count: usize,
    /// Its part of `--ramp`, new connections per second (at least 1).
    pub(crate) ramp: u64,
}

/// `n` split into `p` parts as even as can be, the larger first: (start, len) each.
fn even(n: usize, p: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..p).map(move |k| {
        let start = k * (n / p) + k.min(n % p);
        (start, n / p + usize::from(k < n % p))
    })
}

/// A `--source` value for consecutive addresses.
fn range(addrs: &[IpAddr]) -> String {
    match addrs {
        [one] => one.to_string(),
        [a, .., b] => format!("{a}-{b}"),
        [] => String::new(),
    }
}

/// `subscribers` over `processes` processes. With at least as many source addresses as
/// processes, each process takes its own consecutive run of them; with fewer, every
/// process shares them all. Either way a subscriber binds address (its index in the whole
/// run) modulo (the addresses its process has), so each address carries about as many
/// connections as in one process. The `ramp` rate is shared in proportion to the
/// subscribers, so the processes open theirs together at about that rate in all.
pub(crate) fn shares(
    subscribers: usize,
    sources: &[IpAddr],
    processes: usize,
    ramp: u64,
) -> Vec<Share> {
    let mut chunks: Vec<&[IpAddr]> = vec![sources; processes];
    if sources.len() >= processes {
        chunks = even(sources.len(), processes)
            .map(|(start, len)| &sources[start..start + len])
            .collect();
    }
    even(subscribers, processes)
        .zip(chunks)
        .map(|((first, n), addrs)| Share {
            first,
            subscribers: n,
            sources: (!addrs.is_empty()).then(|| range(addrs)),
            source_count: addrs.len(),
            ramp: (ramp as u128 * n as u128)
                .div_ceil(subscribers.max(1) as u128)
                .max(1) as u64,
        })
        .collect()
}

/// What will not fit: a source address (or, with none given, the one target) asked for
/// more connections than `ports` ephemeral ports, or a process for more descriptors than
/// `nofile`.
pub(crate) fn warnings(
    shares: &[Share],
    ports: Option<usize>,
    nofile: Option<usize>,
) -> Vec<String> {
    let mut out = Vec::new();
    let total: usize = shares.iter().map(|s| s.subscribers).sum();
    let per_address = shares
        .iter()
        .map(|s| match s.source_count {
            0 => total,
            // Shared addresses carry the whole run's subscribers between them.
            n if shares.len() > 1 && shares.iter().all(|o| o.sources == s.sources) => {
                total.div_ceil(n)
            }
            n => s.subscribers.div_ceil(n),
        })
        .max()
        .unwrap_or(0);
    if let Some(ports) = ports.filter(|&p| per_address > p) {
        out.push(format!(
            "about {per_address} connections from one source address, past its {ports} ephemeral ports: give --source a wider range"
        ));
    }
    let largest = shares.iter().map(|s| s.subscribers).max().unwrap_or(0);
    // A few descriptors beyond the subscribers: stdio, the poll, the admin connection.
    if let Some(nofile) = nofile.filter(|&n| largest + 16 > n) {
        out.push(format!(
            "{largest} subscribers in one process, past its {nofile} open files: raise --processes"
        ));
    }
    out
}

/// The count of ephemeral ports (`/proc/sys/net/ipv4/ip_local_port_range`).
pub(crate) fn ephemeral_ports() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut it = text.split_whitespace().map(|t| t.parse::<usize>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    Some(hi.saturating_sub(lo) + 1)
}

/// This process's soft limit of open files (children inherit it).
pub(crate) fn open_files() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_sources;

    fn lens(s: &[Share]) -> Vec<(usize, usize)> {
        s.iter().map(|s| (s.first, s.subscribers)).collect()
    }

    #[test]
    fn subscribers_split_evenly_in_index_order() {
        assert_eq!(lens(&shares(10, &[], 3, 5000)), [(0, 4), (4, 3), (7, 3)]);
        assert_eq!(lens(&shares(9, &[], 3, 5000)), [(0, 3), (3, 3), (6, 3)]);
        assert_eq!(lens(&shares(100_000, &[], 1, 5000)), [(0, 100_000)]);
        assert!(shares(10, &[], 3, 5000).iter().all(|s| s.sources.is_none()));
        let ramps: Vec<u64> = shares(10, &[], 3, 5000).iter().map(|s| s.ramp).collect();
        assert_eq!(ramps, [2000, 1500, 1500]);
        assert_eq!(shares(10, &[], 3, 1)[2].ramp, 1);
    }

    #[test]
    fn sources_are_split_when_there_are_enough_else_shared() {
        let src = parse_sources("127.0.0.2-127.0.0.20").unwrap();
        let s = shares(100_000, &src, 4, 5000);
        let got: Vec<_> = s.iter().map(|s| s.sources.clone().unwrap()).collect();
        assert_eq!(
            got,
            [
                "127.0.0.2-127.0.0.6",
                "127.0.0.7-127.0.0.11",
                "127.0.0.12-127.0.0.16",
                "127.0.0.17-127.0.0.20"
            ]
        );
        assert_eq!(s.iter().map(|s| s.source_count).sum::<usize>(), 19);
        let one = shares(10, &src[..1], 1, 5000);
        assert_eq!(one[0].sources.as_deref(), Some("127.0.0.2"));
        let few = shares(10, &src[..2], 3, 5000);
        assert!(few
            .iter()
            .all(|s| s.sources.as_deref() == Some("127.0.0.2-127.0.0.3")));
    }

    #[test]
    fn what_does_not_fit_is_named() {
        let src = parse_sources("127.0.0.2-127.0.0.20").unwrap();
        let ok = shares(100_000, &src, 6, 5000);
        assert!(warnings(&ok, Some(28_232), Some(20_000)).is_empty());
        let w = warnings(&shares(100_000, &src, 4, 5000), Some(28_232), Some(20_000));
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("25000 subscribers in one process"), "{w:?}");
        let w = warnings(&shares(100_000, &[], 6, 5000), Some(28_232), Some(20_000));
        assert!(w[0].contains("100000 connections from one source"), "{w:?}");
        let w = warnings(&shares(60_000, &src[..2], 6, 5000), Some(28_232), None);
        assert!(w[0].contains("30000 connections"), "{w:?}");
        assert!(ephemeral_ports().is_some_and(|p| p > 1000));
        assert!(open_files().is_some_and(|n| n > 0));
    }
}
