//! Every backend against the naive reference, on odd shapes, in every layout.

use super::*;
use crate::test_util::{assert_close, random_vec};

const DIMS: [usize; 6] = [1, 2, 7, 65, 129, 200];

fn layouts(m: usize, k: usize, n: usize) -> [GemmSpec; 3] {
    [
        GemmSpec::nn(m, k, n),
        GemmSpec::nt(m, k, n),
        GemmSpec::tn(m, k, n),
    ]
}

fn operand_len(rows: usize, cols: usize, ld: usize) -> usize {
    if rows == 0 { 0 } else { (rows - 1) * ld + cols }
}

fn compare(backend: Backend, spec: GemmSpec, seed: u64) {
    let (ar, ac) = spec.a_dims();
    let (br, bc) = spec.b_dims();
    let a = random_vec(operand_len(ar, ac, spec.lda), seed);
    let b = random_vec(operand_len(br, bc, spec.ldb), seed + 1);
    let c0 = random_vec(operand_len(spec.m, spec.n, spec.ldc), seed + 2);
    let mut want = c0.clone();
    let mut got = c0.clone();
    matmul_with(Backend::Naive, &spec, &a, &b, &mut want);
    matmul_with(backend, &spec, &a, &b, &mut got);
    // f32 dot products of length k drift from the f64 reference by about sqrt(k) ulps of the
    // running sum; 1e-5 relative plus 1e-5 * k absolute covers k = 200 with inputs in [-1, 1].
    let tol = 1e-5 * (1.0 + spec.k as f32);
    assert_close(&got, &want, tol, &format!("{backend:?} {spec:?}"));
}

#[test]
fn every_backend_matches_reference_on_odd_shapes() {
    for &backend in Backend::all() {
        let mut seed = 0;
        for &m in &DIMS {
            for &k in &DIMS {
                for &n in &[1, 7, 65, 129] {
                    for spec in layouts(m, k, n) {
                        seed += 3;
                        compare(backend, spec, seed);
                    }
                }
            }
        }
    }
}

#[test]
fn accumulate_alpha_and_leading_dimensions() {
    for &backend in Backend::all() {
        for (i, spec) in layouts(33, 17, 9).into_iter().enumerate() {
            let (_, ac) = spec.a_dims();
            let (_, bc) = spec.b_dims();
            let wide = spec
                .accumulate()
                .alpha(0.5)
                .lead(ac + 5, bc + 3, spec.n + 11);
            compare(backend, wide, 100 + i as u64);
            compare(backend, spec.alpha(-2.0).accumulate(), 200 + i as u64);
        }
    }
}

#[test]
fn beta_zero_ignores_nan_in_output() {
    for &backend in Backend::all() {
        let spec = GemmSpec::nn(3, 4, 5);
        let a = random_vec(12, 1);
        let b = random_vec(20, 2);
        let mut c = vec![f32::NAN; 15];
        matmul_with(backend, &spec, &a, &b, &mut c);
        assert!(
            c.iter().all(|x| x.is_finite()),
            "{backend:?} read C although beta = 0"
        );
    }
}

#[test]
fn zero_k_scales_or_clears_c() {
    let mut c = vec![2.0; 6];
    matmul(&GemmSpec::nn(2, 0, 3), &[], &[], &mut c);
    assert_eq!(c, vec![0.0; 6]);
    let mut c = vec![2.0; 6];
    matmul(&GemmSpec::nn(2, 0, 3).accumulate(), &[], &[], &mut c);
    assert_eq!(c, vec![2.0; 6]);
}

#[test]
fn batched_matches_loop() {
    let spec = GemmSpec::nt(5, 8, 6);
    let strides = BatchStrides {
        a: 40,
        b: 48,
        c: 30,
    };
    let a = random_vec(3 * 40, 7);
    let b = random_vec(3 * 48, 8);
    let mut got = vec![0.0; 90];
    matmul_batched(&spec, 3, strides, &a, &b, &mut got);
    let mut want = vec![0.0; 90];
    for i in 0..3 {
        matmul_with(
            Backend::Naive,
            &spec,
            &a[i * 40..],
            &b[i * 48..],
            &mut want[i * 30..],
        );
    }
    assert_close(&got, &want, 1e-5, "batched");
}

#[test]
#[should_panic(expected = "needs 12 elements, got 11")]
fn short_operand_is_refused() {
    let mut c = vec![0.0; 9];
    matmul(&GemmSpec::nn(3, 4, 3), &[0.0; 11], &[0.0; 12], &mut c);
}
