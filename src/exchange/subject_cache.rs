//! What the gateway read about recently seen subjects, kept in memory between changes: their
//! grounds (cases, consents) and their references in the directory.
//!
//! Every exchange decides on the subject's grounds, and every lookup reads its references.
//! Reading them from sled and decoding the records on every request cost more than the decision
//! itself (a lookup's prefix scan of the references, about 7 µs, was 4% of its CPU), and both
//! change rarely compared with how often they are read. A cached value is tagged with the
//! generation it was read in; every committed (or failed) change of what the cache holds starts
//! a new generation, so a stale value is never used.
//!
//! Ordering: a reader takes the generation *before* reading the store, and a writer bumps it
//! *after* its append returned. A read that overlaps a write is therefore tagged with the old
//! generation and is discarded at the next lookup, whichever state it saw.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Most subjects kept; when full the cache starts over, which bounds memory under any traffic.
const MAX_SUBJECTS: usize = 4_096;

/// Values of type `T` by subject pseudonym (hex), valid for one generation.
pub(crate) struct SubjectCache<T> {
    generation: AtomicU64,
    subjects: Mutex<HashMap<String, (u64, Arc<T>)>>,
}

impl<T> Default for SubjectCache<T> {
    fn default() -> Self {
        Self {
            generation: AtomicU64::new(0),
            subjects: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> SubjectCache<T> {
    /// The generation to tag a read with; take it before reading the store.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cached value of `subject`, if read in the current generation.
    pub(crate) fn get(&self, subject: &str) -> Option<Arc<T>> {
        let current = self.generation();
        let subjects = self.subjects.lock().unwrap_or_else(|e| e.into_inner());
        subjects
            .get(subject)
            .filter(|(generation, _)| *generation == current)
            .map(|(_, value)| value.clone())
    }

    /// Keeps `value` of `subject`, read from the store in `generation`.
    pub(crate) fn insert(&self, subject: &str, generation: u64, value: Arc<T>) {
        if generation != self.generation() {
            return;
        }
        let mut subjects = self.subjects.lock().unwrap_or_else(|e| e.into_inner());
        if subjects.len() >= MAX_SUBJECTS && !subjects.contains_key(subject) {
            subjects.clear();
        }
        subjects.insert(subject.to_owned(), (generation, value));
    }

    /// Ends the current generation: call after every append that changes what the cache holds,
    /// whether it succeeded or not.
    pub(crate) fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Grounds;

    type GroundsCache = SubjectCache<Grounds>;

    #[test]
    fn a_change_hides_values_read_before_it() {
        let cache = GroundsCache::default();
        let before = cache.generation();
        cache.insert("ab", before, Arc::new(Grounds::default()));
        assert!(cache.get("ab").is_some());
        assert!(cache.get("cd").is_none());

        // A read that began before a change is neither served nor kept.
        let overlapping = cache.generation();
        cache.invalidate();
        assert!(cache.get("ab").is_none());
        cache.insert("ab", overlapping, Arc::new(Grounds::default()));
        assert!(cache.get("ab").is_none());

        cache.insert("ab", cache.generation(), Arc::new(Grounds::default()));
        assert!(cache.get("ab").is_some());
    }

    #[test]
    fn memory_stays_bounded() {
        let cache = GroundsCache::default();
        let generation = cache.generation();
        for i in 0..(MAX_SUBJECTS + 10) {
            cache.insert(&format!("s{i}"), generation, Arc::new(Grounds::default()));
        }
        let held = cache.subjects.lock().expect("not poisoned").len();
        assert!(held <= MAX_SUBJECTS, "{held}");
        assert!(cache.get(&format!("s{}", MAX_SUBJECTS + 9)).is_some());
    }
}
