//! The bf16 backend: products of bfloat16-rounded operands, summed in f32, on the AVX-512 BF16
//! dot-product instruction (`vdpbf16ps`). Chosen with [`super::Precision::Bf16`].
//!
//! # Arithmetic
//!
//! Every element of `op(A)` and `op(B)` is rounded to bfloat16 (the top 16 bits of an f32: 8
//! significant bits, round to nearest even) while it is packed. A product of two bf16 values is
//! exact in f32, and the products are summed in f32: `vdpbf16ps` adds two products into each
//! f32 lane, the pair `(k, k+1)` per instruction, and successive pairs in `k` order. `C` and
//! the scalars `alpha` and `beta` stay f32. So the only new error is the input rounding, a
//! relative `2^-9` per operand; it is what PyTorch's bf16 autocast and
//! `torch.set_float32_matmul_precision("medium")` accept on CPUs. Subnormal operands round to
//! zero, and a dot product whose result would be subnormal gives zero (the instructions'
//! fixed DAZ/FTZ behaviour, whatever MXCSR says); no floating-point exceptions are raised.
//!
//! Each element of `C` is one sum over `k` in a fixed order (pairs within a block of [`KC`],
//! blocks in order), whatever `m` and `n` are and wherever the element sits in its tile, so the
//! result for one row does not depend on which other rows are in the call: a batch split across
//! workers gives the same bits as one worker.
//!
//! # Blocking
//!
//! As in GotoBLAS: for each block of [`NC`] columns and [`KC`] values of `k`, `op(B)` is packed
//! into tiles of [`NR`] columns, `[tile][pair][column]`, each entry a `u32` holding the bf16
//! pair `(k, k+1)` (low half: even `k`); then for each block of [`MC`] rows, `op(A)` is packed
//! into panels of [`MR`] rows, `[panel][row][pair]` (or `[panel][pair][row]` when `A` is read
//! transposed, which makes that packing a contiguous copy). The micro-kernel keeps an
//! `MR x NR` block of `C` in 16 registers; per pair it loads two vectors of `B` and broadcasts
//! one `u32` of `A` per row. Rows past `m`, columns past `n` and the odd `k` are packed as
//! zeros; stores are masked. The packing buffers are thread-local (at most 64 KiB of `A` and
//! 256 KiB of `B` per thread) and grow once: no allocation per call after the first.
//!
//! The micro-kernel alone reaches ~220 GFLOP/s on one Zen 4 core, whose `vdpbf16ps` peak is
//! ~234 (twice its f32 FMA peak of ~117); a nanoGPT-cpu step's GEMMs run at ~174 GFLOP/s with
//! the packing (`cargo run --release -p cllm-tensor --example step_gemms`, and
//! `--example fma_peak` for the peaks).

use std::arch::x86_64::{
    __m256i, __m512bh, __m512i, _mm256_storeu_si256, _mm512_add_ps, _mm512_castsi512_si256,
    _mm512_cvtne2ps_pbh, _mm512_dpbf16_ps, _mm512_extracti64x4_epi64, _mm512_loadu_ps,
    _mm512_loadu_si512, _mm512_mask_storeu_epi32, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps,
    _mm512_mul_ps, _mm512_permutexvar_epi16, _mm512_set1_epi32, _mm512_set1_ps, _mm512_setzero_ps,
    _mm512_setzero_si512, _mm512_storeu_si512,
};
use std::cell::RefCell;

use super::{GemmSpec, Transpose};
use crate::kernels::transpose16;

/// Rows of `C` per micro-tile.
const MR: usize = 8;
/// Columns of `C` per micro-tile: `NV` vectors of 16 f32.
const NR: usize = 16 * NV;
/// Vectors per micro-tile row.
const NV: usize = 2;
/// Rows of `op(A)` packed at a time (a multiple of [`MR`]).
const MC: usize = 128;
/// Values of `k` per block (even, so pairs never straddle blocks).
const KC: usize = 256;
/// Columns of `op(B)` packed at a time (a multiple of [`NR`]).
const NC: usize = 512;

