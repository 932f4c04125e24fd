//! [`Gpt`]: the forward pass on an autograd tape, and one training micro-step.

use cllm_autograd::{Graph, Tape, Val};

use crate::{GptConfig, GptParams};

/// A GPT: its shape and its parameter table. Weights live outside, in a flat buffer laid out by
/// `params.layout`, so one `Gpt` serves any number of workers, each with its own tape and
/// gradient buffer.
#[derive(Clone, Debug)]
pub struct Gpt {
    /// The architecture.
    pub cfg: GptConfig,
    /// The parameter table.
    pub params: GptParams,
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
        })
    }

    /// Records the forward pass over `inputs` (`B` sequences of `t` tokens, `t <= seq_len`)
    /// and returns the logits `[B*t, V]`.
    pub fn forward<'t>(&self, g: &mut Graph<'t>, inputs: &[u32], t: usize) -> Val<'t> {
        let _span = tracing::debug_span!("forward").entered();
        let p = &self.params;
        let mut x = g.embedding(inputs, p.wte, Some(p.wpe), t);
        for (layer, blk) in p.blocks.iter().enumerate() {
            let _layer = tracing::trace_span!("layer", layer).entered();
            let h = g.layernorm(x, blk.ln1.0, blk.ln1.1);
            let qkv = g.linear(h, blk.qkv.0, blk.qkv.1);
            let a = g.attention(qkv, t, self.cfg.num_heads);
            let a = g.linear(a, blk.attn_proj.0, blk.attn_proj.1);
            x = g.add(x, a);
            let h = g.layernorm(x, blk.ln2.0, blk.ln2.1);
            let h = g.linear_gelu(h, blk.fc.0, blk.fc.1);
            let h = g.linear(h, blk.fc_proj.0, blk.fc_proj.1);
            x = g.add(x, h);
        }
        let x = g.layernorm(x, p.ln_f.0, p.ln_f.1);
        g.linear(x, p.wte, None)
    }

    /// Records the forward pass and the mean cross-entropy against `targets`.
    pub fn loss<'t>(
        &self,
        g: &mut Graph<'t>,
        inputs: &[u32],
        targets: &[u32],
        t: usize,
    ) -> Val<'t> {
        let logits = self.forward(g, inputs, t);
        g.cross_entropy(logits, targets)
    }

    /// One training micro-step: the mean loss over these rows, with `scale *` its gradient
    /// accumulated into `grads` (use `scale = rows / global batch rows` when a batch is split).
    /// Allocates nothing once `tape` has seen a step of this size.
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
        let mut g = tape.graph(weights, &self.params.layout);
        let loss = self.loss(&mut g, inputs, targets, t);
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
