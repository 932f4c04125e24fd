//! [`Gpt`]: the forward pass on an autograd tape, and one training micro-step.

use cllm_autograd::{BatchDropout, Dropout, Graph, Tape, Val};

use crate::{GptConfig, GptParams};

/// A GPT: its shape, its parameter table and its dropout rate. Weights live outside, in a flat
/// buffer laid out by `params.layout`, so one `Gpt` serves any number of workers, each with its
/// own tape and gradient buffer.
#[derive(Clone, Debug)]
pub struct Gpt {
    /// The architecture.
    pub cfg: GptConfig,
    /// The parameter table.
    pub params: GptParams,
    /// Dropout rate of training passes ([`Gpt::loss_and_grad_with`]), as nanoGPT's: on the
    /// embeddings' sum, on the attention probabilities, and on the output of each block's
    /// attention and MLP before it joins the residual stream. 0 (the default) records no
    /// dropout at all.
    pub dropout: f32,
}

/// What a training pass's dropout masks are drawn from. Sequence `first_sequence + i` of the
/// pass is the `i`th sequence of its rows, so the masks of a sequence depend on (seed, step,
/// its place in the global batch) and not on which worker computes it, in which pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropoutKey {
    /// The run's seed.
    pub seed: u64,
    /// The optimizer step.
    pub step: u64,
    /// The index in the global batch of the pass's first sequence.
    pub first_sequence: u64,
}

impl DropoutKey {
    /// The dropout at `site` (0: embeddings; `1 + 3l`, `2 + 3l`, `3 + 3l`: layer `l`'s
    /// attention probabilities, attention output, MLP output) at `rate`.
    fn at(&self, rate: f32, site: u64) -> BatchDropout {
        let key = Dropout::key_of(&[self.seed, self.step, site]);
        BatchDropout {
            dropout: Dropout::new(rate, key),
            first: self.first_sequence,
        }
    }
}

impl Gpt {
    /// A GPT of shape `cfg`.
    ///
    /// # Errors
    /// If the shape is invalid (see [`GptConfig::validate`]).
    pub fn new(cfg: GptConfig) -> Result<Self, String> {
        cfg.validate()?;
        Ok(Gpt {
            cfg,
            params: GptParams::new(&cfg),
            dropout: 0.0,
        })
    }

    /// This GPT with training passes dropping out at `rate` (see [`Gpt::dropout`]).
    ///
    /// # Errors
    /// Unless `0 <= rate < 1`.
    pub fn with_dropout(mut self, rate: f32) -> Result<Self, String> {
        if !(0.0..1.0).contains(&rate) {
            return Err(format!("--dropout must be in [0, 1), got {rate}"));
        }
        self.dropout = rate;
        Ok(self)
    }

    /// Records the forward pass over `inputs` (`B` sequences of `t` tokens, `t <= seq_len`)
    /// and returns the logits `[B*t, V]`. No dropout: the pass of evaluation and generation.
    pub fn forward<'t>(&self, g: &mut Graph<'t>, inputs: &[u32], t: usize) -> Val<'t> {
        self.forward_with(g, inputs, t, None)
    }

    /// [`Gpt::forward`], with this GPT's dropout drawn from `key` if given and the rate is not
    /// 0 (a training pass).
    pub fn forward_with<'t>(
        &self,
        g: &mut Graph<'t>,
        inputs: &[u32],
        t: usize,
        key: Option<DropoutKey>,
    ) -> Val<'t> {
        let _span = tracing::debug_span!("forward").entered();
        let rate = self.dropout;
        let drop = |site: u64| key.filter(|_| rate > 0.0).map(|k| k.at(rate, site));
        let p = &self.params;
        let mut x = g.embedding(inputs, p.wte, Some(p.wpe), t);
        if let Some(d) = drop(0) {
            x = g.dropout(x, t, d);
        }
        for (layer, blk) in p.blocks.iter().enumerate() {
            let _layer = tracing::trace_span!("layer", layer).entered();
            let site = 1 + 3 * layer as u64;
            let h = g.layernorm(x, blk.ln1.0, blk.ln1.1);
            let qkv = g.linear(h, blk.qkv.0, blk.qkv.1);
            let a = g.attention_with_dropout(qkv, t, self.cfg.num_heads, drop(site));
            let mut a = g.linear(a, blk.attn_proj.0, blk.attn_proj.1);
            if let Some(d) = drop(site + 1) {
                a = g.dropout(a, t, d);
            }
            x = g.add(x, a);
            let h = g.layernorm(x, blk.ln2.0, blk.ln2.1);
            let h = g.linear_gelu(h, blk.fc.0, blk.fc.1);
            let mut h = g.linear(h, blk.fc_proj.0, blk.fc_proj.1);
            if let Some(d) = drop(site + 2) {
                h = g.dropout(h, t, d);
            }
            x = g.add(x, h);
        }
        let x = g.layernorm(x, p.ln_f.0, p.ln_f.1);
        g.linear(x, p.wte, None)
    }

    /// Records the forward pass and the mean cross-entropy against `targets` (no dropout).
    pub fn loss<'t>(
        &self,
        g: &mut Graph<'t>,
        inputs: &[u32],
        targets: &[u32],
        t: usize,
    ) -> Val<'t> {
        self.loss_with(g, inputs, targets, t, None)
    }

    /// [`Gpt::loss`] over [`Gpt::forward_with`].
    pub fn loss_with<'t>(
        &self,
        g: &mut Graph<'t>,
        inputs: &[u32],
        targets: &[u32],
        t: usize,
        key: Option<DropoutKey>,
    ) -> Val<'t> {
        let logits = self.forward_with(g, inputs, t, key);
        g.cross_entropy(logits, targets)
    }

    /// One micro-step without dropout: the mean loss over these rows, with `scale *` its
    /// gradient accumulated into `grads` (use `scale = rows / global batch rows` when a batch
    /// is split). Allocates nothing once `tape` has seen a step of this size.
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad(
        &self,
        tape: &mut Tape,
        weights: &[f32],
        inputs: &[u32],
        targets: &[u32],
        t: usize,
        scale: f32,
        grads: &mut [f32],
    ) -> f32 {
        self.loss_and_grad_with(tape, weights, inputs, targets, t, scale, grads, None)
    }

    /// [`Gpt::loss_and_grad`] with this GPT's dropout drawn from `key` (a training pass; with
    /// `None`, or a rate of 0, no dropout).
    #[allow(clippy::too_many_arguments)]
    pub fn loss_and_grad_with(
        &self,
        tape: &mut Tape,
        weights: &[f32],
        inputs: &[u32],
        targets: &[u32],
        t: usize,
        scale: f32,
        grads: &mut [f32],
        key: Option<DropoutKey>,
    ) -> f32 {
        let mut g = tape.graph(weights, &self.params.layout);
        let loss = self.loss_with(&mut g, inputs, targets, t, key);
        tracing::debug_span!("backward").in_scope(|| g.backward_scaled(loss, scale, grads));
        g.scalar(loss)
    }

    /// The mean loss over these rows, forward only (recorded with
    /// [`Tape::graph_forward_only`]: nothing saved for a backward pass).
    pub fn eval_loss(
        &self,
        tape: &mut Tape,
        weights: &[f32],
        inputs: &[u32],
        targets: &[u32],
        t: usize,
    ) -> f32 {
        let mut g = tape.graph_forward_only(weights, &self.params.layout);
        let loss = self.loss(&mut g, inputs, targets, t);
        g.scalar(loss)
    }
}
