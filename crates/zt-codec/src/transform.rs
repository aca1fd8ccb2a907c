//! Reversible transforms from elements to byte streams: field split, byte planes, palette and
//! sparse. They only rearrange bits; the entropy stages in `stream` do the compressing.

use zt_core::{DType, Result};

use crate::bytes::malformed;

/// How the elements of a dtype are split into byte streams. Every layout is a bijection on
/// the element bits; the exponent streams come first and hold nothing but exponent bits (the
/// sign travels with the mantissa), so their histograms are as peaked as the data allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// One stream: the bytes themselves (`u8`, `i8`, `bool`, opaque data).
    Bytes,
    /// bf16 `s eeeeeeee mmmmmmm`: `[e8, s<<7 | m7]`.
    Bf16,
    /// fp16 `s eeeee mmmmmmmmmm`: `[e5, s<<2 | m[9:8], m[7:0]]`.
    F16,
    /// fp32 `s e8 m23`: `[e8, s<<7 | m[22:16], m[15:8], m[7:0]]`.
    F32,
    /// fp64 `s e11 m52`: `[e[7:0], e[10:8], s<<4 | m[51:48], m[47:40], ..., m[7:0]]`.
    F64,
    /// Integers of this many bytes: one stream per byte plane, least significant first.
    Planes(usize),
}

impl Layout {
    pub(crate) fn for_dtype(dtype: Option<DType>) -> Layout {
        match dtype {
            None => Layout::Bytes,
            Some(DType::BF16) => Layout::Bf16,
            Some(DType::F16) => Layout::F16,
            Some(DType::F32) => Layout::F32,
            Some(DType::F64) => Layout::F64,
            Some(d) if d.size() == 1 => Layout::Bytes,
            Some(d) => Layout::Planes(d.size()),
        }
    }

    /// Bytes per element.
    pub(crate) fn esize(self) -> usize {
        match self {
            Layout::Bytes => 1,
            Layout::Bf16 | Layout::F16 => 2,
            Layout::F32 => 4,
            Layout::F64 => 8,
            Layout::Planes(k) => k,
        }
    }

    /// Number of streams; each holds one byte per element.
    pub(crate) fn streams(self) -> usize {
        match self {
            Layout::Bytes => 1,
            Layout::Bf16 => 2,
            Layout::F16 => 3,
            Layout::F32 => 4,
            Layout::F64 => 9,
            Layout::Planes(k) => k,
        }
    }

