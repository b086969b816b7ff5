//! Search indexes over the log, in memory.
//!
//! The index is derived data: it is rebuilt from the entries when the log opens (about a second
//! per million entries) and extended by the writer after each durable commit, so it can never
//! disagree with the log and costs no storage writes on the append path. Each field value
//! (`<field tag>/<u32 BE length><value>`, see [`index_prefixes`]) is hashed with a per-process
//! random key to 64 bits, and maps to the ascending indexes of the entries that have it; an AND of
//! filters is a leapfrog join over those lists. Every result is checked against its decoded entry
//! before it is returned, so a hash collision can cost a little time but never a wrong result.
//! Entry times are kept per entry and bucketed by minute for time-range searches.
//!
//! Indexes are kept as u32: the writer refuses to grow a log past 2^32 entries.

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Arc;

use super::consulted::ConsultedKey;
use super::error::AuditError;
use crate::proto::v1::{AuditEntry, AuditEvent, Verdict};

/// Index keys start with this, so that they cannot be confused with any other hashed bytes.
const INDEX_PREFIX: &[u8] = b"i/";

const TAG_PARTY: u8 = b'p';
const TAG_SUBJECT: u8 = b's';
const TAG_EXCHANGE: u8 = b'x';
const TAG_AGREEMENT: u8 = b'a';
const TAG_VERDICT: u8 = b'v';
const TAG_EVENT: u8 = b'k';

/// A search over the log: every filter that is set must match (AND). Results are entry indexes
/// in ascending order, after `after`, at most `limit` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// The requesting, the counterpart or a consulted party (consulted parties are found through
    /// the gateway's key, see [`super::consulted`]).
    pub party: Option<String>,
    /// The subject pseudonym (of the event's subject or one of its subjects).
    pub subject_pseudonym: Option<Vec<u8>>,
    /// The exchange id.
    pub exchange_id: Option<String>,
    /// An agreement of one of the matched rules.
    pub agreement: Option<String>,
    /// The decision.
    pub verdict: Option<Verdict>,
    /// The event kind.
    pub event: Option<AuditEvent>,
    /// Entries at or after this time (Unix seconds).
    pub time_from: Option<i64>,
    /// Entries strictly before this time (Unix seconds).
    pub time_until: Option<i64>,
    /// Resume token: only indexes strictly greater than this one.
    pub after: Option<u64>,
    /// The most indexes to return; 0 means 100.
    pub limit: usize,
}

/// The default and the maximum number of results of one search.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 10_000;

fn field_prefix(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(INDEX_PREFIX.len() + 6 + value.len() + 8);
    k.extend_from_slice(INDEX_PREFIX);
    k.push(tag);
    k.push(b'/');
    // Values longer than u32::MAX cannot occur in a protobuf message under 4 GiB.
    k.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
    k.extend_from_slice(value);
    k
}

fn entry_seconds(entry: &AuditEntry) -> i64 {
    entry.time.as_ref().map(|t| t.seconds).unwrap_or(0)
}

/// The posting-list prefixes `entry` belongs to (without the trailing first-index), counting
/// `consulted` (the holders a lookup consulted, opened from its commitments) as named parties:
/// their auditors search for the lookups that hit their references.
pub fn index_prefixes(entry: &AuditEntry, consulted: &[String]) -> Vec<Vec<u8>> {
    let mut prefixes: Vec<Vec<u8>> = Vec::with_capacity(8);
    let parties = [&entry.requester_party, &entry.counterpart_party]
        .into_iter()
        .chain(consulted);
    for party in parties {
        if !party.is_empty() {
            prefixes.push(field_prefix(TAG_PARTY, party.as_bytes()));
        }
    }
    // Every subject of a multi-subject event (a case) is found by a subject search.
    let subjects = std::iter::once(&entry.subject_pseudonym).chain(&entry.subject_pseudonyms);
    for subject in subjects {
        if !subject.is_empty() {
            prefixes.push(field_prefix(TAG_SUBJECT, subject));
        }
    }
    if !entry.exchange_id.is_empty() {
        prefixes.push(field_prefix(TAG_EXCHANGE, entry.exchange_id.as_bytes()));
    }
    for rule in &entry.rules {
        if !rule.agreement.is_empty() {
            prefixes.push(field_prefix(TAG_AGREEMENT, rule.agreement.as_bytes()));
        }
    }
    prefixes.push(field_prefix(TAG_VERDICT, &entry.verdict.to_be_bytes()));
    prefixes.push(field_prefix(TAG_EVENT, &entry.event.to_be_bytes()));
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

/// The search keys of one entry, computed off the writer (on the appending task).
#[derive(Debug, Clone, Default)]
pub struct IndexKeys {
    fields: Vec<u64>,
    seconds: i64,
}

/// Hashes field keys with the index's random key, and opens the sealed lists of consulted
/// holders when it has the gateway's key; cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct KeyHasher {
    state: RandomState,
    consulted: Option<Arc<ConsultedKey>>,
}

