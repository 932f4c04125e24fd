//! `cllm-data`: turning corpora into batches of token ids.
//!
//! * **Sources**: a file, a directory walked recursively (hidden and VCS directories skipped,
//!   symlink loops not followed), or a named dataset from the registry (`shakespeare`,
//!   `squad`, `squad/dev`), found in a data directory or downloaded with its checksum checked.
//! * **Load once**: every file is opened and read exactly once; duplicate contents, binary,
//!   non-UTF-8, empty and oversized files are skipped and counted by reason.
//! * **Tokenizers**: `char`, `byte`, and byte-level `bpe` (Hugging Face `tokenizers`); a
//!   [`StreamDecoder`] turns ids arriving one at a time into text.
//! * **Shards**: tokens are written once to versioned binary shards, cached under a key, and
//!   reused while the inputs are unchanged; reading is by bounded windows.
//! * **Batches**: a seeded sampler whose batch for step `s` depends only on (seed, step), and a
//!   split of each global batch across workers whose union is the same whatever the count;
//!   or [`TorchStream`], PyTorch's CPU generator, for the offsets nanoGPT draws with a seed.
//!
//! This crate knows nothing about tensors.
//!
//! ```no_run
//! use cllm_data::{prepare, BatchSampler, PrepareOptions, Source, Split};
//!
//! let prepared = prepare(&PrepareOptions::new(Source::Path("docs".into())), &mut |_| {})?;
//! let mut train = prepared.open(Split::Train)?;
//! let sampler = BatchSampler::new(1337, 12, 64);
//! let batch = sampler.batch(0, &mut train)?;
//! assert_eq!(batch.inputs.len(), 12 * 64);
//! # Ok::<(), cllm_data::DataError>(())
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cache;
pub mod checksum;
mod documents;
mod encoder;
mod error;
pub mod fetch;
pub mod jsonl;
mod prepare;
pub mod registry;
mod sampler;
pub mod shard;
pub mod source;
pub mod spill;
pub mod squad;
mod stream_decoder;
mod summary;
pub mod tokenizer;
mod torch_stream;
pub mod walk;

pub use cache::abandon_builds;
pub use error::{DataError, MissingFile, Result};
pub use fetch::DataDirs;
pub use prepare::{
    DEFAULT_BPE_VOCAB, DOC_SEPARATOR, PrepareOptions, Prepared, Source, Split, TRAIN_FRACTION,
    default_cache_dir, prepare, write_atomic,
};
pub use registry::Format;
pub use sampler::{Batch, BatchSampler, worker_share};
pub use shard::{ShardReader, ShardWriter};
pub use stream_decoder::StreamDecoder;
pub use summary::{DatasetSummary, InputFile, PREPARED_VERSION, SkippedFile, peak_rss_bytes};
pub use tokenizer::{Tokenizer, TokenizerKind};
pub use torch_stream::{RANDINT_64BIT_FROM, TorchStream};
