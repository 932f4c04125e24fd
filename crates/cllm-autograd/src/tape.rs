//! [`Tape`]: the per-step arena that records values and ops, reused step after step.
//!
//! Recording only appends; [`Tape::graph`] starts a step by truncating every buffer to zero
//! length while keeping its capacity. So after the largest step has been seen once, recording
//! and backward allocate nothing, and memory cannot grow with the number of steps.
//!
//! Gradients are never zeroed wholesale: in a backward pass the first write to a value's
//! gradient overwrites what an earlier step left there, and `written` records which have been
//! written (see [`crate::backward`]). Only inputs' gradients, which backward adds to and
//! [`Graph::grad`] reads, are zeroed, when the input is recorded. Inputs' gradients sit at the
//! front of `grads`; the others get spans of a pool after them, planned at the start of each
//! backward pass and reused once dead ([`crate::grad_plan`]).

use std::ops::Range;

use crate::op::{Op, OpKind};
use crate::val::{ValId, ValInfo};
use crate::{Graph, ParamLayout};

/// Floats per 64 bytes. Forward values and backward's gradient spans start on 64-byte
/// boundaries of memory, so that a kernel's vector loads and stores never straddle two cache
/// lines (glibc's `malloc` puts a large buffer 16 bytes past a page boundary).
pub(crate) const LINE: usize = 16;

/// Floats to skip from the start of `buf`'s memory to reach a 64-byte boundary (where its
/// capacity, not only its length, is concerned: the memory does not move while it suffices).
pub(crate) fn line_skew(buf: &[f32]) -> usize {
    (LINE - float_phase(buf, LINE)) % LINE
}

/// `buf`'s start address, counted in floats, modulo `floats`.
fn float_phase(buf: &[f32], floats: usize) -> usize {
    (buf.as_ptr() as usize / std::mem::size_of::<f32>()) % floats
}

/// Floats per 4 KiB page.
pub(crate) const PAGE: usize = 1024;

/// Where backward's gradient pool starts in `grads`: the first index from `input_grads` on
/// whose address is half a page (2 KiB) past the forward values' start in its low 12 bits, so
/// on a 64-byte boundary too (the values start `arena_skew` floats into `arena`). The layout is
/// then fixed relative to page boundaries whatever the allocator did: builds whose buffers
/// `malloc` merely placed differently measured up to 6% apart (docs/benchmarks.md, "Gradient
/// pool"). Half a page keeps the pool's start off the values' in the bits that a load is
/// matched against earlier stores by (4K aliasing). At most [`PAGE`] - 1 floats past
/// `input_grads`.
pub(crate) fn pool_start(
    grads: &[f32],
    input_grads: usize,
    arena: &[f32],
    arena_skew: usize,
) -> usize {
    let want = (float_phase(arena, PAGE) + arena_skew + PAGE / 2) % PAGE;
    let from = (float_phase(grads, PAGE) + input_grads) % PAGE;
    input_grads + (want + PAGE - from) % PAGE
}

/// Storage for one step's forward values, their gradients and the saved buffers backward needs.
#[derive(Debug, Default)]
pub struct Tape {
    pub(crate) ops: Vec<Op>,
    pub(crate) vals: Vec<ValInfo>,
    /// Forward values, bump-allocated from `arena_skew` (a 64-byte boundary of memory) in
    /// spans rounded up to [`LINE`]; they end at `arena_used`.
    pub(crate) arena: Vec<f32>,
    pub(crate) arena_used: usize,
    /// Where this step's values start in `arena` ([`line_skew`] of it at the step's start).
    pub(crate) arena_skew: usize,
    /// Gradients of values at `grad_at`: inputs' first (`input_grads` floats), then the pool
    /// backward plans; meaningful only where written in this step's backward pass, and for
    /// inputs (see module docs).
    pub(crate) grads: Vec<f32>,
    /// Per value: where its gradient starts in `grads` ([`crate::grad_plan::UNPLACED`] if it
    /// has no span).
    pub(crate) grad_at: Vec<usize>,
    /// Floats of `grads` that inputs' gradients take this step.
    pub(crate) input_grads: usize,
    /// The gradient planner's scratch (free spans of the pool).
    pub(crate) free_spans: Vec<Range<usize>>,
    /// Saved floats that have no gradient (softmax probabilities, layer-norm statistics),
    /// bump-allocated like the arena; `aux_used` elements are live this step.
    pub(crate) aux: Vec<f32>,
    pub(crate) aux_used: usize,
    /// Saved integers (token ids, targets).
    pub(crate) ids: Vec<u32>,
    /// Scratch for kernels (backward ones, and attention's forward); contents meaningless
    /// between uses.
    pub(crate) scratch: Vec<f32>,
    /// Per value: whether the running (or last) backward pass has written its gradient.
    pub(crate) written: Vec<bool>,
}

