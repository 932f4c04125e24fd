//! GEMM throughput on the shapes of one nanoGPT-cpu training step, for every compiled backend,
//! and the element-wise kernels (GELU, layer norm, causal softmax) on the same step's shapes.
//!
//! Run: `cargo bench -p cllm-tensor` (add `--features openblas` to include OpenBLAS; set
//! `OPENBLAS_CORETYPE=SkylakeX` first on AVX-512 machines). Throughput is printed as
//! `elem/s` where one element is one floating-point operation, so `Gelem/s` reads GFLOP/s.
//!
//! Shapes come from the nanoGPT CPU config: B*T = 768 rows, C = 128, 4C = 512, V = 65,
//! T = 64, head size 32. `m x k x n` with the layout the step uses them in.

use std::hint::black_box;
use std::time::Duration;

use cllm_tensor::kernels::Write;
use cllm_tensor::kernels::attention::{
    AttentionShape, Products, attention_backward_with, attention_forward_with,
};
use cllm_tensor::kernels::elementwise::mul_forward;
use cllm_tensor::kernels::gelu::{gelu_backward, gelu_forward, gelu_forward_in_place_saving_grad};
use cllm_tensor::kernels::layernorm::{layernorm_backward, layernorm_forward};
use cllm_tensor::kernels::matmul::{Backend, GemmSpec, Precision, matmul_with, set_precision};
use cllm_tensor::kernels::softmax::{Mask, softmax_backward, softmax_forward};
use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main,
};

/// (name, spec): every distinct GEMM of one forward + backward step.
fn step_shapes() -> Vec<(&'static str, GemmSpec)> {
    let (n, c, v, t, hs) = (768, 128, 65, 64, 32);
    vec![
        ("qkv_fwd_NT", GemmSpec::nt(n, c, 3 * c)),
        ("attn_proj_fwd_NT", GemmSpec::nt(n, c, c)),
        ("fc_fwd_NT", GemmSpec::nt(n, c, 4 * c)),
        ("fc_proj_fwd_NT", GemmSpec::nt(n, 4 * c, c)),
        ("lm_head_fwd_NT", GemmSpec::nt(n, c, v)),
        ("qkv_dx_NN", GemmSpec::nn(n, 3 * c, c)),
        ("fc_dx_NN", GemmSpec::nn(n, 4 * c, c)),
        ("fc_proj_dx_NN", GemmSpec::nn(n, c, 4 * c)),
        ("lm_head_dx_NN", GemmSpec::nn(n, v, c)),
        ("qkv_dw_TN", GemmSpec::tn(3 * c, n, c)),
        ("fc_dw_TN", GemmSpec::tn(4 * c, n, c)),
        ("fc_proj_dw_TN", GemmSpec::tn(c, n, 4 * c)),
        ("lm_head_dw_TN", GemmSpec::tn(v, n, c)),
        ("attn_scores_NT", GemmSpec::nt(t, hs, t)),
        ("attn_mix_NN", GemmSpec::nn(t, t, hs)),
        ("attn_dv_TN", GemmSpec::tn(t, t, hs)),
    ]
}

fn operand(rows: usize, cols: usize) -> Vec<f32> {
    (0..rows * cols)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect()
}

fn gemm(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemm");
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    group.sample_size(20);
    for (name, spec) in step_shapes() {
        let a = operand(spec.m.max(spec.k), spec.m.max(spec.k));
        let b = operand(spec.k.max(spec.n), spec.k.max(spec.n));
        let mut out = operand(spec.m, spec.n);
        group.throughput(Throughput::Elements(spec.flops() as u64));
        // The f32 backends, and the bf16 one where the CPU has it.
        let bf16 = Precision::Bf16
            .supported()
            .then(|| Precision::Bf16.backend());
        let f32s = Backend::all()
            .iter()
            .copied()
            .filter(|&b| b != Backend::Naive);
        for backend in f32s.chain(bf16) {
            group.bench_with_input(
                BenchmarkId::new(name, backend.name()),
                &spec,
                |bench, spec| {
                    bench
                        .iter(|| matmul_with(backend, spec, black_box(&a), black_box(&b), &mut out))
                },
            );
        }
    }
    group.finish();
}

