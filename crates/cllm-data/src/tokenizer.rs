//! Tokenizers: `char` (the corpus's sorted character set, as nanoGPT), `byte` (256 ids), and
//! `bpe` (byte-level BPE trained on the corpus with Hugging Face `tokenizers`).
//!
//! Every tokenizer saves to and loads from one `tokenizer.json`: BPE in the Hugging Face format,
//! char and byte in a small format of their own marked by a `cllm_tokenizer` key.
//! [`Tokenizer::fingerprint`] (sha256 of that JSON) is what checkpoints record, so a model is
//! never paired with a vocabulary it was not trained with.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;

use crate::checksum::sha256_hex;
use crate::error::{DataError, Result};

/// Which tokenizer to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenizerKind {
    /// One id per distinct character of the corpus, sorted by code point.
    Char,
    /// One id per byte value (vocabulary 256).
    Byte,
    /// Byte-level BPE trained on the corpus.
    Bpe,
}

impl FromStr for TokenizerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "char" => Ok(TokenizerKind::Char),
            "byte" => Ok(TokenizerKind::Byte),
            "bpe" => Ok(TokenizerKind::Bpe),
            _ => Err(format!(
                "unknown tokenizer `{s}` (expected char, byte or bpe)"
            )),
        }
    }
}

impl fmt::Display for TokenizerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenizerKind::Char => "char",
            TokenizerKind::Byte => "byte",
            TokenizerKind::Bpe => "bpe",
        })
    }
}

/// Our own JSON for char and byte tokenizers.
#[derive(Serialize, Deserialize)]
struct SimpleJson {
    cllm_tokenizer: TokenizerKind,
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    chars: Option<String>,
}

/// A tokenizer.
#[derive(Clone)]
pub enum Tokenizer {
    /// Character-level.
    Char {
        /// The vocabulary, sorted by code point; id = position.
        chars: Vec<char>,
        /// char -> id for characters above ASCII.
        index: HashMap<char, u32>,
        /// ASCII char -> id, `u32::MAX` where not in the vocabulary (the fast path).
        ascii: Box<[u32; 128]>,
    },
    /// Byte-level, ids 0..256.
    Byte,
    /// Byte-level BPE.
    Bpe(Box<tokenizers::Tokenizer>),
}

impl fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Tokenizer({}, vocab {})", self.kind(), self.vocab_size())
    }
}

impl Tokenizer {
    /// A char tokenizer over exactly the given characters (deduplicated and sorted).
    pub fn from_chars(chars: impl IntoIterator<Item = char>) -> Self {
        let mut chars: Vec<char> = chars.into_iter().collect();
        chars.sort_unstable();
        chars.dedup();
        let index = chars
            .iter()
            .enumerate()
            .map(|(i, &c)| (c, i as u32))
            .collect();
        let mut ascii = Box::new([u32::MAX; 128]);
        for (i, &c) in chars.iter().enumerate() {
            if let Some(slot) = ascii.get_mut(c as usize) {
                *slot = i as u32;
            }
        }
        Tokenizer::Char {
            chars,
            index,
            ascii,
        }
    }

    /// The largest BPE vocabulary [`Tokenizer::train_bpe`] takes: 2^20 ids, four times the
    /// largest in common use (256K). The trainer reserves memory in proportion to it up
    /// front, ~45 bytes an id, so a mistyped size must be refused rather than tried.
    pub const MAX_BPE_VOCAB: usize = 1 << 20;

    /// Trains a byte-level BPE of at most `vocab_size` ids on `texts`.
    ///
    /// # Errors
    /// Unless `257 <= vocab_size <=` [`Tokenizer::MAX_BPE_VOCAB`], or if training fails.
    pub fn train_bpe<I, S>(texts: I, vocab_size: usize) -> Result<Self>
    where
        I: Iterator<Item = S> + Send,
        S: AsRef<str> + Send,
    {
        if vocab_size < 257 {
            return Err(DataError::Tokenizer(format!(
                "a byte-level BPE needs a vocabulary of at least 257 (256 bytes + merges), got {vocab_size}"
            )));
        }
        if vocab_size > Self::MAX_BPE_VOCAB {
            return Err(DataError::Tokenizer(format!(
                "a BPE vocabulary of at most {} is supported, got {vocab_size}",
                Self::MAX_BPE_VOCAB
            )));
        }
        let mut tok = tokenizers::Tokenizer::new(BPE::default());
        // No prefix space: decode(encode(text)) == text exactly, and a document encoded in
        // chunks decodes to the concatenation of the chunks.
        let byte_level = ByteLevel::new(false, true, true);
        tok.with_pre_tokenizer(Some(byte_level));
        tok.with_decoder(Some(byte_level));
        let trainer = BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(2)
            .show_progress(false)
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build();
        let mut trainer = TrainerWrapper::BpeTrainer(trainer);
        tok.train(&mut trainer, texts)
            .map_err(|e| DataError::Tokenizer(format!("training BPE: {e}")))?;
        Ok(Tokenizer::Bpe(Box::new(tok)))
    }

