//! The parameters every subscribe request shares: `channel=` (comma list or repeated),
//! `seq=` in the same order, the JSONP/script callback `cb=`, and the client id `client=`.
//! Pure validation; errors are 400s with a message that says what was wrong. The one
//! place a list of channel names is checked (subscribe, publish, unsubscribe).

use crate::engine::valid_name;
use crate::http::query::Query;
use crate::http::HttpError;

/// One channel of a subscribe request and its cursor (`None`: only new messages).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Wanted {
    /// Channel name (validated).
    pub channel: String,
    /// Cursor: `None` = from now on, `Some(0)` = all buffered, `Some(n)` = from seq n.
    pub seq: Option<u64>,
}

/// Parses the channel names of `channel=` (comma list or repeated): at least one, at
/// most `max`, each valid, none twice.
pub fn parse_names(q: &Query, max: usize) -> Result<Vec<&str>, HttpError> {
    names(q, max, false)
}

/// The channel names of an unsubscribe: at least one, each valid; repeats and names the
/// subscriber does not follow are harmless there.
pub fn parse_names_to_drop(q: &Query) -> Result<Vec<&str>, HttpError> {
    names(q, usize::MAX, true)
}

fn names(q: &Query, max: usize, repeats_ok: bool) -> Result<Vec<&str>, HttpError> {
    let mut names: Vec<&str> = Vec::new();
    for name in q.list("channel") {
        if !valid_name(name) {
            return Err(HttpError::new(
                400,
                "bad channel name (1-128 bytes of A-Z a-z 0-9 _ . -)",
            ));
        }
        if names.len() >= max {
            return Err(HttpError::new(400, "too many channels in one request"));
        }
        if names.contains(&name) {
            if repeats_ok {
                continue;
            }
            return Err(HttpError::new(400, "channel named twice"));
        }
        names.push(name);
    }
    if names.is_empty() {
        return Err(HttpError::new(400, "missing channel"));
    }
    Ok(names)
}

/// Parses `channel=` and `seq=`. At least one and at most `max` channels, no repeats,
/// no more seqs than channels.
pub fn parse_channels(q: &Query, max: usize) -> Result<Vec<Wanted>, HttpError> {
    let mut wanted: Vec<Wanted> = parse_names(q, max)?
        .into_iter()
        .map(|name| Wanted {
            channel: name.to_owned(),
            seq: None,
        })
        .collect();
    // `seq=` alone (empty) means "no cursor" for every channel.
    if q.all("seq").any(|s| !s.is_empty()) {
        for (i, s) in q.list("seq").enumerate() {
            let w = wanted
                .get_mut(i)
                .ok_or(HttpError::new(400, "more seqs than channels"))?;
            if !s.is_empty() {
                w.seq = Some(s.parse().map_err(|_| HttpError::new(400, "bad seq"))?);
            }
        }
    }
    Ok(wanted)
}

/// Validates a callback name: 1–64 bytes of `[A-Za-z0-9_.$]`.
pub fn valid_callback(cb: &str) -> bool {
    !cb.is_empty()
        && cb.len() <= 64
        && cb
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$'))
}

/// Parses `cb=`, if present.
pub fn parse_callback(q: &Query) -> Result<Option<Box<str>>, HttpError> {
    match q.get("cb") {
        None => Ok(None),
        Some(cb) if valid_callback(cb) => Ok(Some(cb.into())),
        Some(_) => Err(HttpError::new(
            400,
            "bad cb (1-64 bytes of A-Z a-z 0-9 _ . $)",
        )),
    }
}

/// A client id: 128 random bits, written as 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientId(pub [u8; 16]);

impl ClientId {
    /// A fresh id from the OS random source.
    pub fn random() -> Result<ClientId, HttpError> {
        let mut b = [0u8; 16];
        getrandom::getrandom(&mut b)
            .map_err(|_| HttpError::new(500, "no randomness for a client id"))?;
        Ok(ClientId(b))
    }

    /// Parses 32 hex digits.
    pub fn parse(text: &str) -> Option<ClientId> {
        if text.len() != 32 {
            return None;
        }
        let mut b = [0u8; 16];
        for (i, pair) in text.as_bytes().chunks(2).enumerate() {
            let s = std::str::from_utf8(pair).ok()?;
            b[i] = u8::from_str_radix(s, 16).ok()?;
        }
        Some(ClientId(b))
    }
}

impl std::fmt::Display for ClientId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Result<Vec<Wanted>, u16> {
        parse_channels(&Query::parse(q).unwrap(), 3).map_err(|e| e.status)
    }

    #[test]
    fn channels_and_seqs() {
        let w = parse("channel=a,b&seq=5").unwrap();
        assert_eq!(w[0].seq, Some(5));
        assert_eq!(w[1].seq, None);
        let w = parse("channel=a&channel=b&seq=,0").unwrap();
        assert_eq!((w[0].seq, w[1].seq), (None, Some(0)));
        assert_eq!(parse("channel=a&seq=").unwrap()[0].seq, None);
        assert_eq!(parse(""), Err(400));
        assert_eq!(parse("channel="), Err(400));
        assert_eq!(parse("channel=a,,b"), Err(400));
        assert_eq!(parse("channel=a b"), Err(400));
        assert_eq!(parse("channel=a,b,c,d"), Err(400));
        assert_eq!(parse("channel=a,a"), Err(400));
        assert_eq!(parse("channel=a&seq=1,2"), Err(400));
        assert_eq!(parse("channel=a&seq=-1"), Err(400));
        assert_eq!(parse("channel=a&seq=99999999999999999999999"), Err(400));
        let q = Query::parse("channel=a,a,b").unwrap();
        assert_eq!(parse_names_to_drop(&q).unwrap(), ["a", "b"]);
        assert_eq!(parse_names(&q, 8).map_err(|e| e.status), Err(400));
        let q = Query::parse("channel=a,b%20c").unwrap();
        assert_eq!(parse_names_to_drop(&q).map_err(|e| e.status), Err(400));
    }

    #[test]
    fn callbacks_and_ids() {
        assert!(valid_callback("jQuery123_cb.x$"));
        assert!(!valid_callback(""));
        assert!(!valid_callback("a(b)"));
        assert!(!valid_callback("alert;"));
        assert!(!valid_callback(&"a".repeat(65)));
        let id = ClientId::random().unwrap();
        assert_eq!(ClientId::parse(&id.to_string()), Some(id));
        assert_eq!(ClientId::parse("xyz"), None);
        assert_eq!(ClientId::parse(&"g".repeat(32)), None);
        assert_ne!(ClientId::random().unwrap(), id);
    }
}
