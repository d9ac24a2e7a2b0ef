//! An order-statistic multiset of finite numbers (a treap with subtree sizes and sums): insert, remove one instance,
//! the k-th smallest, and the count and sum below a value, each O(log n) expected. `robust_zscore` keeps its window's median and
//! median absolute deviation with it.

/// Index of a node in the arena; `NIL` is none.
type Link = u32;
const NIL: Link = u32::MAX;

#[derive(Debug, Clone)]
struct Node {
    key: f64,
    priority: u64,
    left: Link,
    right: Link,
    size: u32,
    /// Sum of the keys in this subtree, recomputed from the children on every change (so it never drifts).
    sum: f64,
}

/// A multiset of finite numbers ordered for rank queries.
#[derive(Debug, Clone)]
pub(crate) struct OrderStats {
    nodes: Vec<Node>,
    free: Vec<Link>,
    root: Link,
    /// State of the xorshift generator that draws priorities: deterministic, so runs are repeatable.
    seed: u64,
}

impl Default for OrderStats {
    fn default() -> Self {
        Self { nodes: Vec::new(), free: Vec::new(), root: NIL, seed: 0x9E37_79B9_7F4A_7C15 }
    }
}

impl OrderStats {
    /// How many numbers the set holds.
    pub(crate) fn len(&self) -> usize {
        self.size(self.root) as usize
    }

    /// Adds one instance of `key`.
    pub(crate) fn insert(&mut self, key: f64) {
        let node = self.alloc(key);
        let (left, right) = self.split(self.root, key);
        let left = self.merge(left, node);
        self.root = self.merge(left, right);
    }

    /// Removes one instance of `key`; whether there was one.
    pub(crate) fn remove(&mut self, key: f64) -> bool {
        let (less, rest) = self.split(self.root, key);
        let (equal, greater) = self.split(rest, key.next_up());
        let found = equal != NIL;
        let equal = if found {
            let (l, r) = (self.nodes[equal as usize].left, self.nodes[equal as usize].right);
            self.free.push(equal);
            self.merge(l, r)
        } else {
            equal
        };
        let rest = self.merge(equal, greater);
        self.root = self.merge(less, rest);
        found
    }

    /// The `k`-th smallest number (0-based); `None` when `k >= len`.
    pub(crate) fn kth(&self, mut k: usize) -> Option<f64> {
        let mut t = self.root;
        while t != NIL {
            let node = &self.nodes[t as usize];
            let left = self.size(node.left) as usize;
            if k < left {
                t = node.left;
            } else if k == left {
                return Some(node.key);
            } else {
                k -= left + 1;
                t = node.right;
            }
        }
        None
    }

    /// How many numbers are strictly less than `key`.
    pub(crate) fn count_less(&self, key: f64) -> usize {
        self.below(key).0
    }

    /// The count and the sum of the numbers strictly less than `key`.
    pub(crate) fn below(&self, key: f64) -> (usize, f64) {
        let (mut t, mut count, mut sum) = (self.root, 0, 0.0);
        while t != NIL {
            let node = &self.nodes[t as usize];
            if node.key < key {
                count += self.size(node.left) as usize + 1;
                sum += self.sum(node.left) + node.key;
                t = node.right;
            } else {
                t = node.left;
            }
        }
        (count, sum)
    }

    /// The sum of every number in the set.
    pub(crate) fn total(&self) -> f64 {
        self.sum(self.root)
    }

    fn sum(&self, t: Link) -> f64 {
        if t == NIL { 0.0 } else { self.nodes[t as usize].sum }
    }

    fn size(&self, t: Link) -> u32 {
        if t == NIL { 0 } else { self.nodes[t as usize].size }
    }

    fn update(&mut self, t: Link) {
        let (l, r) = (self.nodes[t as usize].left, self.nodes[t as usize].right);
        self.nodes[t as usize].size = 1 + self.size(l) + self.size(r);
        self.nodes[t as usize].sum = self.nodes[t as usize].key + self.sum(l) + self.sum(r);
    }

    fn alloc(&mut self, key: f64) -> Link {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let node = Node { key, priority: self.seed, left: NIL, right: NIL, size: 1, sum: key };
        match self.free.pop() {
            Some(t) => {
                self.nodes[t as usize] = node;
                t
            }
            None => {
                self.nodes.push(node);
                (self.nodes.len() - 1) as Link
            }
        }
    }

