//! The live heap: the process's global allocator wrapped in `cap::Cap`, which keeps a running
//! count of allocated bytes (one relaxed atomic add or subtract per allocation, cheap enough to
//! leave on: the training step's own buffers are allocated once, and the only allocations in a
//! step are the `gemm` crate's short-lived packing buffers).

use std::alloc::System;

use cap::Cap;

use crate::huge_pages::HugePages;

/// The system allocator, large allocations advised for transparent huge pages
/// ([`HugePages`]), counted by `Cap`.
#[global_allocator]
static ALLOCATOR: Cap<HugePages<System>> = Cap::new(HugePages(System), usize::MAX);

/// Bytes currently allocated on the heap by this process.
pub fn live_bytes() -> u64 {
    ALLOCATOR.allocated() as u64
}