thread_local! {
    /// Packed `op(A)` and `op(B)` blocks, reused by every call on this thread.
    static PACKED: RefCell<(Vec<u32>, Vec<u32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Whether this CPU can run the backend (AVX-512 F, BW and BF16).
pub fn supported() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512bw")
        && std::arch::is_x86_feature_detected!("avx512bf16")
}

/// Runs one GEMM. The caller ([`super::matmul_with`]) has checked the slice lengths with
/// [`GemmSpec::check`] and handled empty dimensions.
///
/// Kept out of line: inlined into `matmul_with` (as a change to the packers once let the
/// compiler do), bf16 nanoGPT-cpu steps measured ~2% slower.
///
/// # Panics
/// If the CPU lacks AVX-512 BF16 ([`supported`]).
#[inline(never)]
pub(super) fn run(spec: &GemmSpec, a: &[f32], b: &[f32], c: &mut [f32]) {
    assert!(
        supported(),
        "the bf16 GEMM backend needs a CPU with AVX-512 BF16"
    );
    PACKED.with(|packed| {
        let mut packed = packed.borrow_mut();
        let (pa, pb) = &mut *packed;
        for n0 in (0..spec.n).step_by(NC) {
            let nc = NC.min(spec.n - n0);
            let tiles = nc.div_ceil(NR);
            for k0 in (0..spec.k).step_by(KC) {
                let kc = KC.min(spec.k - k0);
                let kp = kc.div_ceil(2);
                pack_b(spec, b, k0, kc, n0, tiles, pb);
                // The first block of k applies beta; later ones add to what it wrote.
                let beta = if k0 == 0 { spec.beta } else { 1.0 };
                for m0 in (0..spec.m).step_by(MC) {
                    let mc = MC.min(spec.m - m0);
                    let panels = mc.div_ceil(MR);
                    pack_a(spec, a, m0, mc, k0, kc, pa);
                    for tile in 0..tiles {
                        let cols = NR.min(nc - tile * NR);
                        for panel in 0..panels {
                            let rows = MR.min(mc - panel * MR);
                            let at = &pa[panel * kp * MR..][..kp * MR];
                            let bt = &pb[tile * kp * NR..][..kp * NR];
                            let offset = (m0 + panel * MR) * spec.ldc + n0 + tile * NR;
                            // Rows and columns inside `m x n`, which `GemmSpec::check` proved
                            // lie inside `c` with `ldc`; asserted again, once per tile.
                            let out = &mut c[offset..];
                            assert!((rows - 1) * spec.ldc + cols <= out.len());
                            // SAFETY: `supported()` was asserted above, so the CPU has the
                            // AVX-512 F, BW and BF16 instructions the kernel is compiled for; the
                            // packed slices hold exactly `kp` pairs of MR and NR values, and
                            // the `rows x cols` block of `out` was checked just above.
                            unsafe {
                                match spec.ta {
                                    Transpose::N => tile_kernel::<true>(
                                        kp, at, bt, out, spec.ldc, rows, cols, spec.alpha, beta,
                                    ),
                                    Transpose::T => tile_kernel::<false>(
                                        kp, at, bt, out, spec.ldc, rows, cols, spec.alpha, beta,
                                    ),
                                }
                            };
                        }
                    }
                }
            }
        }
    });
}

/// Packs rows `m0..m0+mc` and values `k0..k0+kc` of `op(A)` into panels of [`MR`] rows:
/// `[panel][row][pair]` from a row-major `A` (`N`), `[panel][pair][row]` from a transposed one.
///
/// Kept out of line, as [`pack_b`]: when a change elsewhere in the crate let the compiler
/// inline both into [`run`], bf16 nanoGPT-cpu steps measured 3-5% slower (same bits).
#[inline(never)]
fn pack_a(
    spec: &GemmSpec,
    a: &[f32],
    m0: usize,
    mc: usize,
    k0: usize,
    kc: usize,
    out: &mut Vec<u32>,
) {
    let kp = kc.div_ceil(2);
    let panels = mc.div_ceil(MR);
    let out = grown(out, panels * kp * MR);
    let lda = spec.lda;
    match spec.ta {
        // op(A)[i, k] = A[i * lda + k]: row i is contiguous in k, so its pairs are adjacent.
        Transpose::N => {
            for i in 0..mc {
                let dst = &mut out[i * kp..][..kp];
                convert_adjacent(&a[(m0 + i) * lda + k0..][..kc], dst);
            }
            // The last panel's rows past mc.
            out[mc * kp..].fill(0);
        }
        // op(A)[i, k] = A[k * lda + i]: stored rows k and k+1 hold pair k/2 of every row i,
        // converted 16 rows at a time and stored straight into two panels.
        Transpose::T => {
            for p in 0..kp {
                let k = k0 + 2 * p;
                let even = &a[k * lda + m0..][..mc];
                let odd = (2 * p + 1 < kc).then(|| &a[(k + 1) * lda + m0..][..mc]);
                spread_pairs(even, odd, p, kp, out);
            }
        }
    }
}

/// Packs values `k0..k0+kc` and columns `n0..` (`tiles` tiles of [`NR`]) of `op(B)` into
/// `[tile][pair][NR]`.
#[inline(never)]
fn pack_b(
    spec: &GemmSpec,
    b: &[f32],
    k0: usize,
    kc: usize,
    n0: usize,
    tiles: usize,
    out: &mut Vec<u32>,
) {
    let kp = kc.div_ceil(2);
    let out = grown(out, tiles * kp * NR);
    let ldb = spec.ldb;
    let nc = (spec.n - n0).min(tiles * NR);
    match spec.tb {
        // op(B)[k, j] = B[k * ldb + j]: rows k and k+1 are contiguous in j. Each pair of rows
        // is read once, front to back, and spread over the tiles.
        Transpose::N => {
            for p in 0..kp {
                let k = k0 + 2 * p;
                let even = &b[k * ldb + n0..][..nc];
                let odd = (2 * p + 1 < kc).then(|| &b[(k + 1) * ldb + n0..][..nc]);
                spread_row_pairs(even, odd, p, kp, out);
            }
        }
        // op(B)[k, j] = B[j * ldb + k]: column j of op(B) is stored row j, pairs adjacent.
        // Converted 16 columns x 16 pairs at a time and transposed in registers.
        Transpose::T => {
            for tile in 0..tiles {
                let j0 = n0 + tile * NR;
                let cols = NR.min(nc - tile * NR);
                let dst = &mut out[tile * kp * NR..][..kp * NR];
                for jj in (0..cols).step_by(16) {
                    let width = (cols - jj).min(16);
                    let columns: [&[f32]; 16] = std::array::from_fn(|l| {
                        if l < width {
                            &b[(j0 + jj + l) * ldb + k0..][..kc]
                        } else {
                            &[]
                        }
                    });
                    transpose_pairs(&columns, kp, &mut dst[jj..]);
                }
                if cols <= 16 {
                    for d in dst.chunks_mut(NR) {
                        d[16..].fill(0);
                    }
                }
            }
        }
    }
}

/// The first `len` values of `buf`, grown (never shrunk) to hold them; their contents are
/// whatever the last call left, so the packers write every value the kernel reads.
fn grown(buf: &mut Vec<u32>, len: usize) -> &mut [u32] {
    if buf.len() < len {
        buf.resize(len, 0);
    }
    &mut buf[..len]
}

/// `dst[p]` = the pair (`src[2p]`, `src[2p + 1]`) in bf16 (0 past the end of an odd `src`).
fn convert_adjacent(src: &[f32], dst: &mut [u32]) {
    assert_eq!(dst.len(), src.len().div_ceil(2));
    // SAFETY: `run` asserted `supported()` before packing anything; the lengths are checked
    // above, and the function reads only `src` and writes only `dst`.
    unsafe { convert_adjacent_avx512(src, dst) }
}

/// Pair `p` of every tile of `kp`-pair tiles of [`NR`] columns (`[tile][pair][NR]`, as
/// [`pack_b`] lays out a row-major `B`): column `j` gets (`even[j]`, `odd[j]`, or 0 without
/// `odd`) in bf16, and the last tile's columns past `even.len()` get 0.
fn spread_row_pairs(even: &[f32], odd: Option<&[f32]>, p: usize, kp: usize, tiles: &mut [u32]) {
    let cols = even.len();
    assert!(odd.is_none_or(|o| o.len() == cols) && p < kp);
    assert!(tiles.len() == cols.div_ceil(NR) * kp * NR);
    // SAFETY: `run` asserted `supported()` before packing; the lengths are checked above.
    unsafe { spread_row_pairs_avx512(even, odd, p, kp, tiles) }
}

/// Pair `p` of every row of `kp`-pair panels of [`MR`] rows (`[panel][pair][row]`, as
/// [`pack_a`] lays out a transposed `A`): row `i` gets (`even[i]`, `odd[i]`, or 0 without
/// `odd`) in bf16, and the last panel's rows past `even.len()` get 0.
fn spread_pairs(even: &[f32], odd: Option<&[f32]>, p: usize, kp: usize, panels: &mut [u32]) {
    let rows = even.len();
    assert!(odd.is_none_or(|o| o.len() == rows) && p < kp);
    assert!(panels.len() == rows.div_ceil(MR) * kp * MR);
    // SAFETY: `run` asserted `supported()` before packing; the lengths are checked above.
    unsafe { spread_pairs_avx512(even, odd, p, kp, panels) }
}

/// `dst[p * NR + l]` = the bf16 pair (`columns[l][2p]`, `columns[l][2p + 1]`) for `p < kp`,
/// `l < 16`; 0 where `columns[l]` is shorter (an empty slice gives a column of zeros).
fn transpose_pairs(columns: &[&[f32]; 16], kp: usize, dst: &mut [u32]) {
    assert!(kp == 0 || (kp - 1) * NR + 16 <= dst.len());
    assert!(columns.iter().all(|c| c.len() <= 2 * kp));
    // SAFETY: `run` asserted `supported()` before packing; the bounds are checked above.
    unsafe { transpose_pairs_avx512(columns, kp, dst, NR) }
}

/// Up to 32 values of `src` (zeros past its end) as 16 bf16 pairs.
///
/// # Safety
/// The CPU must support AVX-512 F, BW and BF16.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn load_pairs(src: &[f32]) -> __m512i {
    let lo = src.len().min(16);
    let hi = src.len().saturating_sub(16).min(16);
    // SAFETY: the masks cover elements `0..lo` and `16..16 + hi` of `src` only.
    unsafe {
        let (x, y) = if src.len() >= 32 {
            (
                _mm512_loadu_ps(src.as_ptr()),
                _mm512_loadu_ps(src.as_ptr().add(16)),
            )
        } else {
            (
                _mm512_maskz_loadu_ps(lanes(lo), src.as_ptr()),
                _mm512_maskz_loadu_ps(lanes(hi), src.as_ptr().wrapping_add(16)),
            )
        };
        // 32 bf16: x's 16 in the low half, y's in the high; as u32, pair p = (2p, 2p+1).
        as_si(_mm512_cvtne2ps_pbh(y, x))
    }
}

