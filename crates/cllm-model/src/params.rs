//! [`GptParams`]: the parameter table of a GPT (one [`ParamLayout`] for weights, gradients
//! and AdamW moments alike) and its initialisation.

use cllm_autograd::{ParamId, ParamLayout};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use crate::GptConfig;

/// Parameter ids of one transformer block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockParams {
    /// LayerNorm before attention: scale, shift.
    pub ln1: (ParamId, Option<ParamId>),
    /// Fused q, k, v projection `[3C, C]` and bias.
    pub qkv: (ParamId, Option<ParamId>),
    /// Attention output projection `[C, C]` and bias.
    pub attn_proj: (ParamId, Option<ParamId>),
    /// LayerNorm before the MLP.
    pub ln2: (ParamId, Option<ParamId>),
    /// MLP up-projection `[4C, C]`.
    pub fc: (ParamId, Option<ParamId>),
    /// MLP down-projection `[C, 4C]`.
    pub fc_proj: (ParamId, Option<ParamId>),
}

/// The parameter table of a GPT and the ids of its parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptParams {
    /// The flat layout.
    pub layout: ParamLayout,
    /// Token embedding `[V, C]`, also the LM head.
    pub wte: ParamId,
    /// Position embedding `[T, C]`.
    pub wpe: ParamId,
    /// The blocks.
    pub blocks: Vec<BlockParams>,
    /// Final LayerNorm.
    pub ln_f: (ParamId, Option<ParamId>),
}

impl GptParams {
    /// The table for `cfg`, with nanoGPT's parameter names.
    pub fn new(cfg: &GptConfig) -> Self {
        let (c, bias) = (cfg.embed_dim, cfg.bias);
        let mut l = ParamLayout::new();
        let wte = l.push("wte.weight", &[cfg.vocab_size, c]);
        let wpe = l.push("wpe.weight", &[cfg.seq_len, c]);
        let pair = |l: &mut ParamLayout, name: &str, shape: &[usize]| {
            let w = l.push(&format!("{name}.weight"), shape);
            let b = bias.then(|| l.push(&format!("{name}.bias"), &shape[..1]));
            (w, b)
        };
        let blocks = (0..cfg.num_layers)
            .map(|i| BlockParams {
                ln1: pair(&mut l, &format!("h.{i}.ln_1"), &[c]),
                qkv: pair(&mut l, &format!("h.{i}.attn.c_attn"), &[3 * c, c]),
                attn_proj: pair(&mut l, &format!("h.{i}.attn.c_proj"), &[c, c]),
                ln2: pair(&mut l, &format!("h.{i}.ln_2"), &[c]),
                fc: pair(&mut l, &format!("h.{i}.mlp.c_fc"), &[4 * c, c]),
                fc_proj: pair(&mut l, &format!("h.{i}.mlp.c_proj"), &[c, 4 * c]),
            })
            .collect();
        let ln_f = pair(&mut l, "ln_f", &[c]);
        GptParams {
            layout: l,
            wte,
            wpe,
            blocks,
            ln_f,
        }
    }

    /// Whether AdamW decays this parameter: matrices yes (embeddings included, as nanoGPT);
    /// vectors (biases, LayerNorm scales) no.
    pub fn decays(&self, id: ParamId) -> bool {
        self.layout.entry(id).shape.len() >= 2
    }

    /// A freshly initialised flat weight buffer: normal(0, 0.02) matrices, with the residual
    /// projections (`attn.c_proj`, `mlp.c_proj`) scaled by `1/sqrt(2 L)`; LayerNorm scales 1;
    /// biases 0. Deterministic in `seed`; padding stays zero.
    pub fn init(&self, cfg: &GptConfig, seed: u64) -> Vec<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut w = self.layout.zeros();
        let std = 0.02f32;
        let residual_std = std / (2.0 * cfg.num_layers as f32).sqrt();
        for e in self.layout.entries() {
            let slice = &mut w[e.range()];
            if e.shape.len() >= 2 {
                let s = if e.name.ends_with("c_proj.weight") {
                    residual_std
                } else {
                    std
                };
                let normal = Normal::new(0.0f32, s).expect("a positive standard deviation");
                slice.iter_mut().for_each(|x| *x = normal.sample(&mut rng));
            } else if e.name.contains("ln_") && e.name.ends_with(".weight") {
                slice.fill(1.0);
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_config_and_init_is_deterministic() {
        let cfg = GptConfig {
            vocab_size: 11,
            seq_len: 8,
            embed_dim: 16,
            num_layers: 2,
            num_heads: 2,
            bias: true,
        };
        let p = GptParams::new(&cfg);
        assert_eq!(p.layout.num_params(), cfg.num_params());
        assert_eq!(p.layout.entries().len(), cfg.num_tensors());
        let no_bias = GptConfig { bias: false, ..cfg };
        let q = GptParams::new(&no_bias);
        assert_eq!(q.layout.num_params(), no_bias.num_params());
        assert_eq!(q.layout.entries().len(), no_bias.num_tensors());
        let a = p.init(&cfg, 1);
        assert_eq!(a, p.init(&cfg, 1));
        assert_ne!(a, p.init(&cfg, 2));
        let ln = p.layout.slice(p.blocks[0].ln1.0, &a);
        assert!(ln.iter().all(|&x| x == 1.0));
        let bias = p.layout.slice(p.blocks[1].fc.1.unwrap(), &a);
        assert!(bias.iter().all(|&x| x == 0.0));
        let wte = p.layout.slice(p.wte, &a);
        let std = (wte.iter().map(|x| x * x).sum::<f32>() / wte.len() as f32).sqrt();
        assert!((0.015..0.025).contains(&std), "wte std {std}");
        assert!(p.decays(p.wte) && !p.decays(p.ln_f.0));
    }
}