    /// Splits `data` (whole elements) into `self.streams()` streams of one byte per element.
    pub(crate) fn split(self, data: &[u8]) -> Vec<Vec<u8>> {
        let es = self.esize();
        debug_assert_eq!(data.len() % es, 0);
        let n = data.len() / es;
        let mut s: Vec<Vec<u8>> = (0..self.streams()).map(|_| vec![0u8; n]).collect();
        match self {
            Layout::Bytes => s[0].copy_from_slice(data),
            Layout::Bf16 => {
                let (a, b) = s.split_at_mut(1);
                let (e, m) = (&mut a[0][..], &mut b[0][..]);
                let mut done = 0;
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is available (checked above).
                    done = unsafe { avx2::split_bf16(data, e, m) };
                }
                // The rest four elements per u64 (SWAR: LLVM does not vectorise the byte-wise
                // form), then one by one.
                let quads = data[2 * done..]
                    .chunks_exact(8)
                    .zip(e[done..].chunks_exact_mut(4))
                    .zip(m[done..].chunks_exact_mut(4));
                for ((c, e), m) in quads {
                    let w = u64::from_le_bytes(c.try_into().expect("8 bytes"));
                    let ev = (w >> 7) & LOW_BYTES;
                    let mv = ((w >> 8) & 0x0080_0080_0080_0080) | (w & 0x007f_007f_007f_007f);
                    e.copy_from_slice(&narrow(ev).to_le_bytes());
                    m.copy_from_slice(&narrow(mv).to_le_bytes());
                }
                for i in done + (n - done) / 4 * 4..n {
                    let (lo, hi) = (data[2 * i], data[2 * i + 1]);
                    e[i] = (hi << 1) | (lo >> 7);
                    m[i] = (hi & 0x80) | (lo & 0x7f);
                }
            }
            Layout::F16 => {
                let [e, mh, ml] = &mut s[..] else {
                    unreachable!("3 streams")
                };
                for (i, c) in data.chunks_exact(2).enumerate() {
                    e[i] = (c[1] >> 2) & 0x1f;
                    mh[i] = ((c[1] >> 5) & 0x4) | (c[1] & 0x3);
                    ml[i] = c[0];
                }
            }
            Layout::F32 => {
                let [e, m2, m1, m0] = &mut s[..] else {
                    unreachable!("4 streams")
                };
                for (i, c) in data.chunks_exact(4).enumerate() {
                    e[i] = (c[3] << 1) | (c[2] >> 7);
                    m2[i] = (c[3] & 0x80) | (c[2] & 0x7f);
                    m1[i] = c[1];
                    m0[i] = c[0];
                }
            }
            Layout::F64 => {
                for (i, c) in data.chunks_exact(8).enumerate() {
                    let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
                    let e = (w >> 52) & 0x7ff;
                    s[0][i] = e as u8;
                    s[1][i] = (e >> 8) as u8;
                    s[2][i] = (((w >> 63) << 4) | ((w >> 48) & 0xf)) as u8;
                    for k in 0..6 {
                        s[3 + k][i] = c[5 - k];
                    }
                }
            }
            // Two planes (fp16 via PLANES, 16-bit integers) have their own loop: the
            // generic one indexes every stream per byte and does not vectorise.
            Layout::Planes(2) => {
                let [lo, hi] = &mut s[..] else {
                    unreachable!("2 streams")
                };
                for ((c, l), h) in data.chunks_exact(2).zip(lo.iter_mut()).zip(hi.iter_mut()) {
                    *l = c[0];
                    *h = c[1];
                }
            }
            Layout::Planes(k) => {
                for (i, c) in data.chunks_exact(k).enumerate() {
                    for (p, &b) in c.iter().enumerate() {
                        s[p][i] = b;
                    }
                }
            }
        }
        s
    }

    /// Inverse of [`Layout::split`]: writes `streams` (each `out.len() / esize` bytes) back
    /// into elements.
    pub(crate) fn merge(self, streams: &[&[u8]], out: &mut [u8]) {
        let es = self.esize();
        debug_assert_eq!(streams.len(), self.streams());
        debug_assert!(streams.iter().all(|s| s.len() * es == out.len()));
        match self {
            Layout::Bytes => out.copy_from_slice(streams[0]),
            Layout::Bf16 => {
                let (es, ms) = (streams[0], streams[1]);
                let mut done = 0;
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is available (checked above).
                    done = unsafe { avx2::merge_bf16(es, ms, out) };
                }
                let (es, ms, out) = (&es[done..], &ms[done..], &mut out[2 * done..]);
                let quads = out
                    .chunks_exact_mut(8)
                    .zip(es.chunks_exact(4))
                    .zip(ms.chunks_exact(4));
                for ((c, e), m) in quads {
                    let ev = widen(u32::from_le_bytes(e.try_into().expect("4 bytes")));
                    let mv = widen(u32::from_le_bytes(m.try_into().expect("4 bytes")));
                    let w = (ev << 7)
                        | (mv & 0x007f_007f_007f_007f)
                        | ((mv & 0x0080_0080_0080_0080) << 8);
                    c.copy_from_slice(&w.to_le_bytes());
                }
                let n = es.len();
                for i in n / 4 * 4..n {
                    out[2 * i] = (es[i] << 7) | (ms[i] & 0x7f);
                    out[2 * i + 1] = (ms[i] & 0x80) | (es[i] >> 1);
                }
            }
            Layout::F16 => {
                let (e, mh, ml) = (streams[0], streams[1], streams[2]);
                for (i, c) in out.chunks_exact_mut(2).enumerate() {
                    c[0] = ml[i];
                    c[1] = ((mh[i] & 0x4) << 5) | ((e[i] & 0x1f) << 2) | (mh[i] & 0x3);
                }
            }
            Layout::F32 => {
                let (e, m2, m1, m0) = (streams[0], streams[1], streams[2], streams[3]);
                for (i, c) in out.chunks_exact_mut(4).enumerate() {
                    c[0] = m0[i];
                    c[1] = m1[i];
                    c[2] = (e[i] << 7) | (m2[i] & 0x7f);
                    c[3] = (m2[i] & 0x80) | (e[i] >> 1);
                }
            }
            Layout::F64 => {
                for (i, c) in out.chunks_exact_mut(8).enumerate() {
                    let e = u64::from(streams[0][i]) | (u64::from(streams[1][i] & 0x7) << 8);
                    let top = u64::from(streams[2][i]);
                    let mut w = ((top >> 4) << 63) | (e << 52) | ((top & 0xf) << 48);
                    for k in 0..6 {
                        w |= u64::from(streams[3 + k][i]) << (8 * (5 - k));
                    }
                    c.copy_from_slice(&w.to_le_bytes());
                }
            }
            Layout::Planes(2) => {
                let (lo, hi) = (&streams[0][..out.len() / 2], &streams[1][..out.len() / 2]);
                for ((c, &l), &h) in out.chunks_exact_mut(2).zip(lo).zip(hi) {
                    c.copy_from_slice(&[l, h]);
                }
            }
            Layout::Planes(k) => {
                for (i, c) in out.chunks_exact_mut(k).enumerate() {
                    for (p, b) in c.iter_mut().enumerate() {
                        *b = streams[p][i];
                    }
                }
            }
        }
    }
}

