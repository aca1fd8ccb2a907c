//! Static, interleaved rANS over bytes: order 0 (one frequency table) and order 1 (one table per
//! previous byte).
//!
//! Design (after Fabian Giesen's `ryg_rans` and James Bonfield's `htscodecs`):
//!
//! - 32-bit states in `[2^16, 2^32)`, renormalised 16 bits at a time, so a decode step reads at
//!   most one word and the renormalisation is a branch-free select.
//! - Frequencies normalised to [`SCALE_BITS`] = 12 bits: the decode table (symbol, frequency,
//!   offset packed in one `u32` per slot) is 16 KiB and stays in L1.
//! - Order 0 interleaves `lanes` states round-robin over the symbols, sharing one word stream:
//!   symbol `i` belongs to lane `i % lanes`. The lanes are independent dependency chains. The
//!   encoder uses 32 lanes (1 or 8 for short streams, where the states' bytes would show):
//!   with AVX2, encoder and decoder run them as four 8-lane vectors (gathered table lookups;
//!   renormalisation as one 16-byte load spread over the lanes that need a word, or the
//!   emitted words compressed to the top of a vector), bit-identical to the scalar path,
//!   which decodes the same streams anywhere.
//! - Order 1 splits the input into `lanes` contiguous segments (the last one takes the
//!   remainder); each lane codes its segment with the previous byte of that segment as context
//!   (0 at a segment's start).
//! - The encoder divides by a frequency with a precomputed 32-bit reciprocal (Granlund and
//!   Montgomery's round-up method, exact for every 32-bit numerator), not a hardware divide.
//!
//! Stream layouts (everything little-endian):
//!
//! ```text
//! order 0: u8 log2(lanes) | freq table | lanes x u32 final states | u16 words...
//! order 1: u8 log2(lanes) | u8 contexts-1 | per context ascending: u8 gap, freq table
//!          | lanes x u32 final states | u16 words...
//! freq table: u8 symbols-1 (2..=256 symbols) | per symbol ascending: u8 gap, varint freq
//! ```
//!
//! A symbol's "gap" is its distance from the previous listed symbol minus one (the first is its
//! value). Frequencies are in `1..4096` and sum to exactly 4096. Decoding checks that the word
//! stream is consumed exactly and that every lane ends in the encoder's initial state, so a
//! corrupted stream is reported rather than silently mis-decoded (the frame checksum backs
//! this up).

use zt_core::Result;

use crate::bytes::{Reader, malformed, put_varint};

/// Precision of the normalised frequencies.
pub const SCALE_BITS: u32 = 12;
/// Sum of the normalised frequencies.
pub const TOTAL: u32 = 1 << SCALE_BITS;
const MASK: u32 = TOTAL - 1;
/// Lower bound of a state; also the state every lane starts (and so ends) in.
const RANS_L: u32 = 1 << 16;

/// Lanes used by the order-0 encoder.
pub const LANES_O0: usize = 32;
/// Lanes (segments) used by the order-1 encoder.
pub const LANES_O1: usize = 8;

/// Byte counts.
pub type Histogram = [u32; 256];

/// Counts the bytes of `data` (four sub-histograms, so consecutive equal bytes do not serialise
/// on one counter).
pub fn histogram(data: &[u8]) -> Histogram {
    let mut h = [[0u32; 256]; 4];
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h[0][(v & 0xff) as usize] += 1;
        h[1][((v >> 8) & 0xff) as usize] += 1;
        h[2][((v >> 16) & 0xff) as usize] += 1;
        h[3][((v >> 24) & 0xff) as usize] += 1;
        h[0][((v >> 32) & 0xff) as usize] += 1;
        h[1][((v >> 40) & 0xff) as usize] += 1;
        h[2][((v >> 48) & 0xff) as usize] += 1;
        h[3][(v >> 56) as usize] += 1;
    }
    for &b in chunks.remainder() {
        h[0][b as usize] += 1;
    }
    let mut out = [0u32; 256];
    for (s, o) in out.iter_mut().enumerate() {
        *o = h[0][s] + h[1][s] + h[2][s] + h[3][s];
    }
    out
}

/// Order-0 Shannon entropy of a histogram, in bits (the total, not per symbol).
pub fn entropy_bits(hist: &Histogram) -> f64 {
    let total: u64 = hist.iter().map(|&c| u64::from(c)).sum();
    if total == 0 {
        return 0.0;
    }
    let t = total as f64;
    let mut bits = 0.0;
    for &c in hist {
        if c > 0 {
            let c = f64::from(c);
            bits += c * (t / c).log2();
        }
    }
    bits
}

/// Number of symbols with a non-zero count.
pub fn distinct(hist: &Histogram) -> usize {
    hist.iter().filter(|&&c| c > 0).count()
}

/// Scales `hist` to frequencies summing to [`TOTAL`], every present symbol at least 1 and at
/// most `TOTAL - 1`. A histogram with a single symbol gets a dummy neighbour of frequency 1 (a
/// cost of `log2(4096/4095)` bits per symbol) so every table has two symbols.
///
/// Rounds to nearest, then moves the remaining difference one unit at a time to (or from) the
/// symbol where it changes the coded size the least.
pub fn normalize(hist: &Histogram) -> [u32; 256] {
    let mut freq = [0u32; 256];
    let total: u64 = hist.iter().map(|&c| u64::from(c)).sum();
    let present: Vec<usize> = (0..256).filter(|&s| hist[s] > 0).collect();
    match present.len() {
        0 => {
            freq[0] = TOTAL - 1;
            freq[1] = 1;
            return freq;
        }
        1 => {
            let s = present[0];
            freq[s] = TOTAL - 1;
            freq[s ^ 1] = 1;
            return freq;
        }
        _ => {}
    }
    let mut sum: i64 = 0;
    for &s in &present {
        let c = u64::from(hist[s]);
        let f = ((c * u64::from(TOTAL) + total / 2) / total).max(1) as u32;
        freq[s] = f.min(TOTAL - 1);
        sum += i64::from(freq[s]);
    }
    let mut diff = i64::from(TOTAL) - sum;
    while diff != 0 {
        // Pick the symbol whose +1 gains the most (or whose -1 costs the least) bits.
        let mut best = usize::MAX;
        let mut best_score = f64::NEG_INFINITY;
        for &s in &present {
            let f = f64::from(freq[s]);
            let c = f64::from(hist[s]);
            let score = if diff > 0 {
                if freq[s] >= TOTAL - 1 {
                    continue;
                }
                c * ((f + 1.0) / f).log2()
            } else {
                if freq[s] <= 1 {
                    continue;
                }
                -c * (f / (f - 1.0)).log2()
            };
            if score > best_score {
                best_score = score;
                best = s;
            }
        }
        debug_assert!(
            best != usize::MAX,
            "a 2+ symbol table can always be adjusted"
        );
        if best == usize::MAX {
            break;
        }
        if diff > 0 {
            freq[best] += 1;
            diff -= 1;
        } else {
            freq[best] -= 1;
            diff += 1;
        }
    }
    freq
}

