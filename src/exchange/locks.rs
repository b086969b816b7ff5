//! Striped locks that serialise state changes per key (ticket, signal, case, consent, reference).
//!
//! A use case that reads a record, decides and appends holds the key's stripe across the whole
//! sequence, so two concurrent `Respond`s on one ticket can never both succeed. Striping bounds the
//! memory to a fixed number of mutexes; unrelated keys rarely share a stripe.

use std::hash::{BuildHasher, Hash};

use tokio::sync::{Mutex, MutexGuard};

/// Number of stripes; a power of two well above the expected concurrency.
const STRIPES: usize = 256;

/// A fixed set of async mutexes indexed by key hash.
pub(crate) struct Stripes {
    locks: Vec<Mutex<()>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Stripes {
    pub(crate) fn new() -> Self {
        Self {
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    /// Locks the stripe of `key`; held until the guard drops (across the audit append).
    pub(crate) async fn lock<K: Hash + ?Sized>(&self, key: &K) -> MutexGuard<'_, ()> {
        let index = (self.hasher.hash_one(key) as usize) % STRIPES;
        self.locks[index].lock().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn same_key_is_exclusive() {
        let stripes = Stripes::new();
        let guard = stripes.lock("t-1").await;
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), stripes.lock("t-1"))
                .await
                .is_err(),
            "a second lock on the same key must wait"
        );
        drop(guard);
        let _again = stripes.lock("t-1").await;
    }
}