/// bf16 field split and merge in AVX2, 32 elements at a time.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    /// Splits the whole 32-element blocks of `data` into exponents `e` and sign+mantissa
    /// bytes `m`; returns the elements done.
    ///
    /// # Safety
    /// The CPU must support AVX2; `e` and `m` hold one byte per element of `data`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn split_bf16(data: &[u8], e: &mut [u8], m: &mut [u8]) -> usize {
        let blocks = data.len() / 64;
        assert!(e.len() >= blocks * 32 && m.len() >= blocks * 32);
        let low8 = _mm256_set1_epi16(0xff);
        let sign = _mm256_set1_epi16(0x80);
        let mant = _mm256_set1_epi16(0x7f);
        for b in 0..blocks {
            // SAFETY: block `b` reads bytes 64b..64b+64 of `data` and writes 32 bytes at 32b
            // of `e` and `m`, all in bounds by `blocks` and the assert; unaligned accesses.
            unsafe {
                let src = data.as_ptr().add(64 * b).cast::<__m256i>();
                let (w0, w1) = (_mm256_loadu_si256(src), _mm256_loadu_si256(src.add(1)));
                let ex = |w| _mm256_and_si256(_mm256_srli_epi16::<7>(w), low8);
                let mx = |w| {
                    _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16::<8>(w), sign),
                        _mm256_and_si256(w, mant),
                    )
                };
                // The packs interleave 128-bit halves; the permutation restores the order.
                let ev =
                    _mm256_permute4x64_epi64::<0b1101_1000>(_mm256_packus_epi16(ex(w0), ex(w1)));
                let mv =
                    _mm256_permute4x64_epi64::<0b1101_1000>(_mm256_packus_epi16(mx(w0), mx(w1)));
                _mm256_storeu_si256(e.as_mut_ptr().add(32 * b).cast::<__m256i>(), ev);
                _mm256_storeu_si256(m.as_mut_ptr().add(32 * b).cast::<__m256i>(), mv);
            }
        }
        blocks * 32
    }

    /// Inverse of [`split_bf16`] for the whole 32-element blocks; returns the elements done.
    ///
    /// # Safety
    /// The CPU must support AVX2; `e` and `m` hold one byte per element of `out`.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn merge_bf16(e: &[u8], m: &[u8], out: &mut [u8]) -> usize {
        let blocks = out.len() / 64;
        assert!(e.len() >= blocks * 32 && m.len() >= blocks * 32);
        let b80 = _mm256_set1_epi8(0x80u8 as i8);
        let b7f = _mm256_set1_epi8(0x7f);
        for b in 0..blocks {
            // SAFETY: block `b` reads 32 bytes at 32b of `e` and `m` and writes bytes
            // 64b..64b+64 of `out`, all in bounds by `blocks` and the assert.
            unsafe {
                let ev = _mm256_loadu_si256(e.as_ptr().add(32 * b).cast::<__m256i>());
                let mv = _mm256_loadu_si256(m.as_ptr().add(32 * b).cast::<__m256i>());
                // Low byte: e's lowest bit on top of the 7 mantissa bits; high byte: the sign
                // above e's upper 7 bits. (16-bit shifts, masked back to bytes.)
                let lo = _mm256_or_si256(
                    _mm256_and_si256(_mm256_slli_epi16::<7>(ev), b80),
                    _mm256_and_si256(mv, b7f),
                );
                let hi = _mm256_or_si256(
                    _mm256_and_si256(mv, b80),
                    _mm256_and_si256(_mm256_srli_epi16::<1>(ev), b7f),
                );
                let a = _mm256_unpacklo_epi8(lo, hi); // elements 0-7 | 16-23
                let c = _mm256_unpackhi_epi8(lo, hi); // elements 8-15 | 24-31
                let dst = out.as_mut_ptr().add(64 * b).cast::<__m256i>();
                _mm256_storeu_si256(dst, _mm256_permute2x128_si256::<0x20>(a, c));
                _mm256_storeu_si256(dst.add(1), _mm256_permute2x128_si256::<0x31>(a, c));
            }
        }
        blocks * 32
    }
}

