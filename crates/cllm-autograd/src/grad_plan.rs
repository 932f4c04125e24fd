//! Where each intermediate value's gradient lives during one backward pass: a span of one
//! pool, handed back once the gradient is dead and reused by later ones.
//!
//! A value's gradient is live from the first write to it (the backward of its last consumer in
//! recording order, which the reverse walk reaches first) until its own op's backward has read
//! it. The plan walks the ops backwards as [`crate::backward::run`] does: before an op, its
//! inputs' gradients get spans (if they have none yet); after it, its output's gradient is
//! dead and its span goes back to the pool. So an op's output gradient and its inputs'
//! gradients never share memory (one exception: an add passes its output's gradient on
//! unchanged, so its first input, if this add is that input's first writer, takes over the
//! output's span instead of getting a copy in a new one), and of all the gradients only
//! those of a block or two of a
//! network are live at once: in a transformer the pool is a fraction of the forward values'
//! size, and backward writes into memory it has just used, in cache, rather than into a
//! gradient buffer as large as the whole forward pass. Spans are whole multiples of 64 bytes
//! from `base` ([`crate::tape::pool_start`] puts it on a 64-byte boundary of memory).
//!
//! Inputs' gradients are not planned: they are zeroed and placed when the input is recorded
//! (before the pool), and stay readable after backward.
//!
//! The plan depends only on the recorded ops and shapes, so the same step gets the same plan
//! every time (and the pool, grown once, is reused).

use std::ops::Range;

use crate::op::Op;
use crate::tape::LINE;
use crate::val::ValInfo;

/// `grad_at` of a value whose gradient has no span.
pub(crate) const UNPLACED: usize = usize::MAX;

/// Gives every intermediate value that backward may write a gradient span of the pool that
/// starts at `base`, in `grad_at` (indexed by value; inputs' entries are left as they are);
/// returns the pool's end. `free` is scratch (the pool's free spans, kept sorted).
pub(crate) fn plan(
    ops: &[Op],
    vals: &[ValInfo],
    loss: usize,
    base: usize,
    grad_at: &mut [usize],
    free: &mut Vec<Range<usize>>,
) -> usize {
    for (at, v) in grad_at.iter_mut().zip(vals) {
        if !v.leaf {
            *at = UNPLACED;
        }
    }
    let mut pool = Pool {
        free,
        top: base,
        end: base,
    };
    pool.free.clear();
    let placed = |at: usize| at != UNPLACED;
    if !vals[loss].leaf {
        grad_at[loss] = pool.take(vals[loss].len());
    }
    for op in ops.iter().rev() {
        let out = op.output().index();
        // An add passes its output's gradient on unchanged: an input it is the first to write
        // takes over the output's span (dead after this op) instead of a copy in a new one.
        let mut handed_over = false;
        if let Op::Add { a, b, .. } = *op {
            let (v, o) = (&vals[a.index()], &vals[out]);
            let takes_over = a != b
                && v.needs_grad
                && !v.leaf
                && !placed(grad_at[a.index()])
                && !o.leaf
                && placed(grad_at[out])
                && v.len() == o.len();
            if takes_over {
                grad_at[a.index()] = grad_at[out];
                handed_over = true;
            }
        }
        for x in op.inputs().into_iter().flatten() {
            let v = &vals[x.index()];
            if v.needs_grad && !v.leaf && !placed(grad_at[x.index()]) {
                grad_at[x.index()] = pool.take(v.len());
            }
        }
        if !vals[out].leaf && placed(grad_at[out]) && !handed_over {
            pool.give_back(grad_at[out], vals[out].len());
        }
    }
    pool.end
}

/// The pool: free spans below `top`, taken first fit, and a bump pointer above them.
struct Pool<'a> {
    /// Free spans below `top`, sorted, none adjacent to another or to `top`.
    free: &'a mut Vec<Range<usize>>,
    /// Everything from here up is free.
    top: usize,
    /// The highest `top` so far: the pool's size.
    end: usize,
}

