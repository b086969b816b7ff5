//! Id → index maps with a fast, non-keyed hash (FNV-1a): the keys are policy ids fixed at
//! load time, so hash flooding cannot grow anything, and SipHash dominated decision time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// The FNV-1a 64-bit hasher.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A map from policy ids to dense indices.
pub(crate) type IdMap = HashMap<String, usize, BuildHasherDefault<Fnv>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_ids() {
        let mut m = IdMap::default();
        m.insert("pz-gent".to_owned(), 3);
        assert_eq!(m.get("pz-gent"), Some(&3));
        assert_eq!(m.get("pz-aalst"), None);
    }
}
