//! Raw deflate (RFC 1951) in one shot, for inputs wholly in memory (process
//! frames, Prometheus bodies: a few KB to ~100 KB).
//!
//! The input itself is the LZ77 window, so nothing is copied into a
//! dictionary and there are no hash chains: what is kept between calls is
//! one hash table of 16-bit positions (16 KiB) and one block's tokens
//! (32 KiB) on the heap, and 6 KiB of counts, codes and Huffman scratch in
//! the struct (54 KiB in all, against miniz_oxide's ~300 KiB), reused by
//! every call, so compressing allocates nothing.
//!
//! - LZ77: greedy, one probe. The next 4 bytes are hashed (multiplicative)
//!   into the table, which holds the last position seen with that hash; a
//!   match needs those 4 bytes equal and a distance ≤ 32 KiB, and extends
//!   to 258 bytes. Positions inside a match are not hashed, except its last
//!   two.
//! - Blocks of at most `BLOCK_TOKENS` tokens, each written in whichever is
//!   smallest of dynamic Huffman (codes limited to 15 bits, code lengths to
//!   7), the fixed code, or stored: all three are costed exactly from the
//!   block's symbol counts before anything is written.
//!
//! Against miniz_oxide at level 1 (the agent's compressor before): about
//! as fast; on process frames within 3% on the smallest and up to 10%
//! smaller on large ones (see benches/README.md and the tests).
//!
//! Every table access is a checked `get` (the crate denies indexing outside
//! tests); the indexes are in range by construction, so the checks are
//! never taken, and the optimiser removes most of them.

/// How far back a match may reach.
const WINDOW: usize = 32 * 1024;
/// Shortest match: the hashed bytes.
const MIN_MATCH: usize = 4;
const MAX_MATCH: usize = 258;
/// The hash table's size for large inputs; smaller inputs use (and clear)
/// only the first `input.len().next_power_of_two()` entries.
const HASH_BITS: u32 = 13;
const MIN_HASH_BITS: u32 = 9;
/// Tokens per block: one block covers 8 K tokens, i.e. 16-60 KB of a
/// process frame.
const BLOCK_TOKENS: usize = 8192;
/// Literal/length symbols: 286 used, 288 in the fixed code.
const LIT_SYMS: usize = 288;
const DIST_SYMS: usize = 30;
/// Code-length symbols (0-15, 16 = repeat previous, 17/18 = zeros).
const CL_SYMS: usize = 19;
const END_OF_BLOCK: usize = 256;
const MAX_CODE_LEN: usize = 15;
const MAX_CL_LEN: usize = 7;
/// The order in which the code-length code's lengths are sent.
const CL_ORDER: [u8; CL_SYMS] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];
/// Length symbol 257 + i: its first length and extra bits.
const LEN_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
const LEN_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Distance symbol i: its first distance and extra bits.
const DIST_BASE: [u16; DIST_SYMS] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
const DIST_EXTRA: [u8; DIST_SYMS] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];

/// A one-shot raw deflate encoder; keep one and reuse it.
pub struct Deflater {
    /// Hash of 4 bytes → the low 16 bits of the last position with it.
    /// Entries may be stale or alias an older position: a candidate is
    /// always checked (distance in the window, bytes equal), so a wrong
    /// guess costs a missed match, never a wrong one.
    head: Vec<u16>,
    /// The current block: a literal is its byte; a match is
    /// `1 << 31 | dist symbol << 23 | dist extra << 10 | length symbol
    /// (minus 257) << 5 | length extra`, so that writing the block does not
    /// work the symbols out again.
    tokens: Vec<u32>,
    lit_freq: [u32; LIT_SYMS],
    dist_freq: [u32; DIST_SYMS],
    lit_len: [u8; LIT_SYMS],
    dist_len: [u8; DIST_SYMS],
    lit_code: [u16; LIT_SYMS],
    dist_code: [u16; DIST_SYMS],
    tree: Tree,
}

impl Default for Deflater {
    fn default() -> Self {
        Deflater {
            head: vec![0; 1 << HASH_BITS],
            // A block ends once it holds `BLOCK_TOKENS`, but the input's
            // last 3 bytes (too few to hash) are pushed without a check.
            tokens: Vec::with_capacity(BLOCK_TOKENS + MIN_MATCH),
            lit_freq: [0; LIT_SYMS],
            dist_freq: [0; DIST_SYMS],
            lit_len: [0; LIT_SYMS],
            dist_len: [0; DIST_SYMS],
            lit_code: [0; LIT_SYMS],
            dist_code: [0; DIST_SYMS],
            tree: Tree::new(),
        }
    }
}

