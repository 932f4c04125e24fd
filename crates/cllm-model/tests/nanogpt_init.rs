//! `GptParams::init_nanogpt` against PyTorch: the weights nanoGPT's `GPT.__init__` gives after
//! `torch.manual_seed(1337)`, and where it leaves the random stream.
//!
//! The expected values were printed by PyTorch 2.15 (CPU, AVX2 build) from a module tree built
//! as nanoGPT's (`scripts/pytorch-reference/torch_gpt.py` has the same tree), with vocabulary
//! 65, context 16, width 16, 2 layers: the first two and the last element of every matrix, and
//! `torch.randint(1000, (3,))` drawn right after the model.

use cllm_model::{GptConfig, GptParams};

type Expected = (&'static str, [f64; 2], f64);

const NO_BIAS: [Expected; 10] = [
    ("wte.weight", [0.0338844731, -0.0373814479], -0.0282103792),
    ("wpe.weight", [0.00405081315, 0.0108446712], 0.00916072354),
    (
        "h.0.attn.c_attn.weight",
        [-0.0369920991, 0.00750788953],
        0.0167246591,
    ),
    (
        "h.0.attn.c_proj.weight",
        [-0.0153330397, 0.0151159214],
        0.00271869567,
    ),
    (
        "h.0.mlp.c_fc.weight",
        [0.0249727201, -0.0045109503],
        -0.00131345179,
    ),
    (
        "h.0.mlp.c_proj.weight",
        [0.00122347707, -0.00300776539],
        0.00519704213,
    ),
    (
        "h.1.attn.c_attn.weight",
        [-0.00272276509, -0.00877911411],
        0.0229227804,
    ),
    (
        "h.1.attn.c_proj.weight",
        [0.00466444902, 0.00460941531],
        0.010770848,
    ),
    (
        "h.1.mlp.c_fc.weight",
        [0.014014327, -0.0138627142],
        -0.0098355962,
    ),
    (
        "h.1.mlp.c_proj.weight",
        [0.0013859421, -0.000618144113],
        0.00389071158,
    ),
];

const WITH_BIAS: [Expected; 10] = [
    ("wte.weight", [0.0015474204, 0.0167690292], 0.0378574133),
    (
        "wpe.weight",
        [-0.000786801393, 0.00612648297],
        0.00887380727,
    ),
    (
        "h.0.attn.c_attn.weight",
        [-0.0171910804, -0.0139623024],
        0.000196368332,
    ),
    (
        "h.0.attn.c_proj.weight",
        [0.00402772659, 0.00334197772],
        -0.0118525857,
    ),
    (
        "h.0.mlp.c_fc.weight",
        [-0.0144961588, 0.0208712891],
        0.019000126,
    ),
    (
        "h.0.mlp.c_proj.weight",
        [-0.0152379638, 0.0108992169],
        0.00487286132,
    ),
    (
        "h.1.attn.c_attn.weight",
        [-0.0293071494, -0.0203694385],
        0.00930269901,
    ),
    (
        "h.1.attn.c_proj.weight",
        [0.00653145369, 0.0115723498],
        0.0179962199,
    ),
    (
        "h.1.mlp.c_fc.weight",
        [0.0126070986, -0.00555167347],
        0.0194714721,
    ),
    (
        "h.1.mlp.c_proj.weight",
        [0.00481157098, -0.00960269105],
        -0.0064745401,
    ),
];

fn check(bias: bool, expected: &[Expected], next: [u32; 3]) {
    let cfg = GptConfig {
        vocab_size: 65,
        seq_len: 16,
        embed_dim: 16,
        num_layers: 2,
        num_heads: 2,
        bias,
    };
    let params = GptParams::new(&cfg);
    let (w, draws) = params.init_nanogpt(&cfg, 1337).unwrap();
    for (name, first, last) in expected {
        let id = params.layout.find(name).unwrap();
        let s = params.layout.slice(id, &w);
        for (got, want) in [(s[0], first[0]), (s[1], first[1]), (s[s.len() - 1], *last)] {
            let got = f64::from(got);
            // PyTorch's AVX2 log/sin/cos differ from the C library's by a few ulp.
            assert!(
                (got - want).abs() <= 1e-6 * want.abs(),
                "{name} (bias {bias}): {got} vs PyTorch {want}"
            );
        }
    }
    for e in params.layout.entries() {
        let s = &w[e.range()];
        if e.name.contains("ln_") && e.name.ends_with(".weight") {
            assert!(s.iter().all(|&x| x == 1.0), "{}", e.name);
        } else if e.shape.len() == 1 {
            assert!(s.iter().all(|&x| x == 0.0), "{}", e.name);
        }
    }
    // The stream position: the next draws are PyTorch's next randint(1000) values.
    let mut mt = rand_mt::Mt::new(1337);
    (0..draws).for_each(|_| {
        mt.next_u32();
    });
    let got: Vec<u32> = (0..3).map(|_| mt.next_u32() % 1000).collect();
    assert_eq!(got, next, "bias {bias}: draws counted {draws}");
}

#[test]
fn matches_pytorch_without_biases() {
    check(false, &NO_BIAS, [876, 843, 850]);
}

#[test]
fn matches_pytorch_with_biases() {
    check(true, &WITH_BIAS, [723, 544, 98]);
}

#[test]
fn the_same_seed_gives_the_same_weights() {
    let cfg = GptConfig {
        vocab_size: 20,
        seq_len: 8,
        embed_dim: 8,
        num_layers: 1,
        num_heads: 2,
        bias: false,
    };
    let p = GptParams::new(&cfg);
    assert_eq!(p.init_nanogpt(&cfg, 3), p.init_nanogpt(&cfg, 3));
    assert_ne!(
        p.init_nanogpt(&cfg, 3).unwrap().0,
        p.init_nanogpt(&cfg, 4).unwrap().0
    );
}
