//! The bf16 backend against the naive reference: exact on operands bf16 can hold, rounding to
//! nearest even, independence of rows, edges of every tile and block, NaN and `beta = 0`.
//!
//! Skipped (with a line on stderr) on CPUs without AVX-512 BF16.

use super::*;
use crate::test_util::{assert_close, random_vec};

fn skip() -> bool {
    let skip = !Precision::Bf16.supported();
    if skip {
        eprintln!("skipped: this CPU has no AVX-512 BF16");
    }
    skip
}

fn operand_len(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 { 0 } else { (rows - 1) * ld + cols }
}

/// Operands for `spec` made by `gen(len, seed)`, and a starting `C`.
fn operands(
    spec: &GemmSpec,
    seed: u64,
    generate: impl Fn(usize, u64) -> Vec<f32>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (ar, ac) = spec.a_dims();
    let (br, bc) = spec.b_dims();
    (
        generate(operand_len(ar, ac, spec.lda), seed),
        generate(operand_len(br, bc, spec.ldb), seed + 1),
        generate(operand_len(spec.m, spec.n, spec.ldc), seed + 2),
    )
}

/// Multiples of 1/4 in [-2, 2]: exact in bf16, and every sum of their products up to k = 1000
/// is exact in f32, so any summation order gives the same bits.
fn quarters(len: usize, seed: u64) -> Vec<f32> {
    random_vec(len, seed)
        .into_iter()
        .map(|x| (x * 8.0).round() / 4.0)
        .collect()
}

/// `x` rounded to bfloat16, nearest with ties to even (finite, normal `x`).
fn round_bf16(x: f32) -> f32 {
    let bits = x.to_bits();
    let lsb = (bits >> 16) & 1;
    f32::from_bits((bits + 0x7fff + lsb) & 0xffff_0000)
}

/// The bf16 backend gives the reference's bits on operands bf16 holds exactly.
fn assert_exact(spec: GemmSpec, seed: u64) {
    let (a, b, c0) = operands(&spec, seed, quarters);
    let mut want = c0.clone();
    let mut got = c0;
    matmul_with(Backend::Naive, &spec, &a, &b, &mut want);
    matmul_with(Backend::Bf16, &spec, &a, &b, &mut got);
    assert_eq!(got, want, "{spec:?}");
}

fn layouts(m: usize, k: usize, n: usize) -> [GemmSpec; 3] {
    [
        GemmSpec::nn(m, k, n),
        GemmSpec::nt(m, k, n),
        GemmSpec::tn(m, k, n),
    ]
}

#[test]
fn exact_on_bf16_operands_for_every_layout_and_edge() {
    if skip() {
        return;
    }
    // m around the 8-row panels, n around the 32-column tiles and 512-column blocks, k odd,
    // even and past the 256-value blocks.
    let mut seed = 0;
    for &m in &[1, 7, 8, 9, 17, 64] {
        for &k in &[1, 2, 3, 31, 64, 255, 256, 257, 600] {
            for &n in &[1, 15, 16, 17, 32, 33, 65, 513] {
                for spec in layouts(m, k, n) {
                    seed += 3;
                    assert_exact(spec, seed);
                }
            }
        }
    }
}

#[test]
fn exact_across_row_and_column_blocks() {
    if skip() {
        return;
    }
    // m past the 128-row blocks of A, n past the 512-column blocks of B.
    let mut seed = 1000;
    for &m in &[129, 257] {
        for &k in &[3, 300] {
            for &n in &[33, 520] {
                for spec in layouts(m, k, n) {
                    seed += 3;
                    assert_exact(spec, seed);
                }
            }
        }
    }
}

#[test]
fn exact_with_alpha_beta_and_leading_dimensions() {
    if skip() {
        return;
    }
    for (i, spec) in layouts(33, 300, 40).into_iter().enumerate() {
        let (_, ac) = spec.a_dims();
        let (_, bc) = spec.b_dims();
        for spec in [
            spec.accumulate()
                .alpha(0.5)
                .lead(ac + 5, bc + 3, spec.n + 11),
            spec.alpha(-2.0).accumulate(),
            GemmSpec { beta: 0.25, ..spec },
        ] {
            assert_exact(spec, 50 + i as u64);
        }
    }
}

#[test]
fn rounds_operands_to_nearest_even_then_sums_in_f32() {
    if skip() {
        return;
    }
    for (i, spec) in layouts(40, 200, 70).into_iter().enumerate() {
        let (a, b, _) = operands(&spec, 90 + i as u64, random_vec);
        let mut got = vec![0.0; spec.m * spec.n];
        matmul_with(Backend::Bf16, &spec, &a, &b, &mut got);
        // The f64 reference on the rounded operands: only f32 summation error remains.
        let ra: Vec<f32> = a.iter().map(|&x| round_bf16(x)).collect();
        let rb: Vec<f32> = b.iter().map(|&x| round_bf16(x)).collect();
        let mut want = vec![0.0; spec.m * spec.n];
        matmul_with(Backend::Naive, &spec, &ra, &rb, &mut want);
        assert_close(
            &got,
            &want,
            1e-5 * (1.0 + spec.k as f32),
            "rounded reference",
        );
        // Against the unrounded operands the error is the rounding's: a relative 2^-9 per
        // operand, about sqrt(k) * 2^-8 * |a||b| over a sum of k random-signed products.
        let mut exact = vec![0.0; spec.m * spec.n];
        matmul_with(Backend::Naive, &spec, &a, &b, &mut exact);
        let tol = (spec.k as f32).sqrt() * 4.0 / 256.0;
        for (g, e) in got.iter().zip(&exact) {
            assert!((g - e).abs() <= tol, "{spec:?}: {g} vs {e}");
        }
    }
}

#[test]
fn a_row_does_not_depend_on_the_other_rows_of_the_call() {
    if skip() {
        return;
    }
    // What makes a batch split across lattice workers give the same bits as one worker.
    let (m, k, n) = (300, 300, 50);
    let a = random_vec(m * k, 5);
    let b = random_vec(n * k, 6);
    let spec = GemmSpec::nt(m, k, n);
    let mut whole = vec![0.0; m * n];
    matmul_with(Backend::Bf16, &spec, &a, &b, &mut whole);
    for (start, rows) in [(0, 5), (5, 8), (13, 1), (14, 23), (37, 263)] {
        let mut part = vec![0.0; rows * n];
        let sub = GemmSpec::nt(rows, k, n);
        matmul_with(Backend::Bf16, &sub, &a[start * k..], &b, &mut part);
        assert_eq!(part, whole[start * n..][..rows * n], "rows {start}..");
    }
}

#[test]
fn nan_propagates_and_beta_zero_ignores_nan_in_output() {
    if skip() {
        return;
    }
    let spec = GemmSpec::nn(3, 4, 5);
    let mut a = quarters(12, 1);
    let b = quarters(20, 2);
    let mut c = vec![f32::NAN; 15];
    matmul_with(Backend::Bf16, &spec, &a, &b, &mut c);
    assert!(c.iter().all(|x| x.is_finite()), "read C although beta = 0");
    a[4] = f32::NAN; // row 1
    matmul_with(Backend::Bf16, &spec, &a, &b, &mut c);
    for (i, row) in c.chunks(5).enumerate() {
        assert_eq!(row.iter().all(|x| x.is_nan()), i == 1, "row {i}: {row:?}");
    }
}