const LOW_BYTES: u64 = 0x00ff_00ff_00ff_00ff;

/// The low bytes of the four 16-bit lanes of `x`, packed into a u32 (lane 0 lowest).
#[inline(always)]
fn narrow(x: u64) -> u32 {
    let x = (x | (x >> 8)) & 0x0000_ffff_0000_ffff;
    (x | (x >> 16)) as u32
}

/// Inverse of [`narrow`]: each byte of `x` into the low byte of a 16-bit lane.
#[inline(always)]
fn widen(x: u32) -> u64 {
    let x = u64::from(x);
    let x = (x | (x << 16)) & 0x0000_ffff_0000_ffff;
    (x | (x << 8)) & LOW_BYTES
}

/// Reads element `i` of `esize` bytes as a little-endian integer.
#[inline(always)]
fn elem(data: &[u8], esize: usize, i: usize) -> u64 {
    let mut b = [0u8; 8];
    b[..esize].copy_from_slice(&data[i * esize..(i + 1) * esize]);
    u64::from_le_bytes(b)
}

/// An open-addressing set/map of at most 256 element values (keys up to 64 bits).
struct SmallMap {
    keys: Vec<u64>,
    vals: Vec<u16>, // u16::MAX = empty
}

impl SmallMap {
    const SLOTS: usize = 1024;

    fn new() -> Self {
        SmallMap {
            keys: vec![0; Self::SLOTS],
            vals: vec![u16::MAX; Self::SLOTS],
        }
    }

    #[inline(always)]
    fn slot(&self, k: u64) -> usize {
        let mut i = (k.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize;
        // The table is at most a quarter full, so probing always ends.
        while self.vals[i] != u16::MAX && self.keys[i] != k {
            i = (i + 1) & (Self::SLOTS - 1);
        }
        i
    }
}

/// The distinct element values of `data` (sorted), or `None` when there are more than
/// `max` (at most 256). Stops scanning as soon as the limit is passed.
pub(crate) fn distinct_values(data: &[u8], esize: usize, max: usize) -> Option<Vec<u64>> {
    debug_assert!(max <= 256);
    let n = data.len() / esize;
    let mut values = Vec::with_capacity(max + 1);
    match esize {
        1 => {
            let mut seen = [false; 256];
            for &b in data {
                seen[usize::from(b)] = true;
            }
            values.extend((0..256u64).filter(|&v| seen[v as usize]));
            if values.len() > max {
                return None;
            }
        }
        2 => {
            let mut seen = vec![0u64; 1024];
            for c in data.chunks_exact(2) {
                let v = usize::from(u16::from_le_bytes([c[0], c[1]]));
                let (w, bit) = (v >> 6, 1u64 << (v & 63));
                if seen[w] & bit == 0 {
                    seen[w] |= bit;
                    values.push(v as u64);
                    if values.len() > max {
                        return None;
                    }
                }
            }
        }
        _ => {
            let mut map = SmallMap::new();
            for i in 0..n {
                let k = elem(data, esize, i);
                let s = map.slot(k);
                if map.vals[s] == u16::MAX {
                    map.keys[s] = k;
                    map.vals[s] = 0;
                    values.push(k);
                    if values.len() > max {
                        return None;
                    }
                }
            }
        }
    }
    values.sort_unstable();
    Some(values)
}

/// Index bits for a palette of `n` values: 1, 2, 4 or 8.
pub(crate) fn palette_bits(n: usize) -> u8 {
    match n {
        0..=2 => 1,
        3..=4 => 2,
        5..=16 => 4,
        _ => 8,
    }
}

/// Maps every element to its index in `values` (sorted, all present) and packs the indices,
/// `8 / bits` per byte, first element in the lowest bits.
pub(crate) fn palette_indices(data: &[u8], esize: usize, values: &[u64], bits: u8) -> Vec<u8> {
    let n = data.len() / esize;
    let mut idx = vec![0u8; n];
    match esize {
        1 => {
            let mut map = [0u8; 256];
            for (i, &v) in values.iter().enumerate() {
                map[v as usize] = i as u8;
            }
            for (o, &b) in idx.iter_mut().zip(data) {
                *o = map[usize::from(b)];
            }
        }
        2 => {
            let mut map = vec![0u8; 1 << 16];
            for (i, &v) in values.iter().enumerate() {
                map[v as usize] = i as u8;
            }
            for (o, c) in idx.iter_mut().zip(data.chunks_exact(2)) {
                *o = map[usize::from(u16::from_le_bytes([c[0], c[1]]))];
            }
        }
        _ => {
            let mut map = SmallMap::new();
            for (i, &v) in values.iter().enumerate() {
                let s = map.slot(v);
                map.keys[s] = v;
                map.vals[s] = i as u16;
            }
            for (i, o) in idx.iter_mut().enumerate() {
                *o = map.vals[map.slot(elem(data, esize, i))] as u8;
            }
        }
    }
    pack(&idx, bits)
}

/// Packs `bits`-bit values (`bits` in 1, 2, 4, 8), first value in the lowest bits.
pub(crate) fn pack(idx: &[u8], bits: u8) -> Vec<u8> {
    if bits == 8 {
        return idx.to_vec();
    }
    let per = usize::from(8 / bits);
    idx.chunks(per)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |acc, (k, &v)| acc | (v << (k * usize::from(bits))))
        })
        .collect()
}