/// Estimated size in bytes of coding a stream with this histogram with order-0 rANS, table
/// and states included (it slightly over-estimates the table).
pub fn estimate_o0(hist: &Histogram) -> usize {
    let bits = entropy_bits(hist);
    (bits / 8.0 * 1.002) as usize + 3 * distinct(hist) + 4 * LANES_O0 + 4
}

fn write_freqs(out: &mut Vec<u8>, freq: &[u32; 256]) {
    let n = freq.iter().filter(|&&f| f > 0).count();
    debug_assert!((2..=256).contains(&n));
    out.push((n - 1) as u8);
    let mut next = 0usize;
    for (s, &f) in freq.iter().enumerate() {
        if f > 0 {
            out.push((s - next) as u8);
            put_varint(out, u64::from(f));
            next = s + 1;
        }
    }
}

fn read_freqs(r: &mut Reader<'_>) -> Result<[u32; 256]> {
    let n = usize::from(r.u8("rANS table size")?) + 1;
    if n < 2 {
        return Err(malformed("rANS table lists fewer than 2 symbols"));
    }
    let mut freq = [0u32; 256];
    let mut next = 0usize;
    let mut sum = 0u32;
    for _ in 0..n {
        let s = next + usize::from(r.u8("rANS table symbol")?);
        if s > 255 {
            return Err(malformed("rANS table symbol beyond 255"));
        }
        let f = r.varint_max(u64::from(TOTAL - 1), "rANS frequency")? as u32;
        if f == 0 {
            return Err(malformed("rANS frequency 0"));
        }
        freq[s] = f;
        sum += f;
        if sum > TOTAL {
            return Err(malformed("rANS frequencies exceed the total"));
        }
        next = s + 1;
    }
    if sum != TOTAL {
        return Err(malformed(format!(
            "rANS frequencies sum to {sum}, not {TOTAL}"
        )));
    }
    Ok(freq)
}

/// Per-symbol encoder constants.
#[derive(Clone, Copy, Default)]
struct EncSym {
    /// Renormalise (emit 16 bits) while the state is at or above this.
    x_max: u32,
    /// Reciprocal of the frequency: `q = (mulhi(x, rcp) + x) >> shift` equals `x / freq`.
    rcp: u32,
    shift: u32,
    /// Cumulative frequency.
    bias: u32,
    /// `TOTAL - freq`.
    cmpl: u32,
}

fn enc_table(freq: &[u32; 256]) -> [EncSym; 256] {
    let mut t = [EncSym::default(); 256];
    let mut cum = 0u32;
    for (s, &f) in freq.iter().enumerate() {
        if f == 0 {
            continue;
        }
        // ceil(log2 f); 0 for f == 1.
        let shift = 32 - (f - 1).leading_zeros();
        // Granlund & Montgomery: m' = floor(2^32 (2^shift - f) / f) + 1 fits in 32 bits for
        // f < 2^32, and floor((mulhi(x, m') + x) / 2^shift) = floor(x / f) for every x < 2^32.
        let rcp = (((1u64 << shift) - u64::from(f)) << 32) / u64::from(f) + 1;
        t[s] = EncSym {
            x_max: f << (32 - SCALE_BITS),
            rcp: rcp as u32,
            shift,
            bias: cum,
            cmpl: TOTAL - f,
        };
        cum += f;
    }
    t
}

/// Encodes one symbol: renormalise (maybe emitting a word below `pos`), then fold it in.
#[inline(always)]
fn enc_put(x: &mut u32, s: &EncSym, buf: &mut [u16], pos: &mut usize) {
    let mut v = *x;
    let emit = v >= s.x_max;
    // Branch-free: always store, advance only when the word is really emitted. `pos` never
    // reaches 0: the buffer has one word of headroom per symbol plus a spare.
    buf[*pos - 1] = v as u16;
    *pos -= usize::from(emit);
    // A shift by 0 or 16 rather than a select: LLVM turns the select into a branch, and the
    // branch is unpredictable.
    v >>= u32::from(emit) << 4;
    let q = (((u64::from(v) * u64::from(s.rcp)) >> 32) + u64::from(v)) >> s.shift;
    *x = v + s.bias + (q as u32) * s.cmpl;
}

/// Decode table: per slot, `symbol | (slot - cum) << 8 | freq << 20`.
type DecTable = [u32; TOTAL as usize];

fn dec_table(freq: &[u32; 256], t: &mut DecTable) {
    let mut cum = 0usize;
    for (s, &f) in freq.iter().enumerate() {
        let f = f as usize;
        for (k, slot) in t[cum..cum + f].iter_mut().enumerate() {
            *slot = s as u32 | ((k as u32) << 8) | ((f as u32) << 20);
        }
        cum += f;
    }
}

/// One decode step on a state: returns the symbol; the caller renormalises.
#[inline(always)]
fn dec_step(x: &mut u32, t: &DecTable) -> u8 {
    let e = t[(*x & MASK) as usize];
    *x = (e >> 20) * (*x >> SCALE_BITS) + ((e >> 8) & 0xfff);
    e as u8
}

