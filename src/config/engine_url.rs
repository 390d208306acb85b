//! `--engine`: where channel logs live, parsed.

/// `--engine`: the embedded memory engine, or a Redis server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EngineUrl {
    /// In this process.
    Memory,
    /// `redis://HOST:PORT[/DB]`.
    Redis {
        /// `HOST:PORT`.
        addr: String,
        /// The database (`SELECT`).
        db: u32,
    },
}

pub(super) fn engine_url(text: &str) -> Result<EngineUrl, String> {
    if text == "memory" {
        return Ok(EngineUrl::Memory);
    }
    let rest = text
        .strip_prefix("redis://")
        .ok_or("expected `memory` or redis://HOST:PORT[/DB]")?;
    let (addr, db) = match rest.split_once('/') {
        Some((a, d)) => (
            a,
            d.parse()
                .map_err(|_| format!("bad database number in {text}"))?,
        ),
        None => (rest, 0),
    };
    if addr
        .rsplit_once(':')
        .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
    {
        return Err(format!("expected redis://HOST:PORT[/DB], got {text}"));
    }
    Ok(EngineUrl::Redis {
        addr: addr.to_string(),
        db,
    })
}
