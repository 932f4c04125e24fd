//! The softmax's per-row steps in AVX2: a row is read in vectors of eight entries, and the
//! entries past the row's live count are blended away (to `-inf`, `+0.0` or their old value)
//! instead of being handled one by one in a scalar tail.
//!
//! The sixteen partial sums of [`super::LANES`] are two vectors: entry `j` goes to lane
//! `j % 16`, so the vector at offset `lo` (a multiple of 8) adds into the first when `lo % 16 ==
//! 0` and into the second otherwise; the tree then adds the second into the first (lane `l`
//! plus lane `l + 8`) and halves as [`super::tree_sum`] does. Each function computes exactly
//! what its namesake in [`super::portable`] computes (tested bit for bit in the parent module):
//! a blended-away lane adds `+0.0` to a partial sum, which leaves it unchanged (the partial sums
//! start at `+0.0` and so are never `-0.0`), and the maximum does not depend on the order it is
//! taken in.
//!
//! Loads and stores are plain unaligned vector ones, and only of vectors that lie wholly inside
//! the row: AVX2's masked stores are slow on some cores, and reading entries past `live` (but
//! inside the row) is harmless when their lanes are blended away. A row whose length is not a
//! multiple of eight finishes its last entries in scalar code, with the same operations.
//!
//! Compiled only where the build enables AVX2 (the parent's `cfg`), which is what makes these
//! instructions available.

use std::arch::x86_64::{
    __m256, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_max_ps, _mm_movehdup_ps, _mm_movehl_ps,
    _mm_shuffle_ps, _mm256_add_ps, _mm256_blendv_ps, _mm256_castps256_ps128, _mm256_castsi256_ps,
    _mm256_cmpgt_epi32, _mm256_extractf128_ps, _mm256_loadu_ps, _mm256_max_ps, _mm256_mul_ps,
    _mm256_set1_epi32, _mm256_set1_ps, _mm256_setr_epi32, _mm256_setzero_ps, _mm256_storeu_ps,
    _mm256_sub_ps,
};

/// Entries per vector.
const W: usize = 8;

/// A mask of the lanes `0..n` (all eight for `n >= 8`, none for `n <= 0`), as a float vector
/// for `blendv` (which looks at each lane's sign bit).
#[inline(always)]
fn lanes(n: isize) -> __m256 {
    let n = n.clamp(0, W as isize) as i32;
    // SAFETY: AVX2 is enabled for this build (module docs); register operations only.
    unsafe {
        let index = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(n), index))
    }
}

/// The lane-`j % 16` partial sums `(even, odd)` folded as [`super::tree_sum`] folds sixteen
/// lanes: lane `l` plus lane `l + 8`, then `l + 4`, `l + 2`, `l + 1`.
#[inline(always)]
fn tree_sum(even: __m256, odd: __m256) -> f32 {
    // SAFETY: AVX2 is enabled for this build; register operations only.
    unsafe {
        let s8 = _mm256_add_ps(even, odd);
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)))
    }
}

/// The largest of a vector's eight lanes.
#[inline(always)]
fn reduce_max(v: __m256) -> f32 {
    // SAFETY: AVX2 is enabled for this build; register operations only.
    unsafe {
        let m4 = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let m2 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        _mm_cvtss_f32(_mm_max_ps(m2, _mm_shuffle_ps::<1>(m2, m2)))
    }
}

/// Where a row's vectors end: `full` (a multiple of 8), the end of the vectors wholly inside
/// the live entries; `partial`, whether the vector at `full` holds the last live entries and
/// lies wholly inside the row (its lanes `live - full..` are blended away); `whole`, the end of
/// the row's vectors (`cols / 8 * 8`), past which entries are handled one by one.
#[derive(Clone, Copy)]
struct Split {
    full: usize,
    partial: bool,
    whole: usize,
}

impl Split {
    fn new(cols: usize, live: usize) -> Self {
        assert!(live <= cols);
        let whole = cols / W * W;
        let full = (live / W * W).min(whole);
        Split {
            full,
            partial: live > full && full < whole,
            whole,
        }
    }

