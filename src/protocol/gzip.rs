//! gzip (RFC 1952) into a reused buffer: our one-shot raw deflate
//! (`deflate.rs`) between a 10-byte header and an 8-byte trailer (CRC32
//! from crc32fast, size).

use super::deflate::Deflater;

/// Keeps the encoder's state (54 KiB: a hash table, a block of tokens,
/// codes and Huffman scratch) for the agent's life, so compressing
/// allocates nothing. Boxed: its 6 KiB held inline would otherwise ride in
/// every stack frame that holds the collectors by value (and stack pages,
/// once touched, stay resident).
#[derive(Default)]
pub struct Gzip {
    deflate: Box<Deflater>,
}

impl Gzip {
    /// Compresses `input` into `out` (cleared first) as one gzip member.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
        self.deflate.compress(input, out);
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
        for input in [
            Vec::new(),
            b"hello".to_vec(),
            (0..200_000u32)
                .flat_map(|i| (i % 251).to_le_bytes())
                .collect(),
        ] {
            g.compress(&input, &mut out);
            assert_eq!(&out[..2], &[0x1f, 0x8b]);
            let mut d = flate2::read::GzDecoder::new(&out[..]);
            let mut back = Vec::new();
            d.read_to_end(&mut back).unwrap();
            assert_eq!(back, input);
        }
    }
}
