//! The CLLM command-line tools, as a library so both binaries (and tests) share their pieces:
//! `cllm-train` (prepare data, train, resume) and `cllm-generate`.

// No unsafe code, but for the two allocator wrappers that need it (`heap`, `huge_pages`).
#![deny(unsafe_code)]

pub mod arithmetic;
pub mod batches;
pub mod builtin_corpus;
pub mod config;
pub mod console;
pub mod data_args;
pub mod engine;
pub mod generate_cmd;
#[allow(unsafe_code)] // a counting `GlobalAlloc` impl
pub mod heap;
#[allow(unsafe_code)] // a `GlobalAlloc` impl and one `madvise` call
pub mod huge_pages;
pub mod memory_check;
pub mod metrics;
pub mod prepare_cmd;
pub mod progress;
pub mod run_dir;
pub mod run_stats;
pub mod sibling;
pub mod signal;
pub mod telemetry;
pub mod train_args;
pub mod trainer;
