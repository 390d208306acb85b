//! Batch publishing on the wire (`--batch`): the body of one `POST /pub` with
//! `Content-Type: application/x-ndjson` (one `{"channel":…,"data":…}` per line, each line
//! ending in `\n`) and the gateway's answer, a JSON array of `{"channel":…,"seq":N}` in
//! the same order, read back into one seq per line.
//!
//! Pure: bytes in, bytes out. The publisher owns the connection and what the seqs mean;
//! this module never touches a socket, a clock or an account.

use std::fmt::Write as _;

/// `text` as a JSON string, quotes included (`"`, `\` and control characters escaped).
fn json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The ndjson body publishing `lines` (channel, payload) in order: one object per line,
/// every line (the last too) ending in `\n`.
pub(crate) fn body(lines: &[(&str, &str)]) -> String {
    let size: usize = lines.iter().map(|(c, d)| c.len() + d.len() + 24).sum();
    let mut out = String::with_capacity(size);
    for (channel, data) in lines {
        out.push_str("{\"channel\":");
        json_string(&mut out, channel);
        out.push_str(",\"data\":");
        json_string(&mut out, data);
        out.push_str("}\n");
    }
    out
}

/// A small reader of the answer: an array of flat objects whose values are strings,
/// numbers, booleans or `null`.
struct Reader<'a>(&'a str);

impl Reader<'_> {
    fn skip(&mut self) {
        self.0 = self.0.trim_start();
    }

    /// Consumes `c` if it comes next (after whitespace).
    fn take(&mut self, c: char) -> bool {
        self.skip();
        match self.0.strip_prefix(c) {
            Some(rest) => {
                self.0 = rest;
                true
            }
            None => false,
        }
    }

    fn eat(&mut self, c: char) -> Result<(), String> {
        if self.take(c) {
            Ok(())
        } else {
            Err(format!("`{c}` expected at `{}`", head(self.0)))
        }
    }

    /// A JSON string; escapes other than `\"` and `\\` are kept as written (channel
    /// names have none).
    fn string(&mut self) -> Result<String, String> {
        self.eat('"')?;
        let mut s = String::new();
        let mut chars = self.0.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    self.0 = &self.0[i + 1..];
                    return Ok(s);
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('"' | '\\'))) => s.push(e),
                    Some((_, e)) => {
                        s.push('\\');
                        s.push(e);
                    }
                    None => break,
                },
                c => s.push(c),
            }
        }
        Err("unterminated string".into())
    }

    /// A value that is not a string or an object: up to the next `,`, `}` or `]`.
    fn scalar(&mut self) -> Result<&str, String> {
        self.skip();
        let end = self.0.find([',', '}', ']']).ok_or("unterminated value")?;
        let (v, rest) = self.0.split_at(end);
        self.0 = rest;
        Ok(v.trim())
    }

    /// One object: its `channel` and its `seq` (None when it has none, e.g. an error in
    /// its place).
    fn entry(&mut self) -> Result<(Option<String>, Option<u64>), String> {
        let (mut channel, mut seq) = (None, None);
        self.eat('{')?;
        if self.take('}') {
            return Ok((channel, seq));
        }
        loop {
            let key = self.string()?;
            self.eat(':')?;
            self.skip();
            if self.0.starts_with('"') {
                let v = self.string()?;
                if key == "channel" {
                    channel = Some(v);
                }
            } else {
                let v = self.scalar()?;
                if key == "seq" {
                    seq = Some(v.parse().map_err(|_| format!("bad seq `{v}`"))?);
                }
            }
            if self.take('}') {
                return Ok((channel, seq));
            }
            self.eat(',')?;
        }
    }
}

