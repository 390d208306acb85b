//! Connection counts by listener and by what each connection does (parked poll, stream
//! of each format), kept up to date as connections open, change phase and close, so
//! `/stats`, `/metrics` and the connection caps never scan the connections.
//! Reads phases; changes nothing but its counts.

use super::conn::{Conn, Phase};
use crate::transport::Format;

/// Live connection counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Kinds {
    /// Connections on the public listener.
    pub public: u64,
    /// Connections on the admin listener.
    pub admin: u64,
    /// Parked long-polls.
    pub parked: u64,
    /// Streams of each format, indexed by `Format::index`.
    pub streams: [u64; Format::ALL.len()],
}

impl Kinds {
    fn slot(&mut self, phase: &Phase) -> Option<&mut u64> {
        match phase {
            Phase::Parked(_) => Some(&mut self.parked),
            Phase::Streaming(st) => Some(&mut self.streams[st.out.format().index()]),
            _ => None,
        }
    }

    /// A connection was accepted.
    pub fn opened(&mut self, admin: bool) {
        if admin {
            self.admin += 1;
        } else {
            self.public += 1;
        }
    }

    /// A connection is gone (its phase is still the last one it had).
    pub fn closed(&mut self, conn: &Conn) {
        if let Some(n) = self.slot(&conn.phase) {
            *n -= 1;
        }
        if conn.admin {
            self.admin -= 1;
        } else {
            self.public -= 1;
        }
    }

    /// Moves a connection to `phase`, returning the one it leaves.
    pub fn swap(&mut self, conn: &mut Conn, phase: Phase) -> Phase {
        if let Some(n) = self.slot(&phase) {
            *n += 1;
        }
        let old = std::mem::replace(&mut conn.phase, phase);
        if let Some(n) = self.slot(&old) {
            *n -= 1;
        }
        old
    }

    /// Counts from scratch (debug builds check the kept counts against this).
    pub fn recount<'a>(conns: impl Iterator<Item = &'a Conn>) -> Kinds {
        let mut k = Kinds::default();
        for c in conns {
            k.opened(c.admin);
            if let Some(n) = k.slot(&c.phase) {
                *n += 1;
            }
        }
        k
    }
}
