//! Incremental decoding with the KV cache gives the same logits as a full forward pass over
//! the context, token by token, including after the cache fills and is refilled.

use cllm_autograd::Tape;
use cllm_model::{Generator, Gpt, GptConfig};

fn full_logits(gpt: &Gpt, w: &[f32], context: &[u32]) -> Vec<f32> {
    let mut tape = Tape::new();
    let mut g = tape.graph(w, &gpt.params.layout);
    let t = context.len();
    let logits = gpt.forward(&mut g, context, t);
    let out = g.value(logits).to_vec();
    out[(t - 1) * gpt.cfg.vocab_size..].to_vec()
}

#[test]
fn cached_decoding_matches_full_forward() {
    for bias in [false, true] {
        let cfg = GptConfig {
            vocab_size: 23,
            seq_len: 8,
            embed_dim: 16,
            num_layers: 2,
            num_heads: 4,
            bias,
        };
        let gpt = Gpt::new(cfg).unwrap();
        let mut w = gpt.params.init(&cfg, 11);
        w.iter_mut().for_each(|x| *x *= 8.0); // make attention non-uniform
        let mut decoder = Generator::new(&gpt, &w);
        let tokens: Vec<u32> = (0..20).map(|i| (i * 7 % 23) as u32).collect();
        let mut context: Vec<u32> = Vec::new();
        for &tok in &tokens {
            let cached = decoder.feed(tok).to_vec();
            context.push(tok);
            // What the model sees: after the cache fills, the last half of the context is refed.
            let len = context.len();
            let window = if len <= 8 {
                &context[..]
            } else {
                &context[len - (4 + (len - 9) % 5)..]
            };
            let full = full_logits(&gpt, &w, window);
            let err = cached
                .iter()
                .zip(&full)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                err < 1e-4,
                "bias {bias}, token {len}: max logit difference {err}"
            );
        }
    }
}
