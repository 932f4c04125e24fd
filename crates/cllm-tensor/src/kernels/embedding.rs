//! Token and position embedding lookup.
//!
//! Shapes: `tokens[B * T]` (ids below `V`), `wte[V, C]`, `wpe[T', C]` with `T' >= T`
//! (optional), `out[B * T, C]`. Row `i` of `out` is token `tokens[i]` at position `i % T`.

/// `out[i] = wte[tokens[i]] + wpe[i % t]`.
///
/// # Panics
/// If a token id is out of range for `wte` or a slice has the wrong length.
pub fn embedding_forward(
    out: &mut [f32],
    tokens: &[u32],
    wte: &[f32],
    wpe: Option<&[f32]>,
    t: usize,
) {
    let c = out.len() / tokens.len().max(1);
    assert_eq!(
        out.len(),
        tokens.len() * c,
        "embedding: out is not [B*T, C]"
    );
    let vocab = wte.len() / c.max(1);
    for (i, (row, &tok)) in out.chunks_exact_mut(c).zip(tokens).enumerate() {
        let tok = tok as usize;
        assert!(
            tok < vocab,
            "embedding: token id {tok} is outside the vocabulary of {vocab}"
        );
        row.copy_from_slice(&wte[tok * c..(tok + 1) * c]);
        if let Some(wpe) = wpe {
            let p = i % t;
            for (o, &w) in row.iter_mut().zip(&wpe[p * c..(p + 1) * c]) {
                *o += w;
            }
        }
    }
}

/// `dwte[tokens[i]] += dout[i]`, `dwpe[i % t] += dout[i]`.
pub fn embedding_backward(
    dwte: &mut [f32],
    mut dwpe: Option<&mut [f32]>,
    dout: &[f32],
    tokens: &[u32],
    t: usize,
) {
    let c = dout.len() / tokens.len().max(1);
    for (i, (row, &tok)) in dout.chunks_exact(c).zip(tokens).enumerate() {
        let tok = tok as usize;
        for (d, &g) in dwte[tok * c..(tok + 1) * c].iter_mut().zip(row) {
            *d += g;
        }
        if let Some(dwpe) = dwpe.as_deref_mut() {
            let p = i % t;
            for (d, &g) in dwpe[p * c..(p + 1) * c].iter_mut().zip(row) {
                *d += g;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_scatter() {
        let wte = [0.0, 1.0, 10.0, 11.0, 20.0, 21.0]; // V = 3, C = 2
        let wpe = [100.0, 200.0, 300.0, 400.0]; // T = 2
        let tokens = [2, 0, 1, 1];
        let mut out = [0.0; 8];
        embedding_forward(&mut out, &tokens, &wte, Some(&wpe), 2);
        assert_eq!(
            out,
            [120.0, 221.0, 300.0, 401.0, 110.0, 211.0, 310.0, 411.0]
        );
        let (mut dwte, mut dwpe) = ([0.0; 6], [0.0; 4]);
        embedding_backward(&mut dwte, Some(&mut dwpe), &[1.0; 8], &tokens, 2);
        assert_eq!(dwte, [1.0, 1.0, 2.0, 2.0, 1.0, 1.0]);
        assert_eq!(dwpe, [2.0; 4]);
    }
}
