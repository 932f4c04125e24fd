//! [`AlignedBuf`]: a zeroed `f32` buffer whose start is aligned to 128 bytes, so that segment
//! boundaries at multiples of [`LINE_FLOATS`] fall on cache-line pairs and no two workers ever
//! write the same line.

/// Floats per 128-byte line pair.
pub const LINE_FLOATS: usize = 32;

/// A heap buffer of `len` floats starting on a 128-byte boundary, zero-initialised.
///
/// The memory comes from `vec![0.0; n]`, which the allocator satisfies with `calloc`: large
/// buffers are fresh zero pages that become resident only when written. (Asking the allocator
/// for 128-byte alignment directly would not: Rust's `alloc_zeroed` then writes the zeros
/// itself, touching every page.) The start is found by skipping up to 31 floats.
pub struct AlignedBuf {
    data: Vec<f32>,
    offset: usize,
    len: usize,
}

impl AlignedBuf {
    /// `len` zeros.
    pub fn zeros(len: usize) -> Self {
        let data = vec![0.0f32; len + LINE_FLOATS - 1];
        let offset = data
            .as_ptr()
            .align_offset(LINE_FLOATS * std::mem::size_of::<f32>());
        assert!(offset < LINE_FLOATS, "f32 allocations are 4-byte aligned");
        AlignedBuf { data, offset, len }
    }

    /// A copy of `data`.
    pub fn from_slice(data: &[f32]) -> Self {
        let mut b = AlignedBuf::zeros(data.len());
        b.as_mut_slice().copy_from_slice(data);
        b
    }

    /// The floats.
    pub fn as_slice(&self) -> &[f32] {
        &self.data[self.offset..self.offset + self.len]
    }

    /// The floats, mutable.
    pub fn as_mut_slice(&mut self) -> &mut [f32] {
        &mut self.data[self.offset..self.offset + self.len]
    }

    /// Number of floats.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AlignedBuf({} floats)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_and_zeroed() {
        for len in [0, 1, 100, 10_000] {
            let mut b = AlignedBuf::zeros(len);
            assert_eq!(b.as_slice().as_ptr() as usize % 128, 0);
            assert!(b.as_slice().iter().all(|&x| x == 0.0));
            if len > 0 {
                b.as_mut_slice()[len - 1] = 1.0;
            }
            assert_eq!(b.len(), len);
        }
        assert_eq!(AlignedBuf::from_slice(&[1.0, 2.0]).as_slice(), &[1.0, 2.0]);
    }
}
