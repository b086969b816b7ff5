//! Search indexes over the log, kept as keys in the log's own tree so that they commit
//! atomically with their entries.
//!
//! Each group commit writes one posting list per field value it contains: the key is
//! `i/<field tag>/<u32 BE length><value><u64 BE first index>` and the value the entry indexes
//! (u64 BE each, ascending) of that commit with that field value. One key per value and commit,
//! rather than per entry, keeps the number of sled writes per entry low (sled copies a node on
//! every insert). Lists of one value sort by index and never overlap, so an AND of filters is a
//! leapfrog join over ordered scans.

use std::collections::BinaryHeap;

use prost::Message;

use super::error::AuditError;
use super::store::{ENTRY_PREFIX, INDEX_PREFIX, key_number, numbered_key};
use crate::proto::v1::{AuditEntry, AuditEvent, Verdict};

const TAG_PARTY: u8 = b'p';
const TAG_SUBJECT: u8 = b's';
const TAG_EXCHANGE: u8 = b'x';
const TAG_AGREEMENT: u8 = b'a';
const TAG_VERDICT: u8 = b'v';
const TAG_EVENT: u8 = b'k';
const TAG_TIME: u8 = b't';

/// A search over the log: every filter that is set must match (AND). Results are entry indexes
/// in ascending order, after `after`, at most `limit` of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// The requesting, the counterpart or a consulted party.
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

/// Time keys sort by signed seconds: flip the sign bit of the two's complement.
fn time_prefix(seconds: i64) -> Vec<u8> {
    let mut k = Vec::with_capacity(INDEX_PREFIX.len() + 2 + 16);
    k.extend_from_slice(INDEX_PREFIX);
    k.push(TAG_TIME);
    k.push(b'/');
    k.extend_from_slice(&((seconds as u64) ^ (1 << 63)).to_be_bytes());
    k
}

fn entry_seconds(entry: &AuditEntry) -> i64 {
    entry.time.as_ref().map(|t| t.seconds).unwrap_or(0)
}

/// The posting-list prefixes `entry` belongs to (without the trailing first-index).
pub fn index_prefixes(entry: &AuditEntry) -> Vec<Vec<u8>> {
    let mut prefixes: Vec<Vec<u8>> = Vec::with_capacity(8);
    // Consulted holders count as named parties: their auditors search for the lookups that hit
    // their references.
    let parties = [&entry.requester_party, &entry.counterpart_party]
        .into_iter()
        .chain(&entry.consulted_parties);
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
    prefixes.push(time_prefix(entry_seconds(entry)));
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

/// Collects the posting lists of one commit: each prefix with its ascending entry indexes.
#[derive(Debug, Default)]
pub struct PostingLists {
    lists: std::collections::BTreeMap<Vec<u8>, Vec<u8>>,
}

impl PostingLists {
    /// Records that entry `index` has every one of `prefixes`; indexes must come in ascending order.
    pub fn add(&mut self, prefixes: &[Vec<u8>], index: u64) {
        for p in prefixes {
            self.lists
                .entry(p.clone())
                .or_default()
                .extend_from_slice(&index.to_be_bytes());
        }
    }

    /// The keys and values to write: `prefix ‖ first index` → the indexes.
    pub fn into_writes(self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> {
        self.lists.into_iter().map(|(mut key, list)| {
            key.extend_from_slice(&list[..8]);
            (key, list)
        })
    }
}

/// The indexes of a posting-list value.
fn postings(value: &[u8]) -> impl DoubleEndedIterator<Item = u64> + '_ {
    value.chunks_exact(8).map(|c| {
        let mut b = [0u8; 8];
        b.copy_from_slice(c);
        u64::from_be_bytes(b)
    })
}

/// Runs a search over the log tree.
pub fn search(tree: &sled::Tree, q: &SearchQuery) -> Result<Vec<u64>, AuditError> {
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
    let timed = q.time_from.is_some() || q.time_until.is_some();
    // With no field filter, every entry is a candidate: walk the entries themselves.
    let all_entries = prefixes.is_empty();
    if all_entries {
        if timed {
            return search_time_only(tree, q, start, limit);
        }
        prefixes.push(ENTRY_PREFIX.to_vec());
    }
    let mut out = Vec::new();
    let mut candidate = start;
    'join: loop {
        // Leapfrog: raise the candidate until every filter has it.
        let mut agreed = 0;
        let mut i = 0;
        while agreed < prefixes.len() {
            let found = if all_entries {
                seek_entry(tree, candidate)?
            } else {
                seek(tree, &prefixes[i], candidate)?
            };
            let Some(found) = found else {
                break 'join;
            };
            if found == candidate {
                agreed += 1;
            } else {
                candidate = found;
                agreed = 1;
            }
            i = (i + 1) % prefixes.len();
        }
        if !timed || time_matches(tree, candidate, q)? {
            out.push(candidate);
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

/// The smallest stored entry index ≥ `from`.
fn seek_entry(tree: &sled::Tree, from: u64) -> Result<Option<u64>, AuditError> {
    let lo = numbered_key(ENTRY_PREFIX, from);
    let hi = numbered_key(ENTRY_PREFIX, u64::MAX);
    match tree.range(lo..=hi).next() {
        None => Ok(None),
        Some(kv) => Ok(key_number(&kv?.0)),
    }
}

/// The smallest index ≥ `from` in the posting lists under `prefix`.
fn seek(tree: &sled::Tree, prefix: &[u8], from: u64) -> Result<Option<u64>, AuditError> {
    let first = numbered_key(prefix, 0);
    let at = numbered_key(prefix, from);
    let last = numbered_key(prefix, u64::MAX);
    // The list starting at or before `from` may still hold indexes ≥ `from`.
    if let Some(kv) = tree.range(first..=at.clone()).next_back() {
        let (_, v) = kv?;
        if let Some(found) = postings(&v).find(|&i| i >= from) {
            return Ok(Some(found));
        }
    }
    // Otherwise the first index of the next list.
    match tree.range(at..=last).next() {
        None => Ok(None),
        Some(kv) => {
            let (_, v) = kv?;
            Ok(postings(&v).find(|&i| i >= from))
        }
    }
}

fn time_matches(tree: &sled::Tree, index: u64, q: &SearchQuery) -> Result<bool, AuditError> {
    let Some(bytes) = tree.get(numbered_key(ENTRY_PREFIX, index))? else {
        return Ok(false);
    };
    let entry = AuditEntry::decode(bytes.as_ref())
        .map_err(|source| AuditError::Decode { index, source })?;
    let t = entry_seconds(&entry);
    Ok(q.time_from.is_none_or(|f| t >= f) && q.time_until.is_none_or(|u| t < u))
}

/// Only a time range: scan the time index and keep the `limit` smallest indexes.
fn search_time_only(
    tree: &sled::Tree,
    q: &SearchQuery,
    start: u64,
    limit: usize,
) -> Result<Vec<u64>, AuditError> {
    let lo = time_prefix(q.time_from.unwrap_or(i64::MIN));
    let hi = time_prefix(q.time_until.unwrap_or(i64::MAX));
    let mut best: BinaryHeap<u64> = BinaryHeap::with_capacity(limit + 1);
    let range = if q.time_until.is_some() {
        tree.range(lo..hi)
    } else {
        tree.range(lo..)
    };
    let time_scope = time_prefix(0);
    for kv in range {
        let (k, v) = kv?;
        if !k.starts_with(&time_scope[..INDEX_PREFIX.len() + 2]) {
            break;
        }
        for index in postings(&v) {
            if index < start {
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
    Ok(best.into_sorted_vec())
}
