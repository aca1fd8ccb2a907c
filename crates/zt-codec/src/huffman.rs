//! Canonical Huffman over bytes: code lengths limited to [`MAX_LEN`] bits, four bitstreams
//! decoded side by side, and a decode table that yields up to four symbols per lookup.
//!
//! Why a second entropy coder next to rANS: on the CPUs this codec runs on, a vectorised
//! rANS step is bound by the gathered table lookup (about 10 cycles per 8 lanes on AMD Zen 3),
//! which holds an order-0 rANS decoder near 1.25 G symbols/s per core. A Huffman decoder reads
//! one table entry per up to four symbols: single-thread, bf16 exponents (2.55 bits a symbol)
//! decode at ~3.4 G symbols/s, fp16 high bytes (5.5 bits) at ~1.5 G/s and, less their sign
//! bit (SIGN_PLANES, 4.5 bits), at ~1.9 G/s, while INT8 palette indices (6.6 bits, mostly
//! one symbol a lookup) drop to ~0.95 G/s (`--example rans_speed`).
//! The price is Huffman's rounding of probabilities to powers of two: about 1.8% of an
//! exponent stream's size (0.45% of a bf16 tensor), 0.5% of an fp16 high-byte stream. So the
//! entropy stage takes Huffman only for streams of at most 6 bits a symbol whose loss stays
//! under the effort's bound (see `stream::Policy::huffman_max_loss`), and rANS everywhere else.
//!
//! Stream layout (little-endian):
//!
//! ```text
//! u8 first symbol | u8 last symbol | code lengths of first..=last, 4 bits each, low nibble
//! first (0 = absent) | 3 x u32 byte lengths of bitstreams 0..2 | bitstreams 0..3
//! ```
//!
//! The symbols are split into four segments of `n / 4` symbols (the last takes the remainder),
//! each coded into its own bitstream. Codes are canonical (shorter codes first, then by
//! symbol) and written least-significant bit first, each code bit-reversed, so a decoder can
//! index its table with the low bits of a 64-bit buffer. The lengths must form a complete
//! code with at least two symbols; a bitstream must end within its last byte, padded with
//! zero bits.

use std::cell::RefCell;

use zt_core::Result;

use crate::bytes::{Reader, malformed};
use crate::rans::Histogram;

/// Longest code: the decode table has `2^MAX_LEN` entries of 8 bytes (16 KiB, in L1).
pub const MAX_LEN: u32 = 11;
const TABLE_SIZE: usize = 1 << MAX_LEN;
const INDEX_MASK: u64 = TABLE_SIZE as u64 - 1;
/// Bitstreams per coded stream.
const STREAMS: usize = 4;
/// Bytes of a stream's header besides the lengths: symbol range and three stream lengths.
const FIXED_HEADER: usize = 2 + 4 * (STREAMS - 1);

/// Code lengths (0 for absent symbols) of a Huffman code for `hist`, limited to
/// [`MAX_LEN`] bits. Returns `None` when fewer than two symbols occur.
pub fn code_lengths(hist: &Histogram) -> Option<[u8; 256]> {
    // Present symbols by ascending count (ties by symbol, so the code is deterministic).
    let mut syms: Vec<(u32, u8)> = (0..=255u8)
        .filter(|&s| hist[usize::from(s)] > 0)
        .map(|s| (hist[usize::from(s)], s))
        .collect();
    if syms.len() < 2 {
        return None;
    }
    syms.sort_unstable();
    let n = syms.len();

    // Two-queue Huffman: leaves in `syms` order, internal nodes created in nondecreasing
    // weight. Node ids: leaves 0..n, internal n..2n-1; `parent` per node.
    let mut weight: Vec<u64> = syms.iter().map(|&(c, _)| u64::from(c)).collect();
    weight.resize(2 * n - 1, 0);
    let mut parent = vec![0usize; 2 * n - 1];
    let (mut leaf, mut inner) = (0usize, n);
    for node in n..2 * n - 1 {
        for _ in 0..2 {
            let take_leaf = leaf < n && (inner >= node || weight[leaf] <= weight[inner]);
            let child = if take_leaf {
                leaf += 1;
                leaf - 1
            } else {
                inner += 1;
                inner - 1
            };
            weight[node] += weight[child];
            parent[child] = node;
        }
    }
    // Depths, root first (parents have higher ids).
    let mut depth = vec![0u32; 2 * n - 1];
    for node in (0..2 * n - 2).rev() {
        depth[node] = depth[parent[node]] + 1;
    }

    // Where the optimal code is too long, the optimal code under the limit instead.
    let max = MAX_LEN as usize;
    let lens_sorted: Vec<u8> = if depth[..n].iter().any(|&d| d as usize > max) {
        let weights: Vec<u64> = syms.iter().map(|&(c, _)| u64::from(c)).collect();
        package_merge(&weights, max)
    } else {
        depth[..n].iter().map(|&d| d as u8).collect()
    };

    // The most frequent symbols get the shortest codes.
    let mut sorted = lens_sorted;
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    let mut lens = [0u8; 256];
    for (&(_, s), &l) in syms.iter().zip(&sorted) {
        lens[usize::from(s)] = l;
    }
    Some(lens)
}