    /// Which kind this is.
    pub fn kind(&self) -> TokenizerKind {
        match self {
            Tokenizer::Char { .. } => TokenizerKind::Char,
            Tokenizer::Byte => TokenizerKind::Byte,
            Tokenizer::Bpe(_) => TokenizerKind::Bpe,
        }
    }

    /// Number of ids (every id is below this).
    pub fn vocab_size(&self) -> usize {
        match self {
            Tokenizer::Char { chars, .. } => chars.len(),
            Tokenizer::Byte => 256,
            Tokenizer::Bpe(t) => t.get_vocab_size(true),
        }
    }

    /// Appends the ids of `text` to `out`.
    ///
    /// # Errors
    /// For a char tokenizer, a character outside its vocabulary.
    pub fn encode(&self, text: &str, out: &mut Vec<u32>) -> Result<()> {
        match self {
            Tokenizer::Char { index, ascii, .. } => {
                for c in text.chars() {
                    let id = match ascii.get(c as usize) {
                        Some(&id) => (id != u32::MAX).then_some(id),
                        None => index.get(&c).copied(),
                    };
                    match id {
                        Some(id) => out.push(id),
                        None => {
                            return Err(DataError::Tokenizer(format!(
                                "character {c:?} (U+{:04X}) is not in this char tokenizer's vocabulary",
                                c as u32
                            )));
                        }
                    }
                }
            }
            Tokenizer::Byte => out.extend(text.bytes().map(u32::from)),
            Tokenizer::Bpe(t) => {
                // Ids only: `encode` would also compute offsets, which nothing here reads.
                let enc = t
                    .encode_fast(text, false)
                    .map_err(|e| DataError::Tokenizer(e.to_string()))?;
                out.extend_from_slice(enc.get_ids());
            }
        }
        Ok(())
    }

    /// The text of `ids`. Ids outside the vocabulary, and byte sequences that are not UTF-8,
    /// come out as U+FFFD.
    pub fn decode(&self, ids: &[u32]) -> String {
        match self {
            Tokenizer::Char { chars, .. } => ids
                .iter()
                .map(|&i| chars.get(i as usize).copied().unwrap_or('\u{FFFD}'))
                .collect(),
            Tokenizer::Byte => {
                let bytes: Vec<u8> = ids
                    .iter()
                    .map(|&i| u8::try_from(i).unwrap_or(b'?'))
                    .collect();
                String::from_utf8_lossy(&bytes).into_owned()
            }
            Tokenizer::Bpe(t) => t
                .decode(ids, false)
                .unwrap_or_else(|_| "\u{FFFD}".to_string()),
        }
    }

    /// The `tokenizer.json` text.
    pub fn to_json(&self) -> Result<String> {
        let simple = |kind, chars| {
            serde_json::to_string(&SimpleJson {
                cllm_tokenizer: kind,
                version: 1,
                chars,
            })
            .map_err(|e| DataError::Tokenizer(e.to_string()))
        };
        match self {
            Tokenizer::Char { chars, .. } => {
                simple(TokenizerKind::Char, Some(chars.iter().collect()))
            }
            Tokenizer::Byte => simple(TokenizerKind::Byte, None),
            Tokenizer::Bpe(t) => t
                .to_string(false)
                .map_err(|e| DataError::Tokenizer(e.to_string())),
        }
    }

