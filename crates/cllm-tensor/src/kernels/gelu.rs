//! GELU in the tanh form GPT-2 uses: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
//!
//! Evaluated through the identity `0.5 (1 + tanh(u)) = sigmoid(2u) = 1 / (1 + e^{-2u})`, which
//! costs one `exp` and one division per element instead of `tanh`'s more.
//!
//! Shapes: every slice is `[N]` (any shape, flattened).

use multiversion::multiversion;

use super::{Write, math};

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const COEF: f32 = 0.044_715;

/// `y = gelu(x)`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn gelu_forward(y: &mut [f32], x: &[f32]) {
    assert_eq!(x.len(), y.len(), "gelu: length mismatch");
    let mut yc = y.chunks_exact_mut(BLOCK);
    let mut xc = x.chunks_exact(BLOCK);
    for (o, v) in (&mut yc).zip(&mut xc) {
        let v: &[f32; BLOCK] = v.try_into().expect("chunks_exact gives whole blocks");
        let s = sigmoid_2u_block(v);
        for i in 0..BLOCK {
            o[i] = v[i] * s[i];
        }
    }
    let (tail, s) = padded_tail(xc.remainder());
    for ((o, &v), &s) in yc.into_remainder().iter_mut().zip(tail).zip(&s) {
        *o = v * s;
    }
}

/// `x = gelu(x)` in place: [`gelu_forward`]'s values, bit for bit, without a second buffer.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn gelu_forward_in_place(x: &mut [f32]) {
    let mut xc = x.chunks_exact_mut(BLOCK);
    for xb in &mut xc {
        let v: [f32; BLOCK] = (*xb).try_into().expect("chunks_exact gives whole blocks");
        let s = sigmoid_2u_block(&v);
        for i in 0..BLOCK {
            xb[i] = v[i] * s[i];
        }
    }
    let tail = xc.into_remainder();
    let (_, s) = padded_tail(tail);
    for (v, &s) in tail.iter_mut().zip(&s) {
        *v *= s;
    }
}

/// `x = gelu(x)` in place, saving `g = gelu'(x)` of the input for the backward pass.
///
/// The values are [`gelu_forward`]'s, and `g * dy` is what [`gelu_backward`] writes over a
/// gradient (`Write::Overwrite`), bit for bit: the same per-element arithmetic, with the
/// sigmoid computed once instead of again in the backward pass, which is then one
/// multiplication per element. The input is gone afterwards: for a pre-activation that
/// nothing else reads (a linear layer's output feeding only its GELU, see
/// `cllm_autograd::Graph::linear_gelu`).
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn gelu_forward_in_place_saving_grad(x: &mut [f32], g: &mut [f32]) {
    assert_eq!(x.len(), g.len(), "gelu: length mismatch");
    let mut xc = x.chunks_exact_mut(BLOCK);
    let mut gc = g.chunks_exact_mut(BLOCK);
    for (xb, gb) in (&mut xc).zip(&mut gc) {
        let v: [f32; BLOCK] = (*xb).try_into().expect("chunks_exact gives whole blocks");
        let s = sigmoid_2u_block(&v);
        // Two loops, not one writing both: on a Zen 3 core 342 against 482 µs over `[768 x
        // 512]` (`cargo bench -p cllm-tensor --bench main -- gelu`); the same bits either way.
        for i in 0..BLOCK {
            xb[i] = v[i] * s[i];
        }
        for i in 0..BLOCK {
            gb[i] = gelu_grad(v[i], s[i]);
        }
    }
    let tail = xc.into_remainder();
    let (_, s) = padded_tail(tail);
    for ((v, gv), &s) in tail.iter_mut().zip(gc.into_remainder()).zip(&s) {
        *gv = gelu_grad(*v, s);
        *v *= s;
    }
}

