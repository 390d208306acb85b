//! Incremental UTF-8 validation for text messages that arrive in pieces (fragments, or a
//! frame still arriving): one byte of state, the position inside a code point, so a
//! piece may end in the middle of one and an invalid sequence is caught at the first
//! byte that makes it invalid. Runs of whole code points are checked by the standard
//! library's validator; only the bytes at a piece's edges go through the state machine.
//! Owns nothing but that byte.

/// Where the validator stands: between code points, or inside one and expecting a
/// continuation byte (with the narrower range the first one has after `E0`, `ED`, `F0`
/// and `F4`, which rules out overlong forms, surrogates and code points past U+10FFFF).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Utf8(State);

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    /// Between code points.
    #[default]
    Boundary,
    /// One more continuation byte (80..=BF) ends the code point.
    Need1,
    /// Two more.
    Need2,
    /// Three more.
    Need3,
    /// After E0: A0..=BF, then one more.
    AfterE0,
    /// After ED: 80..=9F (no surrogates), then one more.
    AfterED,
    /// After F0: 90..=BF, then two more.
    AfterF0,
    /// After F4: 80..=8F (at most U+10FFFF), then two more.
    AfterF4,
    /// Seen an invalid sequence; stays here.
    Invalid,
}

/// The input is not UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invalid;

impl Utf8 {
    /// A validator at the start of a text.
    pub const fn new() -> Utf8 {
        Utf8(State::Boundary)
    }

    /// Whether the bytes fed so far end on a code point boundary (so a text may end here).
    /// (The parser checks a finished message whole, with `String::from_utf8`.)
    #[cfg(test)]
    pub fn is_boundary(self) -> bool {
        self.0 == State::Boundary
    }

    /// Checks the next piece of the text. Fails as soon as the bytes so far cannot be the
    /// start of valid UTF-8; a piece may end inside a code point.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Invalid> {
        let mut rest = bytes;
        // Finish the code point the previous piece left open.
        while self.0 != State::Boundary {
            let Some((&b, tail)) = rest.split_first() else {
                return self.check();
            };
            self.step(b)?;
            rest = tail;
        }
        match std::str::from_utf8(rest) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => {
                    self.0 = State::Invalid;
                    Err(Invalid)
                }
                // The piece ends inside a code point that may still be valid: carry it.
                None => {
                    for &b in rest.get(e.valid_up_to()..).unwrap_or_default() {
                        self.step(b)?;
                    }
                    Ok(())
                }
            },
        }
    }

    fn check(self) -> Result<(), Invalid> {
        if self.0 == State::Invalid {
            Err(Invalid)
        } else {
            Ok(())
        }
    }

    /// One byte through the state machine.
    fn step(&mut self, b: u8) -> Result<(), Invalid> {
        use State::*;
        self.0 = match (self.0, b) {
            (Boundary, 0x00..=0x7F) => Boundary,
            (Boundary, 0xC2..=0xDF) => Need1,
            (Boundary, 0xE0) => AfterE0,
            (Boundary, 0xE1..=0xEC | 0xEE..=0xEF) => Need2,
            (Boundary, 0xED) => AfterED,
            (Boundary, 0xF0) => AfterF0,
            (Boundary, 0xF1..=0xF3) => Need3,
            (Boundary, 0xF4) => AfterF4,
            (Need1, 0x80..=0xBF) => Boundary,
            (Need2, 0x80..=0xBF) | (AfterE0, 0xA0..=0xBF) | (AfterED, 0x80..=0x9F) => Need1,
            (Need3, 0x80..=0xBF) | (AfterF0, 0x90..=0xBF) | (AfterF4, 0x80..=0x8F) => Need2,
            _ => Invalid,
        };
        self.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `text` cut at `cuts`; the verdict of the whole, and the byte count after which
    /// the validator first failed.
    fn run(text: &[u8], cuts: &[usize]) -> (bool, Option<usize>) {
        let mut v = Utf8::new();
        let mut start = 0;
        for &end in cuts.iter().chain([text.len()].iter()) {
            if v.feed(&text[start..end]).is_err() {
                return (false, Some(end));
            }
            start = end;
        }
        (v.is_boundary(), None)
    }

    /// Agrees with the standard library on every 1- and 2-byte input and on 3- and
    /// 4-byte inputs around every lead byte, cut at every place; a failure is reported
    /// by the piece holding the first byte after which the input can start no valid text.
    #[test]
    fn agrees_with_std_at_every_cut() {
        let edges: Vec<u8> = (0..=255u8)
            .filter(|b| matches!(b, 0x00 | 0x41 | 0x7F..=0x81 | 0x8F..=0x90 | 0x9F..=0xA0 | 0xBF..=0xC2 | 0xDF..=0xF5 | 0xFF))
            .collect();
        let mut inputs: Vec<Vec<u8>> = Vec::new();
        for a in 0..=255u8 {
            inputs.push(vec![a]);
            for b in 0..=255u8 {
                inputs.push(vec![a, b]);
            }
        }
        for &a in &edges {
            for &b in &edges {
                for &c in &edges {
                    inputs.push(vec![a, b, c]);
                    inputs.push(vec![a, b, c, 0x80]);
                    inputs.push(vec![b'x', a, b, c, 0xBF, b'y']);
                }
            }
        }
        for input in &inputs {
            let want = std::str::from_utf8(input).is_ok();
            // The first byte after which no valid text can start with the input.
            let first_bad = (0..input.len()).find(
                |&d| matches!(std::str::from_utf8(&input[..=d]), Err(e) if e.error_len().is_some()),
            );
            for cut in 0..=input.len() {
                let (ok, failed_at) = run(input, &[cut]);
                assert_eq!(ok, want, "{input:x?} cut at {cut}");
                let expect = first_bad.map(|d| if d < cut { cut } else { input.len() });
                assert_eq!(failed_at, expect, "{input:x?} cut at {cut}");
            }
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let text = "κόσμε ∑ 𝄞 end".as_bytes();
        let cuts: Vec<usize> = (1..text.len()).collect();
        assert_eq!(run(text, &cuts), (true, None));
        // A truncated code point is no text, but no early failure either.
        assert_eq!(
            run(&text[..text.len() - 5], &cuts[..cuts.len() - 5]),
            (false, None)
        );
        // The invalid byte fails the piece that carries it: ED A0 80 is a surrogate.
        assert_eq!(run(b"ab\xED\xA0\x80cd", &[1, 2, 3, 4, 5]), (false, Some(4)));
        assert_eq!(run(b"\xF4\x90\x80\x80", &[1, 2, 3]), (false, Some(2)));
        assert_eq!(run(b"\xC0\xAF", &[1]), (false, Some(1)));
    }
}