impl Pool<'_> {
    /// The start of a free span of `len` floats (rounded up to [`LINE`], 64 bytes).
    fn take(&mut self, len: usize) -> usize {
        let len = len.next_multiple_of(LINE);
        if let Some(i) = self.free.iter().position(|r| r.len() >= len) {
            let start = self.free[i].start;
            if self.free[i].len() == len {
                self.free.remove(i);
            } else {
                self.free[i].start += len;
            }
            return start;
        }
        let start = self.top;
        self.top += len;
        self.end = self.end.max(self.top);
        start
    }

    /// Returns the span `start..start + len` (as [`take`](Self::take) rounded it).
    fn give_back(&mut self, start: usize, len: usize) {
        let mut span = start..start + len.next_multiple_of(LINE);
        // Where the span goes in the sorted list; merged with the free neighbours on either
        // side (the left one's place becomes its place), then with the top.
        let mut i = self.free.partition_point(|r| r.start < span.start);
        if i < self.free.len() && self.free[i].start == span.end {
            span.end = self.free.remove(i).end;
        }
        if i > 0 && self.free[i - 1].end == span.start {
            i -= 1;
            span.start = self.free.remove(i).start;
        }
        if span.end == self.top {
            self.top = span.start;
        } else {
            self.free.insert(i, span);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ParamLayout, Tape};

    /// Records a residual network of `layers` blocks `x + w2 gelu(w1 ln(x))` on `[rows, 32]`,
    /// with a branch (`add(h, h)`) and a value nothing uses, and returns the tape.
    fn residual_net(layers: usize, rows: usize) -> Tape {
        let mut layout = ParamLayout::new();
        let blocks: Vec<_> = (0..layers)
            .map(|l| {
                (
                    layout.push(&format!("ln{l}"), &[32]),
                    layout.push(&format!("w1_{l}"), &[64, 32]),
                    layout.push(&format!("w2_{l}"), &[32, 64]),
                )
            })
            .collect();
        let params: Vec<f32> = (0..layout.len()).map(|i| (i % 7) as f32 * 0.01).collect();
        let mut tape = Tape::new();
        let mut g = tape.graph(&params, &layout);
        let data: Vec<f32> = (0..rows * 32).map(|i| (i % 5) as f32).collect();
        let mut x = g.input(&data, rows, 32);
        for &(ln, w1, w2) in &blocks {
            let h = g.layernorm(x, ln, None);
            let h = g.linear(h, w1, None);
            let h = g.gelu(h);
            let _unused = g.scale(h, 2.0);
            let h = g.add(h, h);
            let h = g.linear(h, w2, None);
            x = g.add(x, h);
        }
        let loss = g.sum(x);
        let mut grads = layout.zeros();
        g.backward(loss, &mut grads);
        tape
    }

    #[test]
    fn live_gradients_never_share_memory_and_the_pool_stays_small() {
        let tape = residual_net(6, 40);
        let (ops, vals) = (&tape.ops, &tape.vals);
        // When, counting ops from the last, each value's gradient is first written (by its
        // last consumer) and last read (by its own op).
        let n = ops.len();
        let mut first = vec![usize::MAX; vals.len()];
        let mut last = vec![usize::MAX; vals.len()];
        for (k, op) in ops.iter().rev().enumerate() {
            for x in op.inputs().into_iter().flatten() {
                first[x.index()] = first[x.index()].min(k);
            }
            last[op.output().index()] = k;
        }
        let loss = ops[n - 1].output().index();
        first[loss] = 0;
        let span = |v: usize| tape.grad_at[v]..tape.grad_at[v] + vals[v].len();
        let live: Vec<usize> = (0..vals.len())
            .filter(|&v| !vals[v].leaf && vals[v].needs_grad && first[v] != usize::MAX)
            .collect();
        // Adds whose first input took over the output's span: the two gradients are one
        // (the input's is the output's, passed on), live together only at that add.
        let handed: Vec<(usize, usize)> = ops
            .iter()
            .filter_map(|op| match *op {
                Op::Add { a, out, .. } if tape.grad_at[a.index()] == tape.grad_at[out.index()] => {
                    Some((a.index(), out.index()))
                }
                _ => None,
            })
            .collect();
        // Every block's residual add but the first, whose `x` is the input (inputs keep their
        // own gradients); `add(h, h)` cannot (both inputs are one value).
        assert_eq!(handed.len(), 5, "the residual adds hand their spans over");
        for &(a, out) in &handed {
            assert_eq!(first[a], last[out], "handed over at the add itself");
        }
        for &a in &live {
            assert_ne!(
                tape.grad_at[a], UNPLACED,
                "value {a} was written but not placed"
            );
            for &b in &live {
                let one = handed.contains(&(a, b)) || handed.contains(&(b, a));
                let overlap_in_time = a != b && !one && first[a] <= last[b] && first[b] <= last[a];
                let (sa, sb) = (span(a), span(b));
                if overlap_in_time {
                    assert!(
                        sa.end <= sb.start || sb.end <= sa.start,
                        "values {a} and {b} are live together and share {sa:?} / {sb:?}"
                    );
                }
            }
        }
        // Six blocks' forward values against a pool of about one block's gradients.
        let pool = tape.grads.len();
        let values: usize = vals.iter().map(|v| v.len()).sum();
        assert!(pool * 3 < values, "pool {pool} floats, values {values}");
        // Gradients nothing writes (the unused values') get no span.
        for v in (0..vals.len()).filter(|&v| !vals[v].leaf && first[v] == usize::MAX) {
            assert_eq!(tape.grad_at[v], UNPLACED, "value {v}");
        }
    }

    #[test]
    fn spans_are_reused_merged_and_returned_to_the_top() {
        let mut free = Vec::new();
        let mut pool = Pool {
            free: &mut free,
            top: 32,
            end: 32,
        };
        let a = pool.take(10); // 16 floats
        let b = pool.take(16);
        let c = pool.take(40); // 48
        assert_eq!((a, b, c, pool.end), (32, 48, 64, 112));
        pool.give_back(a, 10);
        assert_eq!(pool.take(5), 32, "first fit reuses the freed span");
        pool.give_back(32, 5);
        pool.give_back(b, 16); // merges with the span before it
        assert_eq!(*pool.free, vec![32..64]);
        pool.give_back(c, 40); // reaches the top: everything is free again
        assert!(pool.free.is_empty());
        assert_eq!((pool.top, pool.end), (32, 112));
        assert_eq!(pool.take(80), 32, "a span as large as the pool fits again");
    }
}