    /// The end of the vectors that hold live entries.
    fn live_end(self) -> usize {
        if self.partial {
            self.full + W
        } else {
            self.full
        }
    }
}

/// Adds `v(lo)` for every vector of the row's live entries into the lane-`j % 16` partial sums
/// (`v(lo)` blends away the dead lanes itself), then the scalar end `tail` (the entries
/// `whole..live`, zero-padded), and folds them; the vectors in pairs, so the two sums are two
/// independent chains.
#[inline(always)]
fn lane_sum(split: Split, tail: Option<[f32; W]>, v: impl Fn(usize) -> __m256) -> f32 {
    // SAFETY: AVX2 is enabled for this build; `v` does its own loads, `tail` is read from a
    // local array of eight floats.
    unsafe {
        let (mut even, mut odd) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut add = |lo: usize, x: __m256| {
            if lo.is_multiple_of(2 * W) {
                even = _mm256_add_ps(even, x);
            } else {
                odd = _mm256_add_ps(odd, x);
            }
        };
        let end = split.live_end();
        let mut lo = 0;
        while lo + 2 * W <= end {
            let (a, b) = (v(lo), v(lo + W));
            add(lo, a);
            add(lo + W, b);
            lo += 2 * W;
        }
        if lo < end {
            add(lo, v(lo));
        }
        if let Some(t) = tail {
            add(split.whole, _mm256_loadu_ps(t.as_ptr()));
        }
        tree_sum(even, odd)
    }
}

/// `row[lo..lo + 8] = f(row[lo..lo + 8])` for every vector of the live entries, the lanes of the
/// partial one past `live` (those not in `keep`) set to `dead` instead.
///
/// # Safety
/// AVX2 is enabled for this build, and `ptr` points to a row of at least `split.whole` floats
/// that nothing else accesses during the call.
#[inline(always)]
unsafe fn map_live(
    ptr: *mut f32,
    split: Split,
    keep: __m256,
    dead: __m256,
    f: impl Fn(__m256) -> __m256,
) {
    // SAFETY: every vector is `lo + 8 <= split.live_end() <= split.whole` (the caller's
    // bound).
    unsafe {
        for lo in (0..split.full).step_by(W) {
            _mm256_storeu_ps(ptr.add(lo), f(_mm256_loadu_ps(ptr.add(lo))));
        }
        if split.partial {
            let v = f(_mm256_loadu_ps(ptr.add(split.full)));
            _mm256_storeu_ps(ptr.add(split.full), _mm256_blendv_ps(dead, v, keep));
        }
    }
}

/// The row's first `live` entries minus their maximum; the others `-inf`.
#[inline(always)]
pub(super) fn shift_row(row: &mut [f32], live: usize) {
    let split = Split::new(row.len(), live);
    let Split { full, whole, .. } = split;
    // The scalar end's share of the maximum first (entries `whole..live`).
    let mut max = row[whole..live.max(whole)]
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let ptr = row.as_mut_ptr();
    // SAFETY: AVX2 is enabled for this build (module docs). Every vector load and store is of
    // `row[lo..lo + 8]` with `lo + 8 <= whole <= cols`, inside `row`.
    unsafe {
        let ninf = _mm256_set1_ps(f32::NEG_INFINITY);
        let keep = lanes(live as isize - full as isize);
        let mut m = ninf;
        for lo in (0..full).step_by(W) {
            m = _mm256_max_ps(m, _mm256_loadu_ps(ptr.add(lo)));
        }
        if split.partial {
            m = _mm256_max_ps(
                m,
                _mm256_blendv_ps(ninf, _mm256_loadu_ps(ptr.add(full)), keep),
            );
        }
        max = max.max(reduce_max(m));
        let vmax = _mm256_set1_ps(max);
        map_live(ptr, split, keep, ninf, |v| _mm256_sub_ps(v, vmax));
        for lo in (split.live_end()..whole).step_by(W) {
            _mm256_storeu_ps(ptr.add(lo), ninf);
        }
    }
    for (j, v) in row.iter_mut().enumerate().skip(whole) {
        *v = if j < live {
            *v - max
        } else {
            f32::NEG_INFINITY
        };
    }
}

