//! Attention of one (batch, head) pair at bf16 matmul precision, computed with register-tiled
//! loops on AVX-512 BF16's dot product (`vdpbf16ps`) instead of bf16 GEMM calls.
//!
//! A head's products are small (`T x HS` by `HS x T` and back: at nanoGPT-cpu's `T = 64`,
//! `HS = 32` one product is 130K flops), and through [`matmul`](crate::kernels::matmul::matmul)
//! each is a call with its own dispatch, packing set-up and blocking in causal blocks of 32
//! rows. Here every operand of a head is packed once into bf16 pairs, and each product is a
//! loop nest over blocks of 4 or 8 output rows whose sums stay in registers, stopping at the
//! diagonal within a few rows.
//!
//! # Arithmetic
//!
//! The bf16 GEMM backend's (`matmul/bf16.rs`): every operand is rounded to bf16 (nearest even)
//! and packed in pairs `(k, k + 1)` along the product's inner dimension, `k` even; an output
//! element is one chain of `vdpbf16ps` over its pairs in increasing order from zero, then
//! multiplied by `alpha`, then added to the old value when accumulating. Where the GEMM path's
//! sums run over more pairs (its causal blocks are coarser), the extra terms are products with
//! exact zeros (probabilities and their gradients past the diagonal), which leave a finite sum
//! as it is: for finite inputs, and `T` and head sizes up to the GEMM's block of 256 values of
//! `k`, the two paths give the same bits (tested).
//!
//! # Packed operands
//!
//! `u32`s, each a bf16 pair (low half: the even index). A right operand `B` is `[pair][column]`
//! with rows of whole vectors of 16 (zeros past the last column); a left operand `A` is read
//! either by rows (`[row][pair]`) or by pairs (`[pair][row]`, for a transposed one). All of a
//! head's operands live in one thread-local buffer, grown once.

use std::arch::x86_64::{
    __m512, __m512bh, __m512i, _mm512_add_ps, _mm512_dpbf16_ps, _mm512_loadu_si512,
    _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_mul_ps, _mm512_set1_epi32, _mm512_set1_ps,
    _mm512_setzero_ps, _mm512_storeu_si512,
};
use std::cell::RefCell;
use std::ops::Range;

use super::HeadDropout;
use crate::kernels::matmul::bf16::{
    as_bh, convert_adjacent_avx512, lanes, pairs, transpose_pairs_avx512,
};
use crate::kernels::softmax::{Mask, softmax_backward, softmax_forward};

/// `f32` lanes per vector register.
const LANES: usize = 16;

