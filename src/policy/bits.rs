//! A small fixed-size bit set over dense indices (parties, purposes).

/// A set of dense indices.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    /// An empty set able to hold `n` indices.
    pub fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64).max(1)])
    }

    /// Adds an index.
    pub fn insert(&mut self, i: usize) {
        if let Some(w) = self.0.get_mut(i / 64) {
            *w |= 1 << (i % 64);
        }
    }

    /// Whether the index is in the set.
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.0.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0)
    }

    /// Whether the sets share an index.
    pub fn intersects(&self, other: &Bits) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }

    /// The indices in both sets, ascending, without building the intersection.
    pub fn iter_and<'a>(&'a self, other: &'a Bits) -> impl Iterator<Item = usize> + 'a {
        self.0
            .iter()
            .zip(&other.0)
            .enumerate()
            .flat_map(|(wi, (a, b))| Ones(a & b).map(move |i| wi * 64 + i))
    }

    /// The indices in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0
            .iter()
            .enumerate()
            .flat_map(|(wi, w)| Ones(*w).map(move |i| wi * 64 + i))
    }
}

/// The set bits of one word, lowest first.
struct Ones(u64);

impl Iterator for Ones {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        if self.0 == 0 {
            return None;
        }
        let i = self.0.trailing_zeros() as usize;
        self.0 &= self.0 - 1;
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut a = Bits::new(130);
        a.insert(3);
        a.insert(129);
        let mut b = Bits::new(130);
        b.insert(129);
        assert!(a.contains(129) && !a.contains(4));
        assert!(a.intersects(&b));
        assert_eq!(a.iter_and(&b).collect::<Vec<_>>(), vec![129]);
        assert_eq!(a.iter().collect::<Vec<_>>(), vec![3, 129]);
    }
}
