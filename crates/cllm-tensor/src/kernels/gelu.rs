//! GELU in the tanh form GPT-2 uses: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
//!
//! Evaluated through the identity `0.5 (1 + tanh(u)) = sigmoid(2u) = 1 / (1 + e^{-2u})`, which
//! costs one `exp` and one division per element instead of `tanh`'s more.
//!
//! Shapes: every slice is `[N]` (any shape, flattened).

use super::math;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const COEF: f32 = 0.044_715;

/// `y = gelu(x)`.
pub fn gelu_forward(y: &mut [f32], x: &[f32]) {
    assert_eq!(x.len(), y.len(), "gelu: length mismatch");
    for (o, &v) in y.iter_mut().zip(x) {
        *o = v * sigmoid_2u(v);
    }
}

/// `sigmoid(2u) = 0.5 (1 + tanh(u))` with `u = sqrt(2/pi) (x + 0.044715 x^3)`.
#[inline(always)]
fn sigmoid_2u(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * (x + COEF * x * x * x);
    1.0 / (1.0 + math::exp(-2.0 * u))
}

/// `dx += gelu'(x) * dy`.
pub fn gelu_backward(dx: &mut [f32], dy: &[f32], x: &[f32]) {
    assert!(
        dx.len() == x.len() && dy.len() == x.len(),
        "gelu backward: length mismatch"
    );
    for i in 0..x.len() {
        // d/dx [x s(x)] with s = sigmoid(2u): s + x * 2 s (1 - s) * du/dx.
        let v = x[i];
        let s = sigmoid_2u(v);
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * COEF * v * v);
        dx[i] += (s + 2.0 * v * s * (1.0 - s) * du) * dy[i];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