/// The scalar end of a row (entries `whole..live`, fewer than eight), zero-padded to a vector;
/// `None` if there is none.
#[inline(always)]
fn tail(split: Split, live: usize, entry: impl Fn(usize) -> f32) -> Option<[f32; W]> {
    (live > split.whole).then(|| {
        std::array::from_fn(|l| {
            let j = split.whole + l;
            if j < live { entry(j) } else { 0.0 }
        })
    })
}

/// The row's first `live` entries divided by their sum; the others, `+0.0` on entry (the `exp`
/// of `-inf`), are not read into the sum and are `+0.0` on exit.
#[inline(always)]
pub(super) fn scale_row(row: &mut [f32], live: usize) {
    let split = Split::new(row.len(), live);
    let Split { full, whole, .. } = split;
    let ptr = row.as_mut_ptr();
    // SAFETY: AVX2 is enabled for this build; every vector load and store is of
    // `row[lo..lo + 8]` with `lo + 8 <= whole <= cols`, inside `row`, and every scalar read
    // of an entry `j < live <= cols`.
    let inv = unsafe {
        let keep = lanes(live as isize - full as isize);
        let zero = _mm256_setzero_ps();
        let load = |lo: usize| {
            let v = _mm256_loadu_ps(ptr.add(lo));
            if lo < full {
                v
            } else {
                _mm256_blendv_ps(zero, v, keep)
            }
        };
        let inv = 1.0 / lane_sum(split, tail(split, live, |j| *ptr.add(j)), load);
        let vinv = _mm256_set1_ps(inv);
        // The dead lanes are written with the `+0.0` they hold (blending in the old value
        // instead, LLVM makes the store a masked one, `vmaskmovps`, which took 3x as long on a
        // Zen 3 core).
        map_live(ptr, split, keep, zero, |v| _mm256_mul_ps(v, vinv));
        inv
    };
    for v in &mut row[whole..live.max(whole)] {
        *v *= inv;
    }
}

/// `g[j] = y[j] (g[j] - <g, y>)` over the first `live` entries, 0 at the others; `g`'s entries
/// past `live` are not used (whatever they hold, NaN included, is blended away).
#[inline(always)]
pub(super) fn backward_row(g: &mut [f32], y: &[f32], live: usize) {
    let cols = g.len();
    assert!(y.len() == cols);
    let split = Split::new(cols, live);
    let Split { full, whole, .. } = split;
    let (gp, yp) = (g.as_mut_ptr(), y.as_ptr());
    // SAFETY: AVX2 is enabled for this build; every vector load and store is of
    // `g[lo..lo + 8]` or `y[lo..lo + 8]` with `lo + 8 <= whole <= cols`, inside both, and every
    // scalar read of an entry `j < live <= cols` of both.
    let dot = unsafe {
        let keep = lanes(live as isize - full as isize);
        let zero = _mm256_setzero_ps();
        let product = |lo: usize| {
            let p = _mm256_mul_ps(_mm256_loadu_ps(gp.add(lo)), _mm256_loadu_ps(yp.add(lo)));
            if lo < full {
                p
            } else {
                _mm256_blendv_ps(zero, p, keep)
            }
        };
        let dot = lane_sum(
            split,
            tail(split, live, |j| *gp.add(j) * *yp.add(j)),
            product,
        );
        let vdot = _mm256_set1_ps(dot);
        let dx = |lo: usize| {
            let (gv, yv) = (_mm256_loadu_ps(gp.add(lo)), _mm256_loadu_ps(yp.add(lo)));
            _mm256_mul_ps(yv, _mm256_sub_ps(gv, vdot))
        };
        for lo in (0..full).step_by(W) {
            _mm256_storeu_ps(gp.add(lo), dx(lo));
        }
        if split.partial {
            _mm256_storeu_ps(gp.add(full), _mm256_blendv_ps(zero, dx(full), keep));
        }
        for lo in (split.live_end()..whole).step_by(W) {
            _mm256_storeu_ps(gp.add(lo), zero);
        }
        dot
    };
    for j in whole..cols {
        g[j] = if j < live { y[j] * (g[j] - dot) } else { 0.0 };
    }
}