/// Bytes needed for `n` packed `bits`-bit values.
pub(crate) fn packed_len(n: usize, bits: u8) -> usize {
    (n * usize::from(bits)).div_ceil(8)
}

/// Writes elements from packed palette indices. Fails on an index beyond the palette.
pub(crate) fn palette_expand(
    packed: &[u8],
    bits: u8,
    esize: usize,
    values: &[u64],
    out: &mut [u8],
) -> Result<()> {
    let n = out.len() / esize;
    debug_assert_eq!(packed.len(), packed_len(n, bits));
    // A full 256-entry table: indices beyond the palette map to a sentinel that is caught
    // once, after the loop, rather than per element.
    let mut table = [0u64; 256];
    table[..values.len()].copy_from_slice(values);
    let per = 8 / usize::from(bits);
    let mask = ((1u16 << bits) - 1) as u8;
    let mut max_idx = 0u8;
    match esize {
        1 => {
            let t: Vec<u8> = table.iter().map(|&v| v as u8).collect();
            for (i, o) in out.iter_mut().enumerate() {
                let v = (packed[i / per] >> ((i % per) * usize::from(bits))) & mask;
                max_idx = max_idx.max(v);
                *o = t[usize::from(v)];
            }
        }
        2 => {
            let t: Vec<[u8; 2]> = table.iter().map(|&v| (v as u16).to_le_bytes()).collect();
            if bits == 8 {
                for (c, &v) in out.chunks_exact_mut(2).zip(packed) {
                    max_idx = max_idx.max(v);
                    c.copy_from_slice(&t[usize::from(v)]);
                }
            } else {
                for (i, c) in out.chunks_exact_mut(2).enumerate() {
                    let v = (packed[i / per] >> ((i % per) * usize::from(bits))) & mask;
                    max_idx = max_idx.max(v);
                    c.copy_from_slice(&t[usize::from(v)]);
                }
            }
        }
        _ => {
            for (i, c) in out.chunks_exact_mut(esize).enumerate() {
                let v = (packed[i / per] >> ((i % per) * usize::from(bits))) & mask;
                max_idx = max_idx.max(v);
                c.copy_from_slice(&table[usize::from(v)].to_le_bytes()[..esize]);
            }
        }
    }
    if usize::from(max_idx) >= values.len() {
        return Err(malformed(format!(
            "palette index {max_idx} beyond the {} palette values",
            values.len()
        )));
    }
    Ok(())
}

