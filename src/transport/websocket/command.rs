//! The commands a WebSocket subscriber sends as JSON text messages (PROTOCOL.md,
//! "WebSocket"): `subscribe` (`channel`, `seq`, `token`), `unsubscribe` (`channel`) and
//! `close`. Each field is what the query parameter of the same name is on the HTTP
//! requests: a comma list in one string, or a JSON array (of strings, or of numbers for
//! `seq`). A command parses into the same [`Query`] the control requests are checked
//! with, so the two paths share every rule (names, limits, tokens). Pure: no socket, no
//! subscriber.

use serde_json::Value;

use crate::http::query::Query;

/// A command from a WebSocket subscriber.
#[derive(Debug)]
pub enum Command {
    /// Add channels (`channel`, `seq`, `token` as on `POST /clients/ID/subscribe`).
    Subscribe(Query),
    /// Remove channels (`channel`).
    Unsubscribe(Query),
    /// End the connection (each channel gets `close`, then close 1000).
    Close,
}

/// The fields a command may carry besides `type`.
const FIELDS: [&str; 3] = ["channel", "seq", "token"];

/// Parses a text message into a command, or says what is wrong with it (the message of
/// the `error` event the client gets).
pub fn parse(text: &[u8]) -> Result<Command, String> {
    let value: Value =
        serde_json::from_slice(text).map_err(|_| "a command is a JSON object".to_string())?;
    let Value::Object(obj) = value else {
        return Err("a command is a JSON object".into());
    };
    let kind = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        _ => return Err("a command needs a \"type\" string".into()),
    };
    let allowed: &[&str] = match kind {
        "subscribe" => &FIELDS,
        "unsubscribe" => &FIELDS[..1],
        "close" => &[],
        other => {
            let mut t = other.to_string();
            if t.len() > 32 {
                t.truncate(t.floor_char_boundary(32));
            }
            return Err(format!(
                "unknown command type {t:?} (subscribe, unsubscribe, close)"
            ));
        }
    };
    let mut pairs = Vec::new();
    for (name, v) in &obj {
        if name == "type" {
            continue;
        }
        if !allowed.contains(&name.as_str()) {
            let mut n = name.clone();
            if n.len() > 32 {
                n.truncate(n.floor_char_boundary(32));
            }
            return Err(format!("{kind} takes no field {n:?}"));
        }
        pairs.push((name.clone(), list(name, v)?));
    }
    let q = Query::from_pairs(pairs);
    Ok(match kind {
        "subscribe" => Command::Subscribe(q),
        "unsubscribe" => Command::Unsubscribe(q),
        _ => Command::Close,
    })
}

/// A field's value as the comma list a query parameter would carry.
fn list(name: &str, v: &Value) -> Result<String, String> {
    let one = |v: &Value| -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) if name == "seq" && n.is_u64() => Ok(n.to_string()),
            Value::Null if name == "seq" => Ok(String::new()),
            _ => Err(format!("bad \"{name}\"")),
        }
    };
    match v {
        Value::Array(items) => {
            let parts: Result<Vec<String>, String> = items.iter().map(one).collect();
            let parts = parts?;
            if parts.iter().any(|p| p.contains(',')) {
                return Err(format!("bad \"{name}\""));
            }
            Ok(parts.join(","))
        }
        v => one(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(text: &str) -> Query {
        match parse(text.as_bytes()) {
            Ok(Command::Subscribe(q)) => q,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn subscribe_fields_as_strings_or_arrays() {
        let q = sub(r#"{"type":"subscribe","channel":"a,b","seq":"8,3","token":"t"}"#);
        assert_eq!(q.list("channel").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(q.list("seq").collect::<Vec<_>>(), ["8", "3"]);
        assert_eq!(q.get("token"), Some("t"));
        let q = sub(r#"{"type":"subscribe","channel":["a","b"],"seq":[8,null],"token":["x","y"]}"#);
        assert_eq!(q.list("channel").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(q.list("seq").collect::<Vec<_>>(), ["8", ""]);
        assert_eq!(q.list("token").collect::<Vec<_>>(), ["x", "y"]);
        let q = sub(r#"{"type":"subscribe","channel":"a","seq":5}"#);
        assert_eq!(q.get("seq"), Some("5"));
    }

    #[test]
    fn other_commands() {
        assert!(matches!(parse(br#"{"type":"close"}"#), Ok(Command::Close)));
        match parse(br#"{"type":"unsubscribe","channel":["a","b"]}"#) {
            Ok(Command::Unsubscribe(q)) => {
                assert_eq!(q.list("channel").collect::<Vec<_>>(), ["a", "b"])
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_commands_say_why() {
        for (text, why) in [
            ("nope", "a command is a JSON object"),
            ("[1]", "a command is a JSON object"),
            (r#"{"channel":"a"}"#, "a command needs a \"type\" string"),
            (r#"{"type":7}"#, "a command needs a \"type\" string"),
            (r#"{"type":"publish"}"#, "unknown command type \"publish\""),
            (
                r#"{"type":"close","channel":"a"}"#,
                "close takes no field \"channel\"",
            ),
            (
                r#"{"type":"unsubscribe","seq":"1"}"#,
                "unsubscribe takes no field \"seq\"",
            ),
            (r#"{"type":"subscribe","channel":{}}"#, "bad \"channel\""),
            (
                r#"{"type":"subscribe","channel":["a,b"]}"#,
                "bad \"channel\"",
            ),
            (
                r#"{"type":"subscribe","channel":"a","seq":-1}"#,
                "bad \"seq\"",
            ),
            (
                r#"{"type":"subscribe","channel":"a","token":["x,y"]}"#,
                "bad \"token\"",
            ),
        ] {
            let e = parse(text.as_bytes()).unwrap_err();
            assert!(e.starts_with(why), "{text}: {e}");
        }
    }
}
