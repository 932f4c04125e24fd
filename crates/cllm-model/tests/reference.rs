//! The GPT's loss and every parameter gradient against a slow, straightforward f64
//! implementation written here from the definitions (gradients by central differences of that
//! f64 reference, which are accurate to ~1e-9 at this size). Tolerance: 1e-4.

use cllm_autograd::Tape;
use cllm_model::{Gpt, GptConfig};

/// Reads parameter `name` from the flat buffer as f64.
fn param<'a>(gpt: &Gpt, w: &'a [f64], name: &str) -> &'a [f64] {
    let id = gpt
        .params
        .layout
        .find(name)
        .unwrap_or_else(|| panic!("no parameter {name}"));
    &w[gpt.params.layout.entry(id).range()]
}

fn layernorm(x: &[f64], w: &[f64], b: Option<&[f64]>) -> Vec<f64> {
    let n = x.len() as f64;
    let mean = x.iter().sum::<f64>() / n;
    let var = x.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let rstd = 1.0 / (var + 1e-5).sqrt();
    (0..x.len())
        .map(|i| (x[i] - mean) * rstd * w[i] + b.map_or(0.0, |b| b[i]))
        .collect()
}

/// y = x W^T + b, W is [out, in].
fn linear(x: &[f64], w: &[f64], b: Option<&[f64]>, out: usize) -> Vec<f64> {
    let k = x.len();
    (0..out)
        .map(|o| (0..k).map(|i| x[i] * w[o * k + i]).sum::<f64>() + b.map_or(0.0, |b| b[o]))
        .collect()
}

fn gelu(x: f64) -> f64 {
    0.5 * x * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (x + 0.044715 * x.powi(3))).tanh())
}

/// Mean cross-entropy of the model on `b` sequences of `t` tokens, all in f64.
fn reference_loss(gpt: &Gpt, w: &[f64], inputs: &[u32], targets: &[u32], t: usize) -> f64 {
    let cfg = gpt.cfg;
    let (c, nh, hs, v) = (
        cfg.embed_dim,
        cfg.num_heads,
        cfg.head_size(),
        cfg.vocab_size,
    );
    let bias = |name: &str| cfg.bias.then(|| param(gpt, w, name));
    let mut total = 0.0;
    for (seq, tgt) in inputs.chunks(t).zip(targets.chunks(t)) {
        let (wte, wpe) = (param(gpt, w, "wte.weight"), param(gpt, w, "wpe.weight"));
        let mut x: Vec<Vec<f64>> = seq
            .iter()
            .enumerate()
            .map(|(p, &tok)| {
                (0..c)
                    .map(|i| wte[tok as usize * c + i] + wpe[p * c + i])
                    .collect()
            })
            .collect();
        for l in 0..cfg.num_layers {
            let name = |s: &str| format!("h.{l}.{s}");
            let qkv: Vec<Vec<f64>> = x
                .iter()
                .map(|row| {
                    let h = layernorm(
                        row,
                        param(gpt, w, &name("ln_1.weight")),
                        bias(&name("ln_1.bias")),
                    );
                    linear(
                        &h,
                        param(gpt, w, &name("attn.c_attn.weight")),
                        bias(&name("attn.c_attn.bias")),
                        3 * c,
                    )
                })
                .collect();
            let mut att = vec![vec![0.0; c]; t];
            for h in 0..nh {
                for i in 0..t {
                    let q = &qkv[i][h * hs..(h + 1) * hs];
                    let scores: Vec<f64> = (0..=i)
                        .map(|j| {
                            q.iter()
                                .zip(&qkv[j][c + h * hs..c + (h + 1) * hs])
                                .map(|(a, b)| a * b)
                                .sum::<f64>()
                                / (hs as f64).sqrt()
                        })
                        .collect();
                    let max = scores.iter().cloned().fold(f64::MIN, f64::max);
                    let e: Vec<f64> = scores.iter().map(|s| (s - max).exp()).collect();
                    let z: f64 = e.iter().sum();
                    for d in 0..hs {
                        att[i][h * hs + d] =
                            (0..=i).map(|j| e[j] / z * qkv[j][2 * c + h * hs + d]).sum();
                    }
                }
            }
            for i in 0..t {
                let a = linear(
                    &att[i],
                    param(gpt, w, &name("attn.c_proj.weight")),
                    bias(&name("attn.c_proj.bias")),
                    c,
                );
                (0..c).for_each(|k| x[i][k] += a[k]);
                let h = layernorm(
                    &x[i],
                    param(gpt, w, &name("ln_2.weight")),
                    bias(&name("ln_2.bias")),
                );
                let f: Vec<f64> = linear(
                    &h,
                    param(gpt, w, &name("mlp.c_fc.weight")),
                    bias(&name("mlp.c_fc.bias")),
                    4 * c,
                )
                .into_iter()
                .map(gelu)
                .collect();
                let m = linear(
                    &f,
                    param(gpt, w, &name("mlp.c_proj.weight")),
                    bias(&name("mlp.c_proj.bias")),
                    c,
                );
                (0..c).for_each(|k| x[i][k] += m[k]);
            }
        }
        for i in 0..t {
            let h = layernorm(&x[i], param(gpt, w, "ln_f.weight"), bias("ln_f.bias"));
            let logits = linear(&h, wte, None, v);
            let max = logits.iter().cloned().fold(f64::MIN, f64::max);
            let lse = max + logits.iter().map(|l| (l - max).exp()).sum::<f64>().ln();
            total += lse - logits[tgt[i] as usize];
        }
    }
    total / inputs.len() as f64
}