/// Sizes of a tape's buffers, in bytes (for memory reports and the reuse test).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TapeStats {
    /// Bytes reserved by all buffers (capacity, not length).
    pub capacity_bytes: usize,
    /// Bytes of all buffers' lengths: what the largest step so far has written (and made
    /// resident); capacity beyond it is reserved address space, untouched.
    pub len_bytes: usize,
    /// Bytes of forward values recorded in the current step.
    pub arena_used_bytes: usize,
    /// Ops recorded in the current step.
    pub ops: usize,
}

impl Tape {
    /// An empty tape. Buffers grow during the first steps and are reused afterwards.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty tape whose buffers have room for what `other` holds now (its buffers' lengths),
    /// reserved at once: a step like `other`'s then grows nothing. Each buffer is one
    /// allocation written only by the step, so an allocator can back it with huge pages (as
    /// `cllm-train`'s does) rather than with the small pages a growing buffer was first given.
    pub fn with_capacity_of(other: &Tape) -> Self {
        Tape {
            ops: Vec::with_capacity(other.ops.len()),
            vals: Vec::with_capacity(other.vals.len()),
            arena: Vec::with_capacity(other.arena.len()),
            arena_used: 0,
            arena_skew: 0,
            grads: Vec::with_capacity(other.grads.len()),
            grad_at: Vec::with_capacity(other.grad_at.len()),
            input_grads: 0,
            free_spans: Vec::with_capacity(other.free_spans.capacity()),
            aux: Vec::with_capacity(other.aux.len()),
            aux_used: 0,
            ids: Vec::with_capacity(other.ids.len()),
            scratch: Vec::with_capacity(other.scratch.len()),
            written: Vec::with_capacity(other.written.len()),
        }
    }