impl KeyHasher {
    fn hash(&self, prefix: &[u8]) -> u64 {
        self.state.hash_one(prefix)
    }

    /// The consulted parties `entry` commits to, as far as this hasher can open them.
    fn consulted(&self, entry: &AuditEntry) -> Vec<String> {
        match &self.consulted {
            Some(key) => key.open(entry),
            None => Vec::new(),
        }
    }

    /// The search keys of `entry`, whose consulted parties are opened with the gateway's key.
    pub fn keys_of(&self, entry: &AuditEntry) -> IndexKeys {
        let consulted = self.consulted(entry);
        self.keys_with_consulted(entry, &consulted)
    }

    /// The search keys of `entry`, whose consulted parties the caller names (it made the
    /// commitments, so nothing needs opening).
    pub fn keys_with_consulted(&self, entry: &AuditEntry, consulted: &[String]) -> IndexKeys {
        IndexKeys {
            fields: index_prefixes(entry, consulted)
                .iter()
                .map(|p| self.hash(p))
                .collect(),
            seconds: entry_seconds(entry),
        }
    }

    /// Whether `entry` has every one of `prefixes`: the exact check behind a hashed match.
    pub fn entry_has(&self, entry: &AuditEntry, prefixes: &[Vec<u8>]) -> bool {
        let own = index_prefixes(entry, &self.consulted(entry));
        prefixes.iter().all(|p| own.binary_search(p).is_ok())
    }
}