/// `dst[p * stride + l]` = the bf16 pair (`columns[l][2p]`, `columns[l][2p + 1]`) for
/// `p < kp`, `l < 16`; 0 where `columns[l]` is shorter (an empty slice gives a column of
/// zeros): 16 columns' pairs, transposed 16 x 16 at a time.
///
/// # Safety
/// The CPU must support AVX-512 F, BW and BF16; `kp == 0 || (kp - 1) * stride + 16 <=
/// dst.len()`, and no column is longer than `2 * kp`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(crate) unsafe fn transpose_pairs_avx512(
    columns: &[&[f32]; 16],
    kp: usize,
    dst: &mut [u32],
    stride: usize,
) {
    for p0 in (0..kp).step_by(16) {
        // r[l] = pairs p0..p0+16 of column l (a loop, not a closure, so that `load_pairs`
        // inlines with this function's target features).
        let mut r = [_mm512_setzero_si512(); 16];
        for (v, column) in r.iter_mut().zip(columns) {
            // SAFETY: the CPU has the features (this function's contract); `load_pairs` reads
            // at most 32 values of the column from `2 * p0` (zeros past its end).
            *v = unsafe { load_pairs(column.get(2 * p0..).unwrap_or(&[])) };
        }
        let out = transpose16::transpose_16x16(r);
        for (q, v) in out.iter().enumerate().take(kp - p0) {
            let at = (p0 + q) * stride;
            // SAFETY: `at + 16 <= dst.len()` as `p0 + q < kp` (the contract).
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr().add(at) as *mut __m512i, *v) };
        }
    }
}

