//! The transpose of a 16 x 16 block of 32-bit values held in sixteen AVX-512 registers: the
//! bf16 GEMM's packing of a transposed `B` and the direct attention's key and value transposes
//! share it.

use std::arch::x86_64::{
    __m512i, _mm512_shuffle_i32x4, _mm512_unpackhi_epi32, _mm512_unpackhi_epi64,
    _mm512_unpacklo_epi32, _mm512_unpacklo_epi64,
};

/// The transpose of a 16 x 16 matrix of `u32`, one row per register: `out[q]` lane `l` is
/// `r[l]` lane `q`. Interleaves 32-bit, then 64-bit elements within 128-bit blocks, then
/// moves the blocks.
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) fn transpose_16x16(r: [__m512i; 16]) -> [__m512i; 16] {
    // a[2i], a[2i+1]: rows 2i and 2i+1 interleaved (low, high halves of each 128-bit block).
    let a: [__m512i; 16] = std::array::from_fn(|i| {
        let (x, y) = (r[i & !1], r[i | 1]);
        if i % 2 == 0 {
            _mm512_unpacklo_epi32(x, y)
        } else {
            _mm512_unpackhi_epi32(x, y)
        }
    });
    // b[4i + e]: rows 4i..4i+4, element e of each 128-bit block.
    let b: [__m512i; 16] = std::array::from_fn(|j| {
        let (i, e) = (j / 4, j % 4);
        let (x, y) = (a[4 * i + (e / 2)], a[4 * i + 2 + (e / 2)]);
        if e % 2 == 0 {
            _mm512_unpacklo_epi64(x, y)
        } else {
            _mm512_unpackhi_epi64(x, y)
        }
    });
    // out[4 * blk + e] = block `blk` of b[e], b[4 + e], b[8 + e], b[12 + e].
    std::array::from_fn(|q| {
        let (blk, e) = (q / 4, q % 4);
        let (c, d) = if blk < 2 {
            (
                _mm512_shuffle_i32x4::<0b01_00_01_00>(b[e], b[4 + e]),
                _mm512_shuffle_i32x4::<0b01_00_01_00>(b[8 + e], b[12 + e]),
            )
        } else {
            (
                _mm512_shuffle_i32x4::<0b11_10_11_10>(b[e], b[4 + e]),
                _mm512_shuffle_i32x4::<0b11_10_11_10>(b[8 + e], b[12 + e]),
            )
        };
        if blk % 2 == 0 {
            _mm512_shuffle_i32x4::<0b10_00_10_00>(c, d)
        } else {
            _mm512_shuffle_i32x4::<0b11_01_11_01>(c, d)
        }
    })
}