/// Renormalise from `words` at byte offset `*p`, failing if the stream is exhausted.
#[inline(always)]
fn renorm_checked(x: &mut u32, words: &[u8], p: &mut usize) -> Result<()> {
    if *x < RANS_L {
        let w = words
            .get(*p..*p + 2)
            .ok_or_else(|| malformed("rANS word stream ends early"))?;
        *x = (*x << 16) | u32::from(u16::from_le_bytes([w[0], w[1]]));
        *p += 2;
    }
    Ok(())
}

fn lanes_from_log2(b: u8) -> Result<usize> {
    match b {
        0..=5 => Ok(1 << b),
        _ => Err(malformed(format!("rANS lane count 2^{b} is not supported"))),
    }
}

fn write_states(out: &mut Vec<u8>, states: &[u32]) {
    for &s in states {
        out.extend_from_slice(&s.to_le_bytes());
    }
}

fn read_states<const N: usize>(r: &mut Reader<'_>) -> Result<[u32; N]> {
    let mut x = [0u32; N];
    for s in &mut x {
        *s = r.u32_le("rANS state")?;
        if *s < RANS_L {
            return Err(malformed("rANS state below its lower bound"));
        }
    }
    Ok(x)
}

fn check_end(x: &[u32], p: usize, words: &[u8]) -> Result<()> {
    if p != words.len() {
        return Err(malformed(format!(
            "rANS stream has {} unread bytes",
            words.len() - p
        )));
    }
    if x.iter().any(|&s| s != RANS_L) {
        return Err(malformed(
            "rANS stream does not decode to its initial state",
        ));
    }
    Ok(())
}

/// Appends the order-0 encoding of `data` to `out`. `hist` must be `histogram(data)`.
pub fn encode_o0(data: &[u8], hist: &Histogram, out: &mut Vec<u8>) {
    // Shorter streams get fewer lanes, so the final states (4 bytes a lane) do not outweigh
    // the gain. Only 32 lanes decode vectorised: from 16 KiB on unless the stream codes to
    // under 2 KiB (a 99.9%-sparse bitmap, where 96 more bytes of states would be half as
    // much again), and always from 32 KiB on. A 5% delta's non-zero streams (~26 KB a chunk)
    // then decode 15% faster for 0.3% of the frame.
    let wide = data.len() >= 32768 || (data.len() >= 16384 && estimate_o0(hist) >= 2048);
    match data.len() {
        0..4096 => encode_o0_lanes::<1>(data, hist, out),
        _ if !wide => encode_o0_lanes::<8>(data, hist, out),
        _ => encode_o0_lanes::<LANES_O0>(data, hist, out),
    }
}

/// Order-0 encoding with an explicit lane count (the decoder reads it from the stream).
pub fn encode_o0_lanes<const N: usize>(data: &[u8], hist: &Histogram, out: &mut Vec<u8>) {
    const { assert!(N.is_power_of_two() && N <= 32) };
    let freq = normalize(hist);
    let tab = enc_table(&freq);
    out.push(N.trailing_zeros() as u8);
    write_freqs(out, &freq);

    let n = data.len();
    ENC_SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        // One word per symbol at most, plus headroom below for the vector encoder's stores.
        buf.clear();
        buf.resize(n + 1 + 8, 0);
        encode_o0_into::<N>(data, &freq, &tab, &mut buf, out);
    });
}