    /// Parses a `tokenizer.json` text written by [`to_json`](Self::to_json) (or any Hugging
    /// Face tokenizer file).
    pub fn from_json(text: &str) -> Result<Self> {
        if let Ok(simple) = serde_json::from_str::<SimpleJson>(text) {
            return match simple.cllm_tokenizer {
                TokenizerKind::Char => Ok(Tokenizer::from_chars(
                    simple.chars.unwrap_or_default().chars(),
                )),
                TokenizerKind::Byte => Ok(Tokenizer::Byte),
                TokenizerKind::Bpe => Err(DataError::Tokenizer(
                    "a bpe tokenizer must be a Hugging Face file".into(),
                )),
            };
        }
        let t = tokenizers::Tokenizer::from_str(text)
            .map_err(|e| DataError::Tokenizer(e.to_string()))?;
        Ok(Tokenizer::Bpe(Box::new(t)))
    }

    /// Writes `tokenizer.json` to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_json()?).map_err(|e| DataError::io(path, "writing", e))
    }

    /// Reads a `tokenizer.json`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, "reading", e))?;
        Tokenizer::from_json(&text)
            .map_err(|e| DataError::Tokenizer(format!("{}: {e}", path.display())))
    }

    /// sha256 of the `tokenizer.json` text: equal fingerprints mean equal vocabularies.
    pub fn fingerprint(&self) -> Result<String> {
        Ok(sha256_hex(self.to_json()?.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn char_round_trip_and_sorted_vocab() {
        let t = Tokenizer::from_chars("hello world".chars());
        assert_eq!(t.vocab_size(), 8);
        let mut ids = Vec::new();
        t.encode("hold", &mut ids).unwrap();
        assert_eq!(t.decode(&ids), "hold");
        assert_eq!(ids[0], 3); // ' ' d e h l o r w
        assert!(
            t.encode("hz", &mut ids)
                .unwrap_err()
                .to_string()
                .contains("'z'")
        );
        let back = Tokenizer::from_json(&t.to_json().unwrap()).unwrap();
        assert_eq!(back.fingerprint().unwrap(), t.fingerprint().unwrap());
    }

    #[test]
    fn byte_round_trip() {
        let t = Tokenizer::Byte;
        let mut ids = Vec::new();
        t.encode("héllo", &mut ids).unwrap();
        assert_eq!(ids.len(), 6);
        assert_eq!(t.decode(&ids), "héllo");
        assert_eq!(
            Tokenizer::from_json(&t.to_json().unwrap()).unwrap().kind(),
            TokenizerKind::Byte
        );
    }

    #[test]
    fn bpe_vocabularies_outside_the_supported_range_are_refused() {
        let text = "the cat sat on the mat. ".repeat(20);
        for (size, why) in [
            (256, "at least 257"),
            (Tokenizer::MAX_BPE_VOCAB + 1, "at most 1048576"),
            // A mistyped size: the trainer would reserve terabytes and abort.
            (100_000_000_000, "at most 1048576"),
        ] {
            let err = Tokenizer::train_bpe(std::iter::once(text.as_str()), size)
                .unwrap_err()
                .to_string();
            assert!(err.contains(why), "{size}: {err}");
        }
        assert!(Tokenizer::train_bpe(std::iter::once(text.as_str()), 257).is_ok());
    }

    #[test]
    fn bpe_trains_round_trips_and_saves() {
        let text = "the cat sat on the mat. the cat ate the rat. ".repeat(50);
        let t = Tokenizer::train_bpe(std::iter::once(text.as_str()), 300).unwrap();
        assert!(
            t.vocab_size() > 256 && t.vocab_size() <= 300,
            "{}",
            t.vocab_size()
        );
        let mut ids = Vec::new();
        t.encode("the cat sat on the mat", &mut ids).unwrap();
        assert!(
            ids.len() < 22,
            "merges should shorten the text: {} ids",
            ids.len()
        );
        assert_eq!(t.decode(&ids), "the cat sat on the mat");
        let back = Tokenizer::from_json(&t.to_json().unwrap()).unwrap();
        assert_eq!(back.kind(), TokenizerKind::Bpe);
        let mut ids2 = Vec::new();
        back.encode("the cat sat on the mat", &mut ids2).unwrap();
        assert_eq!(ids, ids2);
        assert!(Tokenizer::train_bpe(std::iter::once("x"), 100).is_err());
    }
}