/// A hasher for keys that are already hashes.
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed here; fold anything else in, for completeness.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
    fn write_u32(&mut self, n: u32) {
        // Spread the 32 bits over the whole hash: the table takes its tag from the top bits.
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The key of a field value in [`MemIndex::single`]: the low 32 bits of its 64-bit key.
fn single_key(key: u64) -> u32 {
    key as u32
}

/// Says whether the stored entry at an index has every one of the given field prefixes.
pub type Confirm<'a> = dyn FnMut(u64, &[Vec<u8>]) -> Result<bool, AuditError> + 'a;

/// The in-memory search index of a log; see the module documentation.
#[derive(Debug, Default)]
pub struct MemIndex {
    hasher: KeyHasher,
    /// The first entry of each field value, by the low 32 bits of the value's key (see
    /// [`single_key`]): 8 bytes a value (most are exchange ids, seen once). A value's first entry
    /// stays here when the value moves to `multi`, so that another value whose key has the same
    /// low bits still finds its own first entry; such a shared slot only adds a candidate that
    /// the confirmation of a search rejects.
    single: HashMap<u32, u32, BuildHasherDefault<Prehashed>>,
    /// Field values seen in several entries, with their ascending entry indexes.
    multi: HashMap<u64, Vec<u32>, BuildHasherDefault<Prehashed>>,
    /// The time (Unix seconds) of entry n, as u32: 4 bytes an entry. The gateway's clock stamps
    /// entries, so they fall in 1970–2106; a time outside is clamped to that range.
    times: Vec<u32>,
    /// Entry indexes by minute, ascending within each minute.
    minutes: BTreeMap<i64, Vec<u32>>,
}

impl MemIndex {
    /// An empty index with a fresh random key.
    pub fn new() -> MemIndex {
        MemIndex::default()
    }

    /// An empty index that finds consulted parties with the gateway's key.
    pub fn with_consulted_key(key: Option<Arc<ConsultedKey>>) -> MemIndex {
        let mut index = MemIndex::default();
        index.hasher.consulted = key;
        index
    }

    /// The hasher that makes this index's keys.
    pub fn hasher(&self) -> KeyHasher {
        self.hasher.clone()
    }

    /// The number of entries indexed.
    pub fn len(&self) -> u64 {
        self.times.len() as u64
    }

    /// Whether no entry is indexed.
    pub fn is_empty(&self) -> bool {
        self.times.is_empty()
    }

    /// Indexes the next entry, whose index is [`MemIndex::len`].
    pub fn add(&mut self, keys: &IndexKeys) -> Result<(), AuditError> {
        let index = u32::try_from(self.times.len())
            .map_err(|_| AuditError::Internal("the search index holds at most 2^32 entries"))?;
        for k in &keys.fields {
            if let Some(list) = self.multi.get_mut(k) {
                // index_prefixes deduplicates, but two prefixes may hash alike: keep lists strict.
                if list.last() != Some(&index) {
                    list.push(index);
                }
            } else if let Some(&first) = self.single.get(&single_key(*k)) {
                // The first entry with these low bits: this value's first entry, or another
                // value's (then one more candidate for the confirmation to reject).
                let list = if first == index {
                    vec![first]
                } else {
                    vec![first, index]
                };
                self.multi.insert(*k, list);
            } else {
                self.single.insert(single_key(*k), index);
            }
        }
        self.times
            .push(u32::try_from(keys.seconds.max(0)).unwrap_or(u32::MAX));
        self.minutes
            .entry(keys.seconds.div_euclid(60))
            .or_default()
            .push(index);
        Ok(())
    }

    /// The candidate entries of the field value with key `k`, ascending: a superset of the
    /// entries that have it.
    fn postings(&self, k: u64) -> Option<&[u32]> {
        match self.multi.get(&k) {
            Some(l) => Some(l.as_slice()),
            None => self.single.get(&single_key(k)).map(std::slice::from_ref),
        }
    }

    /// Indexes `entry` as the next one.
    pub fn add_entry(&mut self, entry: &AuditEntry) -> Result<(), AuditError> {
        let keys = self.hasher.keys_of(entry);
        self.add(&keys)
    }

    /// Runs a search; `confirm(index, field_prefixes)` must say whether the stored entry at
    /// `index` really has every one of the prefixes (it guards against hash collisions).
    pub fn search(
        &self,
        q: &SearchQuery,
        confirm: &mut Confirm<'_>,
    ) -> Result<Vec<u64>, AuditError> {
        let limit = match q.limit {
            0 => DEFAULT_LIMIT,
            n => n.min(MAX_LIMIT),
        };
        let start = match q.after {
            None => 0,
            Some(a) => match a.checked_add(1) {
                Some(s) => s,
                None => return Ok(Vec::new()),
            },
        };
        let prefixes = query_prefixes(q);
        let timed = q.time_from.is_some() || q.time_until.is_some();
        if prefixes.is_empty() {
            if timed {
                return Ok(self.search_time_only(q, start, limit));
            }
            return Ok((start..self.len().max(start)).take(limit).collect());
        }
        let mut lists: Vec<&[u32]> = Vec::with_capacity(prefixes.len());
        for p in &prefixes {
            let found = self.postings(self.hasher.hash(p));
            match found {
                Some(l) => lists.push(l),
                None => return Ok(Vec::new()),
            }
        }
        // The shortest list leads the join.
        lists.sort_by_key(|l| l.len());
        let mut out = Vec::new();
        let Ok(mut candidate) = u32::try_from(start) else {
            return Ok(out);
        };
        'join: loop {
            // Leapfrog: raise the candidate until every list has it.
            let mut agreed = 0;
            let mut i = 0;
            while agreed < lists.len() {
                let Some(found) = seek(lists[i], candidate) else {
                    break 'join;
                };
                if found == candidate {
                    agreed += 1;
                } else {
                    candidate = found;
                    agreed = 1;
                }
                i = (i + 1) % lists.len();
            }
            let index = u64::from(candidate);
            if self.time_matches(index, q) && confirm(index, &prefixes)? {
                out.push(index);
                if out.len() == limit {
                    break;
                }
            }
            candidate = match candidate.checked_add(1) {
                Some(c) => c,
                None => break,
            };
        }
        Ok(out)
    }

    fn time_matches(&self, index: u64, q: &SearchQuery) -> bool {
        let Some(t) = usize::try_from(index)
            .ok()
            .and_then(|i| self.times.get(i))
            .map(|&t| i64::from(t))
        else {
            return false;
        };
        q.time_from.is_none_or(|f| t >= f) && q.time_until.is_none_or(|u| t < u)
    }

    /// Only a time range: walk the minutes it covers and keep the `limit` smallest indexes.
    fn search_time_only(&self, q: &SearchQuery, start: u64, limit: usize) -> Vec<u64> {
        let lo = q.time_from.unwrap_or(i64::MIN).div_euclid(60);
        let hi = q.time_until.map_or(i64::MAX, |u| u.div_euclid(60));
        let mut best: BinaryHeap<u64> = BinaryHeap::with_capacity(limit + 1);
        for list in self.minutes.range(lo..=hi).map(|(_, l)| l) {
            for &index in list {
                let index = u64::from(index);
                if index < start || !self.time_matches(index, q) {
                    continue;
                }
                if best.len() < limit {
                    best.push(index);
                } else if best.peek().is_some_and(|&top| index < top) {
                    best.pop();
                    best.push(index);
                }
            }
        }
        best.into_sorted_vec()
    }
}