/// Optimal code lengths of at most `limit` bits for `weights` (ascending, at least two,
/// `2^limit >= weights.len()`), by package-merge (Larmore and Hirschberg): the lengths of
/// the cheapest 2n-2 items of the top list, where each level's list merges the leaves with
/// the pairs of the level below. Replaced clamping plus a Kraft fix-up (miniz's), which cost
/// fp16 high bytes 0.1% against the optimum.
fn package_merge(weights: &[u64], limit: usize) -> Vec<u8> {
    let n = weights.len();
    debug_assert!(n >= 2 && (limit >= usize::BITS as usize || n <= 1 << limit));
    debug_assert!(weights.windows(2).all(|w| w[0] <= w[1]));
    // Lists from the deepest level up; an item is (weight, is a leaf).
    let mut levels: Vec<Vec<(u64, bool)>> = Vec::with_capacity(limit);
    levels.push(weights.iter().map(|&w| (w, true)).collect());
    for _ in 1..limit {
        let below = levels.last().expect("one level");
        let mut packages = below.chunks_exact(2).map(|p| p[0].0 + p[1].0).peekable();
        let mut list = Vec::with_capacity(n + below.len() / 2);
        let mut leaves = weights.iter().peekable();
        loop {
            // Leaves first on ties: fewer packages keep codes shorter for equal cost.
            match (leaves.peek(), packages.peek()) {
                (Some(&&l), Some(&p)) if l <= p => {
                    list.push((*leaves.next().expect("peeked"), true))
                }
                (_, Some(_)) => list.push((packages.next().expect("peeked"), false)),
                (Some(_), None) => list.push((*leaves.next().expect("peeked"), true)),
                (None, None) => break,
            }
        }
        levels.push(list);
    }
    // Each leaf among the items taken at a level lengthens its code by one; the leaves taken
    // are always the lightest ones. A package taken at one level takes two items below.
    let mut lens = vec![0u8; n];
    let mut take = 2 * n - 2;
    for list in levels.iter().rev() {
        let taken = &list[..take.min(list.len())];
        let leaves = taken.iter().filter(|&&(_, leaf)| leaf).count();
        for l in &mut lens[..leaves] {
            *l += 1;
        }
        take = 2 * (taken.len() - leaves);
        if take == 0 {
            break;
        }
    }
    lens
}

/// Canonical codes for `lens`, bit-reversed for LSB-first output: `code | len << 16`.
fn codes(lens: &[u8; 256]) -> [u32; 256] {
    let mut per_len = [0u32; MAX_LEN as usize + 1];
    for &l in lens {
        per_len[usize::from(l)] += 1;
    }
    per_len[0] = 0;
    let mut next = [0u32; MAX_LEN as usize + 2];
    for l in 1..=MAX_LEN as usize {
        next[l + 1] = (next[l] + per_len[l]) << 1;
    }
    let mut out = [0u32; 256];
    for (s, &l) in lens.iter().enumerate() {
        if l > 0 {
            let l = u32::from(l);
            let code = next[l as usize];
            next[l as usize] += 1;
            out[s] = (code.reverse_bits() >> (32 - l)) | (l << 16);
        }
    }
    out
}

/// The symbol range that the header lists.
fn range(lens: &[u8; 256]) -> (usize, usize) {
    let first = lens.iter().position(|&l| l > 0).unwrap_or(0);
    let last = lens.iter().rposition(|&l| l > 0).unwrap_or(0);
    (first, last)
}

/// Exact size in bytes of [`encode`]'s output for this histogram and these lengths.
pub fn coded_size(hist: &Histogram, lens: &[u8; 256]) -> usize {
    let (first, last) = range(lens);
    let bits: u64 = hist
        .iter()
        .zip(lens)
        .map(|(&c, &l)| u64::from(c) * u64::from(l))
        .sum();
    // Each bitstream ends in a partial byte: 0.5 byte each on average, 1 at most.
    FIXED_HEADER + (last - first + 2) / 2 + (bits / 8) as usize + STREAMS
}

/// Start of segment `k` of `n` symbols.
fn segment_start(n: usize, k: usize) -> usize {
    k * (n / STREAMS)
}

