//! Pulls the fields the generator checks out of one gateway event. The gateway's events are
//! flat JSON objects with script-safe escaping, so a field is found by its key; this is
//! far cheaper than a full JSON parse per delivery, which would make the generator the
//! bottleneck. It also reads back the generator's own payload stamp (`t=`, `n=`). Pure
//! functions over text: no state, no socket, no account.

/// One event, as far as the generator cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// A message: its channel, seq and the time stamped into the payload (µs: when the
    /// publisher was due to send it).
    Data {
        /// Channel name.
        channel: &'a str,
        /// Seq in the channel.
        seq: u64,
        /// `t=` stamp of the payload, if any.
        sent_us: Option<u64>,
    },
    /// Seqs `from..=to` of `channel` are gone.
    Lost {
        /// Channel name.
        channel: &'a str,
        /// First lost seq.
        from: u64,
        /// Last lost seq.
        to: u64,
    },
    /// Delivery of `channel` restarts at `seq`.
    Reset {
        /// Channel name.
        channel: &'a str,
        /// Restart seq.
        seq: u64,
    },
    /// First event of a stream.
    Hello {
        /// Its cursor.
        cursor: &'a str,
    },
    /// The stream ends; resume from the cursor.
    Reconnect {
        /// Its cursor.
        cursor: &'a str,
    },
    /// Heartbeat or empty poll.
    Noop,
    /// Closed by the server.
    Close,
    /// The server reports an error and closes.
    Error,
    /// Anything unrecognised.
    Unknown,
}

/// Where the value of `"key":` starts in `json` (no allocation: this runs once or twice per
/// delivery, hundreds of thousands of times a second).
fn value_at(json: &str, key: &str) -> Option<usize> {
    let (b, k) = (json.as_bytes(), key.as_bytes());
    let mut i = 0;
    while let Some(p) = b[i..].iter().position(|&c| c == b'"') {
        let s = i + p + 1;
        let e = s + k.len();
        if b.get(s..e) == Some(k) && b.get(e) == Some(&b'"') && b.get(e + 1) == Some(&b':') {
            return Some(e + 2);
        }
        i = s;
    }
    None
}

fn str_field<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let start = value_at(json, key)?;
    let rest = json.get(start..)?.strip_prefix('"')?;
    // Values the generator reads (names, cursors, types) never contain escapes.
    let end = rest.bytes().position(|c| c == b'"')?;
    Some(&rest[..end])
}

fn num_field(json: &str, key: &str) -> Option<u64> {
    let digits = json.get(value_at(json, key)?..)?;
    let end = digits
        .bytes()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The publish stamp in a payload made by the generator: `t=<µs>;…`.
pub fn stamp(data: &str) -> Option<u64> {
    let rest = data.strip_prefix("t=")?;
    let end = rest.find(';').unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// The sequence number the generator stamps into a payload: `…;n=<seq>;…`.
pub fn payload_seq(data: &str) -> Option<u64> {
    let start = data.find(";n=")? + 3;
    let rest = &data[start..];
    let end = rest.find(';').unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// Reads one event.
pub fn event(json: &str) -> Event<'_> {
    let Some(kind) = str_field(json, "type") else {
        return Event::Unknown;
    };
    match kind {
        "data" => match (str_field(json, "channel"), num_field(json, "seq")) {
            (Some(channel), Some(seq)) => Event::Data {
                channel,
                seq,
                sent_us: str_field(json, "data").and_then(stamp),
            },
            _ => Event::Unknown,
        },
        "lost" => match (
            str_field(json, "channel"),
            num_field(json, "from"),
            num_field(json, "to"),
        ) {
            (Some(channel), Some(from), Some(to)) => Event::Lost { channel, from, to },
            _ => Event::Unknown,
        },
        "reset" => match (str_field(json, "channel"), num_field(json, "seq")) {
            (Some(channel), Some(seq)) => Event::Reset { channel, seq },
            _ => Event::Unknown,
        },
        "hello" => Event::Hello {
            cursor: str_field(json, "cursor").unwrap_or(""),
        },
        "reconnect" => Event::Reconnect {
            cursor: str_field(json, "cursor").unwrap_or(""),
        },
        "noop" => Event::Noop,
        "close" => Event::Close,
        "error" => Event::Error,
        _ => Event::Unknown,
    }
}

/// Splits a poll answer (`[e1,e2]`) into its events' JSON texts.
pub fn split_array(body: &str) -> Vec<&str> {
    let inner = body.trim().trim_start_matches('[').trim_end_matches(']');
    let mut out = Vec::new();
    let (mut depth, mut in_str, mut esc, mut start) = (0i32, false, false, None);
    for (i, c) in inner.char_indices() {
        if in_str {
            match (esc, c) {
                (true, _) => esc = false,
                (false, '\\') => esc = true,
                (false, '"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '{' => {
                if depth == 0 {
                    start = Some(i);
                }
                depth += 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    if let Some(s) = start.take() {
                        out.push(&inner[s..=i]);
                    }
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_event_kind() {
        assert_eq!(
            event(r#"{"type":"data","channel":"c1","seq":42,"data":"t=1700;xxxx"}"#),
            Event::Data {
                channel: "c1",
                seq: 42,
                sent_us: Some(1700)
            }
        );
        assert_eq!(
            event(r#"{"type":"data","channel":"c1","seq":42,"data":"plain"}"#),
            Event::Data {
                channel: "c1",
                seq: 42,
                sent_us: None
            }
        );
        assert_eq!(
            event(r#"{"type":"lost","channel":"a","from":3,"to":5}"#),
            Event::Lost {
                channel: "a",
                from: 3,
                to: 5
            }
        );
        assert_eq!(
            event(r#"{"type":"reset","channel":"a","seq":9}"#),
            Event::Reset {
                channel: "a",
                seq: 9
            }
        );
        assert_eq!(
            event(r#"{"type":"hello","client":"x","cursor":"a:1"}"#),
            Event::Hello { cursor: "a:1" }
        );
        assert_eq!(
            event(r#"{"type":"reconnect","cursor":"a:2"}"#),
            Event::Reconnect { cursor: "a:2" }
        );
        assert_eq!(event(r#"{"type":"noop"}"#), Event::Noop);
        assert_eq!(event(r#"{"nonsense":1}"#), Event::Unknown);
    }

    #[test]
    fn payload_stamps() {
        assert_eq!(stamp("t=17;n=4;xx"), Some(17));
        assert_eq!(payload_seq("t=17;n=4;xx"), Some(4));
        assert_eq!(payload_seq("warm"), None);
    }

    #[test]
    fn splits_poll_answers() {
        let body = r#"[{"type":"data","channel":"a","seq":1,"data":"x}{\"y"},{"type":"noop"}]"#;
        let parts = split_array(body);
        assert_eq!(parts.len(), 2);
        assert_eq!(event(parts[1]), Event::Noop);
        assert!(split_array("[]").is_empty());
    }
}
