//! Trains a small GPT to memorise one sentence with AdamW and the nanoGPT schedule, then
//! decodes it back greedily with the KV cache. Runs in about a second.
//!
//! Run: `cargo run --release -p cllm-model --example overfit`

use cllm_autograd::Tape;
use cllm_model::adamw::{clip_scale, sum_of_squares};
use cllm_model::{
    AdamW, Generator, Gpt, GptConfig, Sampler, SamplingConfig, StepScalars, preset, schedule,
};

fn main() {
    let text = "the quick brown fox jumps over the lazy dog";
    let mut chars: Vec<char> = text.chars().collect();
    chars.sort_unstable();
    chars.dedup();
    let ids: Vec<u32> = text
        .chars()
        .map(|c| chars.iter().position(|&x| x == c).unwrap() as u32)
        .collect();
    let t = ids.len() - 1;
    let cfg = GptConfig {
        vocab_size: chars.len(),
        seq_len: t,
        embed_dim: 64,
        num_layers: 2,
        num_heads: 4,
        bias: false,
    };
    let gpt = Gpt::new(cfg).unwrap();
    let mut hyper = preset("tiny").unwrap().train;
    hyper.warmup_steps = 10;
    hyper.max_steps = 300;
    hyper.lr_decay_steps = 300;
    let adamw = AdamW::new(&gpt.params, &hyper);
    let mut w = gpt.params.init(&cfg, 0);
    let (mut m, mut v, mut g) = (
        gpt.params.layout.zeros(),
        gpt.params.layout.zeros(),
        gpt.params.layout.zeros(),
    );
    let mut tape = Tape::new();
    for step in 0..hyper.max_steps {
        g.fill(0.0);
        let loss = gpt.loss_and_grad(&mut tape, &w, &ids[..t], &ids[1..], t, 1.0, &mut g);
        let s = StepScalars {
            t: step + 1,
            lr: schedule::learning_rate(&hyper, step),
            grad_scale: clip_scale(sum_of_squares(&g).sqrt(), 1.0),
        };
        let n = w.len();
        adamw.update(0..n, s, &mut w, &g, &mut m, &mut v);
        if step % 50 == 0 {
            println!("step {step:3}: loss {loss:.4}");
        }
    }
    let mut decoder = Generator::new(&gpt, &w);
    let mut sampler = Sampler::default();
    let greedy = SamplingConfig {
        temperature: 0.0,
        ..Default::default()
    };
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let mut next = ids[0];
    let mut out = String::from(chars[next as usize]);
    for _ in 0..t {
        let mut logits = decoder.feed(next).to_vec();
        next = sampler.sample(&mut logits, &[], &greedy, &mut rng);
        out.push(chars[next as usize]);
    }
    println!("greedy decoding: {out:?}");
}