impl Deflater {
    /// Bytes kept on the heap between calls (the struct itself is
    /// `size_of::<Deflater>()` more).
    pub fn heap_bytes(&self) -> usize {
        self.head.capacity() * 2 + self.tokens.capacity() * 4
    }

    /// Appends one complete raw deflate stream (its last block marked
    /// final) for `input` to `out`.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) {
        let mut w = Bits { out, acc: 0, n: 0 };
        self.start_block();
        let bits = hash_bits(input.len());
        let mut head = std::mem::take(&mut self.head);
        let table = head.get_mut(..1 << bits).unwrap_or_default();
        table.fill(0);
        let n = input.len();
        // Positions where 4 bytes can be read.
        let scan_end = n.saturating_sub(MIN_MATCH - 1);
        let mut block_start = 0;
        let mut i = 0;
        while i < scan_end {
            let cur = read4(input, i);
            let slot = table.get_mut(hash(cur, bits));
            let seen = slot.map_or(0, |s| std::mem::replace(s, i as u16));
            let dist = usize::from((i as u16).wrapping_sub(seen));
            if dist.wrapping_sub(1) < WINDOW && dist <= i && read4(input, i - dist) == cur {
                let max = MAX_MATCH.min(n - i);
                let len =
                    MIN_MATCH + common(input, i + MIN_MATCH, i - dist + MIN_MATCH, max - MIN_MATCH);
                self.push_match(len, dist);
                // The match's last two positions, so that what follows
                // a repeat can find it again.
                for p in (i + len).saturating_sub(2).max(i + 1)..(i + len).min(scan_end) {
                    if let Some(s) = table.get_mut(hash(read4(input, p), bits)) {
                        *s = p as u16;
                    }
                }
                i += len;
            } else {
                self.push_literal(cur as u8);
                i += 1;
            }
            if self.tokens.len() >= BLOCK_TOKENS {
                self.end_block(input.get(block_start..i).unwrap_or_default(), false, &mut w);
                self.start_block();
                block_start = i;
            }
        }
        for &b in input.get(i..).unwrap_or_default() {
            self.push_literal(b);
        }
        self.end_block(input.get(block_start..).unwrap_or_default(), true, &mut w);
        w.finish();
        self.head = head;
    }

    fn start_block(&mut self) {
        self.tokens.clear();
        self.lit_freq.fill(0);
        self.dist_freq.fill(0);
    }

    #[inline(always)]
    fn push_literal(&mut self, b: u8) {
        self.tokens.push(u32::from(b));
        if let Some(f) = self.lit_freq.get_mut(usize::from(b)) {
            *f += 1;
        }
    }

    #[inline(always)]
    fn push_match(&mut self, len: usize, dist: usize) {
        let ls = len_sym(len);
        let ds = dist_sym(dist);
        let le = len as u32 - u32::from(at(&LEN_BASE, ls));
        let de = dist as u32 - u32::from(at(&DIST_BASE, ds));
        self.tokens
            .push(1 << 31 | (ds as u32) << 23 | de << 10 | (ls as u32) << 5 | le);
        if let Some(f) = self.lit_freq.get_mut(257 + ls) {
            *f += 1;
        }
        if let Some(f) = self.dist_freq.get_mut(ds) {
            *f += 1;
        }
    }

    /// Writes the block whose tokens are kept and whose bytes are `data`,
    /// in the smallest of the three forms.
    fn end_block(&mut self, data: &[u8], last: bool, w: &mut Bits) {
        if let Some(f) = self.lit_freq.get_mut(END_OF_BLOCK) {
            *f = 1;
        }
        // Extra bits are the same with either Huffman code.
        let mut extra: u64 = 0;
        for (f, e) in self.lit_freq.iter().skip(257).zip(LEN_EXTRA) {
            extra += u64::from(*f) * u64::from(e);
        }
        for (f, e) in self.dist_freq.iter().zip(DIST_EXTRA) {
            extra += u64::from(*f) * u64::from(e);
        }

        // Dynamic: the two codes, then the code-length sequence, run-length
        // coded, and its own code.
        huffman_lengths(
            &mut self.tree,
            &self.lit_freq,
            &mut self.lit_len,
            MAX_CODE_LEN,
        );
        huffman_lengths(
            &mut self.tree,
            &self.dist_freq,
            &mut self.dist_len,
            MAX_CODE_LEN,
        );
        let hlit = 257.max(last_nonzero(&self.lit_len));
        let hdist = 1.max(last_nonzero(&self.dist_len));
        let mut seq = [0u8; LIT_SYMS + DIST_SYMS];
        for (s, &l) in seq.iter_mut().zip(
            self.lit_len
                .iter()
                .take(hlit)
                .chain(self.dist_len.iter().take(hdist)),
        ) {
            *s = l;
        }
        let mut rle = [0u16; LIT_SYMS + DIST_SYMS];
        let mut cl_freq = [0u32; CL_SYMS];
        let nrle = run_lengths(
            seq.get(..hlit + hdist).unwrap_or_default(),
            &mut rle,
            &mut cl_freq,
        );
        let rle = rle.get(..nrle).unwrap_or_default();
        let mut cl_len = [0u8; CL_SYMS];
        huffman_lengths(&mut self.tree, &cl_freq, &mut cl_len, MAX_CL_LEN);
        let hclen = 4.max(
            CL_ORDER
                .iter()
                .rposition(|&s| at(&cl_len, usize::from(s)) != 0)
                .map_or(0, |p| p + 1),
        );
        let mut dynamic = 3 + 5 + 5 + 4 + 3 * hclen as u64 + extra;
        for (f, l) in cl_freq.iter().zip(cl_len) {
            dynamic += u64::from(*f) * u64::from(l);
        }
        dynamic += 2 * u64::from(at(&cl_freq, 16))
            + 3 * u64::from(at(&cl_freq, 17))
            + 7 * u64::from(at(&cl_freq, 18));
        let mut fixed = 3 + extra;
        for (s, (f, l)) in self.lit_freq.iter().zip(self.lit_len).enumerate() {
            dynamic += u64::from(*f) * u64::from(l);
            fixed += u64::from(*f) * u64::from(fixed_lit_len(s));
        }
        for (f, l) in self.dist_freq.iter().zip(self.dist_len) {
            dynamic += u64::from(*f) * u64::from(l);
            fixed += u64::from(*f) * 5;
        }
        let chunks = data.len().div_ceil(0xffff).max(1) as u64;
        // Per chunk: 3 header bits, padding to a byte (the first chunk's
        // depends on where we are), LEN and NLEN.
        let stored = 8 * data.len() as u64 + chunks * (3 + 32) + (chunks - 1) * 5 + {
            let pad = (8 - (w.n + 3) % 8) % 8;
            u64::from(pad)
        };
        let valid = kraft_complete(&self.lit_len, MAX_CODE_LEN)
            && kraft_complete(&self.dist_len, MAX_CODE_LEN)
            && kraft_complete(&cl_len, MAX_CL_LEN);

        if stored < fixed.min(if valid { dynamic } else { u64::MAX }) {
            write_stored(data, last, w);
            return;
        }
        if valid && dynamic < fixed {
            w.put(u32::from(last) | 2 << 1, 3);
            w.put((hlit - 257) as u32, 5);
            w.put((hdist - 1) as u32, 5);
            w.put((hclen - 4) as u32, 4);
            for &s in CL_ORDER.iter().take(hclen) {
                w.put(u32::from(at(&cl_len, usize::from(s))), 3);
            }
            let mut cl_code = [0u16; CL_SYMS];
            canonical_codes(&cl_len, &mut cl_code);
            for &r in rle {
                let s = usize::from(r & 31);
                w.put(u32::from(at(&cl_code, s)), u32::from(at(&cl_len, s)));
                match s {
                    16 => w.put(u32::from(r >> 5), 2),
                    17 => w.put(u32::from(r >> 5), 3),
                    18 => w.put(u32::from(r >> 5), 7),
                    _ => {}
                }
            }
        } else {
            w.put(u32::from(last) | 1 << 1, 3);
            for (s, l) in self.lit_len.iter_mut().enumerate() {
                *l = fixed_lit_len(s);
            }
            self.dist_len.fill(5);
        }
        canonical_codes(&self.lit_len, &mut self.lit_code);
        canonical_codes(&self.dist_len, &mut self.dist_code);
        self.write_tokens(w);
    }

    fn write_tokens(&self, w: &mut Bits) {
        for &t in &self.tokens {
            if t >> 31 == 0 {
                let s = (t & 0xff) as usize;
                w.put(
                    u32::from(at(&self.lit_code, s)),
                    u32::from(at(&self.lit_len, s)),
                );
            } else {
                let ls = ((t >> 5) & 31) as usize;
                let s = 257 + ls;
                let n = u32::from(at(&self.lit_len, s));
                w.put(
                    u32::from(at(&self.lit_code, s)) | (t & 31) << n,
                    n + u32::from(at(&LEN_EXTRA, ls)),
                );
                let ds = ((t >> 23) & 31) as usize;
                let n = u32::from(at(&self.dist_len, ds));
                w.put(
                    u32::from(at(&self.dist_code, ds)) | ((t >> 10) & 0x1fff) << n,
                    n + u32::from(at(&DIST_EXTRA, ds)),
                );
            }
        }
        w.put(
            u32::from(at(&self.lit_code, END_OF_BLOCK)),
            u32::from(at(&self.lit_len, END_OF_BLOCK)),
        );
    }
}

