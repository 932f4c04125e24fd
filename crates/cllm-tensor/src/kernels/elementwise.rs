//! Element-wise kernels: add, multiply, scale, and their backward passes.
//!
//! Every slice argument of one call has the same length `N` (any shape, flattened).
//! Backward kernels *accumulate* (`+=`) into their gradient outputs, so a value used twice
//! receives both contributions.

use multiversion::multiversion;

/// `out = a + b`. Shapes: all `[N]`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn add_forward(out: &mut [f32], a: &[f32], b: &[f32]) {
    assert_same_len(out.len(), a.len(), b.len());
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x + y;
    }
}

/// `da += dout; db += dout`. Shapes: all `[N]`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn add_backward(da: &mut [f32], db: &mut [f32], dout: &[f32]) {
    accumulate(da, dout);
    accumulate(db, dout);
}

/// `out = a * b`. Shapes: all `[N]`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn mul_forward(out: &mut [f32], a: &[f32], b: &[f32]) {
    assert_same_len(out.len(), a.len(), b.len());
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = x * y;
    }
}

/// `x *= y` in place: [`mul_forward`]'s values (`x * y`) without a second buffer.
/// Shapes: both `[N]`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn mul_in_place(x: &mut [f32], y: &[f32]) {
    assert_eq!(x.len(), y.len(), "mul: length mismatch");
    for (v, &w) in x.iter_mut().zip(y) {
        *v *= w;
    }
}

/// `da += dout * b; db += dout * a`. Shapes: all `[N]`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn mul_backward(da: &mut [f32], db: &mut [f32], dout: &[f32], a: &[f32], b: &[f32]) {
    assert_same_len(da.len(), db.len(), dout.len());
    assert_same_len(dout.len(), a.len(), b.len());
    for i in 0..dout.len() {
        da[i] += dout[i] * b[i];
        db[i] += dout[i] * a[i];
    }
}

/// `out = s * x`. Shapes: `[N]`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn scale_forward(out: &mut [f32], x: &[f32], s: f32) {
    assert_eq!(out.len(), x.len(), "scale: length mismatch");
    for (o, &v) in out.iter_mut().zip(x) {
        *o = s * v;
    }
}

/// `dx += s * dout`. Shapes: `[N]`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn scale_backward(dx: &mut [f32], dout: &[f32], s: f32) {
    assert_eq!(dx.len(), dout.len(), "scale: length mismatch");
    for (d, &g) in dx.iter_mut().zip(dout) {
        *d += s * g;
    }
}

/// `dst += src`. Shapes: `[N]`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn accumulate(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "accumulate: length mismatch");
    for (d, &s) in dst.iter_mut().zip(src) {
        *d += s;
    }
}

/// Adds `bias[C]` to every row of `x[N, C]`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn add_bias_rows(x: &mut [f32], bias: &[f32]) {
    for row in x.chunks_exact_mut(bias.len()) {
        accumulate(row, bias);
    }
}

/// `dbias[C] += sum over rows of dy[N, C]`.
#[multiversion(targets("x86_64+avx2+fma"))]
pub fn bias_backward(dbias: &mut [f32], dy: &[f32]) {
    for row in dy.chunks_exact(dbias.len()) {
        accumulate(dbias, row);
    }
}

fn assert_same_len(a: usize, b: usize, c: usize) {
    assert!(
        a == b && b == c,
        "element-wise kernel: lengths differ ({a}, {b}, {c})"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_and_backward_values() {
        let a = [1.0, -2.0, 3.0];
        let b = [0.5, 4.0, -1.0];
        let mut out = [0.0; 3];
        add_forward(&mut out, &a, &b);
        assert_eq!(out, [1.5, 2.0, 2.0]);
        mul_forward(&mut out, &a, &b);
        assert_eq!(out, [0.5, -8.0, -3.0]);
        scale_forward(&mut out, &a, 2.0);
        assert_eq!(out, [2.0, -4.0, 6.0]);

        let dout = [1.0, 1.0, 2.0];
        let (mut da, mut db) = ([1.0; 3], [0.0; 3]);
        mul_backward(&mut da, &mut db, &dout, &a, &b);
        assert_eq!(da, [1.5, 5.0, -1.0]);
        assert_eq!(db, [1.0, -2.0, 6.0]);

        let mut bias_grad = [0.0; 2];
        bias_backward(&mut bias_grad, &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(bias_grad, [4.0, 6.0]);
    }
}
