//! The tape's memory must stop growing after the first steps.
//!
//! This file is its own test binary because it installs a counting global allocator. The count
//! is kept per thread: the test harness's own threads allocate now and then (output capture,
//! result reporting), and only the test thread's heap is the tape's.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use cllm_autograd::{ParamLayout, Tape};

/// Counts the live heap bytes allocated by the current thread: every allocation adds its size,
/// every free subtracts it.
struct Counting;

thread_local! {
    /// This thread's net allocated bytes. `const`-initialised and without a destructor, so
    /// touching it never allocates (no recursion into the allocator).
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    // `try_with`: during thread teardown the slot may be gone; those frees are not ours to count.
    let _ = LIVE.try_with(|c| c.set(c.get() + delta));
}

/// The test thread's live heap bytes.
fn live() -> isize {
    LIVE.with(Cell::get)
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract that `System` fulfils holds; the counter has no effect on memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size() as isize);
        // SAFETY: forwarded from our caller, who upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(-(layout.size() as isize));
        // SAFETY: `ptr` was returned by `alloc` above (i.e. by `System`) with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size as isize - layout.size() as isize);
        // SAFETY: forwarded unchanged; `ptr` came from `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn tape_and_heap_stop_growing_over_1000_steps() {
    // A small transformer-shaped graph: embedding, layer norm, qkv, attention, MLP, loss.
    let (b, t, c, v) = (2, 8, 16, 11);
    let mut layout = ParamLayout::new();
    let wte = layout.push("wte", &[v, c]);
    let wpe = layout.push("wpe", &[t, c]);
    let ln = layout.push("ln.w", &[c]);
    let qkv_w = layout.push("qkv.w", &[3 * c, c]);
    let fc = layout.push("fc.w", &[4 * c, c]);
    let proj = layout.push("proj.w", &[c, 4 * c]);
    let mut params: Vec<f32> = (0..layout.len())
        .map(|i| ((i * 7919) % 200) as f32 / 1000.0 - 0.1)
        .collect();
    layout.slice_mut(ln, &mut params).fill(1.0);
    let mut grads = layout.zeros();
    let tokens: Vec<u32> = (0..b * t).map(|i| (i * 5 % v) as u32).collect();
    let targets: Vec<u32> = (0..b * t).map(|i| ((i * 5 + 1) % v) as u32).collect();

    let mut tape = Tape::new();
    let mut record = Vec::new();
    for step in 0..1000 {
        grads.fill(0.0);
        let loss = {
            let mut g = tape.graph(&params, &layout);
            let x = g.embedding(&tokens, wte, Some(wpe), t);
            let h = g.layernorm(x, ln, None);
            let qkv = g.linear(h, qkv_w, None);
            let a = g.attention(qkv, t, 2);
            let x = g.add(x, a);
            let h = g.linear(x, fc, None);
            let h = g.gelu(h);
            let h = g.linear(h, proj, None);
            let x = g.add(x, h);
            let logits = g.linear(x, wte, None);
            let loss = g.cross_entropy(logits, &targets);
            g.backward(loss, &mut grads);
            g.scalar(loss)
        };
        for (p, d) in params.iter_mut().zip(&grads) {
            *p -= 0.05 * d;
        }
        if step == 0 || step == 9 || step == 999 {
            record.push((step, loss, tape.stats().capacity_bytes, live()));
        }
    }
    let (_, first_loss, _, _) = record[0];
    let (_, _, cap10, heap10) = record[1];
    let (_, last_loss, cap1000, heap1000) = record[2];
    assert!(
        last_loss < first_loss,
        "the graph should train: {first_loss} -> {last_loss}"
    );
    assert_eq!(
        cap1000, cap10,
        "tape capacity grew between step 10 and step 1000"
    );
    assert_eq!(
        heap1000, heap10,
        "live heap grew between step 10 and step 1000: {heap10} -> {heap1000}"
    );
}

#[test]
fn a_tape_reserved_like_another_records_the_same_step_without_growing() {
    let (t, c, v) = (4, 8, 7);
    let mut layout = ParamLayout::new();
    let wte = layout.push("wte", &[v, c]);
    let fc = layout.push("fc.w", &[2 * c, c]);
    let params: Vec<f32> = (0..layout.len()).map(|i| (i % 11) as f32 * 0.01).collect();
    let tokens: Vec<u32> = (0..2 * t).map(|i| (i % v) as u32).collect();
    let step = |tape: &mut Tape, grads: &mut Vec<f32>| {
        grads.fill(0.0);
        let mut g = tape.graph(&params, &layout);
        let x = g.embedding(&tokens, wte, None, t);
        let h = g.linear(x, fc, None);
        let h = g.gelu(h);
        let s = g.sum(h);
        g.backward(s, grads);
        g.scalar(s)
    };
    let mut probe = Tape::new();
    let mut grads = layout.zeros();
    let want = step(&mut probe, &mut grads);
    let want_grads = grads.clone();

    let mut tape = Tape::with_capacity_of(&probe);
    let reserved = tape.stats().capacity_bytes;
    assert_eq!(
        reserved,
        probe.stats().len_bytes,
        "reserves what the probe used"
    );
    let heap = live();
    let got = step(&mut tape, &mut grads);
    assert_eq!(live(), heap, "the step allocated");
    assert_eq!(tape.stats().capacity_bytes, reserved, "the tape grew");
    assert_eq!(got.to_bits(), want.to_bits());
    assert_eq!(grads, want_grads);
}
