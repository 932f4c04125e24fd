//! The transpose of an 8 x 8 block of `f32` held in eight AVX registers: the direct attention's
//! key and value transposes where the build has AVX but not AVX-512 (elsewhere
//! [`super::transpose16`] moves 16 x 16 blocks).

use std::arch::x86_64::{
    __m256, _mm256_permute2f128_ps, _mm256_shuffle_ps, _mm256_unpackhi_ps, _mm256_unpacklo_ps,
};

/// The transpose of an 8 x 8 matrix, one row per register: `out[q]` lane `l` is `r[l]` lane
/// `q`. Interleaves 32-bit, then 64-bit elements within 128-bit halves, then moves the halves.
#[target_feature(enable = "avx")]
#[inline]
pub(crate) fn transpose_8x8(r: [__m256; 8]) -> [__m256; 8] {
    // a[2i]: rows 2i and 2i+1 interleaved from elements 0, 1 (and 4, 5 in the high half);
    // a[2i + 1]: from elements 2, 3 (and 6, 7).
    let a: [__m256; 8] = std::array::from_fn(|i| {
        let (x, y) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm256_unpacklo_ps(x, y)
        } else {
            _mm256_unpackhi_ps(x, y)
        }
    });
    // b[4h + e]: rows 4h..4h + 4 of column e (low half) and e + 4 (high half).
    let b: [__m256; 8] = std::array::from_fn(|j| {
        let (h, e) = (j / 4, j % 4);
        let (x, y) = (a[4 * h + e / 2], a[4 * h + 2 + e / 2]);
        if e % 2 == 0 {
            _mm256_shuffle_ps::<0b01_00_01_00>(x, y)
        } else {
            _mm256_shuffle_ps::<0b11_10_11_10>(x, y)
        }
    });
    // Column q: the low halves (q < 4) or the high halves (q >= 4) of b[q % 4] and b[4 + q % 4].
    std::array::from_fn(|q| {
        let (x, y) = (b[q % 4], b[4 + q % 4]);
        if q < 4 {
            _mm256_permute2f128_ps::<0x20>(x, y)
        } else {
            _mm256_permute2f128_ps::<0x31>(x, y)
        }
    })
}

#[cfg(test)]
mod tests {
    use std::arch::x86_64::{_mm256_loadu_ps, _mm256_storeu_ps};

    #[test]
    fn transposes() {
        let m: Vec<f32> = (0..64).map(|i| i as f32).collect();
        let mut out = [0.0f32; 64];
        // SAFETY: the module is compiled only where the build enables AVX (`kernels`' `cfg`);
        // each load and store is of eight floats at `8 r` inside a 64-float buffer.
        unsafe {
            let rows = std::array::from_fn(|r| _mm256_loadu_ps(m.as_ptr().add(8 * r)));
            for (q, v) in super::transpose_8x8(rows).iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add(8 * q), *v);
            }
        }
        for r in 0..8 {
            for c in 0..8 {
                assert_eq!(out[c * 8 + r], m[r * 8 + c], "({r}, {c})");
            }
        }
    }
}
