//! nanoGPT's initialisation, drawn from PyTorch's CPU generator in the order nanoGPT's
//! `GPT.__init__` draws, so that a seed gives the initial weights nanoGPT gives after
//! `torch.manual_seed(seed)`.
//!
//! PyTorch's generator is the 32-bit Mersenne Twister seeded with the seed's low 32 bits.
//! `nn.init.normal_` on a float tensor of at least 16 elements first fills it with uniform
//! numbers (`(u32 & 0xFFFFFF) / 2^24`, one output each), then turns each run of 16 into
//! normals by Box-Muller on pairs `(i, i + 8)`; when the length is not a multiple of 16 the
//! last 16 elements are drawn and transformed again. `uniform_` (the `nn.Linear`
//! constructor's Kaiming init) takes one output per element.
//!
//! nanoGPT's order: the constructors (`wte`, `wpe` normal; per block `c_attn`, `attn.c_proj`,
//! `c_fc`, `mlp.c_proj` uniform, plus their biases when `bias`; `lm_head` uniform), then
//! `apply(_init_weights)` in module order (`wte`, `wpe`, per block `c_attn`, `attn.c_proj`,
//! `c_fc`, `mlp.c_proj`, then `lm_head`, which is tied to `wte` and so sets it), then the
//! `c_proj` weights again with std `0.02 / sqrt(2 L)`.
//!
//! PyTorch computes the Box-Muller logarithm, sine and cosine with SLEEF's vector functions on
//! AVX2 machines and with the C library's otherwise; this module uses Rust's (the C library's),
//! so values match PyTorch's AVX2 build to within a few units in the last place (measured:
//! 15% of values differ, by at most 4 ulp, relative 3e-7) and its non-AVX2 build exactly.

use rand_mt::Mt;

use crate::{GptConfig, GptParams};

/// PyTorch's generator as `nn.init` uses it, counting the 32-bit outputs drawn.
struct TorchInit {
    mt: Mt,
    draws: u64,
}

impl TorchInit {
    fn new(seed: u64) -> Self {
        TorchInit {
            mt: Mt::new(seed as u32),
            draws: 0,
        }
    }

    fn uniform(&mut self) -> f32 {
        self.draws += 1;
        (self.mt.next_u32() & 0xFF_FFFF) as f32 * (1.0 / 16_777_216.0)
    }

    /// `tensor.uniform_()` of `n` elements: only the draws matter here.
    fn skip_uniform(&mut self, n: usize) {
        (0..n).for_each(|_| {
            self.uniform();
        });
    }

    /// `nn.init.normal_(tensor, 0, std)` for a tensor of `out.len() >= 16` elements.
    fn normal(&mut self, out: &mut [f32], std: f32) {
        let n = out.len();
        debug_assert!(n >= 16);
        out.iter_mut().for_each(|x| *x = self.uniform());
        for chunk in out.chunks_exact_mut(16) {
            box_muller_16(chunk, std);
        }
        if !n.is_multiple_of(16) {
            let tail = &mut out[n - 16..];
            tail.iter_mut().for_each(|x| *x = self.uniform());
            box_muller_16(tail, std);
        }
    }
}

/// PyTorch's `normal_fill_16`: uniforms in, normals with mean 0 and deviation `std` out.
fn box_muller_16(d: &mut [f32], std: f32) {
    let two_pi = std::f64::consts::TAU as f32;
    for j in 0..8 {
        let u1 = 1.0 - d[j];
        let u2 = d[j + 8];
        let radius = (-2.0 * u1.ln()).sqrt();
        let theta = two_pi * u2;
        d[j] = radius * theta.cos() * std;
        d[j + 8] = radius * theta.sin() * std;
    }
}

/// Why a configuration has no nanoGPT initialisation here.
fn check(cfg: &GptConfig) -> Result<(), String> {
    let c = cfg.embed_dim;
    let smallest = [cfg.vocab_size * c, cfg.seq_len * c, c * c];
    if smallest.iter().any(|&n| n < 16) {
        return Err(format!(
            "the nanogpt random stream needs every weight matrix to have at least 16 elements \
             (PyTorch draws smaller ones differently); this model has vocabulary {}, context {} \
             and width {c}",
            cfg.vocab_size, cfg.seq_len
        ));
    }
    Ok(())
}

/// Outputs `nn.init.normal_` draws for `n >= 16` elements (the tail of 16 is drawn again).
fn normal_draws(n: usize) -> u64 {
    (n + if n.is_multiple_of(16) { 0 } else { 16 }) as u64
}

/// The number of 32-bit outputs [`GptParams::init_nanogpt`] draws for `cfg`, without
/// drawing them: where nanoGPT's first batch starts in the stream (used when resuming).
pub fn nanogpt_init_draws(cfg: &GptConfig) -> u64 {
    let (v, t, c, l) = (
        cfg.vocab_size,
        cfg.seq_len,
        cfg.embed_dim,
        cfg.num_layers as u64,
    );
    let bias = |out: usize| if cfg.bias { out as u64 } else { 0 };
    let constructors = normal_draws(v * c)
        + normal_draws(t * c)
        + l * (12 * (c * c) as u64 + bias(3 * c) + bias(c) + bias(4 * c) + bias(c))
        + (v * c) as u64;
    let apply = normal_draws(v * c)
        + normal_draws(t * c)
        + l * (normal_draws(3 * c * c)
            + normal_draws(c * c)
            + normal_draws(4 * c * c)
            + normal_draws(4 * c * c))
        + normal_draws(v * c);
    let residual = l * (normal_draws(c * c) + normal_draws(4 * c * c));
    constructors + apply + residual
}

