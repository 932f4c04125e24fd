//! Parallel, order-preserving encoding of documents into token shards.

use crate::error::Result;
use crate::shard::ShardWriter;
use crate::spill::DocSplit;
use crate::tokenizer::Tokenizer;

/// Encodes text pieces in order, in parallel batches: pieces are queued with their split, and a
/// flush encodes the queue on all cores and appends the ids to each split's shard in queue
/// order. Memory is bounded by the batch size ([`Encoder::BYTES_PER_THREAD`] per thread, and
/// four bytes per id of it once encoded).
pub(crate) struct Encoder<'t> {
    tokenizer: &'t Tokenizer,
    sep: Vec<u32>,
    /// (split, text); `None` text stands for the document separator.
    queue: Vec<(DocSplit, Option<String>)>,
    queued_bytes: usize,
    /// Whether each split (train, val, auto) has received a document yet.
    started: [bool; 3],
    threads: usize,
}

impl<'t> Encoder<'t> {
    const BYTES_PER_THREAD: usize = 1 << 20;

    pub(crate) fn new(tokenizer: &'t Tokenizer, sep: Vec<u32>) -> Self {
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(32);
        Encoder {
            tokenizer,
            sep,
            queue: Vec::new(),
            queued_bytes: 0,
            started: [false; 3],
            threads,
        }
    }

    fn slot(split: DocSplit) -> usize {
        match split {
            DocSplit::Train => 0,
            DocSplit::Val => 1,
            DocSplit::Auto => 2,
        }
    }

    /// Queues the separator if this split already has a document.
    pub(crate) fn start_document(&mut self, split: DocSplit) {
        let started = &mut self.started[Self::slot(split)];
        if *started {
            self.queue.push((split, None));
        }
        *started = true;
    }

    pub(crate) fn push(&mut self, split: DocSplit, text: &str) {
        self.queued_bytes += text.len();
        self.queue.push((split, Some(text.to_string())));
    }

    pub(crate) fn is_full(&self) -> bool {
        self.queued_bytes >= Self::BYTES_PER_THREAD * self.threads
    }

    pub(crate) fn flush(
        &mut self,
        train: &mut ShardWriter,
        val: &mut ShardWriter,
        mut auto: Option<&mut ShardWriter>,
    ) -> Result<()> {
        let queue = std::mem::take(&mut self.queue);
        self.queued_bytes = 0;
        let per_thread = queue.len().div_ceil(self.threads).max(1);
        let tokenizer = self.tokenizer;
        let encoded: Vec<Result<Vec<Vec<u32>>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = queue
                .chunks(per_thread)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(_, text)| {
                                let mut ids = Vec::new();
                                if let Some(text) = text {
                                    tokenizer.encode(text, &mut ids)?;
                                }
                                Ok(ids)
                            })
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("encoding threads do not panic"))
                .collect()
        });
        let mut items = queue.iter();
        for part in encoded {
            for ids in part? {
                let (split, text) = items.next().expect("one result per queued piece");
                let out = match split {
                    DocSplit::Train => &mut *train,
                    DocSplit::Val => &mut *val,
                    DocSplit::Auto => auto
                        .as_deref_mut()
                        .expect("created when any document is auto"),
                };
                out.push(if text.is_some() { &ids } else { &self.sep })?;
            }
        }
        Ok(())
    }
}
