//! Query strings: `a=1&b=x%20y`, percent-decoded, `+` as space, UTF-8 checked.
//! Pure; knows nothing of what the parameters mean.

use super::HttpError;

/// The decoded `name=value` pairs of a query string, in order.
#[derive(Debug, Default)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(s: &str) -> Result<String, HttpError> {
    if !s.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(s.to_owned());
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hi = bytes.get(i + 1).copied().and_then(hex);
                let lo = bytes.get(i + 2).copied().and_then(hex);
                match (hi, lo) {
                    (Some(h), Some(l)) => out.push(h << 4 | l),
                    _ => return Err(HttpError::new(400, "bad percent-encoding in query")),
                }
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| HttpError::new(400, "query is not UTF-8"))
}

impl Query {
    /// Parses a raw query string.
    pub fn parse(raw: &str) -> Result<Query, HttpError> {
        let mut pairs = Vec::new();
        for part in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((decode(k)?, decode(v)?));
        }
        Ok(Query { pairs })
    }

    /// A query made of decoded pairs (a WebSocket command's fields).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Query {
        Query { pairs }
    }

    /// The first value of `name`.
    pub fn get<'a>(&'a self, name: &str) -> Option<&'a str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`, each split at commas, in order: `a=1,2&a=3` gives 1, 2, 3.
    pub fn list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.all(name).flat_map(|v| v.split(','))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_lists() {
        let q = Query::parse("channel=a,b&seq=1,&channel=c&cb=x%24y&sp=a+b&flag").unwrap();
        assert_eq!(q.list("channel").collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(q.list("seq").collect::<Vec<_>>(), ["1", ""]);
        assert_eq!(q.get("cb"), Some("x$y"));
        assert_eq!(q.get("sp"), Some("a b"));
        assert_eq!(q.get("flag"), Some(""));
        assert_eq!(q.get("none"), None);
    }

    #[test]
    fn rejects_bad_encoding() {
        assert_eq!(Query::parse("a=%zz").unwrap_err().status, 400);
        assert_eq!(Query::parse("a=%4").unwrap_err().status, 400);
        assert_eq!(Query::parse("a=%ff%fe").unwrap_err().status, 400);
        assert_eq!(Query::parse("a=%C3%A9").unwrap().get("a"), Some("é"));
    }
}