    /// Starts a step: clears the previous one (keeping capacity) and returns the recorder.
    ///
    /// `params` is the flat parameter buffer laid out by `layout`; ops that use parameters read
    /// them from it.
    ///
    /// # Panics
    /// If `params.len()` differs from `layout.len()`.
    pub fn graph<'t>(&'t mut self, params: &'t [f32], layout: &'t ParamLayout) -> Graph<'t> {
        assert_eq!(
            params.len(),
            layout.len(),
            "parameter buffer does not match its layout"
        );
        self.reset();
        Graph::new(self, params, layout, true)
    }

    /// Like [`graph`](Self::graph), for a forward pass that will not be differentiated (an
    /// evaluation): ops skip saving what only the backward pass reads, and
    /// [`Graph::backward`] panics. Values are the same bits as [`graph`](Self::graph)'s.
    ///
    /// # Panics
    /// If `params.len()` differs from `layout.len()`.
    pub fn graph_forward_only<'t>(
        &'t mut self,
        params: &'t [f32],
        layout: &'t ParamLayout,
    ) -> Graph<'t> {
        let mut g = self.graph(params, layout);
        g.for_backward = false;
        g
    }

    /// Drops the recorded step, keeping every buffer's capacity.
    pub fn reset(&mut self) {
        self.ops.clear();
        self.vals.clear();
        self.arena_skew = line_skew(&self.arena);
        self.arena_used = self.arena_skew;
        self.aux_used = 0;
        self.ids.clear();
        self.grad_at.clear();
        self.input_grads = 0;
    }

    /// Buffer sizes now.
    pub fn stats(&self) -> TapeStats {
        TapeStats {
            capacity_bytes: self.buffer_bytes(|capacity, _| capacity),
            len_bytes: self.buffer_bytes(|_, len| len),
            arena_used_bytes: (self.arena_used - self.arena_skew) * std::mem::size_of::<f32>(),
            ops: self.ops.len(),
        }
    }

    /// Bytes of all buffers, counting `count(capacity, len)` elements of each.
    fn buffer_bytes(&self, count: impl Fn(usize, usize) -> usize) -> usize {
        fn of<T>(v: &Vec<T>, count: &dyn Fn(usize, usize) -> usize) -> usize {
            count(v.capacity(), v.len()) * std::mem::size_of::<T>()
        }
        of(&self.ops, &count)
            + of(&self.vals, &count)
            + of(&self.arena, &count)
            + of(&self.grads, &count)
            + of(&self.grad_at, &count)
            // The planner's scratch is empty between passes; its capacity is what it needed.
            + count(self.free_spans.capacity(), self.free_spans.capacity())
                * std::mem::size_of::<Range<usize>>()
            + of(&self.aux, &count)
            + of(&self.scratch, &count)
            + of(&self.ids, &count)
            + of(&self.written, &count)
    }

    /// Kinds of the ops recorded in the current step, in recording order.
    pub fn op_kinds(&self) -> impl Iterator<Item = OpKind> + '_ {
        self.ops.iter().map(Op::kind)
    }

    /// Reserves a new `[rows, cols]` value at the end of the arena.
    pub(crate) fn alloc_val(
        &mut self,
        rows: usize,
        cols: usize,
        needs_grad: bool,
        leaf: bool,
    ) -> ValId {
        let start = self.arena_used;
        self.arena_used += (rows * cols).next_multiple_of(LINE);
        // A length that does not depend on where the buffer lies: the values plus one line.
        let len = self.arena_used - self.arena_skew + LINE;
        if self.arena.len() < len {
            self.arena.resize(len, 0.0);
        }
        let mut grad_at = crate::grad_plan::UNPLACED;
        if leaf && needs_grad {
            // Backward adds to an input's gradient (see the module docs).
            grad_at = self.input_grads;
            self.input_grads += rows * cols;
            if self.grads.len() < self.input_grads {
                self.grads.resize(self.input_grads, 0.0);
            }
            self.grads[grad_at..self.input_grads].fill(0.0);
        }
        self.grad_at.push(grad_at);
        let id = ValId(u32::try_from(self.vals.len()).expect("fewer than 2^32 values per step"));
        self.vals.push(ValInfo {
            start,
            rows,
            cols,
            needs_grad,
            leaf,
        });
        id
    }

    /// Reserves `len` saved floats in `aux`.
    pub(crate) fn alloc_aux(&mut self, len: usize) -> Range<usize> {
        let start = self.aux_used;
        self.aux_used += len;
        if self.aux.len() < self.aux_used {
            self.aux.resize(self.aux_used, 0.0);
        }
        start..self.aux_used
    }

    /// Saves integers in `ids`.
    pub(crate) fn push_ids(&mut self, values: &[u32]) -> Range<usize> {
        let start = self.ids.len();
        self.ids.extend_from_slice(values);
        start..start + values.len()
    }

    pub(crate) fn info(&self, v: ValId) -> ValInfo {
        self.vals[v.index()]
    }

    /// The arena split at the start of `out`: everything recorded before it (read-only, where
    /// the inputs live) and `out`'s own span (to write).
    pub(crate) fn inputs_and_out(&mut self, out: ValId) -> (&[f32], &mut [f32]) {
        let r = self.vals[out.index()].range();
        let (before, rest) = self.arena[..r.end].split_at_mut(r.start);
        (before, rest)
    }

    /// Like [`inputs_and_out`](Self::inputs_and_out), plus the saved-float range `aux` to write.
    pub(crate) fn inputs_out_aux(
        &mut self,
        out: ValId,
        aux: Range<usize>,
    ) -> (&[f32], &mut [f32], &mut [f32]) {
        let r = self.vals[out.index()].range();
        let (before, rest) = self.arena[..r.end].split_at_mut(r.start);
        (before, rest, &mut self.aux[aux])
    }

    /// Like [`inputs_out_aux`](Self::inputs_out_aux), plus `scratch` floats of scratch (the
    /// buffer backward kernels use, grown once to the largest request).
    pub(crate) fn inputs_out_aux_scratch(
        &mut self,
        out: ValId,
        aux: Range<usize>,
        scratch: usize,
    ) -> (&[f32], &mut [f32], &mut [f32], &mut [f32]) {
        let r = self.vals[out.index()].range();
        let (before, rest) = self.arena[..r.end].split_at_mut(r.start);
        let tmp = crate::backward::scratch(&mut self.scratch, scratch);
        (before, rest, &mut self.aux[aux], tmp)
    }
}