/// Appends the Huffman coding of `data` with code lengths `lens` (from [`code_lengths`] of a
/// histogram covering every byte of `data`) to `out`.
///
/// # Panics
/// If a length exceeds [`MAX_LEN`] (the output buffers are sized by it).
pub fn encode(data: &[u8], lens: &[u8; 256], out: &mut Vec<u8>) {
    assert!(
        lens.iter().all(|&l| u32::from(l) <= MAX_LEN),
        "Huffman code lengths are limited to {MAX_LEN} bits"
    );
    let (first, last) = range(lens);
    out.push(first as u8);
    out.push(last as u8);
    for pair in lens[first..=last].chunks(2) {
        out.push(pair[0] | pair.get(1).map_or(0, |&h| h << 4));
    }
    let table = codes(lens);
    let n = data.len();
    let segments: [&[u8]; STREAMS] = std::array::from_fn(|k| {
        let end = if k + 1 == STREAMS {
            n
        } else {
            segment_start(n, k + 1)
        };
        &data[segment_start(n, k)..end]
    });
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        let coded = encode_segments(&segments, &table, &mut scratch);
        for len in &coded[..STREAMS - 1] {
            out.extend_from_slice(&(len.len() as u32).to_le_bytes());
        }
        for c in coded {
            out.extend_from_slice(c);
        }
    });
}

thread_local! {
    /// The encoder's bitstream buffers, kept per thread: grown once, never zeroed again.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// A bitstream being written: up to 63 pending bits in `acc`, flushed 8 bytes at a time.
struct BitWriter<'a> {
    buf: &'a mut [u8],
    pos: usize,
    acc: u64,
    nbits: u32,
}

/// The code of each symbol, and its length, apart (no unpacking per symbol).
struct EncTable {
    code: [u64; 256],
    len: [u32; 256],
}

impl BitWriter<'_> {
    #[inline(always)]
    fn put(&mut self, table: &EncTable, s: u8) {
        self.acc |= table.code[usize::from(s)] << self.nbits;
        self.nbits += table.len[usize::from(s)];
    }

    /// Writes the whole pending bytes (the buffer has 8 bytes of room past the code's end).
    #[inline(always)]
    fn flush(&mut self) {
        debug_assert!(self.pos + 8 <= self.buf.len());
        // SAFETY: the buffer holds `MAX_LEN` bits for every symbol put (`encode` checks the
        // lengths) plus 16 bytes, and `pos` counts whole bytes of the bits put, so 8 bytes at
        // `pos` are in bounds.
        unsafe {
            self.buf
                .as_mut_ptr()
                .add(self.pos)
                .cast::<[u8; 8]>()
                .write_unaligned(self.acc.to_le_bytes());
        }
        let bytes = self.nbits / 8;
        self.pos += bytes as usize;
        self.acc >>= bytes * 8;
        self.nbits -= bytes * 8;
    }

    /// Writes the last partial byte; returns the bytes written.
    fn finish(mut self) -> usize {
        self.flush();
        self.pos + self.nbits.div_ceil(8) as usize
    }
}

/// Codes the segments into `scratch` (see [`encode_segments_with`]), built with BMI2 where
/// the CPU has it (shifts by a count in any register).
fn encode_segments<'s>(
    segments: &[&[u8]; STREAMS],
    table: &[u32; 256],
    scratch: &'s mut Vec<u8>,
) -> [&'s [u8]; STREAMS] {
    let table = EncTable {
        code: table.map(|c| u64::from(c & 0xffff)),
        len: table.map(|c| c >> 16),
    };
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("bmi2") {
        // SAFETY: BMI2 is available (checked above).
        return unsafe { encode_segments_bmi2(segments, &table, scratch) };
    }
    encode_segments_with(segments, &table, scratch)
}

/// [`encode_segments_with`] compiled for BMI2.
///
/// # Safety
/// The CPU must support BMI2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi2")]
unsafe fn encode_segments_bmi2<'s>(
    segments: &[&[u8]; STREAMS],
    table: &EncTable,
    scratch: &'s mut Vec<u8>,
) -> [&'s [u8]; STREAMS] {
    encode_segments_with(segments, table, scratch)
}

