//! Scalar math that vectorises: `exp` and `tanh` without libm calls.
//!
//! Softmax and GELU evaluate `exp`/`tanh` hundreds of thousands of times per training step;
//! a libm call per element costs more than the surrounding GEMMs save. These versions are
//! branch-free straight-line code that LLVM turns into SIMD inside the callers' loops.
//! Accuracy (tested below against `std`): `exp` within 2 ulp relative on `[-87, 88]`,
//! `tanh` within 3e-7 absolute everywhere.
//!
//! Two things keep these loops vectorised, and both are easy to undo by accident:
//! * no `f32 as i32` casts: Rust's cast saturates, which LLVM lowers to scalar `cvttss2si`
//!   and the whole loop falls back to scalar code; `exp` reads the integer out of the
//!   rounding constant's bits instead;
//! * no running `sum +=` in a loop that also does the real work: float addition is not
//!   associative, so LLVM will not vectorise such a loop. Reductions go through [`sum`],
//!   [`max`] and [`dot`], which keep [`LANES`] partial results.

use multiversion::multiversion;

/// `log2(e)`.
const LOG2E: f32 = std::f32::consts::LOG2_E;
/// `ln 2` split in two so that `n * LN2_HI` is exact for the `n` that occur (Cody–Waite).
const LN2_HI: f32 = 0.693_359_4;
/// The remainder `ln 2 - LN2_HI`.
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding and subtracting `1.5 * 2^23` rounds an f32 of magnitude below 2^22 to an integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// `e^x`; exactly `0` below `x = -87.3` (where f32 turns subnormal) and saturating at
/// `e^88.3` above `x = 88.3`.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    let underflow = x < -87.3;
    let x = x.clamp(-87.3, 88.3);
    // x = n ln2 + r with |r| <= ln2 / 2, so e^x = 2^n e^r.
    let shifted = x * LOG2E + ROUND_MAGIC;
    let n = shifted - ROUND_MAGIC;
    let r = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, x));
    // Minimax polynomial for e^r on [-ln2/2, ln2/2] (Cephes expf coefficients).
    // `mul_add` is one FMA instruction when the target has FMA (x86-64-v3 and up, which
    // `target-cpu=native` enables on such machines) and halves the Horner chain's latency.
    let mut p = 1.987_569_1e-4_f32;
    p = p.mul_add(r, 1.398_199_9e-3);
    p = p.mul_add(r, 8.333_452e-3);
    p = p.mul_add(r, 4.166_579_6e-2);
    p = p.mul_add(r, 1.666_666_5e-1);
    p = p.mul_add(r, 0.5);
    let er = (p * r).mul_add(r, r) + 1.0;
    // 2^n from its exponent bits. `shifted` = 1.5 * 2^23 + n exactly, so its low mantissa bits
    // are n in two's complement; n is in [-126, 127] after the clamp.
    let n_bits = shifted.to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
    let two_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
    if underflow { 0.0 } else { er * two_n }
}

/// [`exp`] of every element of `x`, in place, with results bit-identical to [`exp`].
///
/// The same arithmetic as [`exp`], written a step at a time across the whole array, so the
/// compiled code interleaves `N / 8` independent vector chains. Called element by element,
/// `exp`'s chain of some twenty dependent operations outlasts what the CPU's scheduler can
/// look ahead across, and throughput is bound by its latency; across a block it is not.
#[inline(always)]
pub fn exp_block<const N: usize>(x: &mut [f32; N]) {
    let mut underflow = [false; N];
    let mut shifted = [0.0f32; N];
    let mut r = [0.0f32; N];
    for i in 0..N {
        underflow[i] = x[i] < -87.3;
        let xc = x[i].clamp(-87.3, 88.3);
        shifted[i] = xc * LOG2E + ROUND_MAGIC;
        let n = shifted[i] - ROUND_MAGIC;
        r[i] = (-n).mul_add(LN2_LO, (-n).mul_add(LN2_HI, xc));
    }
    let mut p = [1.987_569_1e-4_f32; N];
    for c in [
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ] {
        for i in 0..N {
            p[i] = p[i].mul_add(r[i], c);
        }
    }
    for i in 0..N {
        let er = (p[i] * r[i]).mul_add(r[i], r[i]) + 1.0;
        let n_bits = shifted[i].to_bits().wrapping_sub(ROUND_MAGIC.to_bits());
        let two_n = f32::from_bits(n_bits.wrapping_add(127) << 23);
        x[i] = if underflow[i] { 0.0 } else { er * two_n };
    }
}

/// Elements per [`exp_block`] call in [`exp_slice`]: four AVX2 registers' worth of
/// independent chains (16 and 64 measured no better in the GELU kernels, see `gelu.rs`).
const EXP_BLOCK: usize = 32;