/// Stored blocks of at most 65535 bytes each; `last` marks the final one.
fn write_stored(data: &[u8], last: bool, w: &mut Bits) {
    let n = data.len().div_ceil(0xffff).max(1);
    let mut chunks = data.chunks(0xffff);
    for k in 0..n {
        let chunk = chunks.next().unwrap_or_default();
        w.put(u32::from(last && k + 1 == n), 3);
        w.align();
        let len = chunk.len() as u16;
        w.out.extend_from_slice(&len.to_le_bytes());
        w.out.extend_from_slice(&(!len).to_le_bytes());
        w.out.extend_from_slice(chunk);
    }
}

/// Bits into bytes, least significant first.
struct Bits<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    /// Bits held in `acc`; always < 32 between calls.
    n: u32,
}

impl Bits<'_> {
    /// Appends the low `n` bits of `bits` (n ≤ 32; no bits above them set).
    #[inline(always)]
    fn put(&mut self, bits: u32, n: u32) {
        self.acc |= u64::from(bits) << self.n;
        self.n += n;
        if self.n >= 32 {
            self.out.extend_from_slice(&(self.acc as u32).to_le_bytes());
            self.acc >>= 32;
            self.n -= 32;
        }
    }

    /// Writes out the held bits, padding the last byte with zeros.
    fn align(&mut self) {
        let bytes = self.n.div_ceil(8) as usize;
        self.out
            .extend_from_slice(self.acc.to_le_bytes().get(..bytes).unwrap_or_default());
        self.acc = 0;
        self.n = 0;
    }

    fn finish(&mut self) {
        self.align();
    }
}