/// The first few characters of what is left, for an error message.
fn head(s: &str) -> &str {
    let end = s.char_indices().nth(24).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

/// Reads the answer to a batch that published `lines` (channel, payload): one seq per
/// line, in order. An entry without a seq is None (that message was not published); an
/// answer that is not such an array, has another count of entries or names another
/// channel in an entry's place is an error (then nothing can be said of any message).
pub(crate) fn seqs(answer: &str, lines: &[(&str, &str)]) -> Result<Vec<Option<u64>>, String> {
    let mut r = Reader(answer);
    let mut out = Vec::with_capacity(lines.len());
    r.eat('[')?;
    if !r.take(']') {
        loop {
            let (channel, seq) = r.entry()?;
            let k = out.len();
            let want = lines
                .get(k)
                .map(|l| l.0)
                .ok_or_else(|| format!("more than the {} entries published", lines.len()))?;
            if channel.as_deref().is_some_and(|c| c != want) {
                return Err(format!(
                    "entry {k} names `{}`, published to `{want}`",
                    channel.unwrap_or_default()
                ));
            }
            out.push(seq);
            if r.take(']') {
                break;
            }
            r.eat(',')?;
        }
    }
    r.skip();
    if !r.0.is_empty() {
        return Err(format!("trailing `{}` after the array", head(r.0)));
    }
    if out.len() != lines.len() {
        return Err(format!(
            "{} entries for {} messages",
            out.len(),
            lines.len()
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_one_object_per_line_each_ending_in_a_newline() {
        let lines = [("news", "t=1;n=1;xx"), ("chat.b-2", "t=2;n=1;")];
        assert_eq!(
            body(&lines),
            "{\"channel\":\"news\",\"data\":\"t=1;n=1;xx\"}\n\
             {\"channel\":\"chat.b-2\",\"data\":\"t=2;n=1;\"}\n"
        );
        assert_eq!(body(&[]), "");
    }

    #[test]
    fn the_body_escapes_what_json_strings_must() {
        let b = body(&[("c", "a\"b\\c\nd\u{1}é")]);
        assert_eq!(
            b,
            "{\"channel\":\"c\",\"data\":\"a\\\"b\\\\c\\nd\\u0001é\"}\n"
        );
        // Every line is one JSON object: no raw newline inside.
        assert_eq!(b.matches('\n').count(), 1);
    }

    #[test]
    fn a_payload_of_the_publisher_reads_back_from_the_body() {
        let lines = [("lt0", "t=1700000000123456;n=42;xxxx")];
        let b = body(&lines);
        let mut r = Reader(b.trim_end());
        r.eat('{').unwrap();
        assert_eq!(r.string().unwrap(), "channel");
        r.eat(':').unwrap();
        assert_eq!(r.string().unwrap(), "lt0");
        r.eat(',').unwrap();
        assert_eq!(r.string().unwrap(), "data");
        r.eat(':').unwrap();
        assert_eq!(r.string().unwrap(), lines[0].1);
    }

    #[test]
    fn the_answer_gives_one_seq_per_line_in_order() {
        let lines = [("a", "x"), ("b", "y"), ("a", "z")];
        let answer = r#"[{"channel":"a","seq":1700000000000007},{"channel":"b","seq":3},{"channel":"a","seq":1700000000000008}]"#;
        assert_eq!(
            seqs(answer, &lines).unwrap(),
            vec![
                Some(1_700_000_000_000_007),
                Some(3),
                Some(1_700_000_000_000_008)
            ]
        );
        // Whitespace, a trailing newline and keys in another order read the same.
        let spaced = "[ {\"seq\": 5, \"channel\": \"a\"} ,\n {\"channel\":\"b\",\"seq\":6} ,{\"channel\":\"a\",\"seq\":7}]\n";
        assert_eq!(
            seqs(spaced, &lines).unwrap(),
            vec![Some(5), Some(6), Some(7)]
        );
    }

    #[test]
    fn an_entry_without_a_seq_is_a_message_not_published() {
        let lines = [("a", "x"), ("b", "y")];
        let answer = r#"[{"channel":"a","seq":1},{"channel":"b","error":"engine unavailable"}]"#;
        assert_eq!(seqs(answer, &lines).unwrap(), vec![Some(1), None]);
    }

    #[test]
    fn answers_that_do_not_match_the_batch_are_errors() {
        let lines = [("a", "x"), ("b", "y")];
        for (answer, why) in [
            (r#"[{"channel":"a","seq":1}]"#, "entries for 2"),
            (
                r#"[{"channel":"a","seq":1},{"channel":"b","seq":2},{"channel":"a","seq":3}]"#,
                "more than",
            ),
            (
                r#"[{"channel":"b","seq":1},{"channel":"a","seq":2}]"#,
                "names `b`",
            ),
            (r#"{"channel":"a","seq":1}"#, "`[` expected"),
            (
                r#"[{"channel":"a","seq":-1},{"channel":"b","seq":2}]"#,
                "bad seq",
            ),
            (
                r#"[{"channel":"a","seq":1},{"channel":"b","seq":2}] x"#,
                "trailing",
            ),
            (r#"[{"channel":"a","seq":1},{"channel":"b"#, "unterminated"),
            ("[]", "0 entries"),
            ("", "`[` expected"),
        ] {
            let e = seqs(answer, &lines).unwrap_err();
            assert!(e.contains(why), "{answer}: {e}");
        }
    }

    #[test]
    fn every_cut_of_a_good_answer_is_an_error_never_a_panic() {
        let lines = [("a", "x"), ("b", "y")];
        let answer = r#"[{"channel":"a","seq":12},{"channel":"b","seq":13}]"#;
        for end in 0..answer.len() {
            assert!(seqs(&answer[..end], &lines).is_err(), "{}", &answer[..end]);
        }
        assert!(seqs(answer, &lines).is_ok());
    }
}
