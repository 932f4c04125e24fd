//! Times every GEMM of one training step of a preset's shapes with the pure-Rust `gemm`
//! backend, shape by shape, and prints each shape's GFLOP/s and the step's GEMM total, beside
//! the bf16 backend's on CPUs with AVX-512 BF16. Then it sweeps the `gemm` crate's two packing
//! thresholds (when to copy an operand into its micro-kernel's layout) to show whether tuning
//! them would pay on this machine.
//!
//! ```sh
//! cargo run --release -p cllm-tensor --example step_gemms               # nanogpt-cpu
//! cargo run --release -p cllm-tensor --example step_gemms -- tiny
//! cargo run --release -p cllm-tensor --example step_gemms -- medium
//! cargo run --release -p cllm-tensor --example step_gemms -- nanogpt-baby  # 8 of its 64 sequences
//! ```
//! Configurations are interleaved round by round and each figure is the median of 21 rounds,
//! so a noisy machine slows them alike.

use std::time::Instant;

use cllm_tensor::kernels::attention;
use cllm_tensor::kernels::matmul::{Backend, GemmSpec, Precision, Transpose, matmul_with};

const ROUNDS: usize = 21;

/// The shapes of a preset that decide its GEMMs (a vocabulary of 65: tiny Shakespeare's). They
/// mirror `cllm-model`'s presets, which this crate cannot depend on.
struct Model {
    name: &'static str,
    batch: usize,
    t: usize,
    c: usize,
    layers: usize,
    heads: usize,
    vocab: usize,
}

const MODELS: [Model; 4] = [
    Model {
        name: "nanogpt-cpu",
        batch: 12,
        t: 64,
        c: 128,
        layers: 4,
        heads: 4,
        vocab: 65,
    },
    Model {
        name: "tiny",
        batch: 4,
        t: 32,
        c: 32,
        layers: 3,
        heads: 4,
        vocab: 65,
    },
    Model {
        name: "medium",
        batch: 16,
        t: 128,
        c: 256,
        layers: 4,
        heads: 8,
        vocab: 65,
    },
    // One worker's share at eight threads (8 of the preset's 64 sequences).
    Model {
        name: "nanogpt-baby",
        batch: 8,
        t: 256,
        c: 384,
        layers: 6,
        heads: 6,
        vocab: 65,
    },
];

/// One GEMM shape of the step and how many times the step runs it.
struct Shape {
    what: &'static str,
    spec: GemmSpec,
    count: usize,
}

/// The step's GEMMs: per linear layer its forward (NT), input gradient (NN) and weight gradient
/// (TN); per (batch, head) pair the causal blocks `attention_forward` and `attention_backward`
/// run ([`attention::BLOCK`] rows, each seeing the keys up to its last row), with the leading
/// dimensions those kernels use to read a head's columns in place. (Those are the products of
/// attention's GEMM path, which training takes only with bf16 products and heads over
/// `attention::DIRECT_MAX_HEAD_BF16`; otherwise attention runs direct loops and its products
/// here are a comparison, not part of the step.)
fn step_shapes(m: &Model) -> Vec<Shape> {
    let (tokens, t, c) = (m.batch * m.t, m.t, m.c);
    let linears = [
        ("qkv", c, 3 * c, m.layers),
        ("attn proj", c, c, m.layers),
        ("mlp up", c, 4 * c, m.layers),
        ("mlp down", 4 * c, c, m.layers),
        ("lm head", c, m.vocab, 1),
    ];
    let mut shapes = Vec::new();
    for (what, inp, out, count) in linears {
        let specs = [
            GemmSpec::nt(tokens, inp, out),
            GemmSpec::nn(tokens, out, inp),
            GemmSpec::tn(out, tokens, inp),
        ];
        shapes.extend(specs.map(|spec| Shape { what, spec, count }));
    }
    let hs = c / m.heads;
    let count = m.batch * m.heads * m.layers;
    for start in (0..t).step_by(attention::BLOCK) {
        let len = attention::BLOCK.min(t - start);
        let (end, below) = (start + len, t - start);
        let specs = [
            // row block: scores Q K^T and O = P V (forward), dP = dO V^T and dQ = dS K
            GemmSpec::nt(len, hs, end).lead(3 * c, 3 * c, t),
            GemmSpec::nn(len, end, hs).lead(t, 3 * c, c),
            GemmSpec::nt(len, hs, end).lead(c, 3 * c, t),
            GemmSpec::nn(len, end, hs).lead(t, 3 * c, 3 * c),
            // key block: dV = P^T dO and dK = dS^T Q over the rows at or below it
            GemmSpec::tn(len, below, hs).lead(t, c, 3 * c),
            GemmSpec::tn(len, below, hs).lead(t, 3 * c, 3 * c),
        ];
        shapes.extend(specs.map(|spec| Shape {
            what: "attention",
            spec,
            count,
        }));
    }
    shapes
}

/// Floats a row-major operand needs: `rows` stored rows `ld` apart (the last row's padding
/// included, which keeps this simple).
fn stored_len(rows: usize, ld: usize) -> usize {
    rows * ld
}

