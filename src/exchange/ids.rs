//! Identifiers of tickets, signals, lookups, cases and consents.
//!
//! An id is a kind prefix, the creation time in milliseconds (hex, fixed width) and 64 random bits.
//! The time part makes key order chronological, so listings come out oldest first without sorting;
//! the random part makes ids unguessable, so knowing one id tells nothing about another.

use std::cell::RefCell;

use ring::rand::{SecureRandom, SystemRandom};
use time::OffsetDateTime;

use super::ExchangeError;

/// Bytes drawn from the operating system's generator at a time, per thread.
const POOL_BYTES: usize = 4096;

/// Random bytes from the operating system's generator, drawn [`POOL_BYTES`] at a time: one
/// `getrandom` system call per 512 ids instead of one per id. Each byte is handed out once and zeroed as it goes, so a later look at the pool
/// shows no id or salt already made.
struct Pool {
    bytes: [u8; POOL_BYTES],
    /// Bytes at the front already handed out.
    used: usize,
}

thread_local! {
    static POOL: RefCell<Pool> = const {
        RefCell::new(Pool {
            bytes: [0; POOL_BYTES],
            used: POOL_BYTES,
        })
    };
}

/// Fills `out` (at most [`POOL_BYTES`] long) with random bytes from this thread's pool.
fn fill_random(out: &mut [u8]) -> Result<(), ExchangeError> {
    debug_assert!(out.len() <= POOL_BYTES);
    POOL.with_borrow_mut(|pool| {
        if POOL_BYTES - pool.used < out.len() {
            SystemRandom::new()
                .fill(&mut pool.bytes)
                .map_err(|_| ExchangeError::Internal("system random source failed".into()))?;
            pool.used = 0;
        }
        let taken = &mut pool.bytes[pool.used..pool.used + out.len()];
        out.copy_from_slice(taken);
        taken.fill(0);
        pool.used += out.len();
        Ok(())
    })
}

/// A fresh id `<prefix>-<12 hex ms><16 hex random>`.
pub(crate) fn new_id(prefix: &str, now: OffsetDateTime) -> Result<String, ExchangeError> {
    let mut random = [0u8; 8];
    fill_random(&mut random)?;
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
    fill_random(&mut salt)?;
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

    #[test]
    fn pooled_random_bytes_do_not_repeat_across_refills() {
        // Enough salts to empty the pool several times over: no two may be equal, and the bytes
        // handed out are gone from the pool.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..(3 * POOL_BYTES / 32 + 5) {
            let s = salt().expect("salt");
            assert_ne!(s, [0u8; 32]);
            assert!(seen.insert(s), "a salt repeated");
        }
        POOL.with_borrow(|pool| assert!(pool.bytes[..pool.used].iter().all(|b| *b == 0)));
    }
}