thread_local! {
    /// A head's packed operands, reused by every call on this thread.
    static PACKED: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Whether this CPU can run the path (AVX-512 F, BW and BF16).
pub(super) fn supported() -> bool {
    crate::kernels::matmul::bf16::supported()
}

/// The sizes of one head's packed operands.
#[derive(Clone, Copy, Debug)]
struct Dims {
    /// Pairs along `T`.
    tp: usize,
    /// Pairs along `HS`.
    hp: usize,
    /// `T` in whole vectors: the row length of a right operand whose columns are positions.
    tw: usize,
    /// `HS` in whole vectors: the row length of a right operand whose columns are features.
    hw: usize,
    /// Output rows per register block of the products whose outputs are `HS` wide: eight
    /// rows of up to two vectors, or four of up to four (16 sums in registers either way).
    rows_hs: usize,
}

impl Dims {
    fn new(t: usize, hs: usize) -> Self {
        let hw = hs.next_multiple_of(LANES);
        Dims {
            tp: t.div_ceil(2),
            hp: hs.div_ceil(2),
            tw: t.next_multiple_of(LANES),
            hw,
            rows_hs: if hw <= 2 * LANES { 8 } else { 4 },
        }
    }
}

/// A head's sizes and score scale.
#[derive(Clone, Copy, Debug)]
pub(super) struct Head {
    /// Sequence length `T`.
    pub(super) t: usize,
    /// Model width `C` (`qkv` rows hold `3C` values, `out` rows `C`).
    pub(super) c: usize,
    /// Head size `HS`.
    pub(super) hs: usize,
    /// The scores' scale, `1 / sqrt(HS)`.
    pub(super) scale: f32,
}

/// Output rows per register block of the score products (`T x T`, up to four vectors wide).
const ROWS_T: usize = 4;

/// Splits the thread's buffer into `N` operands of the given lengths (grown once, never
/// shrunk) and runs `f` on them.
fn with_packed<const N: usize, R>(lens: [usize; N], f: impl FnOnce([&mut [u32]; N]) -> R) -> R {
    PACKED.with(|buf| {
        let mut buf = buf.borrow_mut();
        let total = lens.iter().sum();
        if buf.len() < total {
            buf.resize(total, 0);
        }
        let mut rest = &mut buf[..total];
        let parts = lens.map(|len| {
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(len);
            rest = tail;
            part
        });
        f(parts)
    })
}

/// One (batch, head) pair of the forward pass: [`super::direct::forward_head`]'s contract,
/// without the transposed keys (packed here).
pub(super) fn forward_head(
    out: &mut [f32],
    probs: &mut [f32],
    qkv: &[f32],
    head: Head,
    dropout: Option<HeadDropout>,
) {
    assert!(supported(), "bf16 attention needs AVX-512 BF16");
    let (t, d) = (head.t, Dims::new(head.t, head.hs));
    let lens = [t * d.hp, d.hp * d.tw, t * d.tp, d.tp * d.hw];
    with_packed(lens, |packed| {
        // SAFETY: `supported()` was asserted above.
        unsafe { forward_avx512(packed, head, out, probs, qkv, dropout) }
    });
}

/// [`forward_head`] on its packed operands (`Q` by rows, `K` transposed, `P` by rows, `V` by
/// column pairs).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn forward_avx512(
    [qr, kt, pr, vc]: [&mut [u32]; 4],
    Head { t, c, hs, scale }: Head,
    out: &mut [f32],
    probs: &mut [f32],
    qkv: &[f32],
    dropout: Option<HeadDropout>,
) {
    let d = Dims::new(t, hs);
    let ld = 3 * c;
    row_pairs(qkv, ld, t, |_| hs, qr, d.hp);
    transposed_pairs(&qkv[c..], ld, t, hs, kt, d.tw);
    // S = scale Q K^T, on and below the diagonal in whole vectors.
    let scores = |i0: usize, rows: usize| (0..d.hp, causal_cols(i0 + rows, t));
    let q = PairsA::by_rows(qr, d.hp);
    product(q, kt, d.tw, probs, t, t, ROWS_T, scores, scale, false);
    softmax_forward(probs, t, Mask::Causal(t));
    let pv: &[f32] = match dropout {
        None => probs,
        Some(mut dr) => {
            dr.drop_causal(probs, t); // P' = P * mask
            dr.dropped
        }
    };
    // O = P V: row block `i0..` stops at its last row's diagonal.
    let rows = d.rows_hs;
    row_pairs(pv, t, t, |i| block_end(i, rows, t), pr, d.tp);
    col_pairs(&qkv[2 * c..], ld, t, |_| hs, vc, d.hw);
    let below = |i0: usize, n: usize| (0..(i0 + n).div_ceil(2), hs);
    let p = PairsA::by_rows(pr, d.tp);
    product(p, vc, d.hw, out, c, t, rows, below, 1.0, false);
}

