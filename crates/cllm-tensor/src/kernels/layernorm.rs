//! Layer normalisation over the last dimension, as GPT-2 uses it (`eps = 1e-5`).
//!
//! Shapes: `x[N, C]`, `w[C]`, `b[C]` (optional), `y[N, C]`; the forward pass saves
//! `mean[N]` and `rstd[N]` (reciprocal standard deviation) for the backward pass.

/// The variance floor added before the square root, as in PyTorch and GPT-2.
pub const EPS: f32 = 1e-5;

/// `y = (x - mean) * rstd * w + b`, row by row; writes `mean` and `rstd`.
pub fn layernorm_forward(
    y: &mut [f32],
    mean: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    w: &[f32],
    b: Option<&[f32]>,
) {
    let c = w.len();
    assert_eq!(x.len(), y.len(), "layernorm: x and y lengths differ");
    assert_eq!(
        x.len(),
        mean.len() * c,
        "layernorm: x is not [N, C] with N = mean.len()"
    );
    for (r, (xr, yr)) in x.chunks_exact(c).zip(y.chunks_exact_mut(c)).enumerate() {
        let m = xr.iter().sum::<f32>() / c as f32;
        let var = xr.iter().map(|&v| (v - m) * (v - m)).sum::<f32>() / c as f32;
        let s = 1.0 / (var + EPS).sqrt();
        for i in 0..c {
            yr[i] = (xr[i] - m) * s * w[i];
        }
        if let Some(b) = b {
            for i in 0..c {
                yr[i] += b[i];
            }
        }
        mean[r] = m;
        rstd[r] = s;
    }
}

/// Gradients of [`layernorm_forward`], accumulated: `dx += ...`, `dw += ...`, `db += ...`.
/// Shapes: `dx[N, C]`, `dw[C]`, `db[C]`, `dy[N, C]`, `x[N, C]`, `w[C]`, `mean[N]`, `rstd[N]`.
/// `dx` may be `None` when the input needs no gradient.
#[allow(clippy::too_many_arguments)]
pub fn layernorm_backward(
    mut dx: Option<&mut [f32]>,
    dw: &mut [f32],
    mut db: Option<&mut [f32]>,
    dy: &[f32],
    x: &[f32],
    w: &[f32],
    mean: &[f32],
    rstd: &[f32],
) {
    let c = w.len();
    for r in 0..mean.len() {
        let xr = &x[r * c..(r + 1) * c];
        let dyr = &dy[r * c..(r + 1) * c];
        let (m, s) = (mean[r], rstd[r]);
        // dnorm = dy * w; dx = s * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)).
        let mut sum_dn = 0.0f32;
        let mut sum_dn_norm = 0.0f32;
        for i in 0..c {
            let norm = (xr[i] - m) * s;
            let dn = dyr[i] * w[i];
            sum_dn += dn;
            sum_dn_norm += dn * norm;
            dw[i] += dyr[i] * norm;
        }
        if let Some(db) = db.as_deref_mut() {
            for i in 0..c {
                db[i] += dyr[i];
            }
        }
        if let Some(dx) = dx.as_deref_mut() {
            let (mean_dn, mean_dn_norm) = (sum_dn / c as f32, sum_dn_norm / c as f32);
            let dxr = &mut dx[r * c..(r + 1) * c];
            for i in 0..c {
                let norm = (xr[i] - m) * s;
                dxr[i] += s * (dyr[i] * w[i] - mean_dn - norm * mean_dn_norm);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_normalised() {
        let x = [1.0, 2.0, 3.0, 4.0, -5.0, 5.0, 0.0, 0.0];
        let w = [1.0; 4];
        let (mut y, mut mean, mut rstd) = ([0.0; 8], [0.0; 2], [0.0; 2]);
        layernorm_forward(&mut y, &mut mean, &mut rstd, &x, &w, Some(&[0.5; 4]));
        assert_eq!(mean, [2.5, 0.0]);
        for row in y.chunks(4) {
            let m: f32 = row.iter().sum::<f32>() / 4.0;
            let v: f32 = row.iter().map(|a| (a - m) * (a - m)).sum::<f32>() / 4.0;
            assert!(
                (m - 0.5).abs() < 1e-6 && (v - 1.0).abs() < 1e-3,
                "mean {m} var {v}"
            );
        }
    }
}