/// Codes the segments into `scratch`, two at a time side by side (two independent bit
/// accumulators: enough to overlap their dependency chains, few enough to stay in registers,
/// where four spilled), and returns each one's bytes.
#[inline(always)]
fn encode_segments_with<'s>(
    segments: &[&[u8]; STREAMS],
    table: &EncTable,
    scratch: &'s mut Vec<u8>,
) -> [&'s [u8]; STREAMS] {
    // At most MAX_LEN bits a symbol, plus room for the last 8-byte store.
    let room: [usize; STREAMS] =
        std::array::from_fn(|k| segments[k].len() * MAX_LEN as usize / 8 + 16);
    let total: usize = room.iter().sum();
    if scratch.len() < total {
        scratch.resize(total, 0);
    }
    let mut rest: &mut [u8] = scratch;
    let mut w: [BitWriter<'_>; STREAMS] = std::array::from_fn(|k| {
        let (buf, tail) = std::mem::take(&mut rest).split_at_mut(room[k]);
        rest = tail;
        BitWriter {
            buf,
            pos: 0,
            acc: 0,
            nbits: 0,
        }
    });
    let [w0, w1, w2, w3] = &mut w;
    encode_pair([segments[0], segments[1]], table, [w0, w1]);
    encode_pair([segments[2], segments[3]], table, [w2, w3]);
    let lens = w.map(BitWriter::finish);
    let mut coded: &[u8] = scratch;
    std::array::from_fn(|k| {
        let (this, tail) = coded.split_at(room[k]);
        coded = tail;
        &this[..lens[k]]
    })
}

/// Codes two segments side by side into fresh writers: five symbols a segment between
/// flushes (at most 7 + 5 x 11 = 62 bits pending), then each one's remainder.
#[inline(always)]
fn encode_pair(segs: [&[u8]; 2], table: &EncTable, [wa, wb]: [&mut BitWriter<'_>; 2]) {
    let (a, a_rest) = segs[0].as_chunks::<5>();
    let (b, b_rest) = segs[1].as_chunks::<5>();
    let groups = a.len().min(b.len());
    for (ga, gb) in a[..groups].iter().zip(&b[..groups]) {
        for (&sa, &sb) in ga.iter().zip(gb) {
            wa.put(table, sa);
            wb.put(table, sb);
        }
        wa.flush();
        wb.flush();
    }
    for (w, seg) in [(wa, &segs[0][5 * groups..]), (wb, &segs[1][5 * groups..])] {
        for q in seg.chunks(5) {
            for &s in q {
                w.put(table, s);
            }
            w.flush();
        }
    }
    debug_assert!(a_rest.len() < 5 && b_rest.len() < 5);
}

/// Decode table entry: the bits its symbols take (byte 0, so that a shift by the entry
/// itself consumes them), their count (byte 1), the length of the first symbol alone (byte 2)
/// and up to four symbols (bytes 3-6).
type Table = [u64; TABLE_SIZE];

fn read_lengths(r: &mut Reader<'_>) -> Result<[u8; 256]> {
    let first = usize::from(r.u8("Huffman first symbol")?);
    let last = usize::from(r.u8("Huffman last symbol")?);
    if last < first {
        return Err(malformed("Huffman symbol range is reversed"));
    }
    let packed = r.take((last - first + 2) / 2, "Huffman code lengths")?;
    let mut lens = [0u8; 256];
    for (i, l) in lens[first..=last].iter_mut().enumerate() {
        *l = (packed[i / 2] >> (4 * (i % 2))) & 0xf;
        if u32::from(*l) > MAX_LEN {
            return Err(malformed(format!(
                "Huffman code length {l} exceeds {MAX_LEN}"
            )));
        }
    }
    let kraft: u32 = lens
        .iter()
        .filter(|&&l| l > 0)
        .map(|&l| 1u32 << (MAX_LEN - u32::from(l)))
        .sum();
    if kraft != TABLE_SIZE as u32 || lens.iter().filter(|&&l| l > 0).count() < 2 {
        return Err(malformed(
            "Huffman code lengths do not form a complete code",
        ));
    }
    Ok(lens)
}

fn build_table(lens: &[u8; 256], table: &mut Table) {
    // One symbol per entry first: every index whose low `len` bits are a code.
    let mut single = [0u16; TABLE_SIZE];
    for (s, &c) in codes(lens).iter().enumerate() {
        let len = c >> 16;
        if len > 0 {
            let code = (c & 0xffff) as usize;
            for k in 0..1usize << (MAX_LEN - len) {
                single[code | (k << len)] = s as u16 | ((len as u16) << 8);
            }
        }
    }
    // Then as many further symbols as the index's remaining bits determine.
    for (idx, e) in table.iter_mut().enumerate() {
        let mut syms = 0u64;
        let mut n = 0u64;
        let mut bits = 0u32;
        let first_len = u64::from(single[idx] >> 8);
        while n < 4 {
            let s = single[(idx >> bits) & (TABLE_SIZE - 1)];
            let len = u32::from(s >> 8);
            if bits + len > MAX_LEN {
                break;
            }
            syms |= u64::from(s & 0xff) << (8 * n);
            n += 1;
            bits += len;
        }
        *e = u64::from(bits) | (n << 8) | (first_len << 16) | (syms << 24);
    }
}

/// A bitstream read least-significant bit first through a 64-bit buffer.
struct Bits<'a> {
    src: &'a [u8],
    /// Bytes of `src` loaded into `buf` (whole).
    pos: usize,
    buf: u64,
    /// Unconsumed bits in `buf`.
    avail: u32,
    /// Zero bytes loaded past the end of `src`.
    padded: usize,
}

