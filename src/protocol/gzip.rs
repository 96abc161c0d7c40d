//! gzip (RFC 1952) into a reused buffer: miniz_oxide's raw deflate at
//! level 1 (fast) between a 10-byte header and an 8-byte trailer (CRC32
//! from crc32fast, size).

use miniz_oxide::deflate::core::{
    compress, create_comp_flags_from_zip_params, CompressorOxide, TDEFLFlush, TDEFLStatus,
};

/// The gzip header: magic, CM = deflate, no flags, no mtime, XFL 0, OS Unix.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3];
/// Level 1: greedy, one probe. What we compress (a process frame, a
/// `/metrics` body) is sent at once; the speed matters more than the last
/// few percent of size.
const LEVEL: i32 = 1;
/// Negative window bits: raw deflate, no zlib header or Adler-32 (gzip has
/// its own header and CRC32).
const RAW_WINDOW_BITS: i32 = -15;
/// Room for the deflate stream before the first call: most frames shrink to
/// well under half; a larger one grows the buffer once, and the buffer
/// keeps that capacity for later calls.
fn first_guess(input: usize) -> usize {
    input / 2 + 64
}

/// Keeps one miniz_oxide compressor (its dictionary, hash chains and
/// Huffman tables, ~300 KiB on the heap) for the agent's life, reset per
/// call, so compressing allocates nothing. Boxed: the compressor holds its
/// LZ code buffer inline, which would otherwise ride in every stack frame
/// that holds the collectors by value (and stack pages, once touched, stay
/// resident).
pub struct Gzip {
    comp: Box<CompressorOxide>,
}

impl Default for Gzip {
    fn default() -> Self {
        let flags = create_comp_flags_from_zip_params(LEVEL, RAW_WINDOW_BITS, 0);
        Self {
            comp: Box::new(CompressorOxide::new(flags)),
        }
    }
}

impl Gzip {
    /// Compresses `input` into `out` (cleared first) as one gzip member.
    /// The deflate stream is written straight into `out`'s memory: `out` is
    /// grown (zero-filled, within its capacity once warm) and truncated to
    /// what was written, so a steady-state call allocates nothing.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&HEADER);
        self.comp.reset();
        let want = HEADER.len() + first_guess(input.len());
        out.resize(want.max(out.capacity()), 0);
        let (mut read, mut written) = (0, HEADER.len());
        // Both slices are in range (compress reports no more than it was
        // given); the `while let` is for the lint, not a stop.
        while let (Some(src), Some(dst)) = (input.get(read..), out.get_mut(written..)) {
            let (status, r, w) = compress(&mut self.comp, src, dst, TDEFLFlush::Finish);
            read += r;
            written += w;
            match status {
                TDEFLStatus::Done => break,
                // Okay with Finish: the output is full; give it more room.
                TDEFLStatus::Okay => {
                    let len = out.len();
                    out.resize(len.saturating_mul(2), 0);
                }
                // BadParam (a finished stream not reset, or a bad flush) and
                // PutBufFailed (a callback's refusal) cannot happen here.
                TDEFLStatus::BadParam | TDEFLStatus::PutBufFailed => {
                    log::error!("gzip: miniz_oxide says {status:?}");
                    break;
                }
            }
        }
        out.truncate(written);
        let crc = crc32fast::hash(input);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn flate2_reads_it_back() {
        let mut g = Gzip::default();
        let mut out = Vec::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        // Incompressible: the output outgrows the first guess.
        let noise: Vec<u8> = (0..100_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        for input in [
            Vec::new(),
            b"hello".to_vec(),
            (0..200_000u32)
                .flat_map(|i| (i % 251).to_le_bytes())
                .collect(),
            noise,
            b"hello".to_vec(),
        ] {
            g.compress(&input, &mut out);
            assert_eq!(&out[..2], &[0x1f, 0x8b]);
            let mut d = flate2::read::GzDecoder::new(&out[..]);
            let mut back = Vec::new();
            d.read_to_end(&mut back).unwrap();
            assert_eq!(back, input);
        }
    }

    #[test]
    fn a_warm_buffer_is_reused() {
        let mut g = Gzip::default();
        let mut out = Vec::new();
        let input: Vec<u8> = (0..50_000u32)
            .flat_map(|i| (i % 97).to_le_bytes())
            .collect();
        g.compress(&input, &mut out);
        let (ptr, first) = (out.as_ptr(), out.clone());
        g.compress(&input, &mut out);
        assert_eq!(out.as_ptr(), ptr);
        assert_eq!(out, first, "reset() leaves nothing of the last call");
    }
}