/// The element-wise kernels of one nanoGPT-cpu layer, throughput in elements per second:
/// GELU over the MLP's `[B*T, 4C]`, layer norm over `[B*T, C]`, causal softmax over the
/// `B * NH` attention matrices of `T x T`.
fn elementwise(c: &mut Criterion) {
    const ROWS: usize = 768; // B*T
    const C: usize = 128;
    const T: usize = 64;
    const HEADS: usize = 12 * 4; // B * NH
    let mut group = c.benchmark_group("elementwise");
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    group.sample_size(20);

    let x = operand(ROWS, 4 * C);
    let dy = operand(4 * C, ROWS);
    let mut y = vec![0.0; x.len()];
    group.throughput(Throughput::Elements(x.len() as u64));
    group.bench_function("gelu forward [768 x 512]", |b| {
        b.iter(|| gelu_forward(&mut y, black_box(&x)))
    });
    group.bench_function("gelu backward [768 x 512]", |b| {
        b.iter(|| gelu_backward(&mut y, black_box(&dy), black_box(&x), Write::Add))
    });
    // The fused linear + GELU's two halves (`Graph::linear_gelu`): forward in place saving the
    // derivative, backward one product. The input is refreshed each time (outside the timing).
    let mut saved = vec![0.0; x.len()];
    group.bench_function("gelu forward in place saving grad [768 x 512]", |b| {
        b.iter_batched_ref(
            || x.clone(),
            |z| gelu_forward_in_place_saving_grad(z, &mut saved),
            BatchSize::LargeInput,
        )
    });
    group.bench_function("gelu backward from saved grad [768 x 512]", |b| {
        b.iter(|| mul_forward(&mut y, black_box(&saved), black_box(&dy)))
    });

    let x = operand(ROWS, C);
    let dy = operand(C, ROWS);
    let w = operand(1, C);
    let (mut y, mut dx, mut dw) = (vec![0.0; x.len()], vec![0.0; x.len()], vec![0.0; C]);
    let (mut mean, mut rstd) = (vec![0.0; ROWS], vec![0.0; ROWS]);
    group.throughput(Throughput::Elements(x.len() as u64));
    group.bench_function("layernorm forward [768 x 128]", |b| {
        b.iter(|| layernorm_forward(&mut y, &mut mean, &mut rstd, black_box(&x), &w, None))
    });
    group.bench_function("layernorm backward [768 x 128]", |b| {
        b.iter(|| {
            layernorm_backward(
                Some(&mut dx),
                &mut dw,
                None,
                black_box(&dy),
                &x,
                &w,
                &mean,
                &rstd,
            )
        })
    });

    causal_softmax(&mut group, T, HEADS, false);
    // The tiny preset's blocks (32 x 32; a worker of two computes 2 sequences x 4 heads), one
    // block per call, as the attention calls it.
    causal_softmax(&mut group, 32, 8, true);
    group.finish();
}

/// Causal softmax forward and backward over `blocks` blocks of `t x t`, in one call or
/// (`per_block`) one call per block.
fn causal_softmax(
    group: &mut BenchmarkGroup<'_, WallTime>,
    t: usize,
    blocks: usize,
    per_block: bool,
) {
    let scores = operand(blocks * t, t);
    let mut probs = scores.clone();
    softmax_forward(&mut probs, t, Mask::Causal(t));
    let mut g = scores.clone();
    let size = if per_block { t * t } else { scores.len() };
    let shape = if per_block {
        format!("{blocks} x [{t} x {t}]")
    } else {
        format!("[{blocks} x {t} x {t}]")
    };
    group.throughput(Throughput::Elements(scores.len() as u64));
    group.bench_function(format!("causal softmax forward {shape}"), |b| {
        b.iter(|| {
            g.copy_from_slice(&scores);
            for block in g.chunks_exact_mut(size) {
                softmax_forward(black_box(block), t, Mask::Causal(t))
            }
        })
    });
    group.bench_function(format!("causal softmax backward {shape}"), |b| {
        b.iter(|| {
            g.copy_from_slice(&scores);
            for (block, p) in g.chunks_exact_mut(size).zip(probs.chunks_exact(size)) {
                softmax_backward(black_box(block), p, t, Mask::Causal(t))
            }
        })
    });
}

