//! The CLLM command-line tools, as a library so both binaries share their pieces:
//! `cllm-train` (prepare data, train, resume) and `cllm-generate`.

#![forbid(unsafe_code)]

pub mod builtin_corpus;
pub mod data_args;
pub mod prepare_cmd;
pub mod progress;
pub mod run_dir;