/// The smallest index ≥ `from` in an ascending list.
fn seek(list: &[u32], from: u32) -> Option<u32> {
    let at = list.partition_point(|&i| i < from);
    list.get(at).copied()
}

/// The field prefixes a query asks for (each must be among the entry's [`index_prefixes`]).
fn query_prefixes(q: &SearchQuery) -> Vec<Vec<u8>> {
    let mut prefixes: Vec<Vec<u8>> = Vec::new();
    if let Some(p) = &q.party {
        prefixes.push(field_prefix(TAG_PARTY, p.as_bytes()));
    }
    if let Some(s) = &q.subject_pseudonym {
        prefixes.push(field_prefix(TAG_SUBJECT, s));
    }
    if let Some(x) = &q.exchange_id {
        prefixes.push(field_prefix(TAG_EXCHANGE, x.as_bytes()));
    }
    if let Some(a) = &q.agreement {
        prefixes.push(field_prefix(TAG_AGREEMENT, a.as_bytes()));
    }
    if let Some(v) = q.verdict {
        prefixes.push(field_prefix(TAG_VERDICT, &(v as i32).to_be_bytes()));
    }
    if let Some(e) = q.event {
        prefixes.push(field_prefix(TAG_EVENT, &(e as i32).to_be_bytes()));
    }
    prefixes
}

