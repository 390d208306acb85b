//! What the simulation reads of itself: resident memory and its peak from
//! `/proc/self/status` (the peak reset through `/proc/self/clear_refs`), this thread's
//! CPU time (user + system, so page faults count) and its minor page faults, and the
//! median of a few timed runs.

use std::time::Instant;

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}
/// Resident memory now.
pub fn rss_kib() -> u64 {
    status_kib("VmRSS:")
}
/// The peak RSS since the last `reset_peak`.
pub fn peak_kib() -> u64 {
    status_kib("VmHWM:")
}
/// Starts the peak over from the current RSS.
pub fn reset_peak() {
    // "5" resets VmHWM to the current RSS (Linux >= 4.0); best effort.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// This thread's CPU time (user + system, so page faults count), ns.
fn cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// This thread's minor page faults so far.
fn minflt() -> u64 {
    // SAFETY: an all-zero rusage is valid; getrusage only writes into it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `ru` is a valid, writable rusage for the duration of the call.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut ru) };
    ru.ru_minflt as u64
}

/// CPU ns, wall ns and minor faults of one timed stage.
#[derive(Clone, Copy, Default)]
pub struct Cost {
    pub cpu: u64,
    pub wall: u64,
    pub faults: u64,
}

impl Cost {
    pub fn add(&mut self, c: Cost) {
        self.cpu += c.cpu;
        self.wall += c.wall;
        self.faults += c.faults;
    }
}

/// Runs `f`, and what it cost.
pub fn timed<R>(f: impl FnOnce() -> R) -> (R, Cost) {
    let (c0, f0, w0) = (cpu_ns(), minflt(), Instant::now());
    let r = f();
    let wall = w0.elapsed().as_nanos() as u64;
    let cost = Cost {
        cpu: cpu_ns() - c0,
        wall,
        faults: minflt() - f0,
    };
    (r, cost)
}

/// The median (the upper one of an even count).
fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// Nanoseconds as milliseconds, one decimal.
pub fn ms(ns: u64) -> String {
    format!("{:.1}", ns as f64 / 1e6)
}

/// Prints the median CPU and wall time of `costs` (`per` deliveries each), every run's
/// CPU time and minor faults.
pub fn report(label: &str, costs: &[Cost], per: usize) {
    let cpu = median(costs.iter().map(|c| c.cpu).collect());
    let wall = median(costs.iter().map(|c| c.wall).collect());
    let reps: Vec<String> = costs.iter().map(|c| ms(c.cpu)).collect();
    let faults: Vec<String> = costs.iter().map(|c| c.faults.to_string()).collect();
    println!(
        "  {label}: median {} ms CPU ({:.1} ns/delivery), wall {} ms; CPU ms per run [{}]; minor faults [{}]",
        ms(cpu),
        cpu as f64 / per as f64,
        ms(wall),
        reps.join(", "),
        faults.join(", ")
    );
}