/// `table`'s size in bits for an input of `n` bytes.
fn hash_bits(n: usize) -> u32 {
    n.next_power_of_two()
        .trailing_zeros()
        .clamp(MIN_HASH_BITS, HASH_BITS)
}

#[inline(always)]
fn hash(four: u32, bits: u32) -> usize {
    (four.wrapping_mul(0x9e37_79b1) >> (32 - bits)) as usize
}

#[inline(always)]
fn read4(d: &[u8], i: usize) -> u32 {
    match d.get(i..i + 4) {
        Some(&[a, b, c, e]) => u32::from_le_bytes([a, b, c, e]),
        _ => 0,
    }
}

#[inline(always)]
fn read8(d: &[u8], i: usize) -> u64 {
    match d.get(i..i + 8) {
        Some(&[a, b, c, e, f, g, h, k]) => u64::from_le_bytes([a, b, c, e, f, g, h, k]),
        _ => 0,
    }
}

/// How many bytes from `a` equal those from `b` (b < a), up to `max`;
/// `a + max` must be within `d`.
#[inline(always)]
fn common(d: &[u8], a: usize, b: usize, max: usize) -> usize {
    let mut k = 0;
    while k + 8 <= max {
        let x = read8(d, a + k) ^ read8(d, b + k);
        if x != 0 {
            return k + (x.trailing_zeros() / 8) as usize;
        }
        k += 8;
    }
    while k < max && d.get(a + k) == d.get(b + k) {
        k += 1;
    }
    k
}

#[inline(always)]
fn at<T: Copy + Default>(s: &[T], i: usize) -> T {
    s.get(i).copied().unwrap_or_default()
}

/// Length 3..=258 → its symbol minus 257.
#[inline(always)]
fn len_sym(len: usize) -> usize {
    let l = len.wrapping_sub(3) & 0xff;
    if l < 8 {
        l
    } else if l == 255 {
        28
    } else {
        let top = (usize::BITS - 1 - l.leading_zeros()) as usize;
        4 * (top - 1) + ((l >> (top - 2)) & 3)
    }
}

/// Distance 1..=32768 → its symbol.
#[inline(always)]
fn dist_sym(dist: usize) -> usize {
    let d = dist.wrapping_sub(1) & 0x7fff;
    if d < 4 {
        d
    } else {
        let top = (usize::BITS - 1 - d.leading_zeros()) as usize;
        2 * top + ((d >> (top - 1)) & 1)
    }
}

fn fixed_lit_len(s: usize) -> u8 {
    match s {
        0..=143 => 8,
        144..=255 => 9,
        256..=279 => 7,
        _ => 8,
    }
}

/// One past the last nonzero entry.
fn last_nonzero(lens: &[u8]) -> usize {
    lens.iter().rposition(|&l| l != 0).map_or(0, |p| p + 1)
}

/// Whether the lengths are at most `max` and form a complete prefix code
/// (Kraft sum exactly 1), which every inflater accepts.
fn kraft_complete(lens: &[u8], max: usize) -> bool {
    let mut sum = 0u64;
    for &l in lens {
        let l = usize::from(l);
        if l > max {
            return false;
        }
        if l > 0 {
            sum += 1 << (max - l);
        }
    }
    sum == 1 << max
}