/// Number of all-zero elements.
pub(crate) fn count_zero_elements(data: &[u8], esize: usize) -> usize {
    match esize {
        1 => data.iter().filter(|&&b| b == 0).count(),
        2 => data
            .chunks_exact(2)
            .filter(|c| u16::from_le_bytes([c[0], c[1]]) == 0)
            .count(),
        4 => data
            .chunks_exact(4)
            .filter(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) == 0)
            .count(),
        _ => data
            .chunks_exact(esize)
            .filter(|c| c.iter().all(|&b| b == 0))
            .count(),
    }
}

/// Splits elements into a bitmap of the non-zero ones (bit set = non-zero, first element in
/// the lowest bit) and the non-zero elements themselves.
pub(crate) fn sparse_split(data: &[u8], esize: usize, nonzero: usize) -> (Vec<u8>, Vec<u8>) {
    match esize {
        2 => sparse_split_es::<2>(data, nonzero),
        4 => sparse_split_es::<4>(data, nonzero),
        8 => sparse_split_es::<8>(data, nonzero),
        _ => {
            let n = data.len() / esize;
            let mut bitmap = vec![0u8; n.div_ceil(8)];
            let mut nz = Vec::with_capacity(nonzero * esize);
            for (i, c) in data.chunks_exact(esize).enumerate() {
                if c.iter().any(|&b| b != 0) {
                    bitmap[i / 8] |= 1 << (i % 8);
                    nz.extend_from_slice(c);
                }
            }
            (bitmap, nz)
        }
    }
}

/// Branch-free split for fixed element sizes: every element is written at the next free
/// slot, which only advances past non-zero ones (zeros are random in pruned weights, so a
/// branch would mispredict half the time).
fn sparse_split_es<const ES: usize>(data: &[u8], nonzero: usize) -> (Vec<u8>, Vec<u8>) {
    let n = data.len() / ES;
    let mut bitmap = vec![0u8; n.div_ceil(8)];
    // One spare slot: the last element is written even when it is zero.
    let mut nz = vec![0u8; (nonzero + 1) * ES];
    let mut k = 0usize;
    for (byte, group) in bitmap.iter_mut().zip(data.chunks(8 * ES)) {
        let mut bits = 0u8;
        for (j, c) in group.chunks_exact(ES).enumerate() {
            let c: &[u8; ES] = c.try_into().expect("element");
            let set = c.iter().any(|&b| b != 0);
            nz[k * ES..(k + 1) * ES].copy_from_slice(c);
            k += usize::from(set);
            bits |= u8::from(set) << j;
        }
        *byte = bits;
    }
    debug_assert_eq!(k, nonzero);
    nz.truncate(nonzero * ES);
    (bitmap, nz)
}

/// Inverse of [`sparse_split`]. Fails when the bitmap and the non-zero count disagree.
pub(crate) fn sparse_merge(bitmap: &[u8], nz: &[u8], esize: usize, out: &mut [u8]) -> Result<()> {
    let n = out.len() / esize;
    let ones: usize = bitmap.iter().map(|b| b.count_ones() as usize).sum();
    let spare_bits = bitmap.len() * 8 - n;
    let high_bits_clear =
        spare_bits == 0 || bitmap.last().is_none_or(|&b| b >> (8 - spare_bits) == 0);
    if ones * esize != nz.len() || !high_bits_clear {
        return Err(malformed(
            "sparse bitmap does not match its non-zero elements",
        ));
    }
    match esize {
        2 => sparse_merge_es::<2>(bitmap, nz, out),
        4 => sparse_merge_es::<4>(bitmap, nz, out),
        8 => sparse_merge_es::<8>(bitmap, nz, out),
        _ => {
            let mut src = nz.chunks_exact(esize);
            for (i, c) in out.chunks_exact_mut(esize).enumerate() {
                if bitmap[i / 8] & (1 << (i % 8)) != 0 {
                    c.copy_from_slice(src.next().expect("counted"));
                } else {
                    c.fill(0);
                }
            }
        }
    }
    Ok(())
}