impl<'a> Bits<'a> {
    fn new(src: &'a [u8]) -> Self {
        Bits {
            src,
            pos: 0,
            buf: 0,
            avail: 0,
            padded: 0,
        }
    }

    /// Tops the buffer up byte by byte, with zero bytes past the end.
    fn refill_careful(&mut self) {
        while self.avail <= 56 {
            let b = match self.src.get(self.pos) {
                Some(&b) => {
                    self.pos += 1;
                    b
                }
                None => {
                    self.padded += 1;
                    0
                }
            };
            self.buf |= u64::from(b) << self.avail;
            self.avail += 8;
        }
    }

    #[inline(always)]
    fn peek(&self) -> usize {
        (self.buf & INDEX_MASK) as usize
    }

    #[inline(always)]
    fn consume(&mut self, bits: u32) {
        self.buf >>= bits;
        self.avail -= bits;
    }

    /// Checks the stream was consumed up to its last byte and not beyond.
    fn finish(&self) -> Result<()> {
        let consumed = (self.pos + self.padded) as u64 * 8 - u64::from(self.avail);
        let len = self.src.len() as u64 * 8;
        if consumed > len {
            return Err(malformed("Huffman bitstream ends early"));
        }
        if len - consumed >= 8 {
            return Err(malformed(format!(
                "Huffman bitstream has {} unread bytes",
                (len - consumed) / 8
            )));
        }
        Ok(())
    }
}

/// Decodes a Huffman stream (exactly `src`) into `out`, whose length is the symbol count.
pub fn decode(src: &[u8], out: &mut [u8]) -> Result<()> {
    let mut r = Reader::new(src);
    let lens = read_lengths(&mut r)?;
    let mut stream_len = [0usize; STREAMS];
    for len in &mut stream_len[..STREAMS - 1] {
        *len = r.u32_le("Huffman bitstream length")? as usize;
    }
    let rest = r.rest();
    let given = stream_len[..STREAMS - 1]
        .iter()
        .try_fold(0usize, |a, &l| a.checked_add(l))
        .filter(|&g| g <= rest.len());
    let Some(given) = given else {
        return Err(malformed("Huffman bitstream lengths exceed the stream"));
    };
    stream_len[STREAMS - 1] = rest.len() - given;
    let mut table: Box<Table> = Box::new([0; TABLE_SIZE]);
    build_table(&lens, &mut table);

    let mut bits: [Bits<'_>; STREAMS] = {
        let mut at = 0;
        std::array::from_fn(|k| {
            let s = &rest[at..at + stream_len[k]];
            at += stream_len[k];
            Bits::new(s)
        })
    };
    let n = out.len();
    let mut at: [usize; STREAMS] = std::array::from_fn(|k| segment_start(n, k));
    let end: [usize; STREAMS] = std::array::from_fn(|k| {
        if k + 1 == STREAMS {
            n
        } else {
            segment_start(n, k + 1)
        }
    });

    fast_rounds(&table, &mut bits, out, &mut at, &end);
    for k in 0..STREAMS {
        let b = &mut bits[k];
        while at[k] < end[k] {
            if b.avail < MAX_LEN {
                b.refill_careful();
            }
            let e = table[b.peek()];
            out[at[k]] = (e >> 24) as u8;
            at[k] += 1;
            b.consume(((e >> 16) & 0xff) as u32);
        }
        b.finish()?;
    }
    Ok(())
}

/// One lookup: up to four symbols stored at `*dst`, which moves past the ones decoded, and
/// the bits they took shifted out of `buf`.
///
/// The caller guarantees 4 writable bytes at `*dst`.
#[inline(always)]
fn step(table: &Table, buf: &mut u64, dst: &mut *mut u8) {
    let e = table[(*buf & INDEX_MASK) as usize];
    // SAFETY: the caller's round started with 24 bytes of room in this segment and has
    // advanced at most 16 before this store.
    unsafe {
        dst.cast::<[u8; 4]>()
            .write_unaligned(((e >> 24) as u32).to_le_bytes());
        *dst = dst.add(((e >> 8) & 0xff) as usize);
    }
    // The shift count is the entry's low byte.
    *buf >>= e & 63;
}