/// Run-length codes the code-length sequence (RFC 1951 3.2.7) into `out`
/// as `symbol | repeat << 5`, counting symbols; returns how many.
fn run_lengths(seq: &[u8], out: &mut [u16], freq: &mut [u32; CL_SYMS]) -> usize {
    let mut o = 0;
    let mut emit = |sym: u16, rep: usize| {
        if let Some(slot) = out.get_mut(o) {
            *slot = sym | (rep as u16) << 5;
            o += 1;
        }
        if let Some(f) = freq.get_mut(usize::from(sym)) {
            *f += 1;
        }
    };
    let mut rest = seq;
    while let Some(&l) = rest.first() {
        let mut run = rest.iter().take_while(|&&x| x == l).count();
        rest = rest.get(run..).unwrap_or_default();
        if l == 0 {
            while run >= 11 {
                let k = run.min(138);
                emit(18, k - 11);
                run -= k;
            }
            if run >= 3 {
                emit(17, run - 3);
                run = 0;
            }
        } else {
            emit(u16::from(l), 0);
            run -= 1;
            while run >= 3 {
                let k = run.min(6);
                emit(16, k - 3);
                run -= k;
            }
        }
        for _ in 0..run {
            emit(u16::from(l), 0);
        }
    }
    o
}

/// Huffman code lengths for `freq` (one length per symbol, 0 = unused),
/// none longer than `max`, always a complete code: with fewer than two
/// symbols used, two get length 1.
///
/// The tree is built with two queues over the symbols sorted by
/// frequency (leaves, then internal nodes in the order they are made);
/// over-long codes are then shortened as miniz/zlib do, moving leaves
/// from depth `max` up under shorter leaves until the Kraft sum is 1.
fn huffman_lengths(t: &mut Tree, freq: &[u32], lens: &mut [u8], max: usize) {
    lens.fill(0);
    // Frequency << 9 | symbol: sorting these sorts by frequency.
    let leaves = &mut t.leaves;
    let mut n = 0;
    for (s, &f) in freq.iter().enumerate() {
        if f > 0 {
            if let Some(slot) = leaves.get_mut(n) {
                *slot = (f.min((1 << 23) - 1) << 9) | s as u32;
                n += 1;
            }
        }
    }
    if n < 2 {
        let used = if n == 1 {
            at(leaves, 0) as usize & 511
        } else {
            0
        };
        let other = if used == 0 { 1 } else { 0 };
        for s in [used, other] {
            if let Some(l) = lens.get_mut(s) {
                *l = 1;
            }
        }
        return;
    }
    let leaves = leaves.get_mut(..n).unwrap_or_default();
    leaves.sort_unstable();
    // Internal node k (0..n-1) has weight weight[k]; parent[j] is the
    // internal node above leaf j (j < n) or above internal node j - n.
    let weight = &mut t.weight;
    let parent = &mut t.parent;
    let (mut li, mut ii) = (0, 0);
    for k in 0..n - 1 {
        let mut sum = 0u32;
        for _ in 0..2 {
            let lw = if li < n {
                at(leaves, li) >> 9
            } else {
                u32::MAX
            };
            let iw = if ii < k { at(weight, ii) } else { u32::MAX };
            let child = if lw <= iw {
                sum = sum.saturating_add(lw);
                li += 1;
                li - 1
            } else {
                sum = sum.saturating_add(iw);
                ii += 1;
                n + ii - 1
            };
            if let Some(p) = parent.get_mut(child) {
                *p = k as u16;
            }
        }
        if let Some(w) = weight.get_mut(k) {
            *w = sum;
        }
    }
    // Depths: the root (n - 2) is 0; every parent comes after its child.
    let depth = &mut t.depth;
    if let Some(root) = depth.get_mut(n - 2) {
        *root = 0;
    }
    for k in (0..n - 2).rev() {
        let d = at(depth, usize::from(at(parent, n + k))) + 1;
        if let Some(slot) = depth.get_mut(k) {
            *slot = d;
        }
    }
    let mut count = [0u32; MAX_CODE_LEN + 1];
    for j in 0..n {
        let d = usize::from(at(depth, usize::from(at(parent, j)))) + 1;
        if let Some(c) = count.get_mut(d.min(max)) {
            *c += 1;
        }
    }
    // Leaves deeper than `max` now sit at `max`, oversubscribing the code:
    // each step takes one leaf off depth `max` and splits the deepest
    // shorter leaf into two one level down, lowering the Kraft sum
    // (in units of 2^-max) by exactly 1.
    let mut total: u64 = (1..=max)
        .map(|l| u64::from(at(&count, l)) << (max - l))
        .sum();
    while total > 1 << max {
        if let Some(c) = count.get_mut(max) {
            *c = c.saturating_sub(1);
        }
        for l in (1..max).rev() {
            if at(&count, l) > 0 {
                if let Some(c) = count.get_mut(l) {
                    *c -= 1;
                }
                if let Some(c) = count.get_mut(l + 1) {
                    *c += 2;
                }
                break;
            }
        }
        total -= 1;
    }
    // The rarest symbols get the longest codes.
    let mut sorted = leaves.iter();
    for l in (1..=max).rev() {
        for _ in 0..at(&count, l) {
            if let Some(&k) = sorted.next() {
                if let Some(slot) = lens.get_mut(k as usize & 511) {
                    *slot = l as u8;
                }
            }
        }
    }
}