thread_local! {
    /// The encoder's word buffer, reused across the streams a worker thread encodes.
    static ENC_SCRATCH: std::cell::RefCell<Vec<u16>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn encode_o0_into<const N: usize>(
    data: &[u8],
    freq: &[u32; 256],
    tab: &[EncSym; 256],
    buf: &mut [u16],
    out: &mut Vec<u8>,
) {
    let n = data.len();
    let mut pos = buf.len();
    let mut x = [RANS_L; N];
    // Symbols are folded in reverse so the decoder reads forward; the partial group at the
    // end first.
    let full = n - n % N;
    for (j, &s) in data[full..].iter().enumerate().rev() {
        enc_put(&mut x[j], &tab[usize::from(s)], buf, &mut pos);
    }
    let mut simd = false;
    #[cfg(target_arch = "x86_64")]
    if N == 32 && std::arch::is_x86_feature_detected!("avx2") {
        let xs: &mut [u32; 32] = (&mut x[..]).try_into().expect("32 lanes");
        // SAFETY: AVX2 is available (checked above).
        pos = unsafe { avx2::encode_groups(xs, freq, &data[..full], buf, pos) };
        simd = true;
    }
    if !simd {
        for group in data[..full].chunks_exact(N).rev() {
            for j in (0..N).rev() {
                enc_put(&mut x[j], &tab[usize::from(group[j])], buf, &mut pos);
            }
        }
    }
    write_states(out, &x);
    out.extend(buf[pos..].iter().flat_map(|w| w.to_le_bytes()));
}

/// Decodes an order-0 stream (exactly `src`) into `out`, whose length is the symbol count.
pub fn decode_o0(src: &[u8], out: &mut [u8]) -> Result<()> {
    let mut r = Reader::new(src);
    let lanes = lanes_from_log2(r.u8("rANS lanes")?)?;
    match lanes {
        1 => decode_o0_lanes::<1>(&mut r, out),
        2 => decode_o0_lanes::<2>(&mut r, out),
        4 => decode_o0_lanes::<4>(&mut r, out),
        8 => decode_o0_lanes::<8>(&mut r, out),
        16 => decode_o0_lanes::<16>(&mut r, out),
        _ => decode_o0_lanes::<32>(&mut r, out),
    }
}

fn decode_o0_lanes<const N: usize>(r: &mut Reader<'_>, out: &mut [u8]) -> Result<()> {
    let freq = read_freqs(r)?;
    let mut tab: Box<DecTable> = Box::new([0; TOTAL as usize]);
    dec_table(&freq, &mut tab);
    let mut x = read_states::<N>(r)?;
    let words = r.rest();
    if !words.len().is_multiple_of(2) {
        return Err(malformed("rANS word stream has an odd length"));
    }
    let mut p = 0usize;
    let n = out.len();
    let full = n - n % N;
    let (body, tail) = out.split_at_mut(full);
    let mut done = 0;
    #[cfg(target_arch = "x86_64")]
    if N == 32 && std::arch::is_x86_feature_detected!("avx2") {
        let xs: &mut [u32; 32] = (&mut x[..]).try_into().expect("32 lanes");
        // SAFETY: AVX2 is available (checked above).
        let (groups, used) = unsafe { avx2::decode_groups(xs, &tab, words, body) };
        done = groups * N;
        p = used;
    }
    let mut groups = body[done..].chunks_exact_mut(N);
    // Fast path: while a whole group's worth of words (at most one per symbol) remains, read
    // without per-word end checks.
    for group in &mut groups {
        if words.len() - p < 2 * N {
            // Too close to the end for the unchecked path: finish this group carefully.
            for j in 0..N {
                group[j] = dec_step(&mut x[j], &tab);
                renorm_checked(&mut x[j], words, &mut p)?;
            }
            continue;
        }
        let g = &words[p..p + 2 * N];
        let mut k = 0usize;
        for j in 0..N {
            group[j] = dec_step(&mut x[j], &tab);
            let need = u32::from(x[j] < RANS_L);
            // k <= 2j, so k + 1 < 2N: the read is in bounds even when it is not needed.
            let w = u32::from(u16::from_le_bytes([g[k], g[k + 1]]));
            // Arithmetic instead of a select, which LLVM compiles to an unpredictable branch.
            x[j] = (x[j] << (need << 4)) | (w & need.wrapping_neg());
            k += (need as usize) << 1;
        }
        p += k;
    }
    for (j, o) in tail.iter_mut().enumerate() {
        *o = dec_step(&mut x[j], &tab);
        renorm_checked(&mut x[j], words, &mut p)?;
    }
    check_end(&x, p, words)
}

/// The order-0 decoder for 32 lanes in AVX2: four vectors of eight states, a gathered table
/// lookup per vector, and renormalisation as one 16-byte load spread over the lanes that need
/// a word by a permutation looked up from their mask.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{DecTable, MASK};

    /// For each 8-lane mask, the index of the word each set lane takes: the count of set
    /// lanes below it.
    static SPREAD: [[u32; 8]; 256] = {
        let mut lut = [[0u32; 8]; 256];
        let mut m = 0;
        while m < 256 {
            let mut k = 0;
            let mut j = 0;
            while j < 8 {
                if m & (1 << j) != 0 {
                    lut[m][j] = k;
                    k += 1;
                }
                j += 1;
            }
            m += 1;
        }
        lut
    };

    /// For each 8-lane mask, the permutation that moves the set lanes, in order, to the top
    /// of the vector (so their words end exactly where the output position is).
    static GATHER_TOP: [[u32; 8]; 256] = {
        let mut lut = [[0u32; 8]; 256];
        let mut m = 0;
        while m < 256 {
            let cnt = (m as u32).count_ones() as usize;
            let mut k = 8 - cnt;
            let mut j = 0;
            while j < 8 {
                if m & (1 << j) != 0 {
                    lut[m][k] = j as u32;
                    k += 1;
                }
                j += 1;
            }
            m += 1;
        }
        lut
    };

    /// Encodes the whole 32-symbol groups of `data` (last group first, lanes 31 down to 0,
    /// like the scalar encoder), writing words downward into `buf` below `pos`; returns the
    /// new `pos`. Bit-identical to the scalar path: same states, same words.
    ///
    /// Per symbol it gathers two packed words, `freq | cum << 12 | sh2 << 24 | sh1 << 28` and
    /// the reciprocal, and divides with Granlund & Montgomery's 32-bit-safe form
    /// `q = (t + ((x - t) >> sh1)) >> sh2`, `t = mulhi(x, rcp)`.
    ///
    /// # Safety
    /// The CPU must support AVX2; `buf` must have at least 8 words of headroom below the
    /// lowest word the encoding emits (it holds one word per symbol plus 9).
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn encode_groups(
        x: &mut [u32; 32],
        freq: &[u32; 256],
        data: &[u8],
        buf: &mut [u16],
        mut pos: usize,
    ) -> usize {
        let mut packed = [0u32; 256];
        let mut rcps = [0u32; 256];
        let mut cum = 0u32;
        for s in 0..256 {
            let f = freq[s];
            if f > 0 {
                let l = 32 - (f - 1).leading_zeros();
                let rcp = (((1u64 << l) - u64::from(f)) << 32) / u64::from(f) + 1;
                let (sh1, sh2) = (l.min(1), l.saturating_sub(1));
                packed[s] = f | (cum << 12) | (sh2 << 24) | (sh1 << 28);
                rcps[s] = rcp as u32;
                cum += f;
            }
        }
        // Each symbol's two table words, side by side, so that a block's entries can be
        // looked up by scalar loads ahead of the vector loop: two 8-lane gathers per vector
        // (about 10 cycles each on Zen 3) bounded the encoder.
        let entry: [u64; 256] =
            std::array::from_fn(|s| u64::from(packed[s]) | u64::from(rcps[s]) << 32);
        const BLOCK_GROUPS: usize = 64;
        let mut looked_up = [0u64; 32 * BLOCK_GROUPS];
        debug_assert!(pos > data.len() + 8 || data.is_empty());
        let m12 = _mm256_set1_epi32(0xfff);
        let m4 = _mm256_set1_epi32(0xf);
        let total = _mm256_set1_epi32(super::TOTAL as i32);
        let low16 = _mm256_setr_epi8(
            0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1, //
            0, 1, 4, 5, 8, 9, 12, 13, -1, -1, -1, -1, -1, -1, -1, -1,
        );
        // SAFETY: `x` holds four 8-lane vectors; the entry loads read 8 entries at
        // `32 (g - block_start) + 8v`, inside `looked_up` as a block has at most
        // `BLOCK_GROUPS` groups; each word store writes 16 bytes at `pos - 8`, and `pos` only
        // moves down by at most 8 per vector, never below the 8-word headroom (at most one
        // word per symbol is emitted).
        unsafe {
            let xp = x.as_mut_ptr().cast::<__m256i>();
            let mut xs = [
                _mm256_loadu_si256(xp),
                _mm256_loadu_si256(xp.add(1)),
                _mm256_loadu_si256(xp.add(2)),
                _mm256_loadu_si256(xp.add(3)),
            ];
            let groups = data.len() / 32;
            let mut block_end = groups;
            while block_end > 0 {
                let block_start = block_end.saturating_sub(BLOCK_GROUPS);
                for (e, &s) in looked_up
                    .iter_mut()
                    .zip(&data[32 * block_start..32 * block_end])
                {
                    *e = entry[usize::from(s)];
                }
                for g in (block_start..block_end).rev() {
                    for v in (0..4).rev() {
                        // Entries 0-3 and 4-7 of the vector's symbols, as (packed, rcp) pairs:
                        // the even 32-bit words are `packed`, the odd ones `rcp`.
                        let at = looked_up.as_ptr().add(32 * (g - block_start) + 8 * v);
                        let lo = _mm256_castsi256_ps(_mm256_loadu_si256(at.cast::<__m256i>()));
                        let hi =
                            _mm256_castsi256_ps(_mm256_loadu_si256(at.add(4).cast::<__m256i>()));
                        let a = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(
                            _mm256_shuffle_ps::<0b10_00_10_00>(lo, hi),
                        ));
                        let rcp = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_castps_si256(
                            _mm256_shuffle_ps::<0b11_01_11_01>(lo, hi),
                        ));
                        let f = _mm256_and_si256(a, m12);
                        let x_max = _mm256_slli_epi32::<20>(f);
                        let mut xv = xs[v];
                        // x >= x_max, unsigned: max(x, x_max) == x.
                        let emit = _mm256_cmpeq_epi32(_mm256_max_epu32(xv, x_max), xv);
                        let m = _mm256_movemask_ps(_mm256_castsi256_ps(emit)) as usize;
                        let top = _mm256_loadu_si256(GATHER_TOP[m].as_ptr().cast::<__m256i>());
                        let moved =
                            _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(xv, top), low16);
                        let words =
                            _mm256_castsi256_si128(_mm256_permute4x64_epi64::<0b1000>(moved));
                        _mm_storeu_si128(buf.as_mut_ptr().add(pos - 8).cast::<__m128i>(), words);
                        pos -= m.count_ones() as usize;
                        xv = _mm256_blendv_epi8(xv, _mm256_srli_epi32::<16>(xv), emit);
                        // q = x / f
                        let even = _mm256_srli_epi64::<32>(_mm256_mul_epu32(xv, rcp));
                        let odd = _mm256_mul_epu32(
                            _mm256_srli_epi64::<32>(xv),
                            _mm256_srli_epi64::<32>(rcp),
                        );
                        let t = _mm256_blend_epi32::<0b1010_1010>(even, odd);
                        let sh1 = _mm256_srli_epi32::<28>(a);
                        let sh2 = _mm256_and_si256(_mm256_srli_epi32::<24>(a), m4);
                        let q = _mm256_srlv_epi32(
                            _mm256_add_epi32(t, _mm256_srlv_epi32(_mm256_sub_epi32(xv, t), sh1)),
                            sh2,
                        );
                        let cum = _mm256_and_si256(_mm256_srli_epi32::<12>(a), m12);
                        let cmpl = _mm256_sub_epi32(total, f);
                        xs[v] = _mm256_add_epi32(
                            _mm256_add_epi32(xv, cum),
                            _mm256_mullo_epi32(q, cmpl),
                        );
                    }
                }
                block_end = block_start;
            }
            for (v, xv) in xs.iter().enumerate() {
                _mm256_storeu_si256(xp.add(v), *xv);
            }
        }
        pos
    }

    /// Decodes whole 32-symbol groups of `out` while at least 64 bytes of `words` remain (a
    /// group reads at most 32 words, and each of its four loads at most 16 bytes past where
    /// the previous one ended). Returns the groups decoded and the bytes of `words` used;
    /// `x` holds the lanes' states in and out. Lane `j` decodes symbols `j mod 32`, reading
    /// its words in the same order as the scalar decoder.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn decode_groups(
        x: &mut [u32; 32],
        tab: &DecTable,
        words: &[u8],
        out: &mut [u8],
    ) -> (usize, usize) {
        let n_groups = out.len() / 32;
        let mut p = 0usize;
        let mut g = 0usize;
        let mask12 = _mm256_set1_epi32(MASK as i32);
        let low8 = _mm256_set1_epi32(0xff);
        let zero = _mm256_setzero_si256();
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        // SAFETY: every pointer access below stays in bounds: `x` holds 32 u32 (four
        // 8-lane vectors); gather indices are masked to 12 bits and `tab` has 4096 entries;
        // the 16-byte word loads start at most 48 bytes past `p` and `p + 64 <= words.len()`
        // is checked per group; each group stores 32 bytes at `g * 32 < n_groups * 32 <=
        // out.len()`. Loads and stores are unaligned variants.
        unsafe {
            let xp = x.as_mut_ptr().cast::<__m256i>();
            let mut xs = [
                _mm256_loadu_si256(xp),
                _mm256_loadu_si256(xp.add(1)),
                _mm256_loadu_si256(xp.add(2)),
                _mm256_loadu_si256(xp.add(3)),
            ];
            while g < n_groups && words.len() - p >= 64 {
                let mut syms = [zero; 4];
                for v in 0..4 {
                    let xv = xs[v];
                    let slot = _mm256_and_si256(xv, mask12);
                    let e = _mm256_i32gather_epi32::<4>(tab.as_ptr().cast::<i32>(), slot);
                    syms[v] = _mm256_and_si256(e, low8);
                    let freq = _mm256_srli_epi32::<20>(e);
                    let bias = _mm256_and_si256(_mm256_srli_epi32::<8>(e), mask12);
                    let xn = _mm256_add_epi32(
                        _mm256_mullo_epi32(freq, _mm256_srli_epi32::<12>(xv)),
                        bias,
                    );
                    // x < 2^16 as an unsigned test: the high half is zero.
                    let need = _mm256_cmpeq_epi32(_mm256_srli_epi32::<16>(xn), zero);
                    let m = _mm256_movemask_ps(_mm256_castsi256_ps(need)) as usize;
                    let w16 = _mm_loadu_si128(words.as_ptr().add(p).cast::<__m128i>());
                    let spread = _mm256_loadu_si256(SPREAD[m].as_ptr().cast::<__m256i>());
                    let w = _mm256_permutevar8x32_epi32(_mm256_cvtepu16_epi32(w16), spread);
                    let refilled = _mm256_or_si256(_mm256_slli_epi32::<16>(xn), w);
                    xs[v] = _mm256_blendv_epi8(xn, refilled, need);
                    p += 2 * m.count_ones() as usize;
                }
                // Symbols are < 256, so the saturating packs are plain narrowing; they
                // interleave 4-lane halves, which the final permutation puts back in order.
                let p01 = _mm256_packus_epi32(syms[0], syms[1]);
                let p23 = _mm256_packus_epi32(syms[2], syms[3]);
                let bytes = _mm256_permutevar8x32_epi32(_mm256_packus_epi16(p01, p23), order);
                _mm256_storeu_si256(out.as_mut_ptr().add(g * 32).cast::<__m256i>(), bytes);
                g += 1;
            }
            for (v, xv) in xs.iter().enumerate() {
                _mm256_storeu_si256(xp.add(v), *xv);
            }
        }
        (g, p)
    }
}

