//! GELU in the tanh form GPT-2 uses: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.
//!
//! Shapes: every slice is `[N]` (any shape, flattened).

use super::math;

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const COEF: f32 = 0.044_715;

/// `y = gelu(x)`.
pub fn gelu_forward(y: &mut [f32], x: &[f32]) {
    assert_eq!(x.len(), y.len(), "gelu: length mismatch");
    for (o, &v) in y.iter_mut().zip(x) {
        let u = SQRT_2_OVER_PI * (v + COEF * v * v * v);
        *o = 0.5 * v * (1.0 + math::tanh(u));
    }
}

/// `dx += gelu'(x) * dy`.
pub fn gelu_backward(dx: &mut [f32], dy: &[f32], x: &[f32]) {
    assert!(
        dx.len() == x.len() && dy.len() == x.len(),
        "gelu backward: length mismatch"
    );
    for i in 0..x.len() {
        let v = x[i];
        let u = SQRT_2_OVER_PI * (v + COEF * v * v * v);
        let t = math::tanh(u);
        let sech2 = 1.0 - t * t;
        let du = SQRT_2_OVER_PI * (1.0 + 3.0 * COEF * v * v);
        dx[i] += (0.5 * (1.0 + t) + 0.5 * v * sech2 * du) * dy[i];
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
