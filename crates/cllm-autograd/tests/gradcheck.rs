//! Finite-difference gradient checks for every op kind.
//!
//! `cases` matches exhaustively on [`OpKind`], and the test walks [`OpKind::ALL`]: adding an op
//! without adding a check here does not compile, and each case must actually record the op it
//! claims to check.
//!
//! Method: each case builds a small graph whose output `y` is projected onto a fixed random
//! tensor `r`, `L = sum(y * r)`. The analytic gradient comes from `backward`; the numerical one
//! from central differences `(L(p + e) - L(p - e)) / 2e` with `L` re-evaluated in f64 from the
//! f32 forward values. Tolerance: `|analytic - numeric| <= ATOL + RTOL * |numeric|`.
//! With `e = 1e-2`, the truncation error is `e^2 |L'''| / 6 ~ 2e-5 |L'''|`, and f32 rounding
//! of the ~100 summed outputs (each off by ~6e-8 relative) contributes about
//! `sqrt(100) * 6e-8 * |y r| / (2e) ~ 3e-5`. `ATOL = 2e-3` and `RTOL = 1e-2` sit two orders of
//! magnitude above both, and a wrong backward (a dropped term, a sign, a transposed GEMM) is off
//! by O(1) relative, far above them.

use cllm_autograd::{BatchDropout, Dropout, Graph, OpKind, ParamId, ParamLayout, Tape, Val};

const EPS: f32 = 1e-2;
const ATOL: f64 = 2e-3;
const RTOL: f64 = 1e-2;

/// A tiny deterministic generator so the test needs no dependencies.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize, scale: f32, shift: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale + shift).collect()
    }
}

/// An input of the graph under test.
#[derive(Clone)]
struct Input {
    data: Vec<f32>,
    rows: usize,
    cols: usize,
}