    /// Splits `t` into keys `< key` and keys `>= key`.
    fn split(&mut self, t: Link, key: f64) -> (Link, Link) {
        if t == NIL {
            return (NIL, NIL);
        }
        if self.nodes[t as usize].key < key {
            let (l, r) = self.split(self.nodes[t as usize].right, key);
            self.nodes[t as usize].right = l;
            self.update(t);
            (t, r)
        } else {
            let (l, r) = self.split(self.nodes[t as usize].left, key);
            self.nodes[t as usize].left = r;
            self.update(t);
            (l, t)
        }
    }

    /// Joins two treaps whose keys are ordered (every key of `a` ≤ every key of `b`).
    fn merge(&mut self, a: Link, b: Link) -> Link {
        if a == NIL {
            return b;
        }
        if b == NIL {
            return a;
        }
        if self.nodes[a as usize].priority > self.nodes[b as usize].priority {
            let right = self.merge(self.nodes[a as usize].right, b);
            self.nodes[a as usize].right = right;
            self.update(a);
            a
        } else {
            let left = self.merge(a, self.nodes[b as usize].left);
            self.nodes[b as usize].left = left;
            self.update(b);
            b
        }
    }
}

/// The `k`-th smallest (0-based) of the union of two ascending sequences given by accessors, in O(log) accesses.
pub(crate) fn kth_of_two(
    k: usize,
    a_len: usize,
    a: impl Fn(usize) -> f64,
    b_len: usize,
    b: impl Fn(usize) -> f64,
) -> f64 {
    // Take i from `a` and k + 1 - i from `b`, with the largest taken element the answer.
    let (mut lo, mut hi) = ((k + 1).saturating_sub(b_len), (k + 1).min(a_len));
    while lo < hi {
        let i = (lo + hi) / 2;
        let j = k + 1 - i;
        if j > 0 && a(i) < b(j - 1) { lo = i + 1 } else { hi = i }
    }
    let (i, j) = (lo, k + 1 - lo);
    match (i > 0, j > 0) {
        (true, true) => a(i - 1).max(b(j - 1)),
        (true, false) => a(i - 1),
        _ => b(j - 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agrees_with_a_sorted_vector() {
        let mut set = OrderStats::default();
        let mut reference: Vec<f64> = Vec::new();
        let mut x: u64 = 12345;
        for step in 0..5_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let value = (x % 50) as f64 - 25.0;
            if step % 3 == 2 && !reference.is_empty() {
                let victim = reference[(x as usize / 7) % reference.len()];
                assert!(set.remove(victim));
                let at = reference.iter().position(|v| *v == victim).unwrap();
                reference.remove(at);
            } else {
                set.insert(value);
                reference.push(value);
            }
            reference.sort_by(f64::total_cmp);
            assert_eq!(set.len(), reference.len());
            let k = (x as usize) % reference.len().max(1);
            assert_eq!(set.kth(k), reference.get(k).copied());
            assert_eq!(set.count_less(value), reference.iter().filter(|v| **v < value).count());
            let below: f64 = reference.iter().filter(|v| **v < value).sum();
            assert!((set.below(value).1 - below).abs() < 1e-6);
            assert!((set.total() - reference.iter().sum::<f64>()).abs() < 1e-6);
        }
        assert!(!set.remove(1000.0));
        assert_eq!(set.kth(set.len()), None);
    }

    #[test]
    fn kth_of_two_sorted_sequences() {
        let a = [1.0, 4.0, 9.0];
        let b = [2.0, 3.0, 10.0, 11.0];
        let mut merged: Vec<f64> = a.iter().chain(&b).copied().collect();
        merged.sort_by(f64::total_cmp);
        for (k, expected) in merged.iter().enumerate() {
            assert_eq!(kth_of_two(k, a.len(), |i| a[i], b.len(), |i| b[i]), *expected, "k={k}");
            assert_eq!(kth_of_two(k, b.len(), |i| b[i], a.len(), |i| a[i]), *expected, "k={k}");
        }
        assert_eq!(kth_of_two(1, 0, |_| 0.0, 2, |i| [5.0, 6.0][i]), 6.0);
    }
}