/// One (batch, head) pair of the backward pass, accumulating into `dqkv`:
/// [`super::direct::backward_head`]'s contract, without the transposed values (packed here).
pub(super) fn backward_head(
    dqkv: &mut [f32],
    dp: &mut [f32],
    dout: &[f32],
    qkv: &[f32],
    probs: &[f32],
    head: Head,
    dropout: Option<HeadDropout>,
) {
    assert!(supported(), "bf16 attention needs AVX-512 BF16");
    let (t, d) = (head.t, Dims::new(head.t, head.hs));
    let (by_t, by_hs) = (t * d.hp, d.tp * d.hw);
    let lens = [
        by_t,
        d.hp * d.tw,
        d.tp * d.tw,
        by_hs,
        t * d.tp,
        by_hs,
        by_hs,
    ];
    with_packed(lens, |packed| {
        // SAFETY: `supported()` was asserted above.
        unsafe { backward_avx512(packed, head, dqkv, dp, dout, qkv, probs, dropout) }
    });
}

/// [`backward_head`] on its packed operands.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn backward_avx512(
    [dor, vt, pc, doc, dsr, kc, qc]: [&mut [u32]; 7],
    Head { t, c, hs, scale }: Head,
    dqkv: &mut [f32],
    dp: &mut [f32],
    dout: &[f32],
    qkv: &[f32],
    probs: &[f32],
    dropout: Option<HeadDropout>,
) {
    let d = Dims::new(t, hs);
    let ld = 3 * c;
    // dP = dO V^T (the dropped probabilities' gradient with dropout).
    row_pairs(dout, c, t, |_| hs, dor, d.hp);
    transposed_pairs(&qkv[2 * c..], ld, t, hs, vt, d.tw);
    let scores = |i0: usize, rows: usize| (0..d.hp, causal_cols(i0 + rows, t));
    let o = PairsA::by_rows(dor, d.hp);
    product(o, vt, d.tw, dp, t, t, ROWS_T, scores, 1.0, false);
    let pv: &[f32] = match dropout {
        None => probs,
        Some(mut dr) => {
            dr.drop_causal_both(probs, dp, t); // P' = P * mask, dP = dP' * mask
            dr.dropped
        }
    };
    // dV += P^T dO: key `j` takes the queries from `j` on (pairs from `j / 2`).
    let rows = d.rows_hs;
    let from_diagonal = |j0: usize, _: usize| (j0 / 2..d.tp, hs);
    col_pairs(pv, t, t, |q| causal_pair_cols(q, t), pc, d.tw);
    col_pairs(dout, c, t, |_| hs, doc, d.hw);
    let pt = PairsA::by_pairs(pc, d.tw);
    product(
        pt,
        doc,
        d.hw,
        &mut dqkv[2 * c..],
        ld,
        t,
        rows,
        from_diagonal,
        1.0,
        true,
    );
    softmax_backward(dp, probs, t, Mask::Causal(t)); // dS
    // dQ += scale dS K
    row_pairs(dp, t, t, |i| block_end(i, rows, t), dsr, d.tp);
    col_pairs(&qkv[c..], ld, t, |_| hs, kc, d.hw);
    let below = |i0: usize, n: usize| (0..(i0 + n).div_ceil(2), hs);
    let ds = PairsA::by_rows(dsr, d.tp);
    product(ds, kc, d.hw, dqkv, ld, t, rows, below, scale, true);
    // dK += scale dS^T Q (dS's column pairs reuse P's buffer)
    col_pairs(dp, t, t, |q| causal_pair_cols(q, t), pc, d.tw);
    col_pairs(qkv, ld, t, |_| hs, qc, d.hw);
    let dst = PairsA::by_pairs(pc, d.tw);
    product(
        dst,
        qc,
        d.hw,
        &mut dqkv[c..],
        ld,
        t,
        rows,
        from_diagonal,
        scale,
        true,
    );
}

/// The columns a score row block ending at row `end` (exclusive) computes: those its last row
/// sees, in whole vectors, at most `t` (the softmax overwrites the extra ones).
fn causal_cols(end: usize, t: usize) -> usize {
    end.next_multiple_of(LANES).min(t)
}