/// Elements per block of the vectorised loops: four AVX2 registers, whose independent chains
/// the CPU overlaps (see [`math::exp_block`]). 16 ran 4x slower on a Zen 3 core (the compiler
/// vectorised across blocks instead), 64 as 32: `cargo bench -p cllm-tensor --bench main --
/// elementwise`. Results do not depend on the block size (the arithmetic is per element).
#[cfg(not(target_feature = "avx512f"))]
const BLOCK: usize = 32;
/// Elements per block where the build targets AVX-512 (a native build on such a CPU): eight
/// 512-bit registers. On a Zen 4 core forward / backward over nanoGPT-cpu's MLP take 153 / 202
/// µs in blocks of 128 against 221 / 233 in blocks of 32 (64: 168 / 216; 256: 165 / 210); in an
/// AVX2 build on the same core blocks of 128 are the slower, 271 / 338 against 232 / 276.
#[cfg(target_feature = "avx512f")]
const BLOCK: usize = 128;

/// `sigmoid(2u) = 0.5 (1 + tanh(u))` with `u = sqrt(2/pi) (x + 0.044715 x^3)`, element by
/// element over a block.
#[inline(always)]
fn sigmoid_2u_block(x: &[f32; BLOCK]) -> [f32; BLOCK] {
    let mut e = [0.0f32; BLOCK];
    for i in 0..BLOCK {
        let u = SQRT_2_OVER_PI * (x[i] + COEF * x[i] * x[i] * x[i]);
        e[i] = -2.0 * u;
    }
    math::exp_block(&mut e);
    for v in e.iter_mut() {
        *v = 1.0 / (1.0 + *v);
    }
    e
}

/// The last, partial block (`tail.len() < BLOCK`) and its [`sigmoid_2u_block`], computed
/// zero-padded (each element's result does not depend on its neighbours).
#[inline(always)]
fn padded_tail(tail: &[f32]) -> (&[f32], [f32; BLOCK]) {
    let mut xb = [0.0f32; BLOCK];
    xb[..tail.len()].copy_from_slice(tail);
    (tail, sigmoid_2u_block(&xb))
}

/// `dx += gelu'(x) * dy`, or with [`Write::Overwrite`] `dx = gelu'(x) * dy`.
pub fn gelu_backward(dx: &mut [f32], dy: &[f32], x: &[f32], write: Write) {
    match write {
        Write::Add => backward_adding(dx, dy, x),
        Write::Overwrite => backward_overwriting(dx, dy, x),
    }
}

#[multiversion(targets("x86_64+avx2+fma"))]
fn backward_adding(dx: &mut [f32], dy: &[f32], x: &[f32]) {
    backward::<true>(dx, dy, x);
}

#[multiversion(targets("x86_64+avx2+fma"))]
fn backward_overwriting(dx: &mut [f32], dy: &[f32], x: &[f32]) {
    backward::<false>(dx, dy, x);
}

/// `dx (+)= gelu'(x) * dy`, adding when `ADD`.
#[inline(always)]
fn backward<const ADD: bool>(dx: &mut [f32], dy: &[f32], x: &[f32]) {
    assert!(
        dx.len() == x.len() && dy.len() == x.len(),
        "gelu backward: length mismatch"
    );
    let write = |d: &mut f32, g: f32| {
        if ADD {
            *d += g;
        } else {
            *d = g;
        }
    };
    let blocks = x.len() / BLOCK * BLOCK;
    for ((dxc, dyc), xc) in dx[..blocks]
        .chunks_exact_mut(BLOCK)
        .zip(dy[..blocks].chunks_exact(BLOCK))
        .zip(x[..blocks].chunks_exact(BLOCK))
    {
        let xc: &[f32; BLOCK] = xc.try_into().expect("chunks_exact gives whole blocks");
        let s = sigmoid_2u_block(xc);
        // The derivatives first, then the writes: on a Zen 3 core 341 against 557 µs over
        // `[768 x 512]` for one loop doing both (as in the forward above); the same bits.
        let mut g = [0.0f32; BLOCK];
        for i in 0..BLOCK {
            g[i] = gelu_grad(xc[i], s[i]);
        }
        for i in 0..BLOCK {
            write(&mut dxc[i], g[i] * dyc[i]);
        }
    }
    let (tail, s) = padded_tail(&x[blocks..]);
    for (i, (&v, &s)) in tail.iter().zip(&s).enumerate() {
        write(&mut dx[blocks + i], gelu_grad(v, s) * dy[blocks + i]);
    }
}

