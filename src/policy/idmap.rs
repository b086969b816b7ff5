//! Id → index maps for the decision hot path: every key in one contiguous buffer and a small
//! open-addressing table, so a lookup touches two or three cache lines instead of chasing a
//! separately allocated `String` per entry. The hash is a fast, non-keyed word-at-a-time mix:
//! the keys are policy ids fixed at load time, so hash flooding cannot grow anything.

/// A map from policy ids to dense indices, built once at load.
#[derive(Debug, Clone, Default)]
pub(crate) struct IdMap {
    /// Every key, back to back.
    keys: String,
    /// Per entry: (start, end) in `keys`, and the value.
    entries: Vec<(u32, u32, usize)>,
    /// Open addressing with linear probing: (entry index + 1, the hash's high half), or
    /// (0, 0) for an empty slot; the tag rejects most other keys without reading them.
    slots: Vec<(u32, u32)>,
}

/// Mixes the id's bytes eight at a time (FxHash's multiply-rotate).
#[inline]
fn hash(id: &str) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let bytes = id.as_bytes();
    let mut h = bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Byte by byte: a variable-length copy would be a `memcpy` call per lookup.
        let w = rest
            .iter()
            .enumerate()
            .fold(0u64, |w, (i, &b)| w | u64::from(b) << (8 * i));
        h = (h.rotate_left(5) ^ w).wrapping_mul(K);
    }
    // A multiply only carries low bits upwards, and ids often differ only in their last
    // bytes: finish with MurmurHash3's avalanche so every bit reaches the slot index.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

impl IdMap {
    /// The index of `id`, if present.
    #[inline]
    pub fn get(&self, id: &str) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let h = hash(id);
        let tag = (h >> 32) as u32;
        let mut i = h as usize & mask;
        loop {
            let (e, t) = *self.slots.get(i)?;
            if e == 0 {
                return None;
            }
            if t == tag {
                let &(start, end, value) = self.entries.get(e as usize - 1)?;
                if self.keys.as_bytes().get(start as usize..end as usize) == Some(id.as_bytes()) {
                    return Some(value);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// The key inserted `n`-th: the id of index `n` in maps built from an enumeration.
    #[inline]
    pub fn key(&self, n: usize) -> Option<&str> {
        let &(start, end, _) = self.entries.get(n)?;
        self.keys.get(start as usize..end as usize)
    }

    /// Inserts or replaces a key.
    pub fn insert(&mut self, id: &str, value: usize) {
        if let Some(e) = self.entry_of(id) {
            self.entries[e].2 = value;
            return;
        }
        let start = self.keys.len() as u32;
        self.keys.push_str(id);
        self.entries.push((start, self.keys.len() as u32, value));
        // Keep the table at most half full so probes stay short.
        if self.slots.len() < self.entries.len() * 2 {
            self.rehash((self.entries.len() * 2).next_power_of_two().max(8));
        } else {
            self.place(self.entries.len() - 1);
        }
    }

    fn entry_of(&self, id: &str) -> Option<usize> {
        let mask = self.slots.len().checked_sub(1)?;
        let mut i = hash(id) as usize & mask;
        loop {
            let (e, _) = self.slots[i];
            if e == 0 {
                return None;
            }
            let (start, end, _) = self.entries[e as usize - 1];
            if &self.keys[start as usize..end as usize] == id {
                return Some(e as usize - 1);
            }
            i = (i + 1) & mask;
        }
    }

    fn place(&mut self, entry: usize) {
        let mask = self.slots.len() - 1;
        let (start, end, _) = self.entries[entry];
        let h = hash(&self.keys[start as usize..end as usize]);
        let mut i = h as usize & mask;
        while self.slots[i].0 != 0 {
            i = (i + 1) & mask;
        }
        self.slots[i] = (entry as u32 + 1, (h >> 32) as u32);
    }

    fn rehash(&mut self, size: usize) {
        self.slots = vec![(0, 0); size];
        for e in 0..self.entries.len() {
            self.place(e);
        }
    }
}

impl<S: AsRef<str>> FromIterator<(S, usize)> for IdMap {
    fn from_iter<I: IntoIterator<Item = (S, usize)>>(iter: I) -> IdMap {
        let mut m = IdMap::default();
        for (k, v) in iter {
            m.insert(k.as_ref(), v);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_ids() {
        let mut m = IdMap::default();
        assert_eq!(m.get("pz-gent"), None);
        m.insert("pz-gent", 3);
        assert_eq!(m.get("pz-gent"), Some(3));
        assert_eq!(m.get("pz-aalst"), None);
        m.insert("pz-gent", 4);
        assert_eq!(m.get("pz-gent"), Some(4));
        assert_eq!((m.key(0), m.key(1)), (Some("pz-gent"), None));
    }

    #[test]
    fn finds_every_key_of_a_large_map_and_nothing_else() {
        let m: IdMap = (0..1000)
            .map(|i| (format!("party-{i}"), i))
            .chain([
                (String::new(), 1000),
                ("a-much-longer-id-than-eight".into(), 1001),
            ])
            .collect();
        for i in 0..1000 {
            assert_eq!(m.get(&format!("party-{i}")), Some(i));
            assert_eq!(m.get(&format!("party-{i}x")), None);
        }
        assert_eq!(m.get(""), Some(1000));
        assert_eq!(m.get("a-much-longer-id-than-eight"), Some(1001));
        assert_eq!(m.get("a-much-longer-id-than-eigh"), None);
    }

    #[test]
    fn ids_differing_only_in_their_last_bytes_spread_over_the_slots() {
        let m: IdMap = (0..64).map(|i| (format!("party-{i:02}"), i)).collect();
        let mask = m.slots.len() - 1;
        let mut used: Vec<usize> = (0..64)
            .map(|i| hash(&format!("party-{i:02}")) as usize & mask)
            .collect();
        used.sort_unstable();
        used.dedup();
        // 64 keys in 128 slots: a usable hash puts them in far more than a handful of slots.
        assert!(used.len() > 32, "only {} distinct slots", used.len());
    }
}