/// `(lhs threshold, rhs threshold)` settings: the crate's defaults first, then each moved to
/// either end of its range (the crate caps both at 256).
/// The configurations timed: the `gemm` backend with its default packing thresholds, then with
/// others, then (where the CPU has it) the bf16 backend.
fn sweep() -> Vec<(Backend, usize, usize)> {
    let lhs = gemm::get_lhs_packing_threshold_single_thread();
    let rhs = gemm::get_rhs_packing_threshold();
    let mut configs: Vec<_> = [(lhs, rhs), (1, rhs), (256, rhs), (lhs, 1), (lhs, 256)]
        .into_iter()
        .map(|(l, r)| (Backend::Gemm, l, r))
        .collect();
    if Precision::Bf16.supported() {
        configs.push((Precision::Bf16.backend(), lhs, rhs));
    }
    configs
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "nanogpt-cpu".into());
    let Some(model) = MODELS.iter().find(|m| m.name == name) else {
        let known: Vec<_> = MODELS.iter().map(|m| m.name).collect();
        eprintln!("unknown preset {name:?}; known: {}", known.join(", "));
        std::process::exit(2);
    };
    let shapes = step_shapes(model);
    let sweep = sweep();
    let mut buffers: Vec<_> = shapes
        .iter()
        .map(|s| {
            let g = &s.spec;
            let a_rows = if g.ta == Transpose::N { g.m } else { g.k };
            let b_rows = if g.tb == Transpose::N { g.k } else { g.n };
            let a: Vec<f32> = (0..stored_len(a_rows, g.lda))
                .map(|i| (i % 17) as f32 * 0.01)
                .collect();
            let b: Vec<f32> = (0..stored_len(b_rows, g.ldb))
                .map(|i| (i % 13) as f32 * 0.01)
                .collect();
            (a, b, vec![0.0f32; stored_len(g.m, g.ldc)])
        })
        .collect();
    // ms[shape][configuration][round]
    let mut ms = vec![vec![Vec::with_capacity(ROUNDS); sweep.len()]; shapes.len()];
    for _ in 0..ROUNDS {
        for (c, &(backend, lhs, rhs)) in sweep.iter().enumerate() {
            gemm::set_lhs_packing_threshold_single_thread(lhs);
            gemm::set_rhs_packing_threshold(rhs);
            for (s, shape) in shapes.iter().enumerate() {
                let (a, b, out) = &mut buffers[s];
                let t = Instant::now();
                for _ in 0..shape.count {
                    matmul_with(backend, &shape.spec, a, b, out);
                }
                ms[s][c].push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }

    println!(
        "{} step GEMMs, one thread, `gemm` backend (medians of {ROUNDS} rounds):",
        model.name
    );
    let bf16 = sweep.iter().position(|c| c.0 != Backend::Gemm);
    println!(
        "{:<10} {:>4} {:>4} {:>4} {:>6} {:>9} {:>8} {}",
        "",
        "m",
        "k",
        "n",
        "calls",
        "ms",
        "GFLOP/s",
        if bf16.is_some() {
            "      bf16 ms  GFLOP/s"
        } else {
            "  (no AVX-512 BF16 here: bf16 backend not timed)"
        }
    );
    let mut totals = vec![0.0; sweep.len()];
    let mut flops = 0.0;
    for (s, shape) in shapes.iter().enumerate() {
        let meds: Vec<f64> = ms[s].iter_mut().map(|v| median(v)).collect();
        for (t, m) in totals.iter_mut().zip(&meds) {
            *t += m;
        }
        let f = shape.spec.flops() * shape.count as f64;
        flops += f;
        let layout = format!("{:?}{:?}", shape.spec.ta, shape.spec.tb);
        let other = bf16.map_or(String::new(), |i| {
            format!("  {:>11.3} {:>8.1}", meds[i], f / meds[i] / 1e6)
        });
        println!(
            "{:<10} {:>4} {:>4} {:>4} {:>6} {:>9.3} {:>8.1}{other}  {layout}",
            shape.what,
            shape.spec.m,
            shape.spec.k,
            shape.spec.n,
            shape.count,
            meds[0],
            f / meds[0] / 1e6
        );
    }
    println!(
        "step total: {:.3} GFLOP in {:.2} ms, {:.1} GFLOP/s",
        flops / 1e9,
        totals[0],
        flops / totals[0] / 1e6
    );
    if let Some(i) = bf16 {
        println!(
            "step total, bf16 backend: {:.2} ms, {:.1} GFLOP/s ({:.2}x the gemm backend's speed)",
            totals[i],
            flops / totals[i] / 1e6,
            totals[0] / totals[i]
        );
    }
    println!("packing thresholds (lhs, rhs) -> step GEMM ms (relative to the defaults):");
    for (&(backend, lhs, rhs), t) in sweep.iter().zip(&totals) {
        if backend == Backend::Gemm {
            println!(
                "  ({lhs:>3}, {rhs:>3}) -> {t:.2} ms ({:.3}x)",
                t / totals[0]
            );
        }
    }
}