/// Estimated size of the order-1 coding: conditional entropy plus table cost.
pub fn estimate_o1(data: &[u8]) -> usize {
    let (ctx_hist, _) = o1_histograms(data, LANES_O1);
    let mut bits = 0.0;
    let mut tables = 2;
    for h in ctx_hist.iter().flatten() {
        bits += entropy_bits(h);
        tables += 2 + 3 * distinct(h);
    }
    (bits / 8.0 * 1.003) as usize + tables + 4 * LANES_O1 + 4
}

/// Segment bounds of lane `j` of `lanes` over `n` symbols: equal lengths, the last lane takes
/// the remainder.
fn o1_segment(n: usize, lanes: usize, j: usize) -> (usize, usize) {
    let q = n / lanes;
    let start = j * q;
    let end = if j + 1 == lanes { n } else { start + q };
    (start, end)
}

/// Per-context histograms (boxed, only for contexts that occur) and their count.
fn o1_histograms(data: &[u8], lanes: usize) -> (Vec<Option<Box<Histogram>>>, usize) {
    let mut ctx: Vec<Option<Box<Histogram>>> = (0..256).map(|_| None).collect();
    let mut used = 0;
    for j in 0..lanes {
        let (a, b) = o1_segment(data.len(), lanes, j);
        let mut prev = 0u8;
        for &s in &data[a..b] {
            let h = ctx[usize::from(prev)].get_or_insert_with(|| {
                used += 1;
                Box::new([0; 256])
            });
            h[usize::from(s)] += 1;
            prev = s;
        }
    }
    (ctx, used)
}

