//! The built-in corpus: this project's own documentation and kernel sources, compiled into the
//! binary, so `cllm-train` with no arguments has something real to learn from on any machine.

/// (name, text) of every built-in document.
pub fn texts() -> Vec<(String, String)> {
    BUILTIN
        .iter()
        .map(|(name, text)| (name.to_string(), text.to_string()))
        .collect()
}

/// Name of the built-in corpus in summaries and run directories.
pub const NAME: &str = "builtin";

macro_rules! builtin {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../../../", $path)))),*]
    };
}

const BUILTIN: &[(&str, &str)] = builtin![
    "README.md",
    "docs/architecture.md",
    "docs/benchmarks.md",
    "crates/cllm-autograd/DESIGN.md",
    "crates/cllm-autograd/README.md",
    "crates/cllm-tensor/README.md",
    "crates/cllm-tensor/src/kernels/attention.rs",
    "crates/cllm-tensor/src/kernels/cross_entropy.rs",
    "crates/cllm-tensor/src/kernels/elementwise.rs",
    "crates/cllm-tensor/src/kernels/embedding.rs",
    "crates/cllm-tensor/src/kernels/gelu.rs",
    "crates/cllm-tensor/src/kernels/layernorm.rs",
    "crates/cllm-tensor/src/kernels/math.rs",
    "crates/cllm-tensor/src/kernels/matmul/mod.rs",
    "crates/cllm-tensor/src/kernels/softmax.rs",
    "crates/cllm-autograd/src/backward.rs",
    "crates/cllm-autograd/src/tape.rs",
    "crates/cllm-data/src/prepare.rs",
    "crates/cllm-data/src/shard.rs",
    "crates/cllm-data/src/sampler.rs",
];