/// Fused causal attention, forward and backward, every way of computing its products
/// ([`Products`]: f32 GEMM calls, direct f32 loops, and where the CPU has AVX-512 BF16 bf16
/// GEMM calls and direct bf16 loops), on the shapes of one layer of the presets (`tiny`: B = 2 sequences per worker,
/// T = 32, C = 32, 4 heads of 8; nanoGPT-cpu: B = 12, T = 64, C = 128, 4 heads of 32; medium;
/// nanogpt-baby) and heads of 16 and 64 besides. Throughput in (batch, head) pairs per second.
/// This is what `DIRECT_MAX_HEAD_BF16` was chosen from.
fn attention(c: &mut Criterion) {
    let mut group = c.benchmark_group("attention");
    group.warm_up_time(Duration::from_millis(300));
    group.measurement_time(Duration::from_secs(1));
    group.sample_size(20);
    let shape = |b, t, c, nh| AttentionShape { b, t, c, nh };
    let shapes = [
        ("tiny", shape(2, 32, 32, 4)),
        ("T=64 HS=16", shape(12, 64, 128, 8)),
        ("nanogpt-cpu", shape(12, 64, 128, 4)),
        ("T=64 HS=64", shape(12, 64, 128, 2)),
        ("medium", shape(4, 128, 256, 8)),
        ("T=256 HS=16", shape(2, 256, 128, 8)),
        ("nanogpt-baby", shape(2, 256, 384, 6)),
    ];
    let bf16 = Precision::Bf16.supported();
    for (name, shape) in shapes {
        let qkv = operand(shape.b * shape.t, 3 * shape.c);
        let dout = operand(shape.b * shape.t, shape.c);
        let (mut out, mut probs) = (vec![0.0; shape.out_len()], vec![0.0; shape.probs_len()]);
        let (mut dqkv, mut scratch) = (vec![0.0; qkv.len()], vec![0.0; shape.scratch_len()]);
        group.throughput(Throughput::Elements((shape.b * shape.nh) as u64));
        // (products, name, matmul precision of the GEMM calls)
        let mut ways = vec![
            (Products::Gemm, "gemm", Precision::F32),
            (Products::Direct, "direct", Precision::F32),
        ];
        if bf16 {
            ways.push((Products::Gemm, "gemm-bf16", Precision::Bf16));
            ways.push((Products::DirectBf16, "direct-bf16", Precision::Bf16));
        }
        for (products, way, precision) in ways {
            set_precision(precision).expect("checked above");
            group.bench_function(format!("forward {name} {way}"), |b| {
                b.iter(|| {
                    attention_forward_with(
                        products,
                        &mut out,
                        &mut probs,
                        &mut scratch,
                        black_box(&qkv),
                        shape,
                        None,
                    )
                })
            });
            group.bench_function(format!("backward {name} {way}"), |b| {
                b.iter(|| {
                    attention_backward_with(
                        products,
                        &mut dqkv,
                        &mut scratch,
                        black_box(&dout),
                        &qkv,
                        &probs,
                        shape,
                        None,
                    )
                })
            });
        }
        set_precision(Precision::F32).expect("f32 is always supported");
    }
    group.finish();
}

criterion_group!(benches, gemm, elementwise, attention);
criterion_main!(benches);
