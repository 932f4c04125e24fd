//! [`HugePages`]: a global-allocator wrapper that gives large allocations memory Linux can back
//! with transparent huge pages, so the weights, moments, gradient buffers and tape arenas
//! (megabytes each, streamed through every step) need one TLB entry per 2 MiB, not per 4 KiB.
//!
//! Most distributions ship transparent huge pages in `madvise` mode: a process gets them only
//! where it asks, and glibc's `malloc` never asks (unless `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`
//! is set before the process starts). So an allocation of [`HUGE_PAGE`] bytes or more is
//! mapped here directly: an anonymous `mmap` aligned to 2 MiB and advised `MADV_HUGEPAGE`.
//! Smaller ones go to the wrapped allocator unchanged.
//!
//! What stays as it was: memory that is never written is never backed (anonymous mappings are
//! fresh zero pages, so a zeroed allocation costs nothing until written, and the reserved but
//! unwritten gradient buffers of idle workers stay free); where the kernel has no transparent
//! huge pages, or has them off, the advice is ignored and the pages are ordinary ones.
//!
//! The cost: each mapping is a system call, and its pages are faulted in fresh. Buffers made
//! once are unaffected; the `gemm` crate's per-call packing buffer is one only for products
//! whose packed operand reaches 2 MiB (large models, where the product takes milliseconds):
//! nanogpt-baby's 2-thread step measured 5.74 s without huge pages and 5.73 s with them
//! (`bash scripts/huge-pages-check.sh 1 2 nanogpt-baby 6`).
//! Measured in docs/benchmarks.md ("Transparent huge pages"). Other platforms: a pass-through.
//!
//! `CLLM_HUGE_PAGES=0` in the environment turns it off (every allocation goes to the wrapped
//! allocator), for comparison: the binaries call [`configure_from_env`] first thing.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicU8, Ordering};

/// Whether large allocations are mapped: [`UNDECIDED`] until the first large allocation (which
/// decides [`ON`]) or [`disable`] (which decides [`OFF`]); never changed once decided, so
/// `dealloc` sees the decision its `alloc` saw.
static STATE: AtomicU8 = AtomicU8::new(UNDECIDED);
const UNDECIDED: u8 = 0;
const ON: u8 = 1;
const OFF: u8 = 2;

/// Turns huge-page mappings off for the life of the process. Returns false (and changes
/// nothing) if a large allocation has already been mapped.
pub fn disable() -> bool {
    match STATE.compare_exchange(UNDECIDED, OFF, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => true,
        Err(now) => now == OFF,
    }
}

/// Whether large allocations are (or, undecided, will be) huge-page mappings.
pub fn enabled() -> bool {
    STATE.load(Ordering::SeqCst) != OFF
}

/// [`disable`] if `CLLM_HUGE_PAGES` is `0` (or `off`, `false`, `no`). Call it before
/// anything large is allocated.
pub fn configure_from_env() {
    if let Some(v) = std::env::var_os("CLLM_HUGE_PAGES")
        && matches!(v.to_str(), Some("0" | "off" | "false" | "no"))
    {
        disable();
    }
}

/// The huge page size, the alignment of the mappings, and the smallest allocation mapped.
pub const HUGE_PAGE: usize = 2 << 20;

/// Wraps allocator `A`: allocations of at least [`HUGE_PAGE`] bytes (with an alignment of at
/// most that) are huge-page mappings of their own; everything else is `A`'s.
pub struct HugePages<A>(pub A);

/// Whether `layout` is served by a mapping of its own. Decided by the layout and the
/// once-for-all [`STATE`], which `dealloc` and `realloc` see as `alloc` did, so every pointer
/// returns to where it came from.
fn mapped(layout: Layout) -> bool {
    if !(cfg!(target_os = "linux") && layout.size() >= HUGE_PAGE && layout.align() <= HUGE_PAGE) {
        return false;
    }
    // The first large allocation decides ON unless `disable` came first.
    match STATE.compare_exchange(UNDECIDED, ON, Ordering::SeqCst, Ordering::SeqCst) {
        Ok(_) => true,
        Err(now) => now == ON,
    }
}

/// The length of the mapping that holds `size` bytes.
fn mapping_len(size: usize) -> usize {
    size.next_multiple_of(HUGE_PAGE)
}

#[cfg(target_os = "linux")]
mod os {
    use super::HUGE_PAGE;

    /// A fresh zeroed mapping of `len` bytes (a multiple of [`HUGE_PAGE`]) that starts on a
    /// [`HUGE_PAGE`] boundary, advised for huge pages; null when the system refuses.
    pub fn map(len: usize) -> *mut u8 {
        let Some(over) = len.checked_add(HUGE_PAGE) else {
            return std::ptr::null_mut();
        };
        // SAFETY: an anonymous private mapping at an address of the kernel's choosing touches
        // no existing memory; the result is checked against MAP_FAILED before any use.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                over,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        let base = p as usize;
        let start = base.next_multiple_of(HUGE_PAGE);
        let (head, tail) = (start - base, base + over - (start + len));
        // SAFETY: `base..start` and `start + len..base + over` are the two ends of the mapping
        // just made (page-aligned: mmap returns page-aligned memory and HUGE_PAGE is a multiple
        // of the page size), which nobody else knows of; `start..start + len` stays mapped.
        // MADV_HUGEPAGE changes how those pages are backed, never their contents; a failure
        // (EINVAL where transparent huge pages are absent) leaves ordinary pages.
        unsafe {
            if head > 0 {
                libc::munmap(p, head);
            }
            if tail > 0 {
                libc::munmap((start + len) as *mut libc::c_void, tail);
            }
            libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
        start as *mut u8
    }

    /// Returns a mapping made by [`map`].
    ///
    /// # Safety
    /// `ptr` and `len` are those of a live mapping from [`map`], not used after this call.
    pub unsafe fn unmap(ptr: *mut u8, len: usize) {
        // SAFETY: the caller's contract: exactly one mapping of ours, no longer used.
        unsafe { libc::munmap(ptr as *mut libc::c_void, len) };
    }
}

#[cfg(not(target_os = "linux"))]
mod os {
    /// Never called: `mapped` is false off Linux.
    pub fn map(_: usize) -> *mut u8 {
        std::ptr::null_mut()
    }