fn check(bias: bool) {
    let cfg = GptConfig {
        vocab_size: 13,
        seq_len: 6,
        embed_dim: 8,
        num_layers: 2,
        num_heads: 2,
        bias,
    };
    let gpt = Gpt::new(cfg).unwrap();
    // Larger than the 0.02 init so every path (attention included) carries real gradient.
    let mut weights = gpt.params.init(&cfg, 42);
    for (i, x) in weights.iter_mut().enumerate() {
        *x = *x * 10.0
            + if *x != 0.0 {
                0.0
            } else {
                ((i * 37 % 11) as f32 - 5.0) * 0.01
            };
    }
    for e in gpt.params.layout.entries() {
        let pad_end = gpt
            .params
            .layout
            .len()
            .min(e.offset + e.len.next_multiple_of(32));
        weights[e.offset + e.len..pad_end].fill(0.0);
    }
    let (b, t) = (2, 6);
    let inputs: Vec<u32> = (0..b * t).map(|i| (i * 5 % 13) as u32).collect();
    let targets: Vec<u32> = (0..b * t).map(|i| (i * 7 % 13) as u32).collect();

    let mut grads = gpt.params.layout.zeros();
    let loss = gpt.loss_and_grad(
        &mut Tape::new(),
        &weights,
        &inputs,
        &targets,
        t,
        1.0,
        &mut grads,
    );
    let w64: Vec<f64> = weights.iter().map(|&x| x as f64).collect();
    let ref_loss = reference_loss(&gpt, &w64, &inputs, &targets, t);
    assert!(
        (loss as f64 - ref_loss).abs() < 1e-4,
        "loss {loss} vs reference {ref_loss}"
    );

    let mut worst = (0.0f64, String::new());
    for e in gpt.params.layout.entries() {
        for i in e.range() {
            let h = 1e-5;
            let mut w = w64.clone();
            w[i] += h;
            let up = reference_loss(&gpt, &w, &inputs, &targets, t);
            w[i] -= 2.0 * h;
            let down = reference_loss(&gpt, &w, &inputs, &targets, t);
            let numeric = (up - down) / (2.0 * h);
            let err = (grads[i] as f64 - numeric).abs();
            if err > worst.0 {
                worst = (
                    err,
                    format!(
                        "{}[{}]: ours {} reference {numeric}",
                        e.name,
                        i - e.offset,
                        grads[i]
                    ),
                );
            }
        }
    }
    assert!(
        worst.0 < 1e-4,
        "worst gradient error {:.2e} at {}",
        worst.0,
        worst.1
    );
    assert!(
        grads.iter().any(|g| g.abs() > 1e-3),
        "gradients should not all be tiny"
    );
}

#[test]
fn two_layer_model_matches_reference_without_bias() {
    check(false);
}

#[test]
fn two_layer_model_matches_reference_with_bias() {
    check(true);
}