/// Branch-free merge: each element takes the next non-zero value masked by its bit.
fn sparse_merge_es<const ES: usize>(bitmap: &[u8], nz: &[u8], out: &mut [u8]) {
    let mut k = 0usize;
    let last = nz.len() / ES; // reads at `last` are masked to zero: clamp them in bounds
    for (&bits, group) in bitmap.iter().zip(out.chunks_mut(8 * ES)) {
        for (j, c) in group.chunks_exact_mut(ES).enumerate() {
            let set = (bits >> j) & 1;
            let at = k.min(last.saturating_sub(1));
            let mut v = [0u8; ES];
            if last > 0 {
                v.copy_from_slice(&nz[at * ES..(at + 1) * ES]);
            }
            let mask = 0u8.wrapping_sub(set);
            for (o, b) in c.iter_mut().zip(v) {
                *o = b & mask;
            }
            k += usize::from(set);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(n: usize) -> Vec<u8> {
        let mut s = 0x1234_5678_9abc_def1u64;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                (s >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn every_layout_splits_and_merges_bit_exactly() {
        let data = noise(8 * 999);
        for layout in [
            Layout::Bytes,
            Layout::Bf16,
            Layout::F16,
            Layout::F32,
            Layout::F64,
            Layout::Planes(2),
            Layout::Planes(4),
            Layout::Planes(8),
        ] {
            let streams = layout.split(&data);
            assert_eq!(streams.len(), layout.streams());
            let refs: Vec<&[u8]> = streams.iter().map(|s| &s[..]).collect();
            let mut back = vec![0u8; data.len()];
            layout.merge(&refs, &mut back);
            assert_eq!(back, data, "{layout:?}");
        }
    }

    #[test]
    fn exponent_streams_hold_only_exponent_bits() {
        // -1.5 in each float format: sign set, exponent = bias, top mantissa bit set.
        let bf16 = 0xBFC0u16.to_le_bytes();
        assert_eq!(
            Layout::Bf16.split(&bf16),
            vec![vec![127], vec![0x80 | 0x40]]
        );
        let f16 = 0xBE00u16.to_le_bytes();
        assert_eq!(
            Layout::F16.split(&f16),
            vec![vec![15], vec![0x4 | 0x2], vec![0]]
        );
        let f32 = (-1.5f32).to_bits().to_le_bytes();
        assert_eq!(Layout::F32.split(&f32)[..2], [vec![127], vec![0xC0]]);
        let f64 = (-1.5f64).to_bits().to_le_bytes();
        let s = Layout::F64.split(&f64);
        assert_eq!((s[0][0], s[1][0], s[2][0]), (0xff, 0x3, 0x18));
    }

    #[test]
    fn palettes_round_trip_at_every_width() {
        for esize in [1usize, 2, 4, 8] {
            for n_values in [2usize, 3, 4, 5, 16, 17, 256] {
                let data: Vec<u8> = noise(997)
                    .iter()
                    .flat_map(|&r| {
                        let v =
                            (u64::from(r) % n_values as u64).wrapping_mul(0x0101_0101_0101_0101);
                        v.to_le_bytes()[..esize].to_vec()
                    })
                    .collect();
                let values = distinct_values(&data, esize, 256).unwrap();
                let bits = palette_bits(values.len());
                let packed = palette_indices(&data, esize, &values, bits);
                assert_eq!(packed.len(), packed_len(data.len() / esize, bits));
                let mut back = vec![0u8; data.len()];
                palette_expand(&packed, bits, esize, &values, &mut back).unwrap();
                assert_eq!(back, data, "esize {esize} values {n_values}");
                assert!(distinct_values(&data, esize, values.len() - 1).is_none());
            }
        }
        let mut out = [0u8; 4];
        assert!(palette_expand(&[0x03], 4, 2, &[1, 2], &mut out).is_err());
    }

    #[test]
    fn sparse_round_trips_and_checks_its_bitmap() {
        let mut data = noise(4 * 101);
        for c in data.chunks_exact_mut(4).step_by(3) {
            c.fill(0);
        }
        let zeros = count_zero_elements(&data, 4);
        assert_eq!(zeros, 34);
        let (bitmap, nz) = sparse_split(&data, 4, 101 - zeros);
        let mut back = vec![1u8; data.len()];
        sparse_merge(&bitmap, &nz, 4, &mut back).unwrap();
        assert_eq!(back, data);
        assert!(sparse_merge(&bitmap, &nz[4..], 4, &mut back).is_err());
        let mut high = bitmap.clone();
        *high.last_mut().unwrap() |= 0x80;
        assert!(sparse_merge(&high, &nz, 4, &mut back).is_err());
    }
}