/// `gelu'(x)` given `s = sigmoid_2u(x)`: d/dx [x s(x)] = s + x * 2 s (1 - s) * du/dx.
#[inline(always)]
fn gelu_grad(v: f32, s: f32) -> f32 {
    let du = SQRT_2_OVER_PI * (1.0 + 3.0 * COEF * v * v);
    s + 2.0 * v * s * (1.0 - s) * du
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The blocked loops give exactly the per-element formula (scalar `exp`), tail included.
    #[test]
    fn blocks_equal_the_scalar_formula_bit_for_bit() {
        let n = 3 * BLOCK + 5;
        let x: Vec<f32> = (0..n).map(|i| (i as f32 - 50.0) * 0.173).collect();
        let dy: Vec<f32> = (0..n).map(|i| 1.0 - i as f32 * 0.01).collect();
        let mut y = vec![0.0; n];
        gelu_forward(&mut y, &x);
        let mut dx = vec![0.5; n];
        gelu_backward(&mut dx, &dy, &x, Write::Add);
        for i in 0..n {
            let u = SQRT_2_OVER_PI * (x[i] + COEF * x[i] * x[i] * x[i]);
            let s = 1.0 / (1.0 + math::exp(-2.0 * u));
            assert_eq!(y[i].to_bits(), (x[i] * s).to_bits(), "forward at {i}");
            let want = 0.5 + gelu_grad(x[i], s) * dy[i];
            assert_eq!(dx[i].to_bits(), want.to_bits(), "backward at {i}");
        }
        // Overwriting gives what adding to zeros gives, whatever the buffer held.
        let (mut added, mut overwritten) = (vec![0.0; n], vec![f32::NAN; n]);
        gelu_backward(&mut added, &dy, &x, Write::Add);
        gelu_backward(&mut overwritten, &dy, &x, Write::Overwrite);
        for i in 0..n {
            assert_eq!(
                added[i].to_bits(),
                overwritten[i].to_bits(),
                "overwrite at {i}"
            );
        }
    }

    /// In place, and in place with the saved derivative: [`gelu_forward`]'s values, and
    /// derivatives whose product with `dy` is [`gelu_backward`]'s overwriting result, bit for
    /// bit, tail included.
    #[test]
    fn in_place_saving_grad_equals_forward_and_backward() {
        for n in [BLOCK - 1, 2 * BLOCK, 3 * BLOCK + 5] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 - 40.0) * 0.191).collect();
            let dy: Vec<f32> = (0..n).map(|i| 0.7 - i as f32 * 0.013).collect();
            let mut y = vec![0.0; n];
            gelu_forward(&mut y, &x);
            let mut dx = vec![f32::NAN; n];
            gelu_backward(&mut dx, &dy, &x, Write::Overwrite);
            let (mut inplace, mut g) = (x.clone(), vec![f32::NAN; n]);
            gelu_forward_in_place_saving_grad(&mut inplace, &mut g);
            let mut plain = x.clone();
            gelu_forward_in_place(&mut plain);
            for i in 0..n {
                assert_eq!(plain[i].to_bits(), y[i].to_bits(), "in place at {i} of {n}");
                assert_eq!(inplace[i].to_bits(), y[i].to_bits(), "value at {i} of {n}");
                assert_eq!(
                    (g[i] * dy[i]).to_bits(),
                    dx[i].to_bits(),
                    "grad at {i} of {n}"
                );
            }
        }
    }

    #[test]
    fn known_values() {
        let x = [-3.0, -1.0, 0.0, 1.0, 3.0];
        let mut y = [0.0; 5];
        gelu_forward(&mut y, &x);
        // Values of the tanh-form GELU, computed in f64.
        let want = x.map(|v: f32| {
            let v = v as f64;
            0.5 * v
                * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (v + 0.044715 * v.powi(3))).tanh())
        });
        for i in 0..5 {
            assert!(
                (y[i] as f64 - want[i]).abs() < 1e-6,
                "gelu({}) = {} want {}",
                x[i],
                y[i],
                want[i]
            );
        }
    }
}