/// [`exp`] of every element of `x`, in place, bit-identical to [`exp`]: whole blocks through
/// [`exp_block`], the last partial block zero-padded.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn exp_slice(x: &mut [f32]) {
    let mut blocks = x.chunks_exact_mut(EXP_BLOCK);
    for b in &mut blocks {
        let b: &mut [f32; EXP_BLOCK] = b.try_into().expect("chunks_exact gives whole blocks");
        exp_block(b);
    }
    let tail = blocks.into_remainder();
    let mut padded = [0.0f32; EXP_BLOCK];
    padded[..tail.len()].copy_from_slice(tail);
    exp_block(&mut padded);
    tail.copy_from_slice(&padded[..tail.len()]);
}

/// `tanh(x)` as `1 - 2 / (e^{2|x|} + 1)` with the sign restored.
#[inline(always)]
pub fn tanh(x: f32) -> f32 {
    let e = exp(2.0 * x.abs());
    let t = 1.0 - 2.0 / (e + 1.0);
    t.copysign(x)
}

/// Partial results kept by the reductions: one AVX2 register of f32.
pub const LANES: usize = 8;

/// Sum of `x`, in [`LANES`] interleaved partial sums (vectorises; rounding differs from a
/// left-to-right sum by a few ulp).
#[inline(always)]
pub fn sum(x: &[f32]) -> f32 {
    let mut acc = [0.0f32; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..LANES {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest element of `x` (`-inf` for an empty slice; NaNs are ignored).
#[inline(always)]
pub fn max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let chunks = x.chunks_exact(LANES);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for c in chunks {
        for i in 0..LANES {
            acc[i] = acc[i].max(c[i]);
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// Dot product of two equally long slices, in [`LANES`] partial sums.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    let mut acc = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Sum of squares of `x` in f64: f32 lanes within blocks of 1024, blocks added in f64, so long
/// gradients keep their precision while the inner loop vectorises.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn sum_of_squares(x: &[f32]) -> f64 {
    x.chunks(1024).map(|block| dot(block, block) as f64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reductions() {
        let x: Vec<f32> = (0..37).map(|i| i as f32 - 10.5).collect();
        assert_eq!(sum(&x), x.iter().sum::<f32>());
        assert_eq!(max(&x), 25.5);
        assert_eq!(max(&[]), f32::NEG_INFINITY);
        assert_eq!(dot(&x, &x), x.iter().map(|v| v * v).sum::<f32>());
        let long: Vec<f32> = (0..5000).map(|i| (i % 3) as f32).collect();
        assert_eq!(
            sum_of_squares(&long),
            long.iter().map(|&v| (v * v) as f64).sum::<f64>()
        );
    }

    #[test]
    fn exp_matches_std() {
        let mut worst = 0.0f64;
        let mut x = -87.0f32;
        while x < 88.0 {
            let want = (x as f64).exp();
            let got = exp(x) as f64;
            worst = worst.max(((got - want) / want).abs());
            x += 0.001_3;
        }
        assert!(worst < 2.5e-7, "exp worst relative error {worst}");
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(-1000.0), 0.0);
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn exp_block_is_exp_bit_for_bit() {
        let mut x = -100.0f32;
        while x < 100.0 {
            let mut block: [f32; 32] = std::array::from_fn(|i| x + i as f32 * 0.003_7);
            let want = block.map(exp);
            exp_block(&mut block);
            assert_eq!(block.map(f32::to_bits), want.map(f32::to_bits), "from {x}");
            x += 0.117;
        }
        // Whole blocks and a zero-padded tail, -inf included.
        let mut v: Vec<f32> = (0..75).map(|i| i as f32 * 0.9 - 40.0).collect();
        v[3] = f32::NEG_INFINITY;
        let want: Vec<u32> = v.iter().map(|&x| exp(x).to_bits()).collect();
        exp_slice(&mut v);
        assert_eq!(v.iter().map(|x| x.to_bits()).collect::<Vec<_>>(), want);
        assert_eq!(v[3], 0.0);
    }

    #[test]
    fn tanh_matches_std() {
        let mut worst = 0.0f64;
        let mut x = -12.0f32;
        while x < 12.0 {
            let want = (x as f64).tanh();
            worst = worst.max((tanh(x) as f64 - want).abs());
            x += 0.000_7;
        }
        assert!(worst < 3e-7, "tanh worst absolute error {worst}");
        assert_eq!(tanh(0.0), 0.0);
        assert_eq!(tanh(50.0), 1.0);
        assert_eq!(tanh(-50.0), -1.0);
    }
}