/// Lanes `0..n` of a 16-lane mask.
pub(crate) fn lanes(n: usize) -> u16 {
    if n >= 16 { !0 } else { (1u16 << n) - 1 }
}

/// `dst[p]` = the bf16 pair (`src[2p]`, `src[2p + 1]`) (0 past the end of an odd `src`): a row
/// paired along itself.
///
/// # Safety
/// The CPU must support AVX-512 F, BW and BF16; `dst.len() == src.len().div_ceil(2)`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(crate) unsafe fn convert_adjacent_avx512(src: &[f32], dst: &mut [u32]) {
    for (i, d) in dst.chunks_mut(16).enumerate() {
        // SAFETY: the CPU has the features (this function's contract); `load_pairs` reads at
        // most the 32 values of `src` from `32 * i`, and the store covers `d` only (16 lanes,
        // or the masked `d.len()` of the last chunk).
        unsafe {
            let v = load_pairs(&src[32 * i..]);
            if d.len() == 16 {
                _mm512_storeu_si512(d.as_mut_ptr() as *mut __m512i, v);
            } else {
                _mm512_mask_storeu_epi32(d.as_mut_ptr() as *mut i32, lanes(d.len()), v);
            }
        }
    }
}

/// 16 pairs from `even[i..]` and `odd[i..]` (lanes outside `mask` are 0).
///
/// # Safety
/// The CPU must support AVX-512 F, BW and BF16; the masked lanes from `i` lie inside both
/// slices.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[inline]
pub(crate) unsafe fn pairs(even: &[f32], odd: Option<&[f32]>, i: usize, mask: u16) -> __m512i {
    /// 16-bit lane `2l` of the result takes lane `l` of the converted evens, `2l + 1` lane
    /// `l` of the odds (lanes `16..32` of the conversion).
    const INTERLEAVE: [u16; 32] = {
        let mut idx = [0u16; 32];
        let mut l = 0;
        while l < 16 {
            idx[2 * l] = l as u16;
            idx[2 * l + 1] = 16 + l as u16;
            l += 1;
        }
        idx
    };
    // SAFETY: the caller's contract bounds the loads; `INTERLEAVE` is 64 bytes.
    unsafe {
        let load = |x: &[f32]| {
            if mask == !0 {
                _mm512_loadu_ps(x.as_ptr().add(i))
            } else {
                _mm512_maskz_loadu_ps(mask, x.as_ptr().add(i))
            }
        };
        let e = load(even);
        let o = odd.map_or(_mm512_setzero_ps(), load);
        // 32 bf16, the evens' 16 then the odds' (zeros without odds), then interleaved.
        let idx = _mm512_loadu_si512(INTERLEAVE.as_ptr() as *const __m512i);
        _mm512_permutexvar_epi16(idx, as_si(_mm512_cvtne2ps_pbh(o, e)))
    }
}