/// The end of the `rows`-row block holding row `i`, at most `t`: how much of row `i` of a
/// causal matrix a product by row blocks reads.
fn block_end(i: usize, rows: usize, t: usize) -> usize {
    ((i / rows + 1) * rows).min(t)
}

/// A packed left operand: `A(r, q) = data[r * ld + q]` (by rows) or `data[q * ld + r]` (by
/// pairs, a transposed operand).
#[derive(Clone, Copy)]
struct PairsA<'a> {
    data: &'a [u32],
    ld: usize,
    by_rows: bool,
}

impl<'a> PairsA<'a> {
    fn by_rows(data: &'a [u32], ld: usize) -> Self {
        PairsA {
            data,
            ld,
            by_rows: true,
        }
    }

    fn by_pairs(data: &'a [u32], ld: usize) -> Self {
        PairsA {
            data,
            ld,
            by_rows: false,
        }
    }

    /// The index of `A(r, q)`.
    fn at(&self, r: usize, q: usize) -> usize {
        if self.by_rows {
            r * self.ld + q
        } else {
            q * self.ld + r
        }
    }
}

/// For the `m` output rows in blocks of `rows_per_block` (4 or 8): with `(pairs, cols) =
/// block(i0, rows)` for the block of `rows` rows from `i0`,
/// `C[i, j] = alpha * sum_{q in pairs} A(i, q) . B[q][j]` for `j < cols`, plus the old
/// `C[i, j]` if `accumulate`. `C[i, j]` is `c[i * ldc + j]`, `B[q][j]` is `b[q * ldb + j]`
/// (`ldb` whole vectors, at least `cols`).
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn product(
    a: PairsA,
    b: &[u32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    m: usize,
    rows_per_block: usize,
    block: impl Fn(usize, usize) -> (Range<usize>, usize),
    alpha: f32,
    accumulate: bool,
) {
    assert!(rows_per_block == 4 || rows_per_block == 8);
    assert!(ldb.is_multiple_of(LANES));
    // Columns per register block: 16 sums in registers.
    let chunk = if rows_per_block == 8 { 2 } else { 4 } * LANES;
    for i0 in (0..m).step_by(rows_per_block) {
        let rows = rows_per_block.min(m - i0);
        let (qs, cols) = block(i0, rows);
        assert!(cols <= ldb);
        if cols == 0 {
            continue;
        }
        // Every index the kernels read or write, at its largest (with no pairs, the sums are
        // 0 and only `C` is touched).
        if !qs.is_empty() {
            assert!(a.at(i0 + rows - 1, qs.end - 1) < a.data.len());
            assert!((qs.end - 1) * ldb + cols.next_multiple_of(LANES) <= b.len());
        }
        assert!((i0 + rows - 1) * ldc + cols <= c.len());
        for col0 in (0..cols).step_by(chunk) {
            let width = chunk.min(cols - col0);
            let args = Block {
                a: a.data.as_ptr().wrapping_add(a.at(i0, 0)),
                lda: a.ld,
                b: b[col0..].as_ptr(),
                ldb,
                qs: qs.clone(),
                c: c[i0 * ldc + col0..].as_mut_ptr(),
                ldc,
                cols: width,
                alpha,
                accumulate,
            };
            // SAFETY: this function's target features are the kernels'; the asserts above bound every element of `A` (rows `i0..i0 +
            // rows`, pairs `qs`), `B` (pairs `qs`, whole vectors from `col0` within `cols`
            // rounded up) and `C` (rows `i0..i0 + rows`, columns `col0..col0 + width`) the
            // kernels touch.
            unsafe { dispatch(rows, width.div_ceil(LANES), a.by_rows, &args) };
        }
    }
}

/// One register block's operands: `a` at `A(i0, 0)` (a pointer only offset from, never read
/// outside the asserted bounds), `b` at `B[0][col0]`, `c` at `C[i0, col0]`.
struct Block {
    a: *const u32,
    lda: usize,
    b: *const u32,
    ldb: usize,
    qs: Range<usize>,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    alpha: f32,
    accumulate: bool,
}

/// Runs [`tile`] for `rows` rows (4 or 8: one block; fewer: one row at a time) and `vectors`
/// vectors of columns.
///
/// # Safety
/// As [`tile`], for every row.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn dispatch(rows: usize, vectors: usize, by_rows: bool, k: &Block) {
    macro_rules! go {
        ($r:literal, $k:expr, $($v:literal),*) => {
            match (vectors, by_rows) {
                $(
                    ($v, true) => tile::<$r, $v, true>($k),
                    ($v, false) => tile::<$r, $v, false>($k),
                )*
                _ => unreachable!("{vectors} vectors in a block of {} rows", $r),
            }
        };
    }
    // SAFETY: the caller's contract; `product` gives blocks of 8 rows at most 2 vectors.
    unsafe {
        match rows {
            8 => go!(8, k, 1, 2),
            4 => go!(4, k, 1, 2, 3, 4),
            _ => {
                for r in 0..rows {
                    let a = if by_rows { r * k.lda } else { r };
                    let row = Block {
                        a: k.a.wrapping_add(a),
                        c: k.c.wrapping_add(r * k.ldc),
                        qs: k.qs.clone(),
                        ..*k
                    };
                    go!(1, &row, 1, 2, 3, 4);
                }
            }
        }
    }
}

