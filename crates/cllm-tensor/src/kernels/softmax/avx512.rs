//! The softmax's per-row steps in AVX-512: a row is read in vectors of [`LANES`] entries, the
//! last one through a mask, so a short row is a few vector operations and no scalar tail.
//!
//! Each function computes exactly what its namesake in [`super::portable`] computes (tested
//! bit for bit in the parent module): a masked lane adds `+0.0` to a partial sum, which leaves
//! it unchanged (the partial sums start at `+0.0` and so are never `-0.0`), and the maximum
//! does not depend on the order it is taken in.
//!
//! Compiled only where the build enables AVX-512 F (the parent's `cfg`), which is what makes
//! its instructions available; every load and store below is masked to the row's bounds.

use std::arch::x86_64::{
    __m512, _mm_add_ps, _mm_add_ss, _mm_cvtss_f32, _mm_movehdup_ps, _mm_movehl_ps, _mm256_add_ps,
    _mm256_castpd_ps, _mm256_castps256_ps128, _mm256_extractf128_ps, _mm512_add_ps,
    _mm512_castps_pd, _mm512_castps512_ps256, _mm512_extractf64x4_pd, _mm512_mask_loadu_ps,
    _mm512_mask_storeu_ps, _mm512_mask_sub_ps, _mm512_maskz_loadu_ps, _mm512_maskz_mul_ps,
    _mm512_max_ps, _mm512_mul_ps, _mm512_reduce_max_ps, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_sub_ps,
};

use super::LANES;

/// Lanes `0..n` of a 16-lane mask.
#[inline(always)]
fn lanes(n: usize) -> u16 {
    if n >= LANES { !0 } else { (1u16 << n) - 1 }
}

/// [`super::tree_sum`] of the sixteen lanes of `acc`.
#[inline(always)]
fn tree_sum(acc: __m512) -> f32 {
    // SAFETY: AVX-512 F (and so AVX) is enabled for this build (module docs); these are
    // register operations only.
    unsafe {
        // lane l: acc[l] + acc[l + 8], then + the lane 4 higher, 2 higher, 1 higher.
        let s8 = _mm256_add_ps(
            _mm512_castps512_ps256(acc),
            _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(acc))),
        );
        let s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps::<1>(s8));
        let s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
        _mm_cvtss_f32(_mm_add_ss(s2, _mm_movehdup_ps(s2)))
    }
}

/// The row's first `live` entries minus their maximum; the others `-inf`.
#[inline(always)]
pub(super) fn shift_row(row: &mut [f32], live: usize) {
    let cols = row.len();
    assert!(live <= cols);
    let ptr = row.as_mut_ptr();
    // SAFETY: AVX-512 F is enabled for this build (module docs). Every access is to the vector
    // at some `lo < cols`, masked to lanes `lo..live` (loads) or `lo..cols` (stores), all
    // inside `row`; masked-off lanes are not touched.
    unsafe {
        let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
        let mut m = ninf;
        for lo in (0..live).step_by(LANES) {
            m = _mm512_max_ps(m, _mm512_mask_loadu_ps(ninf, lanes(live - lo), ptr.add(lo)));
        }
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(m));
        for lo in (0..live).step_by(LANES) {
            let k = lanes(live - lo);
            let v = _mm512_maskz_loadu_ps(k, ptr.add(lo));
            _mm512_mask_storeu_ps(
                ptr.add(lo),
                lanes(cols - lo),
                _mm512_mask_sub_ps(ninf, k, v, max),
            );
        }
        for lo in (live.next_multiple_of(LANES)..cols).step_by(LANES) {
            _mm512_mask_storeu_ps(ptr.add(lo), lanes(cols - lo), ninf);
        }
    }
}

/// The row's first `live` entries divided by their sum (the others are 0 and stay 0).
#[inline(always)]
pub(super) fn scale_row(row: &mut [f32], live: usize) {
    assert!(live <= row.len());
    let ptr = row.as_mut_ptr();
    // SAFETY: AVX-512 F is enabled for this build; every load and store is of the vector at
    // `lo < live`, masked to lanes `lo..live`, inside `row`.
    unsafe {
        let mut acc = _mm512_setzero_ps();
        for lo in (0..live).step_by(LANES) {
            acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(lanes(live - lo), ptr.add(lo)));
        }
        let inv = _mm512_set1_ps(1.0 / tree_sum(acc));
        for lo in (0..live).step_by(LANES) {
            let k = lanes(live - lo);
            let v = _mm512_maskz_loadu_ps(k, ptr.add(lo));
            _mm512_mask_storeu_ps(ptr.add(lo), k, _mm512_mul_ps(v, inv));
        }
    }
}

/// `g[j] = y[j] (g[j] - <g, y>)` over the first `live` entries, 0 at the others; `g`'s entries
/// past `live` are not read.
#[inline(always)]
pub(super) fn backward_row(g: &mut [f32], y: &[f32], live: usize) {
    let cols = g.len();
    assert!(live <= cols && y.len() == cols);
    let (gp, yp) = (g.as_mut_ptr(), y.as_ptr());
    // SAFETY: AVX-512 F is enabled for this build; every access is to the vector at some
    // `lo < cols` of `g` or `y` (both `cols` long), masked to lanes `lo..live` (loads) or
    // `lo..cols` (stores).
    unsafe {
        let mut acc = _mm512_setzero_ps();
        for lo in (0..live).step_by(LANES) {
            let k = lanes(live - lo);
            let (gv, yv) = (
                _mm512_maskz_loadu_ps(k, gp.add(lo)),
                _mm512_maskz_loadu_ps(k, yp.add(lo)),
            );
            acc = _mm512_add_ps(acc, _mm512_mul_ps(gv, yv));
        }
        let dot = _mm512_set1_ps(tree_sum(acc));
        for lo in (0..live).step_by(LANES) {
            let k = lanes(live - lo);
            let (gv, yv) = (
                _mm512_maskz_loadu_ps(k, gp.add(lo)),
                _mm512_maskz_loadu_ps(k, yp.add(lo)),
            );
            let dx = _mm512_maskz_mul_ps(k, yv, _mm512_sub_ps(gv, dot));
            _mm512_mask_storeu_ps(gp.add(lo), lanes(cols - lo), dx);
        }
        for lo in (live.next_multiple_of(LANES)..cols).step_by(LANES) {
            _mm512_mask_storeu_ps(gp.add(lo), lanes(cols - lo), _mm512_setzero_ps());
        }
    }
}