/// # Safety
/// The CPU must support AVX-512 F, BW and BF16; the bounds of [`spread_pairs`] hold.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn spread_pairs_avx512(
    even: &[f32],
    odd: Option<&[f32]>,
    p: usize,
    kp: usize,
    panels: &mut [u32],
) {
    let rows = even.len();
    let count = rows.div_ceil(MR);
    let base = panels.as_mut_ptr();
    for i in (0..rows).step_by(16) {
        // SAFETY: lanes `0..rows - i` from `i` lie inside `even` and `odd` (same length); the
        // others load as 0, which is what the last panel's rows past `rows` must hold. Panel
        // `q` spans `q * kp * MR..(q + 1) * kp * MR` of `panels` (`count` panels, checked by
        // `spread_pairs`), and `(q * kp + p) * MR + MR` lies inside it as `p < kp`.
        unsafe {
            let v = pairs(even, odd, i, lanes(rows - i));
            let q = i / MR;
            let at = |q: usize| base.add((q * kp + p) * MR) as *mut __m256i;
            _mm256_storeu_si256(at(q), _mm512_castsi512_si256(v));
            if q + 1 < count {
                _mm256_storeu_si256(at(q + 1), _mm512_extracti64x4_epi64::<1>(v));
            }
        }
    }
}

