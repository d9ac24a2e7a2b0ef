//! An order-statistic multiset of finite numbers (a treap with subtree sizes and sums): insert, remove one instance,
//! the k-th smallest, the k-th smallest distance from a point, and the count and sum below a value, each O(log n)
//! expected. `robust_zscore` keeps its window's median and
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

    /// The `k`-th smallest (0-based) distance `|x - center|` over the set, in O(log n) expected: the set is split
    /// at `center`, the part below read in descending order and the part above in ascending order are two ordered
    /// trees of distances, and one walk down both finds their `k`-th (as for two sorted arrays, one level per step);
    /// then the parts are joined again. `None` when `k >= len`.
    pub(crate) fn kth_distance(&mut self, center: f64, k: usize) -> Option<f64> {
        if k >= self.len() {
            return None;
        }
        let (below, above) = self.split(self.root, center);
        let distance = self.kth_of_two_sides(below, above, center, k);
        self.root = self.merge(below, above);
        Some(distance)
    }

    /// The `k`-th smallest distance from `center` over `below` (keys < center, so read mirrored: its right child
    /// holds the nearer keys) and `above` (keys >= center).
    fn kth_of_two_sides(&self, mut below: Link, mut above: Link, center: f64, mut k: usize) -> f64 {
        loop {
            if below == NIL {
                return self.kth_in(above, k) - center;
            }
            if above == NIL {
                let n = self.size(below) as usize;
                return center - self.kth_in(below, n - 1 - k);
            }
            let (b, a) = (&self.nodes[below as usize], &self.nodes[above as usize]);
            // Sizes of the nearer side of each root, and each root's distance.
            let (nearer_below, nearer_above) = (self.size(b.right) as usize, self.size(a.left) as usize);
            let (distance_below, distance_above) = (center - b.key, a.key - center);
            if nearer_below + nearer_above < k {
                // The root with the smaller distance, and everything nearer than it on its side, come before the
                // k-th: drop them.
                if distance_below <= distance_above {
                    k -= nearer_below + 1;
                    below = b.left;
                } else {
                    k -= nearer_above + 1;
                    above = a.right;
                }
            } else if distance_below <= distance_above {
                // The other root, and everything farther on its side, come after the k-th.
                above = a.left;
            } else {
                below = b.right;
            }
        }
    }

    /// The `k`-th smallest key (0-based) of the subtree at `t`, which has more than `k` keys.
    fn kth_in(&self, mut t: Link, mut k: usize) -> f64 {
        loop {
            let node = &self.nodes[t as usize];
            let left = self.size(node.left) as usize;
            if k < left {
                t = node.left;
            } else if k == left {
                return node.key;
            } else {
                k -= left + 1;
                t = node.right;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic pseudo-random sequence (xorshift64).
    fn next(x: &mut u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x
    }

    #[test]
    fn agrees_with_a_sorted_vector() {
        let mut set = OrderStats::default();
        let mut reference: Vec<f64> = Vec::new();
        let mut x: u64 = 12345;
        for step in 0..5_000 {
            next(&mut x);
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
            assert_eq!(set.below(value).0, reference.iter().filter(|v| **v < value).count());
            let below: f64 = reference.iter().filter(|v| **v < value).sum();
            assert!((set.below(value).1 - below).abs() < 1e-6);
            assert!((set.total() - reference.iter().sum::<f64>()).abs() < 1e-6);
        }
        assert!(!set.remove(1000.0));
        assert_eq!(set.kth(set.len()), None);
    }

    #[test]
    fn kth_distance_agrees_with_sorting_the_distances() {
        let mut set = OrderStats::default();
        let mut values = Vec::new();
        let mut x: u64 = 99;
        for _ in 0..300 {
            next(&mut x);
            let v = (x % 40) as f64 - 20.0;
            set.insert(v);
            values.push(v);
            for center in [-30.0, -3.0, 0.0, 0.5, 7.0, 25.0] {
                let mut distances: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
                distances.sort_by(f64::total_cmp);
                for k in [0, distances.len() / 2, distances.len() - 1] {
                    assert_eq!(set.kth_distance(center, k), Some(distances[k]), "center {center}, k {k}");
                }
                assert_eq!(set.kth_distance(center, distances.len()), None);
            }
        }
        assert_eq!(set.len(), 300, "the set is whole again after each query");
    }
}