/// Whether `entry` has every one of `prefixes`, naming no consulted party.
#[cfg(test)]
fn entry_has(entry: &AuditEntry, prefixes: &[Vec<u8>]) -> bool {
    KeyHasher::default().entry_has(entry, prefixes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::v1::RuleRef;

    fn entry(i: u32) -> AuditEntry {
        AuditEntry {
            event: AuditEvent::Exchange as i32,
            requester_party: format!("p{}", i % 3),
            exchange_id: format!("x{}", i / 2),
            verdict: if i.is_multiple_of(5) {
                Verdict::Deny
            } else {
                Verdict::Allow
            } as i32,
            rules: vec![RuleRef {
                agreement: format!("a{}", i % 2),
                ..Default::default()
            }],
            time: Some(prost_types::Timestamp {
                seconds: 1_000 + i64::from(i) * 7,
                nanos: 0,
            }),
            ..Default::default()
        }
    }

    #[test]
    fn values_whose_keys_share_their_low_bits_each_keep_their_entries() {
        let mut index = MemIndex::new();
        let (a, b, c) = (0x1_0000_0005_u64, 0x2_0000_0005_u64, 0x3_0000_0009_u64);
        let add = |index: &mut MemIndex, fields: Vec<u64>| {
            index
                .add(&IndexKeys { fields, seconds: 0 })
                .expect("indexed")
        };
        add(&mut index, vec![a]); // 0
        add(&mut index, vec![b, c]); // 1: b shares a's low bits
        add(&mut index, vec![a]); // 2
        add(&mut index, vec![c]); // 3
        let has = |k: u64, i: u32| index.postings(k).is_some_and(|l| l.contains(&i));
        assert!(has(a, 0) && has(a, 2));
        assert!(has(b, 1));
        assert!(has(c, 1) && has(c, 3));
        // Every list is ascending and strict, as the leapfrog join needs.
        for k in [a, b, c] {
            let l = index.postings(k).expect("listed");
            assert!(l.windows(2).all(|w| w[0] < w[1]), "{k:x}: {l:?}");
        }
        // A value never indexed may get candidates (a shared slot), never a wrong result: the
        // search confirms each one against its entry.
        assert!(index.postings(0x4_0000_0077).is_none());
    }

    fn naive(entries: &[AuditEntry], q: &SearchQuery) -> Vec<u64> {
        let prefixes = query_prefixes(q);
        let start = q.after.map_or(0, |a| a + 1);
        let limit = if q.limit == 0 { DEFAULT_LIMIT } else { q.limit };
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i as u64, e))
            .filter(|(i, e)| {
                let t = entry_seconds(e);
                *i >= start
                    && entry_has(e, &prefixes)
                    && q.time_from.is_none_or(|f| t >= f)
                    && q.time_until.is_none_or(|u| t < u)
            })
            .map(|(i, _)| i)
            .take(limit)
            .collect()
    }

    #[test]
    fn searches_agree_with_a_scan() {
        let entries: Vec<AuditEntry> = (0..500).map(entry).collect();
        let mut index = MemIndex::new();
        for e in &entries {
            index.add_entry(e).unwrap();
        }
        let mut confirm = |i: u64, p: &[Vec<u8>]| Ok(entry_has(&entries[i as usize], p));
        let queries = [
            SearchQuery::default(),
            SearchQuery {
                party: Some("p1".into()),
                ..Default::default()
            },
            SearchQuery {
                party: Some("p2".into()),
                verdict: Some(Verdict::Deny),
                agreement: Some("a1".into()),
                limit: 7,
                after: Some(40),
                ..Default::default()
            },
            SearchQuery {
                exchange_id: Some("x17".into()),
                ..Default::default()
            },
            SearchQuery {
                time_from: Some(1_700),
                time_until: Some(2_300),
                limit: 1000,
                ..Default::default()
            },
            SearchQuery {
                party: Some("p0".into()),
                time_from: Some(2_000),
                ..Default::default()
            },
            SearchQuery {
                party: Some("nobody".into()),
                ..Default::default()
            },
        ];
        for q in &queries {
            assert_eq!(
                index.search(q, &mut confirm).unwrap(),
                naive(&entries, q),
                "{q:?}"
            );
        }
    }

    #[test]
    fn a_hash_match_that_the_entry_denies_is_not_returned() {
        let entries: Vec<AuditEntry> = (0..10).map(entry).collect();
        let mut index = MemIndex::new();
        for e in &entries {
            index.add_entry(e).unwrap();
        }
        let q = SearchQuery {
            party: Some("p1".into()),
            ..Default::default()
        };
        // As if every stored entry said otherwise (a collision): nothing comes back.
        let found = index.search(&q, &mut |_, _| Ok(false)).unwrap();
        assert!(found.is_empty());
    }
}