type Build = Box<dyn for<'t> Fn(&mut Graph<'t>, &[Val<'t>]) -> Val<'t>>;

/// One gradient check: parameters, inputs (all differentiated), and the graph to build.
struct Case {
    name: &'static str,
    layout: ParamLayout,
    params: Vec<f32>,
    inputs: Vec<Input>,
    build: Build,
}

fn case(
    name: &'static str,
    layout: ParamLayout,
    params: Vec<f32>,
    inputs: Vec<Input>,
    build: Build,
) -> Case {
    Case {
        name,
        layout,
        params,
        inputs,
        build,
    }
}

fn input(rng: &mut Lcg, rows: usize, cols: usize, scale: f32) -> Input {
    Input {
        data: rng.vec(rows * cols, scale, 0.0),
        rows,
        cols,
    }
}

/// Parameters drawn uniformly from `shift ± scale` for every entry of the layout.
fn params(rng: &mut Lcg, layout: &ParamLayout, scale: f32, shift: f32) -> Vec<f32> {
    let mut p = layout.zeros();
    for e in layout.entries() {
        p[e.range()].copy_from_slice(&rng.vec(e.len, scale, shift));
    }
    p
}

fn no_params() -> (ParamLayout, Vec<f32>) {
    (ParamLayout::new(), Vec::new())
}

/// A layer `op(x, w, b)` with weight `[out, in]` (drawn from `±scale`) checked twice on `[5,
/// in]` inputs: with a bias (`names[0]`) and without (`names[1]`).
fn with_and_without_bias(
    rng: &mut Lcg,
    names: [&'static str; 2],
    [out, inp]: [usize; 2],
    scale: f32,
    op: for<'t> fn(&mut Graph<'t>, Val<'t>, ParamId, Option<ParamId>) -> Val<'t>,
) -> Vec<Case> {
    let mut l = ParamLayout::new();
    let (w, b) = (l.push("w", &[out, inp]), l.push("b", &[out]));
    let p = params(rng, &l, scale, 0.0);
    let x = input(rng, 5, inp, 1.0);
    let (l2, p2, x2) = (l.clone(), p.clone(), input(rng, 5, inp, 1.0));
    vec![
        case(
            names[0],
            l,
            p,
            vec![x],
            Box::new(move |g, v| op(g, v[0], w, Some(b))),
        ),
        case(
            names[1],
            l2,
            p2,
            vec![x2],
            Box::new(move |g, v| op(g, v[0], w, None)),
        ),
    ]
}

/// The checks for one op kind. Exhaustive on purpose.
fn cases(kind: OpKind) -> Vec<Case> {
    let mut rng = Lcg(kind as u64 + 17);
    match kind {
        OpKind::Embedding => {
            let mut l = ParamLayout::new();
            let (wte, wpe) = (l.push("wte", &[7, 4]), l.push("wpe", &[5, 4]));
            let p = params(&mut rng, &l, 1.0, 0.0);
            let tokens = [3u32, 0, 6, 3, 3, 1];
            let mut l2 = ParamLayout::new();
            let wte2 = l2.push("wte", &[7, 4]);
            let p2 = params(&mut rng, &l2, 1.0, 0.0);
            vec![
                case(
                    "embedding+positions",
                    l,
                    p,
                    vec![],
                    Box::new(move |g, _| g.embedding(&tokens, wte, Some(wpe), 3)),
                ),
                case(
                    "embedding",
                    l2,
                    p2,
                    vec![],
                    Box::new(move |g, _| g.embedding(&tokens, wte2, None, 2)),
                ),
            ]
        }
        OpKind::Linear => with_and_without_bias(
            &mut rng,
            ["linear+bias", "linear"],
            [4, 3],
            1.0,
            |g, x, w, b| g.linear(x, w, b),
        ),
        OpKind::MatMul => {
            let (l, p) = no_params();
            let (a, b) = (input(&mut rng, 4, 3, 1.0), input(&mut rng, 3, 5, 1.0));
            let sq = input(&mut rng, 4, 4, 1.0);
            vec![
                case(
                    "matmul",
                    l.clone(),
                    p.clone(),
                    vec![a, b],
                    Box::new(|g, v| g.matmul(v[0], v[1])),
                ),
                case(
                    "matmul(a, a)",
                    l,
                    p,
                    vec![sq],
                    Box::new(|g, v| g.matmul(v[0], v[0])),
                ),
            ]
        }
        OpKind::Add => {
            let (l, p) = no_params();
            let (a, b, c) = (
                input(&mut rng, 3, 4, 1.0),
                input(&mut rng, 3, 4, 1.0),
                input(&mut rng, 3, 4, 1.0),
            );
            vec![
                case(
                    "add",
                    l.clone(),
                    p.clone(),
                    vec![a, b],
                    Box::new(|g, v| g.add(v[0], v[1])),
                ),
                case(
                    "add(a, a)",
                    l.clone(),
                    p.clone(),
                    vec![c.clone()],
                    Box::new(|g, v| g.add(v[0], v[0])),
                ),
                // A residual: `a`'s gradient is written by the add, then added to by the GELU.
                case(
                    "add(gelu(a), a)",
                    l,
                    p,
                    vec![c],
                    Box::new(|g, v| {
                        let h = g.gelu(v[0]);
                        g.add(h, v[0])
                    }),
                ),
            ]
        }
        OpKind::Mul => {
            let (l, p) = no_params();
            let (a, b, c) = (
                input(&mut rng, 3, 4, 1.0),
                input(&mut rng, 3, 4, 1.0),
                input(&mut rng, 3, 4, 1.0),
            );
            vec![
                case(
                    "mul",
                    l.clone(),
                    p.clone(),
                    vec![a, b],
                    Box::new(|g, v| g.mul(v[0], v[1])),
                ),
                case(
                    "mul(a, a)",
                    l,
                    p,
                    vec![c],
                    Box::new(|g, v| g.mul(v[0], v[0])),
                ),
            ]
        }
        // Two sequences of 3 rows, sequences 3 and 4 of a batch; about a third dropped.
        OpKind::Dropout => {
            let (l, p) = no_params();
            let x = input(&mut rng, 6, 4, 1.0);
            let dropout = BatchDropout {
                dropout: Dropout::new(0.3, 11),
                first: 3,
            };
            vec![case(
                "dropout",
                l,
                p,
                vec![x],
                Box::new(move |g, v| g.dropout(v[0], 3, dropout)),
            )]
        }
        OpKind::Scale => {
            let (l, p) = no_params();
            let x = input(&mut rng, 3, 4, 1.0);
            vec![
                case(
                    "scale",
                    l.clone(),
                    p.clone(),
                    vec![x.clone()],
                    Box::new(|g, v| g.scale(v[0], -1.7)),
                ),
                // A value nothing uses: its gradient is never written, and its op's backward
                // must pass nothing on.
                case(
                    "scale beside an unused branch",
                    l,
                    p,
                    vec![x],
                    Box::new(|g, v| {
                        let unused = g.gelu(v[0]);
                        g.scale(unused, 4.0);
                        g.scale(v[0], -1.7)
                    }),
                ),
            ]
        }
        OpKind::Sum => {
            let (l, p) = no_params();
            vec![case(
                "sum",
                l,
                p,
                vec![input(&mut rng, 3, 4, 1.0)],
                Box::new(|g, v| g.sum(v[0])),
            )]
        }
        OpKind::LayerNorm => {
            let mut l = ParamLayout::new();
            let (w, b) = (l.push("w", &[6]), l.push("b", &[6]));
            let p = params(&mut rng, &l, 0.5, 1.0);
            let mut l2 = ParamLayout::new();
            let w2 = l2.push("w", &[6]);
            let p2 = params(&mut rng, &l2, 0.5, 1.0);
            let (x, x2) = (input(&mut rng, 4, 6, 2.0), input(&mut rng, 4, 6, 2.0));
            vec![
                case(
                    "layernorm+bias",
                    l,
                    p,
                    vec![x],
                    Box::new(move |g, v| g.layernorm(v[0], w, Some(b))),
                ),
                case(
                    "layernorm",
                    l2,
                    p2,
                    vec![x2],
                    Box::new(move |g, v| g.layernorm(v[0], w2, None)),
                ),
            ]
        }
        OpKind::Gelu => {
            let (l, p) = no_params();
            vec![case(
                "gelu",
                l,
                p,
                vec![input(&mut rng, 3, 7, 3.0)],
                Box::new(|g, v| g.gelu(v[0])),
            )]
        }
        // Pre-activations spread over GELU's curved part (|z| up to ~3).
        OpKind::LinearGelu => with_and_without_bias(
            &mut rng,
            ["linear_gelu+bias", "linear_gelu"],
            [6, 4],
            0.8,
            |g, x, w, b| g.linear_gelu(x, w, b),
        ),
        OpKind::Attention => {
            let (l, p) = no_params();
            // B = 2, T = 4, C = 6, 2 heads of size 3.
            let qkv = input(&mut rng, 8, 18, 1.5);
            let dropout = BatchDropout {
                dropout: Dropout::new(0.25, 5),
                first: 1,
            };
            vec![
                case(
                    "attention",
                    l.clone(),
                    p.clone(),
                    vec![qkv.clone()],
                    Box::new(|g, v| g.attention(v[0], 4, 2)),
                ),
                case(
                    "attention+dropout",
                    l,
                    p,
                    vec![qkv],
                    Box::new(move |g, v| g.attention_with_dropout(v[0], 4, 2, Some(dropout))),
                ),
            ]
        }
        OpKind::CrossEntropy => {
            let (l, p) = no_params();
            let logits = input(&mut rng, 5, 7, 2.0);
            vec![case(
                "cross_entropy",
                l,
                p,
                vec![logits],
                Box::new(|g, v| g.cross_entropy(v[0], &[0, 6, 2, 2, 5])),
            )]
        }
    }
}

/// How a case's op reads the inputs: as they are (its backward then adds to the inputs'
/// gradients, which backward keeps zeroed and readable), or through an exact `scale(x, 1.0)`
/// each (its backward then writes intermediate gradients, the first write overwriting what an
/// earlier step left in the buffer).
#[derive(Clone, Copy, Debug)]
enum Through {
    Inputs,
    Intermediates,
}

fn operands<'t>(g: &mut Graph<'t>, inputs: Vec<Val<'t>>, through: Through) -> Vec<Val<'t>> {
    match through {
        Through::Inputs => inputs,
        Through::Intermediates => inputs.into_iter().map(|v| g.scale(v, 1.0)).collect(),
    }
}

/// `sum(y * r)` evaluated in f64 from the f32 forward values, with the given parameters and inputs.
fn loss_f64(tape: &mut Tape, c: &Case, params: &[f32], inputs: &[Input], r: &[f32]) -> f64 {
    let mut g = tape.graph(params, &c.layout);
    let vals: Vec<Val> = inputs
        .iter()
        .map(|i| g.input(&i.data, i.rows, i.cols))
        .collect();
    let y = (c.build)(&mut g, &vals);
    g.value(y)
        .iter()
        .zip(r)
        .map(|(&a, &b)| a as f64 * b as f64)
        .sum()
}

/// The analytic gradients of `L = sum(y * r)` (parameters, inputs) on `tape`.
fn analytic(
    tape: &mut Tape,
    c: &Case,
    inputs: &[Input],
    r: &[f32],
    through: Through,
) -> (Vec<f32>, Vec<Vec<f32>>) {
    let mut pgrads = c.layout.zeros();
    let mut g = tape.graph(&c.params, &c.layout);
    let vals: Vec<Val> = inputs
        .iter()
        .map(|i| g.input_with_grad(&i.data, i.rows, i.cols))
        .collect();
    let operands = operands(&mut g, vals.clone(), through);
    let y = (c.build)(&mut g, &operands);
    let (rows, cols) = g.shape(y);
    let rv = g.input(r, rows, cols);
    let prod = g.mul(y, rv);
    let loss = g.sum(prod);
    g.backward(loss, &mut pgrads);
    let grads = vals.iter().map(|&v| g.grad(v).to_vec()).collect();
    (pgrads, grads)
}

fn check(c: &Case, kind: OpKind, through: Through) {
    let mut tape = Tape::new();
    let mut rng = Lcg(99);
    let r = {
        let mut g = tape.graph(&c.params, &c.layout);
        let vals: Vec<Val> = c
            .inputs
            .iter()
            .map(|i| g.input(&i.data, i.rows, i.cols))
            .collect();
        let y = (c.build)(&mut g, &vals);
        let (rows, cols) = g.shape(y);
        rng.vec(rows * cols, 1.0, 0.0)
    };
    // A step on other inputs first, so that the tape's buffers hold another step's gradients
    // (which the checked step must overwrite, not add to).
    let mut other = c.inputs.clone();
    for i in &mut other {
        i.data.iter_mut().for_each(|x| *x = 3.0 * *x + 0.5);
    }
    analytic(&mut tape, c, &other, &r, through);
    let (pgrads, analytic_inputs) = analytic(&mut tape, c, &c.inputs, &r, through);
    assert!(
        tape.op_kinds().any(|k| k == kind),
        "case `{}` does not record a {kind:?} op",
        c.name
    );

    let compare = |what: String, analytic: f32, numeric: f64| {
        let err = (analytic as f64 - numeric).abs();
        assert!(
            err <= ATOL + RTOL * numeric.abs(),
            "{kind:?} case `{}`: d/d{what}: analytic {analytic}, numeric {numeric}",
            c.name
        );
    };
    // Parameters (padding included: its gradient must be exactly zero and is checked as such).
    for i in 0..c.params.len() {
        let mut p = c.params.clone();
        p[i] = c.params[i] + EPS;
        let up = loss_f64(&mut tape, c, &p, &c.inputs, &r);
        p[i] = c.params[i] - EPS;
        let down = loss_f64(&mut tape, c, &p, &c.inputs, &r);
        compare(
            format!("param[{i}] ({through:?})"),
            pgrads[i],
            (up - down) / (2.0 * EPS as f64),
        );
    }
    // Inputs.
    for (k, inp) in c.inputs.iter().enumerate() {
        for (i, (&x0, &analytic)) in inp.data.iter().zip(&analytic_inputs[k]).enumerate() {
            let mut inputs = c.inputs.clone();
            inputs[k].data[i] = x0 + EPS;
            let up = loss_f64(&mut tape, c, &c.params, &inputs, &r);
            inputs[k].data[i] = x0 - EPS;
            let down = loss_f64(&mut tape, c, &c.params, &inputs, &r);
            compare(
                format!("input{k}[{i}] ({through:?})"),
                analytic,
                (up - down) / (2.0 * EPS as f64),
            );
        }
    }
}

#[test]
fn every_op_kind_passes_a_finite_difference_check() {
    for &kind in OpKind::ALL {
        let cs = cases(kind);
        assert!(!cs.is_empty(), "no gradient check for {kind:?}");
        for c in &cs {
            check(c, kind, Through::Inputs);
            check(c, kind, Through::Intermediates);
        }
    }
}

#[test]
fn a_broken_gradient_would_be_caught() {
    // The comparison itself must be able to fail: a gradient off by 5% is outside tolerance
    // for a derivative of magnitude 1.
    let (analytic, numeric) = (1.05f64, 1.0f64);
    assert!((analytic - numeric).abs() > ATOL + RTOL * numeric.abs());
}