/// Scratch for `huffman_lengths`, kept so that a block does not zero 4 KiB
/// of stack for each of its codes: every entry is written before it is read.
struct Tree {
    leaves: [u32; LIT_SYMS],
    weight: [u32; LIT_SYMS],
    parent: [u16; 2 * LIT_SYMS],
    depth: [u16; LIT_SYMS],
}

impl Tree {
    const fn new() -> Self {
        Tree {
            leaves: [0; LIT_SYMS],
            weight: [0; LIT_SYMS],
            parent: [0; 2 * LIT_SYMS],
            depth: [0; LIT_SYMS],
        }
    }
}

/// Canonical codes (RFC 1951 3.2.2) for `lens`, bit-reversed: deflate
/// sends a code's most significant bit first into a stream filled from
/// each byte's least significant bit.
fn canonical_codes(lens: &[u8], codes: &mut [u16]) {
    let mut count = [0u16; MAX_CODE_LEN + 2];
    for &l in lens {
        if let Some(c) = count.get_mut(usize::from(l)) {
            *c += 1;
        }
    }
    if let Some(c) = count.get_mut(0) {
        *c = 0;
    }
    let mut next = [0u16; MAX_CODE_LEN + 2];
    let mut code = 0u16;
    for l in 1..=MAX_CODE_LEN {
        code = (code.wrapping_add(at(&count, l - 1))) << 1;
        if let Some(n) = next.get_mut(l) {
            *n = code;
        }
    }
    for (c, &l) in codes.iter_mut().zip(lens) {
        *c = 0;
        if l > 0 {
            if let Some(n) = next.get_mut(usize::from(l)) {
                *c = n.reverse_bits() >> (16 - u32::from(l));
                *n = n.wrapping_add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::processes::ProcRow;
    use std::io::{Read, Write};

    fn deflate(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        Deflater::default().compress(input, &mut out);
        out
    }

    fn inflate(z: &[u8]) -> Vec<u8> {
        let mut back = Vec::new();
        flate2::read::DeflateDecoder::new(z)
            .read_to_end(&mut back)
            .unwrap();
        back
    }

    /// miniz_oxide at level 1 (what the agent used before), raw deflate.
    fn miniz_fast(input: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(input).unwrap();
        e.finish().unwrap()
    }

    fn round_trip(input: &[u8]) -> usize {
        let z = deflate(input);
        assert_eq!(inflate(&z), input, "{} bytes", input.len());
        z.len()
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn bytes(&mut self, n: usize) -> Vec<u8> {
            (0..n).map(|_| self.next() as u8).collect()
        }
    }

    /// A process frame like a busy host's: kernel threads, services,
    /// shells, a few with CPU.
    fn process_frame(n: usize) -> Vec<u8> {
        const NAMES: [&str; 16] = [
            "systemd",
            "kthreadd",
            "rcu_gp",
            "kworker/0:1-events",
            "kworker/u4:2-events_unbound",
            "ksoftirqd/0",
            "migration/1",
            "systemd-journald",
            "systemd-udevd",
            "sshd",
            "bash",
            "cron",
            "dbus-daemon",
            "containerd",
            "python3",
            "node",
        ];
        let mut r = Rng(0x9e37_79b9_7f4a_7c15);
        let mut pid = 1;
        let rows: Vec<ProcRow> = (0..n)
            .map(|k| {
                pid += 1 + (r.next() % 40) as u32;
                let name = NAMES[(r.next() % 16) as usize];
                let kernel = name.starts_with('k') || name.contains('/');
                ProcRow {
                    pid,
                    name: if k % 7 == 0 {
                        format!("{name}-{}", r.next() % 100)
                    } else {
                        name.to_string()
                    },
                    cpu_usage: if r.next() % 8 == 0 {
                        (r.next() % 2000) as f32 / 100.0
                    } else {
                        0.0
                    },
                    mem_bytes: if kernel {
                        0
                    } else {
                        (r.next() % 60_000) * 4096
                    },
                }
            })
            .collect();
        let mut out = Vec::new();
        crate::protocol::pb::encode_processes(&rows, &mut out);
        out
    }

    #[test]
    fn small_inputs() {
        assert_eq!(
            deflate(b""),
            [0x03, 0x00],
            "one final fixed block, end only"
        );
        round_trip(b"");
        round_trip(b"a");
        round_trip(b"ab");
        round_trip(b"abc");
        round_trip(b"abcd");
        round_trip(b"aaaaaaaaa");
        round_trip(&(0..=255).collect::<Vec<u8>>());
        for n in 0..64 {
            round_trip(&Rng(n as u64 + 1).bytes(n));
            round_trip(&vec![7u8; n]);
            round_trip(&b"abcabcabcabc".repeat(n));
        }
    }

    #[test]
    fn long_runs() {
        // Distance 1, length 258 over and over.
        let z = round_trip(&vec![0u8; 100_000]);
        assert!(z < 1000, "{z}");
        round_trip(&vec![0xffu8; 258 * 5 + 3]);
        let mut v = vec![1u8; 70_000];
        v.extend(vec![2u8; 70_000]);
        round_trip(&v);
    }

    #[test]
    fn incompressible_is_stored() {
        let input = Rng(42).bytes(100_000);
        let z = round_trip(&input);
        // Two stored blocks' headers per 8 K tokens at most.
        assert!(z <= input.len() + 13 * 5 + 8, "{z}");
    }

    #[test]
    fn text() {
        let text = include_bytes!("../../README.md");
        let z = round_trip(text);
        assert!(z < text.len() / 2, "{z}");
        let three = text.repeat(3);
        let z = round_trip(&three);
        let miniz = miniz_fast(&three).len();
        assert!(z < miniz, "{z} vs {miniz}");
    }

    #[test]
    fn process_frames_as_small_as_miniz_level_1() {
        for rows in [30, 100, 400, 1000, 3000] {
            let frame = process_frame(rows);
            let ours = round_trip(&frame);
            let miniz = miniz_fast(&frame).len();
            eprintln!(
                "{rows} rows: {} bytes, ours {ours}, miniz level 1 {miniz}",
                frame.len()
            );
            assert!(ours * 10 <= miniz * 11, "{ours} vs {miniz}");
        }
    }

    #[test]
    fn fixture_process_frame() {
        // Rows from a captured /proc: the real names and sizes.
        let root = crate::collect::fs::Root::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/prometheus-procfs"
        ));
        let mut s = crate::collect::processes::ProcScanner::new(64, 4096);
        s.scan(&root, 100).unwrap();
        assert!(!s.rows.is_empty());
        let mut frame = Vec::new();
        crate::protocol::pb::encode_processes(&s.rows, &mut frame);
        round_trip(&frame);
    }

    #[test]
    fn never_reaches_past_the_window() {
        let mut r = Rng(7);
        // Exactly 32 KiB back: the farthest distance there is.
        let a = r.bytes(WINDOW);
        let z = round_trip(&[a.as_slice(), &a].concat());
        assert!(z < WINDOW + WINDOW / 8, "{z}");
        // 32 KiB + 1 back and farther: must not match.
        let b = r.bytes(WINDOW + 1);
        round_trip(&[b.as_slice(), &b[..1], &b].concat());
        let c = r.bytes(40_000);
        let z = round_trip(&[c.as_slice(), &r.bytes(30_000), &c].concat());
        assert!(z > 100_000, "{z}");
        // Past 64 KiB the 16-bit positions alias: still only real matches.
        let d = r.bytes(1000);
        let mut v = Vec::new();
        for k in 0..300 {
            v.extend_from_slice(&d);
            v.extend_from_slice(&r.bytes(k));
        }
        round_trip(&v);
    }

    #[test]
    fn many_blocks_reuse_one_deflater() {
        let mut d = Deflater::default();
        let mut r = Rng(3);
        // Words from a small vocabulary: > 8 K tokens, several blocks.
        let words: Vec<Vec<u8>> = (0..500).map(|k| r.bytes(2 + k % 9)).collect();
        let mut input = Vec::new();
        while input.len() < 300_000 {
            input.extend_from_slice(&words[(r.next() % 500) as usize]);
        }
        let inputs = [
            input.clone(),
            Vec::new(),
            process_frame(2000),
            r.bytes(70_000),
            input,
        ];
        let mut out = vec![0xaa];
        for input in &inputs {
            out.truncate(1);
            d.compress(input, &mut out);
            assert_eq!(out[0], 0xaa, "appends");
            assert_eq!(&inflate(&out[1..]), input);
        }
        let mut again = vec![0xaa];
        d.compress(&inputs[4], &mut again);
        assert_eq!(again, out, "a call does not depend on the ones before");
    }

    #[test]
    fn kept_memory_is_fixed_and_small() {
        let mut d = Deflater::default();
        let kept = d.heap_bytes();
        let mut r = Rng(5);
        let mut out = Vec::new();
        // Block boundaries falling on the last bytes, which are pushed
        // without a check.
        for n in BLOCK_TOKENS - 2..=BLOCK_TOKENS + 4 {
            for input in [r.bytes(n), r.bytes(n + BLOCK_TOKENS)] {
                out.clear();
                d.compress(&input, &mut out);
                assert_eq!(inflate(&out), input);
                assert_eq!(d.heap_bytes(), kept);
            }
        }
        for input in [process_frame(3000), vec![0; 1 << 20], r.bytes(300_000)] {
            out.clear();
            d.compress(&input, &mut out);
            assert_eq!(d.heap_bytes(), kept);
        }
        let all = std::mem::size_of::<Deflater>() + kept;
        eprintln!(
            "Deflater: {} bytes + {kept} on the heap",
            std::mem::size_of::<Deflater>()
        );
        assert!(all <= 56 * 1024, "{all}");
    }

    #[test]
    fn length_and_distance_symbols() {
        for len in 3..=258 {
            let s = len_sym(len);
            let base = usize::from(LEN_BASE[s]);
            assert!(base <= len && len < base + (1 << LEN_EXTRA[s]), "{len}");
            if len < 258 {
                assert_ne!(s, 28);
            }
        }
        for dist in 1..=WINDOW {
            let s = dist_sym(dist);
            let base = usize::from(DIST_BASE[s]);
            assert!(base <= dist && dist < base + (1 << DIST_EXTRA[s]), "{dist}");
        }
    }

    fn kraft(lens: &[u8], max: usize) -> u64 {
        lens.iter()
            .filter(|&&l| l > 0)
            .map(|&l| 1u64 << (max - usize::from(l)))
            .sum()
    }

    #[test]
    fn code_lengths_limited_and_complete() {
        let mut fib = vec![1u32, 1];
        while fib.len() < 286 {
            let n = fib.len();
            fib.push(fib[n - 1].saturating_add(fib[n - 2]).min(1 << 22));
        }
        let mut lens = [0u8; LIT_SYMS];
        huffman_lengths(&mut Tree::new(), &fib, &mut lens[..286], MAX_CODE_LEN);
        assert!(lens[..286].iter().all(|&l| (1..=15).contains(&l)));
        assert_eq!(kraft(&lens, 15), 1 << 15);
        // The rarer a symbol, the longer (or equal) its code.
        assert!(lens[..286].windows(2).all(|w| w[0] >= w[1]));
        // Unlimited, the same counts would need codes of 30+ bits.
        let mut cl = [0u8; CL_SYMS];
        huffman_lengths(&mut Tree::new(), &fib[..CL_SYMS], &mut cl, MAX_CL_LEN);
        assert!(cl.iter().all(|&l| (1..=7).contains(&l)));
        assert_eq!(kraft(&cl, 7), 1 << 7);
        // Random counts, and one or no symbol used, on one kept Tree.
        let mut tree = Tree::new();
        let mut r = Rng(11);
        for _ in 0..2000 {
            let n = 1 + (r.next() % 286) as usize;
            let freq: Vec<u32> = (0..n)
                .map(|_| match r.next() % 4 {
                    0 => 0,
                    1 => 1,
                    2 => (r.next() % 100) as u32,
                    _ => (r.next() % (1 << (r.next() % 23))) as u32,
                })
                .collect();
            let mut lens = vec![0u8; n.max(2)];
            huffman_lengths(&mut tree, &freq, &mut lens, MAX_CODE_LEN);
            assert!(kraft_complete(&lens, MAX_CODE_LEN), "{freq:?} → {lens:?}");
            if freq.iter().filter(|&&f| f > 0).count() >= 2 {
                for (f, l) in freq.iter().zip(&lens) {
                    assert_eq!(*f > 0, *l > 0);
                }
            } else {
                assert_eq!(lens.iter().filter(|&&l| l == 1).count(), 2);
                assert!(freq.iter().zip(&lens).all(|(&f, &l)| f == 0 || l == 1));
            }
        }
        let mut two = [0u8; 30];
        huffman_lengths(&mut tree, &[0; 30], &mut two, MAX_CODE_LEN);
        assert_eq!(kraft(&two, 15), 1 << 15);
        huffman_lengths(&mut tree, &[0, 0, 5], &mut two[..3], MAX_CODE_LEN);
        assert_eq!(two[..3], [1, 0, 1]);
    }
}
