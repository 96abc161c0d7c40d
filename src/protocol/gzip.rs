//! gzip (RFC 1952) into a reused buffer: miniz_oxide's raw deflate with an
//! 10-byte header and an 8-byte trailer (CRC32 from crc32fast, size).

use miniz_oxide::deflate::core::{compress, CompressorOxide, TDEFLFlush, TDEFLStatus};

/// Compression level: 1 is the fastest; process frames shrink ~4x at 1
/// and barely more at 6, for 2-3x the CPU.
pub const LEVEL: u8 = 1;

/// Keeps the compressor's state (~300 KiB of tables) for the agent's life.
#[derive(Default)]
pub struct Gzip {
    comp: Box<CompressorOxide>,
}

impl Gzip {
    /// Compresses `input` into `out` (cleared first) as one gzip member.
    /// False (and `out` unspecified) if the compressor failed: send raw.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        out.clear();
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        self.comp.reset();
        self.comp
            .set_format_and_level(miniz_oxide::DataFormat::Raw, LEVEL);
        let mut in_pos = 0;
        let start = out.len();
        out.resize(start + input.len() / 2 + 64, 0);
        let mut out_pos = start;
        loop {
            let (status, read, written) = compress(
                &mut self.comp,
                input.get(in_pos..).unwrap_or_default(),
                out.get_mut(out_pos..).unwrap_or_default(),
                TDEFLFlush::Finish,
            );
            in_pos += read;
            out_pos += written;
            match status {
                TDEFLStatus::Done => break,
                TDEFLStatus::Okay => {
                    let len = out.len();
                    out.resize(len * 2, 0);
                }
                _ => return false,
            }
        }
        out.truncate(out_pos);
        let crc = crc32fast::hash(input);
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(&(input.len() as u32).to_le_bytes());
        true
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
        for input in [
            Vec::new(),
            b"hello".to_vec(),
            (0..200_000u32)
                .flat_map(|i| (i % 251).to_le_bytes())
                .collect(),
        ] {
            assert!(g.compress(&input, &mut out));
            assert_eq!(&out[..2], &[0x1f, 0x8b]);
            let mut d = flate2::read::GzDecoder::new(&out[..]);
            let mut back = Vec::new();
            d.read_to_end(&mut back).unwrap();
            assert_eq!(back, input);
        }
    }
}
