//! Subscriber tokens: `SCOPE~EXPIRES~SIGNATURE`, where SCOPE is a channel name or a
//! prefix ending in `*`, EXPIRES is a Unix time in seconds, and SIGNATURE is the lowercase
//! hex HMAC-SHA256, keyed with `--auth-secret`, of the text `SCOPE~EXPIRES`. A backend can
//! sign tokens itself with any HMAC-SHA256 implementation, or ask `POST /sign`.
//! Signatures are compared in constant time; tokens are never logged.
//! Pure functions; the secret comes from the config.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Not of the form `SCOPE~EXPIRES~SIGNATURE`.
    Malformed,
    /// The signature does not match.
    Forged,
    /// Its time has passed.
    Expired,
    /// It does not cover this channel.
    WrongChannel,
}

fn signature(secret: &[u8], scope: &str, expires: u64) -> Vec<u8> {
    // A key of any length is accepted by HMAC.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key");
    mac.update(format!("{scope}~{expires}").as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without an early exit, so the time taken does not tell how much matched
/// (only whether the lengths differ). Every secret comparison goes through here.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A token for `scope` (a channel, or a prefix ending in `*`) valid until `expires`.
pub fn sign(secret: &[u8], scope: &str, expires: u64) -> String {
    format!(
        "{scope}~{expires}~{}",
        hex(&signature(secret, scope, expires))
    )
}

/// Checks that `token` lets its bearer subscribe to `channel` at Unix time `now`;
/// returns when it expires.
pub fn check(secret: &[u8], token: &str, channel: &str, now: u64) -> Result<u64, Refusal> {
    let mut parts = token.split('~');
    let (Some(scope), Some(expires), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed);
    };
    let expires: u64 = expires.parse().map_err(|_| Refusal::Malformed)?;
    if sig.len() != 64 {
        return Err(Refusal::Malformed);
    }
    let want = hex(&signature(secret, scope, expires));
    if !constant_time_eq(want.as_bytes(), sig.as_bytes()) {
        return Err(Refusal::Forged);
    }
    if expires <= now {
        return Err(Refusal::Expired);
    }
    let covered = match scope.strip_suffix('*') {
        Some(prefix) => channel.starts_with(prefix),
        None => scope == channel,
    };
    if covered {
        Ok(expires)
    } else {
        Err(Refusal::WrongChannel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }

    #[test]
    fn tokens() {
        let s = b"secret";
        let t = sign(s, "news", 1000);
        assert_eq!(check(s, &t, "news", 999), Ok(1000));
        assert_eq!(check(s, &t, "news", 1000), Err(Refusal::Expired));
        assert_eq!(check(s, &t, "chat", 10), Err(Refusal::WrongChannel));
        assert_eq!(check(b"other", &t, "news", 10), Err(Refusal::Forged));
        let forged = t.replace("news~1000", "news~9999");
        assert_eq!(check(s, &forged, "news", 10), Err(Refusal::Forged));
        assert_eq!(check(s, "nonsense", "news", 10), Err(Refusal::Malformed));
        let p = sign(s, "room.*", 1000);
        assert_eq!(check(s, &p, "room.1", 10), Ok(1000));
        assert_eq!(check(s, &p, "lobby", 10), Err(Refusal::WrongChannel));
    }
}