/// `C[r, j] = alpha * sum_{q in qs} A(r, q) . B[q][j] (+ C[r, j])` for `r < R`,
/// `j < cols <= 16 V`, with the `R x V` vectors of sums in registers.
///
/// # Safety
/// The CPU has AVX-512 F, BW and BF16; `A(r, q)` for `r < R`, `q in qs` (at `a + r * lda + q` by
/// rows, `a + q * lda + r` by pairs), `B[q][16 V]` from `b + q * ldb` and `C[r, 0..cols]` from
/// `c + r * ldc` lie inside their allocations.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
#[inline]
unsafe fn tile<const R: usize, const V: usize, const BY_ROWS: bool>(k: &Block) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    for q in k.qs.clone() {
        // SAFETY: the function's contract bounds every read of `A` and `B`.
        unsafe {
            let bv: [__m512bh; V] = std::array::from_fn(|v| {
                as_bh(_mm512_loadu_si512(
                    k.b.add(q * k.ldb + v * LANES) as *const __m512i
                ))
            });
            for (r, acc) in acc.iter_mut().enumerate() {
                let at = if BY_ROWS {
                    r * k.lda + q
                } else {
                    q * k.lda + r
                };
                let av = as_bh(_mm512_set1_epi32(*k.a.add(at) as i32));
                for v in 0..V {
                    acc[v] = _mm512_dpbf16_ps(acc[v], av, bv[v]);
                }
            }
        }
    }
    let alpha = _mm512_set1_ps(k.alpha);
    for (r, acc) in acc.iter().enumerate() {
        for (v, &sum) in acc.iter().enumerate() {
            let col = v * LANES;
            if col >= k.cols {
                break;
            }
            let mask = lanes(k.cols - col);
            // SAFETY: row `r < R`, columns `col..k.cols.min(col + 16)` of `C`: the contract;
            // masked lanes are neither read nor written.
            unsafe {
                let ptr = k.c.add(r * k.ldc + col);
                let mut out: __m512 = _mm512_mul_ps(alpha, sum);
                if k.accumulate {
                    // As the bf16 GEMM's `beta = 1`: the old value added after scaling.
                    out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask, ptr));
                }
                _mm512_mask_storeu_ps(ptr, mask, out);
            }
        }
    }
}