    /// Never called: `mapped` is false off Linux.
    ///
    /// # Safety
    /// None needed; it does nothing.
    pub unsafe fn unmap(_: *mut u8, _: usize) {}
}

// SAFETY: a layout that `mapped` selects gets a fresh mapping of at least its size, aligned to
// HUGE_PAGE (so to its alignment, which is at most that), zeroed, and returned with `munmap`
// on `dealloc` with the same layout; every other layout is forwarded to `A` with the caller's
// arguments, so `A`'s contract holds. `realloc` between the two kinds copies the smaller size.
// Nothing here allocates through the global allocator (no recursion).
unsafe impl<A: GlobalAlloc> GlobalAlloc for HugePages<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            return os::map(mapping_len(layout.size()));
        }
        // SAFETY: forwarded from our caller, who upholds `alloc`'s contract.
        unsafe { self.0.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(layout) {
            return os::map(mapping_len(layout.size())); // fresh anonymous pages are zero
        }
        // SAFETY: as for `alloc`; forwarded so that `A` can hand out fresh zero pages.
        unsafe { self.0.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(layout) {
            // SAFETY: `alloc` mapped `ptr` for this layout (the same `mapped` decision), with
            // this length; the caller gives it up.
            unsafe { os::unmap(ptr, mapping_len(layout.size())) };
            return;
        }
        // SAFETY: `ptr` came from `A` with this layout.
        unsafe { self.0.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `realloc`'s contract: the alignment is valid and `new_size`, rounded up to
        // it, does not overflow isize.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        match (mapped(layout), mapped(new)) {
            // SAFETY: forwarded unchanged; `ptr` came from `A` with `layout`.
            (false, false) => unsafe { self.0.realloc(ptr, layout, new_size) },
            (true, true) if mapping_len(new_size) == mapping_len(layout.size()) => ptr,
            _ => {
                // SAFETY: `new` has a non-zero size (`realloc`'s contract); the copy covers the
                // bytes both blocks hold, from the old block (live until the dealloc after it)
                // into the new one, which do not overlap; the old block is freed with its own
                // layout, by the same `mapped` decision that allocated it.
                unsafe {
                    let fresh = self.alloc(new);
                    if !fresh.is_null() {
                        std::ptr::copy_nonoverlapping(ptr, fresh, layout.size().min(new_size));
                        self.dealloc(ptr, layout);
                    }
                    fresh
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    /// Small and large, zeroed and not, grown and shrunk across the threshold: the memory is
    /// aligned, zeroed where asked, and keeps its bytes through `realloc`.
    #[test]
    fn allocates_aligned_zeroed_memory_and_keeps_it_through_realloc() {
        let a = HugePages(System);
        let sizes = [64, HUGE_PAGE - 1, HUGE_PAGE, 3 * HUGE_PAGE + 12_345];
        for size in sizes {
            for new_size in sizes {
                let layout = Layout::from_size_align(size, 128).unwrap();
                // SAFETY: non-zero sizes; every pointer is checked, accessed inside its size
                // and freed once with the layout it has then.
                unsafe {
                    let z = a.alloc_zeroed(layout);
                    assert!(!z.is_null() && (z as usize).is_multiple_of(128));
                    if mapped(layout) {
                        assert_eq!(z as usize % HUGE_PAGE, 0, "{size}: a huge-page mapping");
                    }
                    let zs = std::slice::from_raw_parts_mut(z, size);
                    assert!(zs.iter().all(|&b| b == 0), "zeroed allocation of {size}");
                    for (i, b) in zs.iter_mut().enumerate() {
                        *b = (i % 251) as u8;
                    }
                    let moved = a.realloc(z, layout, new_size);
                    assert!(!moved.is_null() && (moved as usize).is_multiple_of(128));
                    let kept = size.min(new_size);
                    let ms = std::slice::from_raw_parts(moved, kept);
                    assert!(
                        ms.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8),
                        "realloc {size} -> {new_size} kept the bytes"
                    );
                    a.dealloc(moved, Layout::from_size_align(new_size, 128).unwrap());
                }
            }
        }
    }

    /// A large allocation that is never written stays out of the resident set (what keeps
    /// idle workers' gradient buffers free).
    #[cfg(target_os = "linux")]
    #[test]
    fn an_unwritten_large_allocation_is_not_resident() {
        let a = HugePages(System);
        let size = 64 * HUGE_PAGE; // 128 MiB
        let layout = Layout::from_size_align(size, 128).unwrap();
        let before = crate::metrics::rss_bytes().unwrap();
        // SAFETY: a non-zero size, read only inside it, freed once with its layout.
        unsafe {
            let p = a.alloc_zeroed(layout);
            assert!(!p.is_null());
            assert_eq!(*p.add(size / 2), 0);
            let during = crate::metrics::rss_bytes().unwrap();
            a.dealloc(p, layout);
            assert!(
                during < before + (16 << 20),
                "reading one byte of 128 MiB made {} MiB resident",
                (during - before) >> 20
            );
        }
    }
}
