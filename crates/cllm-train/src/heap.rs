//! The live heap: the process's global allocator wrapped in [`Counting`], which keeps a running
//! count of allocated bytes.
//!
//! The count is spread over [`STRIPES`] cache-line-aligned counters, a thread adding to its own
//! (threads take stripes in turn), so threads that allocate at once do not pass one cache line
//! back and forth between cores. That mattered: with the single counter of the `cap` crate
//! used before, BPE encoding (the `tokenizers` crate allocates per word, on every core) spent
//! ~10% of its time in the counter, and preparing a 60 MB corpus with `--tokenizer bpe` took
//! 13-18% longer than with no counting at all (docs/benchmarks.md, thirteenth session). The
//! training step itself allocates almost nothing (the `gemm` crate's short-lived packing
//! buffers), so the count costs it nothing measurable either way.
//!
//! Each stripe wraps on overflow: a block allocated on one thread and freed on another adds to
//! one stripe and subtracts from another, so a stripe alone means nothing, but the sum of all
//! stripes (in wrapping arithmetic) is exactly the bytes allocated and not yet freed, which is
//! the only figure read. The sum is not a snapshot: allocations racing with the read may or
//! may not be in it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::huge_pages::HugePages;

/// The system allocator, large allocations advised for transparent huge pages
/// ([`HugePages`]), counted by [`Counting`].
#[global_allocator]
static ALLOCATOR: Counting<HugePages<System>> = Counting::new(HugePages(System));

/// Bytes currently allocated on the heap by this process.
pub fn live_bytes() -> u64 {
    ALLOCATOR.allocated() as u64
}

/// Counters the live-byte count is spread over.
pub const STRIPES: usize = 16;

/// One counter on cache lines of its own (128 bytes: x86 cores fetch lines in adjacent pairs).
#[repr(align(128))]
struct Stripe(AtomicUsize);

/// A [`GlobalAlloc`] wrapper that counts the bytes allocated through it and not yet freed.
pub struct Counting<A> {
    inner: A,
    stripes: [Stripe; STRIPES],
}

thread_local! {
    /// This thread's stripe, `usize::MAX` until its first allocation. Const-initialised and
    /// without a destructor, so reading it never allocates (which, here, would recurse).
    static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The stripe the next thread takes.
static NEXT_STRIPE: AtomicUsize = AtomicUsize::new(0);

/// The calling thread's stripe (stripe 0 while the thread's locals are being torn down).
fn stripe() -> usize {
    STRIPE
        .try_with(|s| {
            let mut i = s.get();
            if i == usize::MAX {
                i = NEXT_STRIPE.fetch_add(1, Ordering::Relaxed) % STRIPES;
                s.set(i);
            }
            i
        })
        .unwrap_or(0)
}

impl<A> Counting<A> {
    /// Wraps `inner`, with nothing counted yet.
    pub const fn new(inner: A) -> Self {
        Counting {
            inner,
            stripes: [const { Stripe(AtomicUsize::new(0)) }; STRIPES],
        }
    }

    /// Bytes allocated through this allocator and not yet freed. Read while other threads
    /// allocate, the sum can miss a block's allocation but see its free (on a stripe read
    /// later); such a transiently negative sum reads as 0, not as a wrapped-around 2^64.
    pub fn allocated(&self) -> usize {
        let sum = self.stripes.iter().fold(0usize, |sum, s| {
            sum.wrapping_add(s.0.load(Ordering::Relaxed))
        });
        usize::try_from(sum as isize).unwrap_or(0)
    }

    fn add(&self, bytes: usize) {
        self.stripes[stripe()].0.fetch_add(bytes, Ordering::Relaxed);
    }

    fn sub(&self, bytes: usize) {
        self.stripes[stripe()].0.fetch_sub(bytes, Ordering::Relaxed);
    }
}

// SAFETY: every call is passed to `inner` unchanged, with the caller's own guarantees, and its
// result returned unchanged; the counting beside it touches only atomics and a const-initialised
// thread-local, and never allocates.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's guarantees for `layout` hold for `inner` too.
        let p = unsafe { self.inner.alloc(layout) };
        if !p.is_null() {
            self.add(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        let p = unsafe { self.inner.alloc_zeroed(layout) };
        if !p.is_null() {
            self.add(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, hence by `inner`, with `layout`.
        unsafe { self.inner.dealloc(ptr, layout) };
        self.sub(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as in `dealloc` for `ptr` and `layout`; `new_size` is the caller's, valid.
        let p = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // On failure the old block stays allocated and nothing changes.
            self.add(new_size);
            self.sub(layout.size());
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicPtr;

    use super::*;

    #[test]
    fn counts_what_is_live_across_threads_and_reallocations() {
        let heap = Counting::new(System);
        let layout = |n| Layout::from_size_align(n, 8).unwrap();
        // SAFETY: each block is freed once, with the layout it has at the time.
        unsafe {
            let a = heap.alloc(layout(100));
            let b = heap.alloc_zeroed(layout(28));
            assert_eq!(heap.allocated(), 128);
            let a = heap.realloc(a, layout(100), 1000);
            assert_eq!(heap.allocated(), 1028);
            let a = heap.realloc(a, layout(1000), 10);
            assert_eq!(heap.allocated(), 38);
            heap.dealloc(a, layout(10));
            heap.dealloc(b, layout(28));
        }
        assert_eq!(heap.allocated(), 0);

        // Blocks allocated on one thread and freed on another: stripes disagree, the sum holds.
        // (Pointers cross threads as `AtomicPtr`, which is `Send`, keeping their provenance.)
        let heap = &heap;
        let size = |t: usize, i: usize| 8 * (t + i + 1);
        let blocks: Vec<(AtomicPtr<u8>, usize)> = std::thread::scope(|s| {
            let made: Vec<_> = (0..20)
                .map(|t| {
                    s.spawn(move || {
                        (0..50)
                            .map(|i| {
                                // SAFETY: a valid layout; the block is freed below.
                                let p = unsafe { heap.alloc(layout(size(t, i))) };
                                (AtomicPtr::new(p), size(t, i))
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            made.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let expected: usize = blocks.iter().map(|b| b.1).sum();
        assert_eq!(heap.allocated(), expected);
        std::thread::scope(|s| {
            for chunk in blocks.chunks(77) {
                s.spawn(move || {
                    for (p, n) in chunk {
                        let p = p.load(Ordering::Relaxed);
                        // SAFETY: allocated above with this layout, freed once.
                        unsafe { heap.dealloc(p, layout(*n)) };
                    }
                });
            }
        });
        assert_eq!(heap.allocated(), 0);
        assert!(
            heap.stripes
                .iter()
                .any(|s| s.0.load(Ordering::Relaxed) != 0),
            "every block freed on the stripe that counted it: the test shows nothing"
        );

        // A read that saw a free but not its allocation: 0, not 2^64 - 5.
        heap.stripes[0].0.fetch_sub(5, Ordering::Relaxed);
        assert_eq!(heap.allocated(), 0);
        heap.stripes[1].0.fetch_add(12, Ordering::Relaxed);
        assert_eq!(heap.allocated(), 7);
    }
}