/// # Safety
/// The CPU must support AVX-512 F, BW and BF16; the bounds of [`spread_row_pairs`] hold.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn spread_row_pairs_avx512(
    even: &[f32],
    odd: Option<&[f32]>,
    p: usize,
    kp: usize,
    tiles: &mut [u32],
) {
    let cols = even.len();
    let base = tiles.as_mut_ptr();
    // Vectors of 16 columns; the last tile's columns past `cols` get 0, which is what the
    // kernel must read there.
    let padded = cols.div_ceil(NR) * NR;
    for j in (0..padded).step_by(16) {
        // SAFETY: lanes `0..cols - j` from `j < cols` lie inside `even` and `odd` (same
        // length), the others are not read. Tile `j / NR` spans `(j / NR) * kp * NR..` of
        // `tiles` (`padded / NR` tiles, checked by `spread_row_pairs`), and its pair `p < kp`
        // holds the 16 values from `j % NR <= NR - 16`.
        unsafe {
            let v = if j < cols {
                pairs(even, odd, j, lanes(cols - j))
            } else {
                _mm512_setzero_si512()
            };
            let at = base.add(((j / NR) * kp + p) * NR + j % NR);
            _mm512_storeu_si512(at as *mut __m512i, v);
        }
    }
}

/// `C[r, j] = alpha * sum_p A[p][r] . B[p][j] + beta * C[r, j]` for `r < rows`, `j < cols`, over
/// `kp` packed pairs; `C[r, j]` is `c[r * ldc + j]`, and `C` is not read when `beta == 0`.
///
/// # Safety
/// The CPU must support AVX-512 F, BW and BF16. `a` holds `kp * MR` values, `b` holds `kp * NR`,
/// and `(rows - 1) * ldc + cols <= c.len()` with `1 <= rows <= MR`, `1 <= cols <= NR`.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[allow(clippy::too_many_arguments)]
unsafe fn tile_kernel<const BY_ROW: bool>(
    kp: usize,
    a: &[u32],
    b: &[u32],
    c: &mut [f32],
    ldc: usize,
    rows: usize,
    cols: usize,
    alpha: f32,
    beta: f32,
) {
    debug_assert!(a.len() == kp * MR && b.len() == kp * NR);
    let mut acc = [[_mm512_setzero_ps(); NV]; MR];
    for p in 0..kp {
        // SAFETY: `b` holds `kp * NR` u32s, so the NR starting at `p * NR` are in bounds;
        // `loadu` has no alignment requirement.
        let bv: [__m512bh; NV] = std::array::from_fn(|v| unsafe {
            as_bh(_mm512_loadu_si512(
                (b.as_ptr().add(p * NR) as *const __m512i).add(v),
            ))
        });
        for r in 0..MR {
            let x = if BY_ROW { a[r * kp + p] } else { a[p * MR + r] };
            let av = as_bh(_mm512_set1_epi32(x as i32));
            for v in 0..NV {
                acc[r][v] = _mm512_dpbf16_ps(acc[r][v], av, bv[v]);
            }
        }
    }
    let alpha = _mm512_set1_ps(alpha);
    let betav = _mm512_set1_ps(beta);
    for (r, acc) in acc.iter().enumerate().take(rows) {
        for (h, &v) in acc.iter().enumerate() {
            let col = h * 16;
            if col >= cols {
                break;
            }
            let mask = lanes(cols - col);
            // SAFETY: row `r < rows` and columns `col..cols.min(col + 16)` lie inside `c` by
            // the function's contract; masked lanes are neither read nor written.
            unsafe {
                let ptr = c.as_mut_ptr().add(r * ldc + col);
                let mut out = _mm512_mul_ps(alpha, v);
                if beta != 0.0 {
                    let old = _mm512_maskz_loadu_ps(mask, ptr);
                    out = _mm512_add_ps(out, _mm512_mul_ps(betav, old));
                }
                _mm512_mask_storeu_ps(ptr, mask, out);
            }
        }
    }
}

/// The same 512 bits read as 32 bf16 values.
#[inline(always)]
pub(crate) fn as_bh(x: __m512i) -> __m512bh {
    // SAFETY: both are plain 64-byte SIMD values; every bit pattern is a valid one of either.
    unsafe { std::mem::transmute::<__m512i, __m512bh>(x) }
}

/// The same 512 bits read as 16 integers.
#[inline(always)]
fn as_si(x: __m512bh) -> __m512i {
    // SAFETY: as in `as_bh`.
    unsafe { std::mem::transmute::<__m512bh, __m512i>(x) }
}