/// The hot loop (see [`fast_rounds_with`]), built with BMI2 and LZCNT where the CPU has
/// them: shifts that take their count from any register and leave the flags alone, and a
/// one-instruction leading-zero count for the refill (a few percent faster single-thread;
/// most of the loop's gain came from counting its rounds ahead).
fn fast_rounds(
    table: &Table,
    bits: &mut [Bits<'_>; STREAMS],
    out: &mut [u8],
    at: &mut [usize; STREAMS],
    end: &[usize; STREAMS],
) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("bmi2") && std::arch::is_x86_feature_detected!("lzcnt") {
        // SAFETY: BMI2 and LZCNT are available (checked above).
        unsafe { fast_rounds_bmi2(table, bits, out, at, end) };
        return;
    }
    fast_rounds_with(table, bits, out, at, end);
}

/// [`fast_rounds_with`] compiled for BMI2 and LZCNT.
///
/// # Safety
/// The CPU must support BMI2 and LZCNT.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "bmi2,lzcnt")]
unsafe fn fast_rounds_bmi2(
    table: &Table,
    bits: &mut [Bits<'_>; STREAMS],
    out: &mut [u8],
    at: &mut [usize; STREAMS],
    end: &[usize; STREAMS],
) {
    fast_rounds_with(table, bits, out, at, end);
}

/// The hot loop: rounds of five lookups per bitstream (five of at most [`MAX_LEN`] bits fit
/// in one refill of 56), as many rounds at a time as every bitstream can refill from 8 whole
/// bytes and every segment has room for the 4-byte stores, counted before they start so that
/// the rounds themselves check nothing.
#[inline(always)]
fn fast_rounds_with(
    table: &Table,
    bits: &mut [Bits<'_>; STREAMS],
    out: &mut [u8],
    at: &mut [usize; STREAMS],
    end: &[usize; STREAMS],
) {
    const ROUND: usize = 5;
    // A refill takes at most 7 bytes; a round writes at most 4 symbols per lookup.
    const REFILL_MAX: usize = 7;
    const ROUND_OUT: usize = 4 * ROUND;
    let base = out.as_mut_ptr();
    assert!(
        end.iter()
            .zip(at.iter())
            .all(|(&e, &a)| a <= e && e <= out.len())
    );
    // Sentinel form: a set bit just above the valid bits, so the lookups need not count the
    // bits they consume (fewer live registers for four streams); the refill finds the count
    // again with one leading-zero count.
    let mut buf: [u64; STREAMS] = std::array::from_fn(|k| {
        let b = &bits[k];
        debug_assert!(b.avail < 64);
        (b.buf & ((1u64 << b.avail) - 1)) | (1u64 << b.avail)
    });
    // The four read and four write positions as pointers (one register each, no base: with
    // indices the loop ran out of registers and kept the write positions on the stack).
    let mut dst: [*mut u8; STREAMS] = std::array::from_fn(|k| {
        // SAFETY: `at[k] <= end[k] <= out.len()` (asserted above).
        unsafe { base.add(at[k]) }
    });
    let src: [*const u8; STREAMS] = std::array::from_fn(|k| bits[k].src.as_ptr());
    let mut next: [*const u8; STREAMS] = std::array::from_fn(|k| {
        debug_assert!(bits[k].pos <= bits[k].src.len());
        // SAFETY: a bitstream's `pos` is at most its length.
        unsafe { src[k].add(bits[k].pos) }
    });
    loop {
        // Rounds every stream can run: round r (from 0) reads 8 bytes at most 7r bytes on
        // and starts at most 20r bytes on with 24 bytes of room left.
        let rounds = (0..STREAMS)
            .map(|k| {
                let len = bits[k].src.len();
                let pos = next[k] as usize - src[k] as usize;
                let room = end[k] - (dst[k] as usize - base as usize);
                let by_src = if len.saturating_sub(pos) >= 8 {
                    (len - pos - 8) / REFILL_MAX + 1
                } else {
                    0
                };
                let by_out = if room >= ROUND_OUT + 4 {
                    (room - ROUND_OUT - 4) / ROUND_OUT + 1
                } else {
                    0
                };
                by_src.min(by_out)
            })
            .min()
            .unwrap_or(0);
        if rounds == 0 {
            break;
        }
        // The streams in locals, so each stays in a register through the rounds.
        let [mut b0, mut b1, mut b2, mut b3] = buf;
        let [mut d0, mut d1, mut d2, mut d3] = dst;
        let [mut p0, mut p1, mut p2, mut p3] = next;
        for _ in 0..rounds {
            // SAFETY: `rounds` was counted so that every refill of these rounds reads 8 bytes
            // inside its bitstream and every store stays in its segment.
            unsafe {
                refill(&mut b0, &mut p0);
                refill(&mut b1, &mut p1);
                refill(&mut b2, &mut p2);
                refill(&mut b3, &mut p3);
            }
            for _ in 0..ROUND {
                step(table, &mut b0, &mut d0);
                step(table, &mut b1, &mut d1);
                step(table, &mut b2, &mut d2);
                step(table, &mut b3, &mut d3);
            }
        }
        buf = [b0, b1, b2, b3];
        dst = [d0, d1, d2, d3];
        next = [p0, p1, p2, p3];
    }
    for k in 0..STREAMS {
        let avail = 63 - buf[k].leading_zeros();
        bits[k].buf = buf[k] ^ (1u64 << avail);
        bits[k].avail = avail;
        bits[k].pos = next[k] as usize - src[k] as usize;
        at[k] = dst[k] as usize - base as usize;
    }
}

/// Tops the sentinel-form `buf` up with the whole bytes that fit below bit 63, read from
/// `*next`, which moves past them (at most 7).
///
/// # Safety
/// 8 bytes at `*next` must be readable.
#[inline(always)]
unsafe fn refill(buf: &mut u64, next: &mut *const u8) {
    let avail = 63 - buf.leading_zeros();
    let bytes = (63 - avail) >> 3;
    // SAFETY: the caller guarantees 8 readable bytes at `*next`, so the bytes taken stay
    // inside (or one past) the same bitstream.
    unsafe {
        let w = u64::from_le(next.cast::<u64>().read_unaligned()) & ((1u64 << (8 * bytes)) - 1);
        *buf = (*buf ^ (1u64 << avail)) | (w << avail) | (1u64 << (avail + 8 * bytes));
        *next = next.add(bytes as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rans::histogram;
    use crate::rans::tests::{lcg, skewed};

    fn round_trip(data: &[u8]) -> Vec<u8> {
        let lens = code_lengths(&histogram(data)).expect("two symbols");
        let mut enc = Vec::new();
        encode(data, &lens, &mut enc);
        // The size rounds each bitstream's last byte up.
        let size = coded_size(&histogram(data), &lens);
        assert!(enc.len() <= size && enc.len() + STREAMS >= size);
        let mut back = vec![0u8; data.len()];
        decode(&enc, &mut back).expect("decodes");
        assert_eq!(back, data);
        enc
    }

    /// Optimal (unlimited) Huffman cost in bits, by the textbook heap construction.
    fn optimal_bits(hist: &Histogram) -> u64 {
        let mut heap: std::collections::BinaryHeap<std::cmp::Reverse<u64>> = hist
            .iter()
            .filter(|&&c| c > 0)
            .map(|&c| std::cmp::Reverse(u64::from(c)))
            .collect();
        let mut cost = 0;
        while heap.len() > 1 {
            let a = heap.pop().unwrap().0;
            let b = heap.pop().unwrap().0;
            cost += a + b;
            heap.push(std::cmp::Reverse(a + b));
        }
        cost
    }

    fn cost(hist: &Histogram, lens: &[u8; 256]) -> u64 {
        hist.iter()
            .zip(lens)
            .map(|(&c, &l)| u64::from(c) * u64::from(l))
            .sum()
    }

    #[test]
    fn lengths_are_optimal_when_the_limit_does_not_bind() {
        for seed in 0..20 {
            let mut s = seed;
            let mut hist = [0u32; 256];
            for h in hist.iter_mut().take(2 + (seed as usize * 13) % 200) {
                *h = (lcg(&mut s) % 1000) as u32 + 1;
            }
            let lens = code_lengths(&hist).unwrap();
            assert!(lens.iter().all(|&l| u32::from(l) <= MAX_LEN));
            if lens.iter().all(|&l| u32::from(l) < MAX_LEN) {
                assert_eq!(cost(&hist, &lens), optimal_bits(&hist), "seed {seed}");
            }
        }
    }

    #[test]
    fn limited_lengths_form_a_complete_code_close_to_optimal() {
        // Fibonacci-like counts force depths far beyond the limit.
        let mut hist = [0u32; 256];
        let (mut a, mut b) = (1u32, 1u32);
        for h in hist.iter_mut().take(30) {
            *h = a;
            (a, b) = (b, a + b);
        }
        let lens = code_lengths(&hist).unwrap();
        let kraft: u32 = lens
            .iter()
            .filter(|&&l| l > 0)
            .map(|&l| 1 << (MAX_LEN - u32::from(l)))
            .sum();
        assert_eq!(kraft, 1 << MAX_LEN);
        assert!(lens.iter().all(|&l| u32::from(l) <= MAX_LEN));
        let (c, opt) = (cost(&hist, &lens), optimal_bits(&hist));
        assert!(c >= opt && (c as f64) < opt as f64 * 1.05, "{c} vs {opt}");
        // The longest codes go to the rarest symbols.
        assert!(lens[..30].windows(2).all(|w| w[0] >= w[1]), "{lens:?}");
    }

    /// The cheapest lengths of at most `limit` bits with Kraft's sum at most 1, by trying
    /// every assignment (tiny alphabets only).
    fn brute_force_limited(weights: &[u64], limit: u8) -> u64 {
        let n = weights.len() as u32;
        let mut best = u64::MAX;
        for code in 0..u64::from(limit).pow(n) {
            let mut c = code;
            let (mut kraft, mut cost) = (0u64, 0u64);
            for &w in weights {
                let len = (c % u64::from(limit)) as u8 + 1;
                c /= u64::from(limit);
                kraft += 1 << (limit - len);
                cost += w * u64::from(len);
            }
            if kraft <= 1 << limit {
                best = best.min(cost);
            }
        }
        best
    }

    #[test]
    fn package_merge_is_optimal_under_the_limit() {
        let mut s = 7;
        for round in 0..60usize {
            let n = 2 + round % 6;
            let limit = (usize::BITS - (n - 1).leading_zeros()) as u8 + (round % 3) as u8;
            // Skewed weights so that the limit often binds.
            let mut weights: Vec<u64> = (0..n).map(|i| (lcg(&mut s) % 50 + 1) << (i * 2)).collect();
            weights.sort_unstable();
            let lens = package_merge(&weights, usize::from(limit));
            assert!(lens.iter().all(|&l| (1..=limit).contains(&l)), "{lens:?}");
            let kraft: u64 = lens.iter().map(|&l| 1u64 << (limit - l)).sum();
            assert_eq!(kraft, 1 << limit, "complete code for {weights:?}");
            let cost: u64 = weights
                .iter()
                .zip(&lens)
                .map(|(&w, &l)| w * u64::from(l))
                .sum();
            assert_eq!(
                cost,
                brute_force_limited(&weights, limit),
                "{weights:?} limit {limit}"
            );
        }
    }

    #[test]
    fn round_trips_at_every_length() {
        for n in (2..80).chain([255, 256, 1000, 4099, 65_536 + 3]) {
            let data = skewed(n, n as u64);
            if histogram(&data).iter().filter(|&&c| c > 0).count() < 2 {
                continue;
            }
            round_trip(&data);
        }
        // All 256 symbols, and two symbols only.
        round_trip(&(0..=255u8).cycle().take(100_000).collect::<Vec<_>>());
        round_trip(&[7u8, 9].repeat(5000));
    }

    #[test]
    fn size_is_close_to_the_entropy_on_exponent_like_data() {
        let data = skewed(1 << 20, 3);
        let h = histogram(&data);
        let enc = round_trip(&data);
        let bound = crate::rans::entropy_bits(&h) / 8.0;
        assert!(
            (enc.len() as f64) < bound * 1.05,
            "{} vs {bound}",
            enc.len()
        );
    }

    /// Small enough for miri, which checks the hot loop's unaligned stores: lengths where the
    /// fast rounds stop at the segment ends, the bitstream ends, or never start.
    #[test]
    fn fast_and_careful_paths_meet() {
        for n in [97, 200, 203, 640, 1001, 2050] {
            round_trip(&skewed(n, 1 + n as u64));
        }
    }

    #[test]
    fn spec_worked_example() {
        // spec/ztc1-codec.md 6.8.
        let data = b"aaaabbcd";
        let lens = code_lengths(&histogram(data)).unwrap();
        let mut enc = Vec::new();
        encode(data, &lens, &mut enc);
        assert_eq!(
            enc,
            [
                0x61, 0x64, 0x21, 0x33, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0x00, 0x00, 0x05, 0x3b
            ]
        );
        let mut back = [0u8; 8];
        decode(&enc, &mut back).unwrap();
        assert_eq!(&back, data);
    }

    #[test]
    fn corrupt_streams_are_errors_not_panics() {
        let data = skewed(50_000, 9);
        let lens = code_lengths(&histogram(&data)).unwrap();
        let mut enc = Vec::new();
        encode(&data, &lens, &mut enc);
        let mut back = vec![0u8; data.len()];
        for cut in [0, 1, 2, 5, 20, enc.len() / 2, enc.len() - 1] {
            assert!(decode(&enc[..cut], &mut back).is_err(), "cut at {cut}");
        }
        let mut longer = enc.clone();
        longer.extend_from_slice(&[0; 9]);
        assert!(decode(&longer, &mut back).is_err());
        let mut seed = 5;
        for _ in 0..300 {
            let mut bad = enc.clone();
            let i = (lcg(&mut seed) as usize) % bad.len();
            bad[i] ^= 1 << (lcg(&mut seed) % 8);
            // Either an error or some bytes; never a panic.
            let _ = decode(&bad, &mut back);
        }
        // Incomplete and oversubscribed codes.
        let mut bad = enc.clone();
        bad[2] = 0x11;
        assert!(decode(&bad, &mut back).is_err());
    }
}
