//! Attention at bf16 matmul precision: the direct bf16 loops ([`Products::DirectBf16`]) give
//! the bf16 GEMM calls' bits ([`Products::Gemm`]), forward and backward, with and without
//! dropout; and both stay within bf16 rounding of the f32 direct loops. (Its own test binary:
//! the matmul precision is process-wide.) Skipped, with a line on stderr, on CPUs without
//! AVX-512 BF16.

use cllm_tensor::kernels::attention::{
    AttentionShape, Products, attention_backward_with, attention_forward_with,
};
use cllm_tensor::kernels::dropout::{BatchDropout, Dropout};
use cllm_tensor::kernels::matmul::{Precision, set_precision};

/// Values in about [-2, 2] from a seed (a hash of the index, not a sine: no pattern for the
/// products to cancel on).
fn values(len: usize, seed: u64) -> Vec<f32> {
    (0..len as u64)
        .map(|i| {
            let mut x = (i ^ (seed << 32)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x ^= x >> 29;
            x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
            x ^= x >> 32;
            (x >> 40) as f32 / (1u64 << 24) as f32 * 4.0 - 2.0
        })
        .collect()
}

/// Output, probabilities and the gradient added to a non-zero `dqkv` of one forward and
/// backward pass computed as `products`.
fn run(
    products: Products,
    s: AttentionShape,
    dropout: Option<BatchDropout>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let qkv = values(s.qkv_len(), 1);
    let dout = values(s.out_len(), 2);
    let mut dqkv = values(s.qkv_len(), 3);
    let mut out = vec![f32::NAN; s.out_len()];
    let mut probs = vec![f32::NAN; s.probs_len()];
    let mut scratch = vec![f32::NAN; s.scratch_len()];
    let (o, p, sc) = (&mut out, &mut probs, &mut scratch);
    attention_forward_with(products, o, p, sc, &qkv, s, dropout);
    let (d, sc) = (&mut dqkv, &mut scratch);
    attention_backward_with(products, d, sc, &dout, &qkv, &probs, s, dropout);
    (out, probs, dqkv)
}

/// Panics naming the first element where `x` and `y` differ in their bits.
fn assert_same_bits(x: &[f32], y: &[f32], what: &str) {
    assert_eq!(x.len(), y.len(), "{what}: lengths");
    if let Some(i) = (0..x.len()).find(|&i| x[i].to_bits() != y[i].to_bits()) {
        let differ = (0..x.len()).filter(|&i| x[i].to_bits() != y[i].to_bits());
        panic!(
            "{what}: {} of {} elements differ, the first at {i}: {} against {}",
            differ.count(),
            x.len(),
            x[i],
            y[i]
        );
    }
}

/// The presets' head shapes (nanoGPT-cpu and medium: heads of 32 at T = 64 and 128;
/// nanoGPT-baby: 64 at 256), and odd ones: T not a multiple of 16 or 2, heads of 24 and 40
/// (pairs past a vector), a head of 8, and heads of 15 (a pair cut short).
fn shapes() -> Vec<AttentionShape> {
    [
        (64, 128, 4),
        (128, 256, 8),
        (256, 384, 6),
        (33, 48, 2),
        (70, 120, 3),
        (17, 16, 2),
        (5, 80, 2),
        (9, 45, 3),
    ]
    .into_iter()
    .map(|(t, c, nh)| AttentionShape { b: 2, t, c, nh })
    .collect()
}

#[test]
fn direct_bf16_gives_the_bf16_gemm_bits_and_stays_near_f32() {
    if !Precision::Bf16.supported() {
        eprintln!("skipped: this CPU has no AVX-512 BF16");
        return;
    }
    set_precision(Precision::Bf16).expect("supported");
    let dropouts = [
        None,
        Some(BatchDropout {
            dropout: Dropout::new(0.3, 77),
            first: 5,
        }),
    ];
    for s in shapes() {
        for dropout in dropouts {
            let what = format!("{s:?}, dropout {}", dropout.is_some());
            let gemm = run(Products::Gemm, s, dropout);
            let direct = run(Products::DirectBf16, s, dropout);
            assert_same_bits(&direct.0, &gemm.0, &format!("output, {what}"));
            assert_same_bits(&direct.1, &gemm.1, &format!("probabilities, {what}"));
            assert_same_bits(&direct.2, &gemm.2, &format!("gradient, {what}"));
            // bf16 operands (8 significant bits) against f32 ones: close, not equal.
            let f32s = run(Products::Direct, s, dropout);
            for (name, x, y) in [
                ("output", &direct.0, &f32s.0),
                ("gradient", &direct.2, &f32s.2),
            ] {
                let worst = x
                    .iter()
                    .zip(y)
                    .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
                    .fold(0.0f32, f32::max);
                assert!(worst < 0.05, "{name}, {what}: off by {worst}");
                assert!(worst > 0.0, "{name}, {what}: bf16 rounding changed nothing");
            }
        }
    }
}