/// `dst[r * ldd + q]` = the bf16 pair (`src[r * lds + 2q]`, `src[r * lds + 2q + 1]`) for
/// `r < rows`, `q < width(r).div_ceil(2)` (0 for the value past an odd width).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn row_pairs(
    src: &[f32],
    lds: usize,
    rows: usize,
    width: impl Fn(usize) -> usize,
    dst: &mut [u32],
    ldd: usize,
) {
    for r in 0..rows {
        let row = &src[r * lds..][..width(r)];
        let out = &mut dst[r * ldd..][..row.len().div_ceil(2)];
        // SAFETY: this function has the target features; `out` holds `row`'s pairs exactly.
        unsafe { convert_adjacent_avx512(row, out) };
    }
}

/// `dst[q * ldd + j]` = the bf16 pair (`src[2q * lds + j]`, `src[(2q + 1) * lds + j]`, or 0
/// past `rows`) for `q < rows.div_ceil(2)`, `j < width(q)`, and 0 from there to the end of
/// the vector (`width(q) <= ldd`, `ldd` whole vectors); the rest of each row is not written.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn col_pairs(
    src: &[f32],
    lds: usize,
    rows: usize,
    width: impl Fn(usize) -> usize,
    dst: &mut [u32],
    ldd: usize,
) {
    assert!(ldd.is_multiple_of(LANES));
    for q in 0..rows.div_ceil(2) {
        let cols = width(q);
        assert!(cols <= ldd);
        let even = &src[2 * q * lds..][..cols];
        let odd = (2 * q + 1 < rows).then(|| &src[(2 * q + 1) * lds..][..cols]);
        let out = &mut dst[q * ldd..][..cols.next_multiple_of(LANES)];
        for j in (0..cols).step_by(LANES) {
            // SAFETY: this function has `pairs`'s target features; lanes `0..cols - j` from
            // `j < cols` lie inside `even` and `odd` (both `cols` long); the store covers
            // `out[j..j + 16]`, inside `out` (whole vectors).
            unsafe {
                let v = pairs(even, odd, j, lanes(cols - j));
                _mm512_storeu_si512(out[j..].as_mut_ptr() as *mut __m512i, v);
            }
        }
    }
}

/// The columns of pair row `q` of a causal `T x T` matrix's column pairs that the products by
/// pairs read, at most `t`: a block of keys `j0..j0 + R` (`j0` a multiple of `R`, 4 or 8)
/// reads pair rows from `j0 / 2` on, so pair row `q` is read at `j < 2q + R`, which
/// `2q + 2` rounded up to whole vectors covers. Further right lie zeros (past the diagonal)
/// that no product reads.
fn causal_pair_cols(q: usize, t: usize) -> usize {
    (2 * q + 2).next_multiple_of(LANES).min(t)
}

/// `dst[q * ldd + r]` = the bf16 pair (`src[r * lds + 2q]`, `src[r * lds + 2q + 1]`) for
/// `r < rows`, `q < cols.div_ceil(2)`; 0 for `rows <= r < ldd` (`ldd` whole vectors): a
/// `rows x cols` block, paired along its rows and transposed, 16 x 16 pairs at a time.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
fn transposed_pairs(
    src: &[f32],
    lds: usize,
    rows: usize,
    cols: usize,
    dst: &mut [u32],
    ldd: usize,
) {
    let pairs_per_row = cols.div_ceil(2);
    assert!(ldd.is_multiple_of(LANES) && rows <= ldd);
    assert!(pairs_per_row == 0 || (pairs_per_row - 1) * ldd + ldd <= dst.len());
    for r0 in (0..ldd).step_by(LANES) {
        let columns: [&[f32]; LANES] = std::array::from_fn(|l| {
            let r = r0 + l;
            if r < rows {
                &src[r * lds..][..cols]
            } else {
                &[]
            }
        });
        // SAFETY: this function has the target features; every column holds at most `cols
        // <= 2 * pairs_per_row` values, and `(pairs_per_row - 1) * ldd + 16 <= dst.len() -
        // r0` as `r0 + 16 <= ldd` (asserted above).
        unsafe { transpose_pairs_avx512(&columns, pairs_per_row, &mut dst[r0..], ldd) };
    }
}