impl GptParams {
    /// nanoGPT's initial weights for `torch.manual_seed(seed)` (see the module docs), and the
    /// number of 32-bit outputs the initialisation drew: nanoGPT's first batch is drawn from
    /// the stream at that position.
    ///
    /// # Errors
    /// If a weight matrix has fewer than 16 elements (PyTorch draws those another way).
    pub fn init_nanogpt(&self, cfg: &GptConfig, seed: u64) -> Result<(Vec<f32>, u64), String> {
        check(cfg)?;
        let mut g = TorchInit::new(seed);
        let mut w = self.layout.zeros();
        let (c, bias) = (cfg.embed_dim, cfg.bias);
        let std = 0.02f32;
        let residual_std = std / (2.0 * cfg.num_layers as f32).sqrt();
        let normal_into = |g: &mut TorchInit, w: &mut [f32], id, std| {
            g.normal(self.layout.slice_mut(id, w), std);
        };
        let linear = |g: &mut TorchInit, out: usize, inp: usize| {
            g.skip_uniform(out * inp + if bias { out } else { 0 });
        };
        // The constructors. Their normal draws land in the tensors they initialise, which
        // apply() below draws again; their uniform draws are only skipped.
        normal_into(&mut g, &mut w, self.wte, 1.0);
        normal_into(&mut g, &mut w, self.wpe, 1.0);
        for _ in 0..cfg.num_layers {
            linear(&mut g, 3 * c, c);
            linear(&mut g, c, c);
            linear(&mut g, 4 * c, c);
            linear(&mut g, c, 4 * c);
        }
        g.skip_uniform(cfg.vocab_size * c); // lm_head, no bias
        // apply(_init_weights), in module order; wte first, then lm_head (tied to it) last,
        // which is the draw that stays.
        normal_into(&mut g, &mut w, self.wte, std);
        normal_into(&mut g, &mut w, self.wpe, std);
        for b in &self.blocks {
            for id in [b.qkv.0, b.attn_proj.0, b.fc.0, b.fc_proj.0] {
                normal_into(&mut g, &mut w, id, std);
            }
        }
        normal_into(&mut g, &mut w, self.wte, std);
        // The residual projections again, in named_parameters order.
        for b in &self.blocks {
            normal_into(&mut g, &mut w, b.attn_proj.0, residual_std);
            normal_into(&mut g, &mut w, b.fc_proj.0, residual_std);
        }
        // LayerNorm scales 1, biases 0: no draws.
        for e in self.layout.entries() {
            if e.name.contains("ln_") && e.name.ends_with(".weight") {
                w[e.range()].fill(1.0);
            }
        }
        Ok((w, g.draws))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_fill_matches_pytorch_to_a_few_ulp() {
        // torch.manual_seed(1337); x = torch.empty(20); x.normal_(0.0, 0.02): the f32 bits
        // (PyTorch 2.15, AVX2 build), then torch.randint(0, 2**31, (2,)) after it.
        let torch: [u32; 20] = [
            996995297, 3132586039, 3152785103, 3163943541, 3173442081, 1008834372, 1022599485,
            1010936688, 3128512425, 3165923384, 3171913576, 3165896192, 1007860186, 3162724203,
            1022992613, 1028489441, 995742081, 1019576400, 997643520, 3174101819,
        ];
        let mut g = TorchInit::new(1337);
        let mut x = [0f32; 20];
        g.normal(&mut x, 0.02);
        for (a, b) in x.iter().zip(torch) {
            assert!(
                (a.to_bits() as i64 - b as i64).abs() <= 4,
                "{a} vs {}",
                f32::from_bits(b)
            );
        }
        // 20 values draw 20 + 16 (the tail is drawn again).
        assert_eq!(g.draws, 36);
        // randint over 2^31 joins two outputs (first high) per value.
        let next: Vec<u64> = (0..2)
            .map(|_| ((u64::from(g.mt.next_u32()) << 32) | u64::from(g.mt.next_u32())) % (1 << 31))
            .collect();
        assert_eq!(next, [1636677433, 88048020]);
    }

    #[test]
    fn tiny_matrices_are_refused() {
        let cfg = GptConfig {
            vocab_size: 11,
            seq_len: 2,
            embed_dim: 4,
            num_layers: 1,
            num_heads: 1,
            bias: false,
        };
        let err = GptParams::new(&cfg).init_nanogpt(&cfg, 1).unwrap_err();
        assert!(err.contains("at least 16"), "{err}");
    }

    #[test]
    fn the_draw_count_is_what_the_init_draws() {
        for (v, t, c, l, bias) in [
            (65, 64, 128, 4, false),
            (11, 8, 4, 2, true),
            (50, 3, 12, 1, false),
        ] {
            let cfg = GptConfig {
                vocab_size: v,
                seq_len: t,
                embed_dim: c,
                num_layers: l,
                num_heads: 2,
                bias,
            };
            let (_, draws) = GptParams::new(&cfg).init_nanogpt(&cfg, 9).unwrap();
            assert_eq!(nanogpt_init_draws(&cfg), draws, "{cfg:?}");
        }
    }
}
