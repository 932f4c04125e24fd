//! Incremental decoding with a KV cache: each new token costs one row through the network plus
//! attention over the cached keys and values, instead of a forward pass over the whole context.
//!
//! Positions are learned and absolute, so the cache cannot slide. When it is full (`seq_len`
//! tokens), the last half of the context is fed again from position 0 — the same cropping
//! nanoGPT's `generate` does, amortised over `seq_len / 2` new tokens.

use cllm_tensor::kernels::{gelu, layernorm, math, matmul::GemmSpec, matmul::matmul};
use multiversion::multiversion;

use crate::Gpt;

/// Per-layer keys and values of the tokens fed so far, plus scratch rows.
#[derive(Debug)]
pub struct Generator<'a> {
    gpt: &'a Gpt,
    weights: &'a [f32],
    /// `[L, T, C]` keys and values.
    k: Vec<f32>,
    v: Vec<f32>,
    /// Tokens in the cache (the next position).
    len: usize,
    /// Every token fed (for re-feeding after the cache fills).
    context: Vec<u32>,
    x: Vec<f32>,
    h: Vec<f32>,
    qkv: Vec<f32>,
    att: Vec<f32>,
    scores: Vec<f32>,
    fc: Vec<f32>,
    fc_act: Vec<f32>,
    logits: Vec<f32>,
    stats: [f32; 2],
}

impl<'a> Generator<'a> {
    /// A generator over `weights` (a flat buffer laid out by `gpt.params.layout`).
    pub fn new(gpt: &'a Gpt, weights: &'a [f32]) -> Self {
        let c = &gpt.cfg;
        let (t, e) = (c.seq_len, c.embed_dim);
        Generator {
            gpt,
            weights,
            k: vec![0.0; c.num_layers * t * e],
            v: vec![0.0; c.num_layers * t * e],
            len: 0,
            context: Vec::new(),
            x: vec![0.0; e],
            h: vec![0.0; e],
            qkv: vec![0.0; 3 * e],
            att: vec![0.0; e],
            scores: vec![0.0; t],
            fc: vec![0.0; 4 * e],
            fc_act: vec![0.0; 4 * e],
            logits: vec![0.0; c.vocab_size],
            stats: [0.0; 2],
        }
    }

    /// Tokens fed so far.
    pub fn context(&self) -> &[u32] {
        &self.context
    }

    /// Feeds `token` and returns the logits for the token after it.
    ///
    /// # Panics
    /// If `token` is not below the vocabulary size.
    pub fn feed(&mut self, token: u32) -> &mut [f32] {
        assert!(
            (token as usize) < self.gpt.cfg.vocab_size,
            "token {token} is outside the vocabulary"
        );
        self.context.push(token);
        if self.len == self.gpt.cfg.seq_len {
            // Cache full: start again from the last half of the context.
            let keep = (self.gpt.cfg.seq_len / 2).max(1);
            let tail: Vec<u32> = self.context[self.context.len() - keep..].to_vec();
            self.len = 0;
            for &t in &tail {
                self.row(t);
            }
        } else {
            self.row(token);
        }
        &mut self.logits
    }

    /// Runs one token at position `self.len` through the network into `self.logits`.
    fn row(&mut self, token: u32) {
        let cfg = self.gpt.cfg;
        let p = &self.gpt.params;
        let w = |id| p.layout.slice(id, self.weights);
        let (c, t, pos) = (cfg.embed_dim, cfg.seq_len, self.len);
        let (nh, hs) = (cfg.num_heads, cfg.head_size());
        let tok = token as usize;
        for (i, x) in self.x.iter_mut().enumerate() {
            *x = w(p.wte)[tok * c + i] + w(p.wpe)[pos * c + i];
        }
        let linear = |x: &[f32], wid, bid: Option<_>, out: &mut [f32]| {
            let n = out.len();
            matmul(
                &GemmSpec::nt(1, x.len(), n),
                x,
                p.layout.slice(wid, self.weights),
                out,
            );
            if let Some(b) = bid {
                for (o, &bv) in out.iter_mut().zip(p.layout.slice(b, self.weights)) {
                    *o += bv;
                }
            }
        };
        let (mean, rstd) = self.stats.split_at_mut(1);
        for (l, blk) in p.blocks.iter().enumerate() {
            layernorm::layernorm_forward(
                &mut self.h,
                mean,
                rstd,
                &self.x,
                w(blk.ln1.0),
                blk.ln1.1.map(w),
            );
            linear(&self.h, blk.qkv.0, blk.qkv.1, &mut self.qkv);
            let base = l * t * c + pos * c;
            self.k[base..base + c].copy_from_slice(&self.qkv[c..2 * c]);
            self.v[base..base + c].copy_from_slice(&self.qkv[2 * c..]);
            let scale = 1.0 / (hs as f32).sqrt();
            for h in 0..nh {
                // Head h's keys and values of positions 0..=pos: rows of `c` floats, `hs` used.
                let cached = l * t * c + h * hs..l * t * c + pos * c + (h + 1) * hs;
                attend_head(
                    &self.qkv[h * hs..(h + 1) * hs],
                    &self.k[cached.clone()],
                    &self.v[cached],
                    c,
                    scale,
                    &mut self.scores[..=pos],
                    &mut self.att[h * hs..(h + 1) * hs],
                );
            }
            linear(&self.att, blk.attn_proj.0, blk.attn_proj.1, &mut self.h);
            self.x.iter_mut().zip(&self.h).for_each(|(x, a)| *x += a);
            layernorm::layernorm_forward(
                &mut self.h,
                mean,
                rstd,
                &self.x,
                w(blk.ln2.0),
                blk.ln2.1.map(w),
            );
            linear(&self.h, blk.fc.0, blk.fc.1, &mut self.fc);
            gelu::gelu_forward(&mut self.fc_act, &self.fc);
            linear(&self.fc_act, blk.fc_proj.0, blk.fc_proj.1, &mut self.h);
            self.x.iter_mut().zip(&self.h).for_each(|(x, a)| *x += a);
        }
        layernorm::layernorm_forward(
            &mut self.h,
            mean,
            rstd,
            &self.x,
            w(p.ln_f.0),
            p.ln_f.1.map(w),
        );
        linear(&self.h, p.wte, None, &mut self.logits);
        self.len += 1;
    }
}

/// Attention of one head for the newest position over the cached positions `0..scores.len()`:
/// scores against the keys, softmax, then the values weighted by it, into `out` (`[hs]`).
/// `keys` and `values` hold one row of `stride` floats per position, of which the first
/// `q.len()` are this head's. Compiled for AVX2 + FMA too, chosen at run time (see
/// `cllm_tensor::kernels`): builds without `target-cpu=native` would otherwise call a software
/// `fmaf` in every `exp`.
#[multiversion(targets("x86_64+avx2+fma"))]
fn attend_head(
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    stride: usize,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let hs = q.len();
    for (j, s) in scores.iter_mut().enumerate() {
        let k = &keys[j * stride..][..hs];
        *s = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() * scale;
    }
    let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = math::exp(*s - max);
        sum += *s;
    }
    out.fill(0.0);
    for (j, &s) in scores.iter().enumerate() {
        let v = &values[j * stride..][..hs];
        for (o, &vv) in out.iter_mut().zip(v) {
            *o += s / sum * vv;
        }
    }
}
