//! [`StreamDecoder`]: text from token ids arriving one at a time, in time linear in the tokens.

use crate::Tokenizer;

/// Turns token ids into text as they arrive, in time linear in the tokens.
///
/// Decoding everything generated so far after each new token costs time quadratic in the
/// length of the output. Instead the ids not yet printed are held back and decoded alone; they
/// are released as soon as they decode to whole characters. A character whose bytes span
/// several ids (byte and byte-level BPE tokenizers) decodes to U+FFFD until its last byte comes,
/// so a decode ending in U+FFFD waits for the next id; after [`StreamDecoder::MAX_PENDING`]
/// ids it is released as it is (the bytes were not UTF-8, and waiting longer will not mend them).
///
/// Joined, the pieces are [`Tokenizer::decode`] of all the ids whenever every piece ended on a
/// whole character: a piece boundary then falls between characters, where UTF-8 decoding of
/// the whole would restart too.
#[derive(Debug)]
pub struct StreamDecoder<'t> {
    tokenizer: &'t Tokenizer,
    /// Ids received but not yet released as text.
    pending: Vec<u32>,
}

impl<'t> StreamDecoder<'t> {
    /// Ids held back for one character before it is released incomplete. A UTF-8 character
    /// has at most 4 bytes, so no tokenizer here needs more than 4 ids for one.
    pub const MAX_PENDING: usize = 8;

    /// A decoder with nothing pending.
    pub fn new(tokenizer: &'t Tokenizer) -> Self {
        StreamDecoder {
            tokenizer,
            pending: Vec::with_capacity(Self::MAX_PENDING),
        }
    }

    /// Takes the next id; returns the text it completes (often empty while a character's
    /// bytes are still arriving).
    pub fn push(&mut self, id: u32) -> String {
        self.pending.push(id);
        let text = self.tokenizer.decode(&self.pending);
        if text.ends_with('\u{FFFD}') && self.pending.len() < Self::MAX_PENDING {
            return String::new();
        }
        self.pending.clear();
        text
    }

    /// Releases whatever is pending, incomplete characters as U+FFFD.
    pub fn finish(&mut self) -> String {
        let text = self.tokenizer.decode(&self.pending);
        self.pending.clear();
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pushes `ids` one by one; returns the pieces and their join.
    fn stream(tokenizer: &Tokenizer, ids: &[u32]) -> (Vec<String>, String) {
        let mut d = StreamDecoder::new(tokenizer);
        let mut pieces: Vec<String> = ids.iter().map(|&id| d.push(id)).collect();
        pieces.push(d.finish());
        let joined = pieces.concat();
        (pieces, joined)
    }

    const TEXT: &str = "Ünïcödé — 日本語 text, émoji 🎉 and plain ASCII.\nAgain: 日本語 🎉 ü.";

    #[test]
    fn joined_pieces_equal_the_whole_decode_for_every_tokenizer() {
        let char_tok = Tokenizer::from_chars(TEXT.chars());
        let bpe = Tokenizer::train_bpe(std::iter::repeat_n(TEXT, 4), 300).unwrap();
        for tokenizer in [&char_tok, &Tokenizer::Byte, &bpe] {
            let mut ids = Vec::new();
            tokenizer.encode(TEXT, &mut ids).unwrap();
            let (pieces, joined) = stream(tokenizer, &ids);
            assert_eq!(joined, TEXT, "{tokenizer:?}");
            assert_eq!(joined, tokenizer.decode(&ids), "{tokenizer:?}");
            // No piece shows a half character.
            assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
        }
    }

    #[test]
    fn a_character_is_released_with_its_last_byte() {
        // "é" is C3 A9, "🎉" F0 9F 8E 89.
        let (pieces, _) = stream(
            &Tokenizer::Byte,
            &[b'a' as u32, 0xC3, 0xA9, 0xF0, 0x9F, 0x8E, 0x89],
        );
        assert_eq!(pieces, ["a", "", "é", "", "", "", "🎉", ""]);
    }

    #[test]
    fn bytes_that_never_make_a_character_are_released_after_the_limit() {
        let mut d = StreamDecoder::new(&Tokenizer::Byte);
        let lead = 0xF0; // a 4-byte lead that no continuation byte follows
        let released: Vec<String> = (0..StreamDecoder::MAX_PENDING)
            .map(|_| d.push(lead))
            .collect();
        assert!(
            released[..StreamDecoder::MAX_PENDING - 1]
                .iter()
                .all(String::is_empty)
        );
        let last = released.last().unwrap();
        assert_eq!(
            last.chars().filter(|&c| c == '\u{FFFD}').count(),
            StreamDecoder::MAX_PENDING
        );
        assert_eq!(d.finish(), "");
        // An incomplete tail at the end comes out of `finish`.
        assert_eq!(d.push(0xC3), "");
        assert_eq!(d.finish(), "\u{FFFD}");
    }
}
