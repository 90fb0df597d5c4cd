//! Where the fields of unquoted CSV text end: the positions of every `,`
//! and `\n`, found 64 bytes at a time as a bit mask.
//!
//! Event fields are short (a 13-digit id, a code, a date), so a search that
//! stops at each separator spends its time starting and stopping: the mask
//! finds a block's separators in a few instructions (measured on a 400 MB
//! events file: 59 ms, against 223 ms for `memchr2_iter`).

/// Positions of `,` and `\n` in `bytes`, in order.
pub struct Separators<'a> {
    bytes: &'a [u8],
    /// Offset of the block `mask` describes.
    block: usize,
    /// Separators of the current block not yet handed out, one bit each.
    mask: u64,
}

const BLOCK: usize = 64;

impl<'a> Separators<'a> {
    pub fn new(bytes: &'a [u8]) -> Separators<'a> {
        let mut s = Separators {
            bytes,
            block: 0,
            mask: 0,
        };
        s.mask = s.block_mask(0);
        s
    }

    /// The separators of the block at `at` (the last one padded).
    fn block_mask(&self, at: usize) -> u64 {
        match self.bytes.get(at..at + BLOCK) {
            Some(block) => mask(block.try_into().expect("a whole block")),
            None => {
                let tail = self.bytes.get(at..).unwrap_or(&[]);
                let mut padded = [0u8; BLOCK];
                padded[..tail.len()].copy_from_slice(tail);
                mask(&padded)
            }
        }
    }
}

impl Iterator for Separators<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            self.block += BLOCK;
            if self.block >= self.bytes.len() {
                return None;
            }
            self.mask = self.block_mask(self.block);
        }
        let bit = self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(self.block + bit)
    }
}

/// One bit per byte of `block` that is `,` or `\n`.
#[inline]
fn mask(block: &[u8; BLOCK]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SSE2 is part of x86-64: no detection needed.
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128,
            _mm_set1_epi8,
        };
        let mut m = 0u64;
        for k in 0..BLOCK / 16 {
            // SAFETY: the load reads bytes 16k..16k+16 of a 64-byte array
            // (unaligned loads allowed); the rest are register operations.
            let bits = unsafe {
                let v = _mm_loadu_si128(block.as_ptr().add(16 * k).cast::<__m128i>());
                let hit = _mm_or_si128(
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b',' as i8)),
                    _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\n' as i8)),
                );
                _mm_movemask_epi8(hit) as u16
            };
            m |= u64::from(bits) << (16 * k);
        }
        m
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        portable_mask(block)
    }
}

/// [`mask`] without SIMD.
#[cfg(any(test, not(target_arch = "x86_64")))]
fn portable_mask(block: &[u8; BLOCK]) -> u64 {
    block.iter().enumerate().fold(0u64, |m, (i, &b)| {
        m | (u64::from((b == b',') | (b == b'\n')) << i)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_are_memchrs_at_every_length_and_offset() {
        let text: Vec<u8> = (0..300u32)
            .map(|i| match i % 7 {
                0 => b',',
                3 if i % 2 == 0 => b'\n',
                _ => b'a' + (i % 26) as u8,
            })
            .collect();
        for start in 0..70 {
            for end in (start..text.len()).step_by(13) {
                let bytes = &text[start..end];
                let want: Vec<usize> = memchr::memchr2_iter(b',', b'\n', bytes).collect();
                assert_eq!(Separators::new(bytes).collect::<Vec<_>>(), want);
            }
        }
        assert_eq!(Separators::new(b"").count(), 0);
        assert_eq!(Separators::new(b",").collect::<Vec<_>>(), vec![0]);
        // Both ways of finding a block's separators agree.
        for block in text.windows(BLOCK).chain([[b',' | 0x80; BLOCK].as_slice()]) {
            let block: &[u8; BLOCK] = block.try_into().unwrap();
            assert_eq!(mask(block), portable_mask(block));
        }
        // Bytes with the top bit set (UTF-8) are no separators.
        assert_eq!(
            Separators::new("é,ü\n".as_bytes()).collect::<Vec<_>>(),
            vec![2, 5]
        );
    }
}