/// Appends the order-1 encoding of `data` to `out`.
pub fn encode_o1(data: &[u8], out: &mut Vec<u8>) {
    const N: usize = LANES_O1;
    let (ctx_hist, used) = o1_histograms(data, N);
    out.push(N.trailing_zeros() as u8);
    // An empty input still has one (dummy) context so the layout stays uniform.
    out.push((used.max(1) - 1) as u8);
    let mut tabs: Vec<Option<Box<[EncSym; 256]>>> = (0..256).map(|_| None).collect();
    let mut next = 0usize;
    for (c, h) in ctx_hist.iter().enumerate() {
        if let Some(h) = h {
            let freq = normalize(h);
            out.push((c - next) as u8);
            write_freqs(out, &freq);
            tabs[c] = Some(Box::new(enc_table(&freq)));
            next = c + 1;
        }
    }
    if used == 0 {
        out.push(0);
        write_freqs(out, &normalize(&[0; 256]));
    }

    let n = data.len();
    let mut buf = vec![0u16; n + 1];
    let mut pos = buf.len();
    let mut x = [RANS_L; N];
    let seg: [(usize, usize); N] = std::array::from_fn(|j| o1_segment(n, N, j));
    let q = n / N;
    let ctx_of = |i: usize, start: usize| if i == start { 0 } else { data[i - 1] };
    // The last lane's remainder (beyond q) is coded alone, last; so it is encoded first.
    let (a_last, b_last) = seg[N - 1];
    for i in (a_last + q..b_last).rev() {
        let t = tabs[usize::from(ctx_of(i, a_last))]
            .as_ref()
            .expect("context seen");
        enc_put(&mut x[N - 1], &t[usize::from(data[i])], &mut buf, &mut pos);
    }
    for k in (0..q).rev() {
        for j in (0..N).rev() {
            let i = seg[j].0 + k;
            let t = tabs[usize::from(ctx_of(i, seg[j].0))]
                .as_ref()
                .expect("context seen");
            enc_put(&mut x[j], &t[usize::from(data[i])], &mut buf, &mut pos);
        }
    }
    write_states(out, &x);
    out.reserve(2 * (buf.len() - pos));
    for w in &buf[pos..] {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// Decodes an order-1 stream (exactly `src`) into `out`.
pub fn decode_o1(src: &[u8], out: &mut [u8]) -> Result<()> {
    let mut r = Reader::new(src);
    let lanes = lanes_from_log2(r.u8("rANS lanes")?)?;
    if lanes != LANES_O1 {
        return Err(malformed(format!(
            "order-1 rANS with {lanes} lanes is not supported"
        )));
    }
    const N: usize = LANES_O1;
    let n_ctx = usize::from(r.u8("rANS context count")?) + 1;
    // Table 0 is a uniform table standing in for contexts the stream does not define: a
    // corrupt stream then decodes to garbage that the end-state check rejects, without a
    // per-symbol validity branch.
    let mut tables: Vec<u32> = vec![0; (n_ctx + 1) * TOTAL as usize];
    let uniform = [TOTAL / 256; 256];
    let mut base = [0u32; 256];
    {
        let t: &mut DecTable = (&mut tables[..TOTAL as usize]).try_into().expect("size");
        dec_table(&uniform, t);
    }
    let mut next = 0usize;
    for k in 0..n_ctx {
        let c = next + usize::from(r.u8("rANS context")?);
        if c > 255 {
            return Err(malformed("rANS context beyond 255"));
        }
        let freq = read_freqs(&mut r)?;
        let off = (k + 1) * TOTAL as usize;
        let t: &mut DecTable = (&mut tables[off..off + TOTAL as usize])
            .try_into()
            .expect("size");
        dec_table(&freq, t);
        base[c] = off as u32;
        next = c + 1;
    }
    let mut x = read_states::<N>(&mut r)?;
    let words = r.rest();
    if !words.len().is_multiple_of(2) {
        return Err(malformed("rANS word stream has an odd length"));
    }
    let n = out.len();
    let seg: [(usize, usize); N] = std::array::from_fn(|j| o1_segment(n, N, j));
    let q = n / N;
    let mut ctx = [0u8; N];
    let mut p = 0usize;
    let step = |x: &mut u32, c: u8| -> u8 {
        let e = tables[base[usize::from(c)] as usize + (*x & MASK) as usize];
        *x = (e >> 20) * (*x >> SCALE_BITS) + ((e >> 8) & 0xfff);
        e as u8
    };
    for k in 0..q {
        for j in 0..N {
            let s = step(&mut x[j], ctx[j]);
            out[seg[j].0 + k] = s;
            ctx[j] = s;
            renorm_checked(&mut x[j], words, &mut p)?;
        }
    }
    let (a_last, b_last) = seg[N - 1];
    for o in &mut out[a_last + q..b_last] {
        let s = step(&mut x[N - 1], ctx[N - 1]);
        *o = s;
        ctx[N - 1] = s;
        renorm_checked(&mut x[N - 1], words, &mut p)?;
    }
    check_end(&x, p, words)
}

/// Convenience: order-0 encode `data` into a fresh buffer.
pub fn encode(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 2 + 64);
    encode_o0(data, &histogram(data), &mut out);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn lcg(seed: &mut u64) -> u64 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        *seed >> 33
    }

    /// Bytes with a skewed, exponent-like distribution.
    pub(crate) fn skewed(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                let r = lcg(&mut s);
                (120 + (r % 7) as u8).saturating_sub((r >> 8).trailing_zeros() as u8)
            })
            .collect()
    }

    #[test]
    fn reciprocal_division_is_exact() {
        let mut seed = 1;
        for f in 1..TOTAL {
            let mut freq = [0u32; 256];
            freq[0] = f;
            freq[1] = TOTAL - f;
            let t = enc_table(&freq);
            let s = t[0];
            let xs = [0u32, 1, f - 1, f, f + 1, u32::MAX, u32::MAX - 1, 1 << 31];
            for x in xs
                .into_iter()
                .chain((0..64).map(|_| lcg(&mut seed) as u32 ^ (lcg(&mut seed) << 31) as u32))
            {
                let q = (((u64::from(x) * u64::from(s.rcp)) >> 32) + u64::from(x)) >> s.shift;
                assert_eq!(q, u64::from(x / f), "x={x} f={f}");
            }
        }
    }

    #[test]
    fn normalize_keeps_every_symbol_and_sums_to_total() {
        let mut h = [0u32; 256];
        h[3] = 1;
        h[4] = 1_000_000;
        h[200] = 7;
        h[10..100].fill(1);
        let f = normalize(&h);
        assert_eq!(f.iter().sum::<u32>(), TOTAL);
        for s in 0..256 {
            assert_eq!(h[s] > 0, f[s] > 0, "symbol {s}");
        }
        let mut one = [0u32; 256];
        one[255] = 9;
        let f = normalize(&one);
        assert_eq!((f[255], f[254]), (TOTAL - 1, 1));
        let all = [5u32; 256];
        assert!(normalize(&all).iter().all(|&f| f == 16));
    }

    #[test]
    fn order0_round_trips_at_every_length_and_lane_count() {
        for n in (0..70).chain([255, 256, 1000, 4097]) {
            let data = skewed(n, n as u64);
            let h = histogram(&data);
            let mut enc = Vec::new();
            encode_o0(&data, &h, &mut enc);
            let mut back = vec![0; n];
            decode_o0(&enc, &mut back).unwrap();
            assert_eq!(back, data, "n={n}");
            for lanes in [1usize, 4, 32] {
                let mut enc = Vec::new();
                match lanes {
                    1 => encode_o0_lanes::<1>(&data, &h, &mut enc),
                    4 => encode_o0_lanes::<4>(&data, &h, &mut enc),
                    _ => encode_o0_lanes::<32>(&data, &h, &mut enc),
                }
                let mut back = vec![0; n];
                decode_o0(&enc, &mut back).unwrap();
                assert_eq!(back, data, "n={n} lanes={lanes}");
            }
        }
    }

    #[test]
    fn vector_and_scalar_paths_agree() {
        // The 32-lane stream decodes with the scalar 32-lane decoder too (the tail groups run
        // there), and the vector encoder matches the scalar one word for word.
        // Miri (which checks the AVX2 path's unsafe code) runs the small sizes only.
        let sizes: &[usize] = if cfg!(miri) {
            &[31, 32, 33, 100]
        } else {
            &[31, 32, 33, 1000, 4096 + 17, 100_000]
        };
        for &n in sizes {
            let data = skewed(n, 5 + n as u64);
            let h = histogram(&data);
            let mut enc = Vec::new();
            encode_o0_lanes::<32>(&data, &h, &mut enc);
            let freq = normalize(&h);
            let tab = enc_table(&freq);
            let mut buf = vec![0u16; n + 9];
            let mut pos = buf.len();
            let mut x = [RANS_L; 32];
            let full = n - n % 32;
            for (j, &s) in data[full..].iter().enumerate().rev() {
                enc_put(&mut x[j], &tab[usize::from(s)], &mut buf, &mut pos);
            }
            for group in data[..full].chunks_exact(32).rev() {
                for j in (0..32).rev() {
                    enc_put(&mut x[j], &tab[usize::from(group[j])], &mut buf, &mut pos);
                }
            }
            let mut scalar = vec![5u8];
            write_freqs(&mut scalar, &freq);
            write_states(&mut scalar, &x);
            for w in &buf[pos..] {
                scalar.extend_from_slice(&w.to_le_bytes());
            }
            assert_eq!(enc, scalar, "n={n}");
            let mut back = vec![0; n];
            decode_o0(&enc, &mut back).unwrap();
            assert_eq!(back, data);
        }
    }

    #[test]
    fn order0_is_close_to_the_entropy() {
        let data = skewed(1 << 20, 7);
        let h = histogram(&data);
        let bound = entropy_bits(&h) / 8.0;
        let enc = encode(&data);
        let excess = enc.len() as f64 / bound - 1.0;
        assert!(excess < 0.005, "excess {excess}");
        assert!(enc.len() <= estimate_o0(&h) + 16);
    }

    #[test]
    fn order1_round_trips_and_wins_on_correlated_data() {
        for n in (0..40).chain([1000, 65537]) {
            let data = skewed(n, 3 + n as u64);
            let mut enc = Vec::new();
            encode_o1(&data, &mut enc);
            let mut back = vec![0; n];
            decode_o1(&enc, &mut back).unwrap();
            assert_eq!(back, data, "n={n}");
        }
        // A Markov chain: the next byte is near the previous one.
        let mut s = 9;
        let mut v = 128u8;
        let data: Vec<u8> = (0..1 << 18)
            .map(|_| {
                v = v.wrapping_add((lcg(&mut s) % 5) as u8).wrapping_sub(2);
                v
            })
            .collect();
        let mut o1 = Vec::new();
        encode_o1(&data, &mut o1);
        let o0 = encode(&data);
        assert!(o1.len() * 2 < o0.len(), "o1 {} o0 {}", o1.len(), o0.len());
        assert!(o1.len() <= estimate_o1(&data) + 16);
        let mut back = vec![0; data.len()];
        decode_o1(&o1, &mut back).unwrap();
        assert_eq!(back, data);
    }

    /// Bit-exact interoperability with an independent implementation: with one lane our
    /// stream is constriction's `AnsCoder<u16, u32>` (12-bit model, state started at 2^16),
    /// its word stack reversed behind our table and state.
    #[test]
    fn one_lane_streams_match_constriction_both_ways() {
        use constriction::stream::Decode;
        use constriction::stream::model::SmallContiguousCategoricalEntropyModel;
        use constriction::stream::stack::SmallAnsCoder;

        let data = skewed(50_000, 42);
        let hist = histogram(&data);
        let freq = normalize(&hist);
        let present: Vec<usize> = (0..256).filter(|&s| freq[s] > 0).collect();
        let mut index = [0usize; 256];
        for (i, &s) in present.iter().enumerate() {
            index[s] = i;
        }
        let probs: Vec<u16> = present.iter().map(|&s| freq[s] as u16).collect();
        let model =
            SmallContiguousCategoricalEntropyModel::<Vec<u16>>::from_nonzero_fixed_point_probabilities(
                &probs, false,
            )
            .unwrap();
        let syms: Vec<usize> = data.iter().map(|&b| index[usize::from(b)]).collect();

        // constriction encodes, we decode.
        let mut coder = SmallAnsCoder::from_raw_parts(Vec::new(), RANS_L);
        coder.encode_iid_symbols_reverse(&syms, &model).unwrap();
        let (bulk, state) = coder.into_raw_parts();
        let mut stream = vec![0u8];
        write_freqs(&mut stream, &freq);
        stream.extend_from_slice(&state.to_le_bytes());
        for w in bulk.iter().rev() {
            stream.extend_from_slice(&w.to_le_bytes());
        }
        let mut back = vec![0u8; data.len()];
        decode_o0(&stream, &mut back).unwrap();
        assert_eq!(back, data);

        // We encode, constriction decodes; the streams are identical.
        let mut ours = Vec::new();
        encode_o0_lanes::<1>(&data, &hist, &mut ours);
        assert_eq!(ours, stream);
        let head = stream.len() - 4 - 2 * bulk.len();
        let state = u32::from_le_bytes(ours[head..head + 4].try_into().unwrap());
        let words: Vec<u16> = ours[head + 4..]
            .chunks_exact(2)
            .rev()
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        let mut dec = SmallAnsCoder::from_raw_parts(words, state);
        let decoded: Vec<usize> = dec
            .decode_iid_symbols(data.len(), &model)
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(decoded, syms);
        assert_eq!(dec.into_raw_parts(), (Vec::new(), RANS_L));

        // The 8-lane coder costs the same as constriction's single lane, within its states.
        let eight = encode(&data);
        assert!(eight.len() <= stream.len() + 4 * LANES_O0);
    }

    #[test]
    fn corrupt_streams_are_errors() {
        let data = skewed(5000, 1);
        let enc = encode(&data);
        let mut back = vec![0; data.len()];
        for cut in 0..enc.len() {
            assert!(decode_o0(&enc[..cut], &mut back).is_err(), "cut {cut}");
        }
        let mut failures = 0;
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x10;
            if decode_o0(&bad, &mut back).is_err() {
                failures += 1;
            }
        }
        // Almost every flip is caught by the structure alone (the frame CRC catches the rest).
        assert!(failures * 10 > enc.len() * 9, "{failures} of {}", enc.len());
        let mut o1 = Vec::new();
        encode_o1(&data, &mut o1);
        for cut in 0..o1.len() {
            assert!(decode_o1(&o1[..cut], &mut back).is_err(), "cut {cut}");
        }
    }
}
