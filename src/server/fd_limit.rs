//! The process's descriptor limit (`RLIMIT_NOFILE`): read it, and raise the soft limit to
//! the hard one at start-up, as the Go runtime does for every program and nginx does with
//! `worker_rlimit_nofile`. Distributions give a process 1,024 descriptors (soft) for the
//! sake of `select`, which this server never calls, and far more as the hard limit; only
//! the hard limit is a decision of the operator's (`LimitNOFILE=`, `limits.conf`).
//!
//! Touches nothing but the limit; `accept` reads the result and logs it once. The load
//! generator compiles this very file (`#[path]` in its `lib.rs`) and raises its own limit
//! the same way, so the file uses nothing but `std` and `libc`.

/// The soft limit before and after [`raise`], and the hard one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit the process was started with.
    pub before: u64,
    /// The soft limit now: what the process can open.
    pub soft: u64,
    /// The hard limit, the ceiling of `soft`.
    pub hard: u64,
}

impl FdLimit {
    /// One clause for the log: the limit, and where it came from.
    pub fn describe(&self) -> String {
        if self.soft == self.before {
            if self.soft == self.hard {
                format!("descriptor limit {} (the hard limit)", self.soft)
            } else {
                format!(
                    "descriptor limit {} (could not raise it to the hard limit {})",
                    self.soft,
                    show(self.hard)
                )
            }
        } else {
            format!(
                "descriptor limit {} (soft limit raised from {} to the hard limit)",
                self.soft, self.before
            )
        }
    }
}

fn show(n: u64) -> String {
    if n == u64::MAX {
        "unlimited".into()
    } else {
        n.to_string()
    }
}

fn as_u64(n: libc::rlim_t) -> u64 {
    if n == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        n
    }
}

fn get() -> Option<libc::rlimit> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass and nothing else.
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } == 0).then_some(r)
}

/// The most descriptors the kernel lets one process have (`fs.nr_open`): the soft limit
/// cannot go past it even when the hard limit is "unlimited".
fn nr_open() -> Option<libc::rlim_t> {
    std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Raises the soft limit to the hard one (or to `fs.nr_open` when the hard limit is
/// unlimited) and returns the limits. Failing to raise it is not an error: the process
/// runs with the limit it has, which the result shows.
pub fn raise() -> FdLimit {
    let Some(mut r) = get() else {
        return FdLimit {
            before: u64::MAX,
            soft: u64::MAX,
            hard: u64::MAX,
        };
    };
    let before = as_u64(r.rlim_cur);
    let target = if r.rlim_max == libc::RLIM_INFINITY {
        nr_open().unwrap_or(r.rlim_cur)
    } else {
        r.rlim_max
    };
    if target > r.rlim_cur {
        let old = r.rlim_cur;
        r.rlim_cur = target;
        // SAFETY: setrlimit reads the struct we pass and nothing else.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) } != 0 {
            r.rlim_cur = old;
        }
    }
    FdLimit {
        before,
        soft: as_u64(r.rlim_cur),
        hard: as_u64(r.rlim_max),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_says_where_the_limit_came_from() {
        let raised = FdLimit {
            before: 256,
            soft: 20000,
            hard: 20000,
        };
        assert_eq!(
            raised.describe(),
            "descriptor limit 20000 (soft limit raised from 256 to the hard limit)"
        );
        let at_hard = FdLimit {
            before: 20000,
            ..raised
        };
        assert_eq!(
            at_hard.describe(),
            "descriptor limit 20000 (the hard limit)"
        );
        let stuck = FdLimit {
            before: 256,
            soft: 256,
            hard: u64::MAX,
        };
        assert_eq!(
            stuck.describe(),
            "descriptor limit 256 (could not raise it to the hard limit unlimited)"
        );
    }

    #[test]
    fn raising_is_idempotent() {
        let first = raise();
        let second = raise();
        assert_eq!(second.soft, first.soft);
        assert_eq!(second.before, second.soft);
        assert!(first.soft <= first.hard);
    }
}
