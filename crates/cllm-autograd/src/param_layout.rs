//! [`ParamLayout`]: the one table that gives every parameter its slice of a flat `f32` buffer.
//!
//! Weights, gradients and optimizer moments all use the same layout, so "segment `k` of the
//! gradient" and "segment `k` of the weights" are the same index range. Every entry starts on a
//! [`ALIGN_BYTES`] boundary (relative to the buffer start), so two entries never share a cache
//! line and disjoint segments can be written by different threads without false sharing.
//! Padding between entries is part of the buffer and stays zero.

use std::fmt;
use std::ops::Range;

/// Alignment of every entry, in bytes: two 64-byte lines, because adjacent-line prefetchers
/// pull lines in pairs (the same reason crossbeam's `CachePadded` uses 128).
pub const ALIGN_BYTES: usize = 128;

/// Alignment of every entry, in `f32` elements.
pub const ALIGN_FLOATS: usize = ALIGN_BYTES / std::mem::size_of::<f32>();

/// Names one parameter of a [`ParamLayout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(u32);

impl ParamId {
    /// Position of the parameter in its layout's table.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamEntry {
    /// A dotted name such as `h.0.attn.qkv.weight`.
    pub name: String,
    /// The parameter's shape; matrices are `[out, in]`.
    pub shape: Vec<usize>,
    /// Offset of the first element in the flat buffer (a multiple of [`ALIGN_FLOATS`]).
    pub offset: usize,
    /// Number of elements (the product of `shape`).
    pub len: usize,
}

impl ParamEntry {
    /// The entry's index range in the flat buffer.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// The parameter table: names, shapes and aligned offsets into one flat buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamLayout {
    entries: Vec<ParamEntry>,
    len: usize,
}

impl ParamLayout {
    /// An empty layout; add entries with [`ParamLayout::push`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a parameter and returns its id.
    ///
    /// # Panics
    /// If the name is already taken or the shape has a zero dimension.
    pub fn push(&mut self, name: &str, shape: &[usize]) -> ParamId {
        assert!(
            self.find(name).is_none(),
            "parameter `{name}` is defined twice"
        );
        let len: usize = shape.iter().product();
        assert!(len > 0, "parameter `{name}` has an empty shape {shape:?}");
        let offset = self.len.next_multiple_of(ALIGN_FLOATS);
        let id = ParamId(u32::try_from(self.entries.len()).expect("fewer than 2^32 parameters"));
        self.entries.push(ParamEntry {
            name: name.to_string(),
            shape: shape.to_vec(),
            offset,
            len,
        });
        self.len = (offset + len).next_multiple_of(ALIGN_FLOATS);
        id
    }

    /// Length of a flat buffer for this layout, padding included.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if there are no parameters.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Number of trainable values (padding excluded).
    pub fn num_params(&self) -> usize {
        self.entries.iter().map(|e| e.len).sum()
    }

    /// The table, in the order entries were pushed (and laid out).
    pub fn entries(&self) -> &[ParamEntry] {
        &self.entries
    }

    /// Ids of all entries, in layout order.
    pub fn ids(&self) -> impl Iterator<Item = ParamId> + '_ {
        (0..self.entries.len()).map(|i| ParamId(i as u32))
    }

    /// The entry of `id`.
    pub fn entry(&self, id: ParamId) -> &ParamEntry {
        &self.entries[id.index()]
    }

    /// The id of the parameter called `name`.
    pub fn find(&self, name: &str) -> Option<ParamId> {
        self.entries
            .iter()
            .position(|e| e.name == name)
            .map(|i| ParamId(i as u32))
    }

    /// The parameter's slice of a flat buffer laid out by `self`.
    pub fn slice<'a>(&self, id: ParamId, flat: &'a [f32]) -> &'a [f32] {
        &flat[self.entry(id).range()]
    }

    /// The parameter's mutable slice of a flat buffer laid out by `self`.
    pub fn slice_mut<'a>(&self, id: ParamId, flat: &'a mut [f32]) -> &'a mut [f32] {
        &mut flat[self.entry(id).range()]
    }

    /// A zeroed flat buffer of [`len`](Self::len) elements.
    pub fn zeros(&self) -> Vec<f32> {
        vec![0.0; self.len]
    }
}

impl fmt::Display for ParamLayout {
    /// One line per parameter: name, shape, offset, length.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for e in &self.entries {
            writeln!(
                f,
                "{:<32} {:<14} offset {:>9} len {:>9}",
                e.name,
                format!("{:?}", e.shape),
                e.offset,
                e.len
            )?;
        }
        write!(
            f,
            "{} parameters in a buffer of {} floats",
            self.num_params(),
            self.len
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_aligned_and_disjoint() {
        let mut l = ParamLayout::new();
        let a = l.push("a", &[3, 5]);
        let b = l.push("b", &[7]);
        let c = l.push("c", &[64]);
        assert_eq!(l.entry(a).offset, 0);
        assert_eq!(l.entry(b).offset, 32);
        assert_eq!(l.entry(c).offset, 64);
        assert_eq!(l.len(), 128);
        assert_eq!(l.num_params(), 15 + 7 + 64);
        assert_eq!(l.find("b"), Some(b));
        let mut buf = l.zeros();
        l.slice_mut(b, &mut buf).fill(1.0);
        assert_eq!(buf.iter().sum::<f32>(), 7.0);
    }

    #[test]
    #[should_panic(expected = "defined twice")]
    fn duplicate_names_are_refused() {
        let mut l = ParamLayout::new();
        l.push("w", &[2]);
        l.push("w", &[2]);
    }
}
