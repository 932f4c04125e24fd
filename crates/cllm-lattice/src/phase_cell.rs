//! The two shared-memory primitives of the step protocol (see `PROTOCOL.md`):
//! [`PhaseCell`] for small values handed from thread to thread at barriers, and [`SharedBuf`]
//! for flat `f32` buffers whose disjoint ranges different threads write in the same phase.
//!
//! Both are `Sync` and hand out references through `unsafe` accessors. What makes an access
//! sound is the phase it happens in: a barrier separates every write from every other access
//! to the same bytes, and within a phase writers touch disjoint ranges. Each call site states
//! which row of the protocol table it relies on.

use std::cell::UnsafeCell;
use std::ops::Range;

use crate::aligned::AlignedBuf;

/// A value written by one thread in one phase and read by others in a later phase.
pub(crate) struct PhaseCell<T> {
    value: UnsafeCell<T>,
}

// SAFETY: all access goes through `get`/`get_mut`, whose contracts require that a barrier
// orders every write before any other access (the protocol's phase table); with that ordering
// sharing the cell across threads is sound for any `T: Send`.
unsafe impl<T: Send> Sync for PhaseCell<T> {}

impl<T> PhaseCell<T> {
    pub(crate) fn new(value: T) -> Self {
        PhaseCell {
            value: UnsafeCell::new(value),
        }
    }

    /// Shared access.
    ///
    /// # Safety
    /// No thread may write the value while the returned reference lives: the caller must be
    /// in a phase in which the protocol allows no writer of this cell.
    pub(crate) unsafe fn get(&self) -> &T {
        // SAFETY: the caller guarantees no concurrent writer (function contract).
        unsafe { &*self.value.get() }
    }

    /// Exclusive access.
    ///
    /// # Safety
    /// No other thread may access the value while the returned reference lives: the caller
    /// must be the cell's only accessor in the current phase.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn get_mut(&self) -> &mut T {
        // SAFETY: the caller guarantees exclusive access for the phase (function contract).
        unsafe { &mut *self.value.get() }
    }
}

/// A flat, 128-byte aligned `f32` buffer that threads read and write by index range.
///
/// The pointer is taken once at construction; accessors build slices from it directly, so no
/// reference to the whole buffer is ever formed while threads work on parts of it (two
/// overlapping `&mut` would be undefined behaviour even if the bytes touched were disjoint).
pub(crate) struct SharedBuf {
    /// Owns the memory; never accessed through this field while the buffer is shared.
    _owner: AlignedBuf,
    ptr: *mut f32,
    len: usize,
}

// SAFETY: the buffer is plain `f32` memory owned by `_owner` for the struct's lifetime; the
// raw pointer is only dereferenced through `slice`/`slice_mut`, whose contracts require
// phase-separated, range-disjoint access.
unsafe impl Send for SharedBuf {}
// SAFETY: as for `Send`: concurrent access is only through the range accessors, whose callers
// guarantee that no range is written while another thread reads or writes it.
unsafe impl Sync for SharedBuf {}

impl SharedBuf {
    pub(crate) fn new(mut owner: AlignedBuf) -> Self {
        let len = owner.len();
        let ptr = owner.as_mut_slice().as_mut_ptr();
        SharedBuf {
            _owner: owner,
            ptr,
            len,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn check(&self, r: &Range<usize>) {
        assert!(
            r.start <= r.end && r.end <= self.len,
            "range {r:?} outside a buffer of {}",
            self.len
        );
    }

    /// The floats in `r`, shared.
    ///
    /// # Safety
    /// No thread may write any float of `r` while the slice lives (the phase table allows no
    /// writer of this range in the current phase).
    pub(crate) unsafe fn slice(&self, r: Range<usize>) -> &[f32] {
        self.check(&r);
        // SAFETY: `r` is inside the allocation (checked above) and the caller guarantees no
        // concurrent writer of these floats.
        unsafe { std::slice::from_raw_parts(self.ptr.add(r.start), r.len()) }
    }

    /// The floats in `r`, exclusive.
    ///
    /// # Safety
    /// No other thread may access any float of `r` while the slice lives (the caller owns this
    /// range in the current phase).
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice_mut(&self, r: Range<usize>) -> &mut [f32] {
        self.check(&r);
        // SAFETY: `r` is inside the allocation (checked above) and the caller guarantees
        // exclusive access to these floats for the slice's lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(r.start), r.len()) }
    }

    /// The whole buffer, shared, through `&self` when the caller knows no step is running.
    ///
    /// # Safety
    /// No thread may write the buffer while the slice lives.
    pub(crate) unsafe fn all(&self) -> &[f32] {
        // SAFETY: the caller guarantees no concurrent writer; the range is the allocation.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}
