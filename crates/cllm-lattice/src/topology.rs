//! [`Topology`]: how N workers are arranged (12-fold groups, tree depth) and how a flat buffer
//! is cut into their disjoint, cache-line aligned segments.

use std::fmt;
use std::ops::Range;

use crate::aligned::LINE_FLOATS;
use crate::barrier::FAN_IN;

/// The shape of a lattice of workers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Worker threads.
    pub workers: usize,
    /// Groups of at most 12 consecutive workers (the barrier's leaves).
    pub groups: usize,
    /// Depth of the 12-ary tree under Node Zero (1 for up to 12 workers, 2 for up to 156:
    /// 1 + 12 + 144 ...).
    pub tree_depth: usize,
    /// Segment boundaries of the flat buffer: worker `k` owns `bounds[k]..bounds[k + 1]`.
    bounds: Vec<usize>,
}

impl Topology {
    /// The topology of `workers` workers over a flat buffer of `len` floats.
    pub fn new(workers: usize, len: usize) -> Self {
        assert!(workers > 0, "a lattice needs at least one worker");
        let groups = workers.div_ceil(FAN_IN);
        // Levels below Node Zero: level d holds up to 12^d workers.
        let (mut tree_depth, mut capacity, mut level) = (0, 0usize, 1usize);
        while capacity < workers {
            level = level.saturating_mul(FAN_IN);
            capacity = capacity.saturating_add(level);
            tree_depth += 1;
        }
        Topology {
            workers,
            groups,
            tree_depth,
            bounds: segment_bounds(len, workers),
        }
    }

    /// The segment worker `k` reduces and updates.
    pub fn segment(&self, k: usize) -> Range<usize> {
        self.bounds[k]..self.bounds[k + 1]
    }

    /// The group of worker `k`.
    pub fn group_of(&self, k: usize) -> usize {
        k / FAN_IN
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} worker{} in {} group{} of up to {FAN_IN}, tree depth {} under Node Zero",
            self.workers,
            if self.workers == 1 { "" } else { "s" },
            self.groups,
            if self.groups == 1 { "" } else { "s" },
            self.tree_depth
        )
    }
}

/// `n + 1` boundaries splitting `0..len` into `n` contiguous segments as equal as possible,
/// every interior boundary a multiple of [`LINE_FLOATS`] (segments may be empty when `len` is
/// small).
pub fn segment_bounds(len: usize, n: usize) -> Vec<usize> {
    let mut b: Vec<usize> = (0..n)
        .map(|k| (len * k / n) / LINE_FLOATS * LINE_FLOATS)
        .collect();
    b.push(len);
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_depth_and_segments() {
        let t = Topology::new(63, 804_096);
        assert_eq!((t.groups, t.tree_depth), (6, 2));
        assert_eq!(Topology::new(1, 10).tree_depth, 1);
        assert_eq!(Topology::new(12, 10).tree_depth, 1);
        assert_eq!(Topology::new(13, 10).tree_depth, 2);
        assert_eq!(Topology::new(156, 10).tree_depth, 2);
        assert_eq!(Topology::new(157, 10).tree_depth, 3);
        for (len, n) in [(804_096, 63), (100, 7), (5, 3), (64, 64)] {
            let b = segment_bounds(len, n);
            assert_eq!((b[0], b[n]), (0, len));
            for k in 0..n {
                assert!(b[k] <= b[k + 1]);
                if k > 0 {
                    assert_eq!(b[k] % LINE_FLOATS, 0);
                }
            }
        }
    }
}
