//! Identifiers of tickets, signals, lookups, cases and consents.
//!
//! An id is a kind prefix, the creation time in milliseconds (hex, fixed width) and 64 random bits.
//! The time part makes key order chronological, so listings come out oldest first without sorting;
//! the random part makes ids unguessable, so knowing one id tells nothing about another.

use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use super::ExchangeError;

/// A fresh id `<prefix>-<12 hex ms><16 hex random>`.
pub(crate) fn new_id(prefix: &str, now: OffsetDateTime) -> Result<String, ExchangeError> {
    let mut random = [0u8; 8];
    SystemRandom::new()
        .fill(&mut random)
        .map_err(|_| ExchangeError::Internal("system random source failed".into()))?;
    let millis = (now.unix_timestamp_nanos() / 1_000_000).max(0) as u64;
    Ok(format!(
        "{prefix}-{:012x}{}",
        millis & 0xffff_ffff_ffff,
        hex::encode(random)
    ))
}

/// 32 random bytes, for payload commitment salts.
pub(crate) fn salt() -> Result<[u8; 32], ExchangeError> {
    let mut salt = [0u8; 32];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| ExchangeError::Internal("system random source failed".into()))?;
    Ok(salt)
}

/// Whether `id` could be an id we issued: guards key construction against `/` and the like.
pub(crate) fn is_well_formed(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_differ() {
        let early = OffsetDateTime::from_unix_timestamp(1_700_000_000).expect("valid time");
        let late = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("valid time");
        let a = new_id("t", early).expect("id");
        let b = new_id("t", late).expect("id");
        let c = new_id("t", late).expect("id");
        assert!(a < b);
        assert_ne!(b, c);
        assert!(is_well_formed(&a));
        assert!(!is_well_formed("t/../x"));
    }
}
