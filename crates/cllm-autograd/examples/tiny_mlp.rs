//! Trains a two-layer MLP on a synthetic two-spirals problem with plain SGD and prints the
//! loss falling. Finishes in about a second.
//!
//! Run: `cargo run --release -p cllm-autograd --example tiny_mlp`

use cllm_autograd::{ParamLayout, Tape};

fn main() {
    // Two interleaved spirals, 200 points each, labelled 0 and 1.
    let n = 400;
    let mut xs = Vec::with_capacity(2 * n);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 2;
        let r = (i / 2) as f32 / (n / 2) as f32;
        let angle = r * 3.0 * std::f32::consts::PI + class as f32 * std::f32::consts::PI;
        xs.extend_from_slice(&[r * angle.cos(), r * angle.sin()]);
        ys.push(class as u32);
    }

    let hidden = 64;
    let mut layout = ParamLayout::new();
    let w1 = layout.push("fc1.weight", &[hidden, 2]);
    let b1 = layout.push("fc1.bias", &[hidden]);
    let w2 = layout.push("fc2.weight", &[hidden, hidden]);
    let b2 = layout.push("fc2.bias", &[hidden]);
    let w3 = layout.push("out.weight", &[2, hidden]);
    println!("{layout}");

    // Deterministic small init: a hash of the index, scaled by 1/sqrt(fan_in).
    let mut params = layout.zeros();
    for e in layout.entries() {
        let fan_in = *e.shape.last().unwrap_or(&1) as f32;
        for (j, p) in params[e.range()].iter_mut().enumerate() {
            let h = ((e.offset + j) as u32).wrapping_mul(2_654_435_761) >> 8;
            *p = (h as f32 / (1u32 << 24) as f32 * 2.0 - 1.0) * (3.0 / fan_in).sqrt();
        }
    }
    let mut grads = layout.zeros();
    let mut tape = Tape::new();
    for step in 0..=2000 {
        grads.fill(0.0);
        let mut g = tape.graph(&params, &layout);
        let x = g.input(&xs, n, 2);
        let h = g.linear(x, w1, Some(b1));
        let h = g.gelu(h);
        let h = g.linear(h, w2, Some(b2));
        let h = g.gelu(h);
        let logits = g.linear(h, w3, None);
        let loss = g.cross_entropy(logits, &ys);
        let value = g.scalar(loss);
        let correct = g
            .value(logits)
            .chunks(2)
            .zip(&ys)
            .filter(|(l, y)| (l[1] > l[0]) as u32 == **y)
            .count();
        g.backward(loss, &mut grads);
        if step % 250 == 0 {
            println!(
                "step {step:5}  loss {value:.4}  accuracy {:.1}%",
                100.0 * correct as f32 / n as f32
            );
        }
        for (p, d) in params.iter_mut().zip(&grads) {
            *p -= 0.3 * d;
        }
    }
    println!("tape after the last step: {:?}", tape.stats());
}
