//! Reversible transforms from elements to byte streams: field split, byte planes, palette and
//! sparse. They only rearrange bits; the entropy stages in `stream` do the compressing.

use std::mem::MaybeUninit;

use zt_core::{DType, Result};

use crate::bytes::malformed;
use crate::mem::{self, Scratch};

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
    /// Elements of this many bytes as their sign bits (the top bit of each element, packed
    /// eight to a byte, first element in the lowest bit) and then their byte planes, least
    /// significant first, the sign bit cleared in the top plane. For fp16: the high byte less
    /// its near-random sign is a ~4.5-bit symbol, which a Huffman table lookup yields two of
    /// where it yields ~1.6 high bytes, and the packed signs cost what they did inside it.
    SignPlanes(usize),
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
            Layout::Planes(k) | Layout::SignPlanes(k) => k,
        }
    }

    /// Number of streams.
    pub(crate) fn streams(self) -> usize {
        match self {
            Layout::Bytes => 1,
            Layout::Bf16 => 2,
            Layout::F16 => 3,
            Layout::F32 => 4,
            Layout::F64 => 9,
            Layout::Planes(k) => k,
            Layout::SignPlanes(k) => k + 1,
        }
    }

    /// Bytes of stream `index` for `n` elements: one per element, except the packed signs.
    pub(crate) fn stream_len(self, index: usize, n: usize) -> usize {
        match self {
            Layout::SignPlanes(_) if index == 0 => n.div_ceil(8),
            _ => n,
        }
    }

    /// Splits `data` (whole elements) into `self.streams()` streams of
    /// [`Layout::stream_len`] bytes.
    pub(crate) fn split(self, data: &[u8]) -> Vec<Scratch> {
        let es = self.esize();
        debug_assert_eq!(data.len() % es, 0);
        let n = data.len() / es;
        if self == Layout::SignPlanes(2) {
            let (mut signs, mut lo, mut hi) = (
                mem::scratch(n.div_ceil(8)),
                mem::scratch(n),
                mem::scratch(n),
            );
            // SAFETY: SSE2 is part of the x86-64 baseline; the planes hold one byte per element
            // of `data` and the signs one bit.
            #[cfg(target_arch = "x86_64")]
            let done = unsafe { sse2::split_sign_planes2(data, &mut signs, &mut lo, &mut hi) };
            #[cfg(not(target_arch = "x86_64"))]
            let done = 0;
            // `done` is a multiple of 16: the rest starts on a whole sign byte.
            let rest = data[2 * done..].as_chunks::<2>().0;
            for ((c, l), h) in rest.iter().zip(&mut lo[done..]).zip(&mut hi[done..]) {
                *l = c[0];
                *h = c[1];
            }
            take_signs(&mut hi[done..], &mut signs[done / 8..]);
            return vec![signs, lo, hi];
        }
        if let Layout::SignPlanes(k) = self {
            let mut s = Vec::with_capacity(k + 1);
            s.push(mem::scratch(n.div_ceil(8)));
            s.extend(Layout::Planes(k).split(data));
            let (signs, planes) = s.split_at_mut(1);
            take_signs(&mut planes[k - 1], &mut signs[0]);
            return s;
        }
        // Every layout below writes every byte of every stream.
        let mut s: Vec<Scratch> = (0..self.streams()).map(|_| mem::scratch(n)).collect();
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
                let streams = e.iter_mut().zip(mh.iter_mut()).zip(ml.iter_mut());
                for (c, ((e, mh), ml)) in data.as_chunks::<2>().0.iter().zip(streams) {
                    *e = (c[1] >> 2) & 0x1f;
                    *mh = ((c[1] >> 5) & 0x4) | (c[1] & 0x3);
                    *ml = c[0];
                }
            }
            Layout::F32 => {
                let [e, m2, m1, m0] = &mut s[..] else {
                    unreachable!("4 streams")
                };
                split_f32(data, e, m2, m1, m0);
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
                // SAFETY: SSE2 is part of the x86-64 baseline; both streams hold one byte per
                // element of `data`.
                #[cfg(target_arch = "x86_64")]
                let done = unsafe { sse2::split_planes2(data, lo, hi) };
                #[cfg(not(target_arch = "x86_64"))]
                let done = 0;
                let rest = data[2 * done..].as_chunks::<2>().0;
                for ((c, l), h) in rest.iter().zip(&mut lo[done..]).zip(&mut hi[done..]) {
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
            Layout::SignPlanes(_) => unreachable!("split above"),
        }
        s
    }

    /// Inverse of [`Layout::split`]: writes `streams` (of [`Layout::stream_len`] bytes for
    /// `out.len() / esize` elements) back into elements, initializing every byte of `out`.
    /// (`out` may be fresh memory: the common layouts write it without zeroing it first, which
    /// cost a tenth of a bf16 decode.) Stream bits that the split leaves 0 are ignored.
    pub(crate) fn merge(self, streams: &[&[u8]], out: &mut [MaybeUninit<u8>]) {
        let es = self.esize();
        debug_assert_eq!(streams.len(), self.streams());
        debug_assert!(
            streams
                .iter()
                .enumerate()
                .all(|(i, s)| s.len() == self.stream_len(i, out.len() / es))
        );
        match self {
            Layout::Bytes => mem::zeroed(out).copy_from_slice(streams[0]),
            Layout::Bf16 => {
                let (es, ms) = (streams[0], streams[1]);
                let mut done = 0;
                #[cfg(target_arch = "x86_64")]
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: AVX2 is available (checked above).
                    done = unsafe { avx2::merge_bf16(es, ms, out) };
                }
                let (es, ms) = (&es[done..], &ms[done..]);
                let out = mem::zeroed(&mut out[2 * done..]);
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
                let fields = streams[0].iter().zip(streams[1]).zip(streams[2]);
                let out = mem::zeroed(out);
                for (c, ((&e, &mh), &ml)) in out.as_chunks_mut::<2>().0.iter_mut().zip(fields) {
                    *c = [ml, ((mh & 0x4) << 5) | ((e & 0x1f) << 2) | (mh & 0x3)];
                }
            }
            Layout::F32 => {
                merge_f32(streams[0], streams[1], streams[2], streams[3], out);
            }
            Layout::F64 => {
                for (i, c) in mem::zeroed(out).chunks_exact_mut(8).enumerate() {
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
                // SAFETY: SSE2 is part of the x86-64 baseline; both streams hold one byte per
                // element of `out`.
                #[cfg(target_arch = "x86_64")]
                let done = unsafe { sse2::merge_planes2(lo, hi, out) };
                #[cfg(not(target_arch = "x86_64"))]
                let done = 0;
                let rest = mem::zeroed(&mut out[2 * done..]).as_chunks_mut::<2>().0;
                for ((c, &l), &h) in rest.iter_mut().zip(&lo[done..]).zip(&hi[done..]) {
                    *c = [l, h];
                }
            }
            Layout::Planes(k) => {
                for (i, c) in mem::zeroed(out).chunks_exact_mut(k).enumerate() {
                    for (p, b) in c.iter_mut().enumerate() {
                        *b = streams[p][i];
                    }
                }
            }
            Layout::SignPlanes(2) => {
                let (signs, lo, hi) = (streams[0], streams[1], streams[2]);
                // SAFETY: SSE2 is part of the x86-64 baseline; the planes hold one byte per
                // element of `out` and the signs one bit.
                #[cfg(target_arch = "x86_64")]
                let done = unsafe { sse2::merge_sign_planes2(signs, lo, hi, out) };
                #[cfg(not(target_arch = "x86_64"))]
                let done = 0;
                let rest = mem::zeroed(&mut out[2 * done..]).as_chunks_mut::<2>().0;
                for (j, (c, (&l, &h))) in rest
                    .iter_mut()
                    .zip(lo[done..].iter().zip(&hi[done..]))
                    .enumerate()
                {
                    let i = done + j;
                    *c = [l, (h & 0x7f) | (((signs[i / 8] >> (i % 8)) & 1) << 7)];
                }
            }
            Layout::SignPlanes(k) => {
                let signs = streams[0];
                for (i, c) in mem::zeroed(out).chunks_exact_mut(k).enumerate() {
                    for (p, b) in c.iter_mut().enumerate() {
                        *b = streams[1 + p][i];
                    }
                    c[k - 1] = (c[k - 1] & 0x7f) | (((signs[i / 8] >> (i % 8)) & 1) << 7);
                }
            }
        }
    }
}

/// Moves the top bit of every byte of `top` into `signs`, packed eight to a byte (first byte
/// in the lowest bit, unused bits of the last byte 0), and clears it in `top`.
fn take_signs(top: &mut [u8], signs: &mut [u8]) {
    debug_assert_eq!(signs.len(), top.len().div_ceil(8));
    let (groups, rest) = top.as_chunks_mut::<8>();
    for (g, s) in groups.iter_mut().zip(signs.iter_mut()) {
        let w = u64::from_le_bytes(*g);
        // Bit 7 of byte j moves to bit 56 + j: the multiplier's term 2^(56 - 7j) lands the
        // byte's bit (at 8j) there; all 64 products fall on distinct bits (no carries), and
        // only those eight on bits 56..63.
        let bits = (w >> 7) & 0x0101_0101_0101_0101;
        *s = (bits.wrapping_mul(0x0102_0408_1020_4080) >> 56) as u8;
        *g = (w & 0x7f7f_7f7f_7f7f_7f7f).to_le_bytes();
    }
    if !rest.is_empty() {
        let last = signs.last_mut().expect("a byte for the remainder");
        *last = 0;
        for (j, b) in rest.iter_mut().enumerate() {
            *last |= (*b >> 7) << j;
            *b &= 0x7f;
        }
    }
}

/// The fp32 field split: 16 elements at a time in SSE2 (part of every x86-64 CPU), the rest one
/// by one. (LLVM leaves the byte-wise loop scalar: 4 ns per element, slower than rANS.)
fn split_f32(data: &[u8], e: &mut [u8], m2: &mut [u8], m1: &mut [u8], m0: &mut [u8]) {
    // SAFETY: SSE2 is part of the x86-64 baseline; the streams hold one byte per element of
    // `data` (the caller made them so).
    #[cfg(target_arch = "x86_64")]
    let done = unsafe { sse2::split_f32(data, [e, m2, m1, m0]) };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    let fields =
        (e[done..].iter_mut().zip(&mut m2[done..])).zip(m1[done..].iter_mut().zip(&mut m0[done..]));
    for (c, ((e, m2), (m1, m0))) in data[4 * done..].as_chunks::<4>().0.iter().zip(fields) {
        *e = (c[3] << 1) | (c[2] >> 7);
        *m2 = (c[3] & 0x80) | (c[2] & 0x7f);
        *m1 = c[1];
        *m0 = c[0];
    }
}

/// Inverse of [`split_f32`].
fn merge_f32(e: &[u8], m2: &[u8], m1: &[u8], m0: &[u8], out: &mut [MaybeUninit<u8>]) {
    // SAFETY: SSE2 is part of the x86-64 baseline; every stream holds one byte per element
    // of `out` (the caller checked).
    #[cfg(target_arch = "x86_64")]
    let done = unsafe { sse2::merge_f32([e, m2, m1, m0], out) };
    #[cfg(not(target_arch = "x86_64"))]
    let done = 0;
    let fields = (e[done..].iter().zip(&m2[done..])).zip(m1[done..].iter().zip(&m0[done..]));
    for (c, ((&e, &m2), (&m1, &m0))) in mem::zeroed(&mut out[4 * done..])
        .as_chunks_mut::<4>()
        .0
        .iter_mut()
        .zip(fields)
    {
        *c = [m0, m1, (e << 7) | (m2 & 0x7f), (m2 & 0x80) | (e >> 1)];
    }
}

/// fp32 field split and 2-byte planes in SSE2, 16 elements at a time.
#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// Splits the whole 16-element blocks of `data` into the exponent, sign+top mantissa,
    /// middle and low mantissa streams; returns the elements done.
    ///
    /// # Safety
    /// Every stream holds at least one byte per element of `data`.
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn split_f32(data: &[u8], [e, m2, m1, m0]: [&mut [u8]; 4]) -> usize {
        let blocks = data.len() / 64;
        debug_assert!([&e, &m2, &m1, &m0].iter().all(|s| s.len() >= blocks * 16));
        let byte = _mm_set1_epi32(0xff);
        for i in 0..blocks {
            // SAFETY: block i spans data[64i..64i+64] and stream bytes [16i..16i+16], all in
            // bounds by the count above and the caller's contract; unaligned loads/stores.
            unsafe {
                let src = data.as_ptr().add(64 * i).cast::<__m128i>();
                let v = [
                    _mm_loadu_si128(src),
                    _mm_loadu_si128(src.add(1)),
                    _mm_loadu_si128(src.add(2)),
                    _mm_loadu_si128(src.add(3)),
                ];
                // Byte k of each element, as 16 bytes: shift it down, mask, and narrow the
                // 32-bit lanes twice (the values fit, so saturation never bites).
                let plane = |k: i32| {
                    let lane = |x: __m128i| {
                        _mm_and_si128(_mm_srl_epi32(x, _mm_cvtsi32_si128(8 * k)), byte)
                    };
                    let lo = _mm_packs_epi32(lane(v[0]), lane(v[1]));
                    let hi = _mm_packs_epi32(lane(v[2]), lane(v[3]));
                    _mm_packus_epi16(lo, hi)
                };
                let (b0, b1, b2, b3) = (plane(0), plane(1), plane(2), plane(3));
                // e = b3 << 1 | b2 >> 7 and m2 = (b3 & 0x80) | (b2 & 0x7f), with 16-bit shifts
                // masked back to bytes.
                let low7 = _mm_set1_epi8(0x7f);
                let exp = _mm_or_si128(
                    _mm_andnot_si128(_mm_set1_epi8(1), _mm_slli_epi16(b3, 1)),
                    _mm_and_si128(_mm_srli_epi16(b2, 7), _mm_set1_epi8(1)),
                );
                let top = _mm_or_si128(_mm_andnot_si128(low7, b3), _mm_and_si128(b2, low7));
                let at = 16 * i;
                _mm_storeu_si128(e.as_mut_ptr().add(at).cast(), exp);
                _mm_storeu_si128(m2.as_mut_ptr().add(at).cast(), top);
                _mm_storeu_si128(m1.as_mut_ptr().add(at).cast(), b1);
                _mm_storeu_si128(m0.as_mut_ptr().add(at).cast(), b0);
            }
        }
        blocks * 16
    }

    /// The low and the high bytes of the 16 two-byte elements at `src`.
    ///
    /// # Safety
    /// 32 bytes at `src` must be readable.
    #[inline]
    #[target_feature(enable = "sse2")]
    unsafe fn planes16(src: *const u8) -> (__m128i, __m128i) {
        let low = _mm_set1_epi16(0xff);
        // SAFETY: the caller guarantees 32 readable bytes; unaligned loads.
        let (a, b) = unsafe {
            let src = src.cast::<__m128i>();
            (_mm_loadu_si128(src), _mm_loadu_si128(src.add(1)))
        };
        let l = _mm_packus_epi16(_mm_and_si128(a, low), _mm_and_si128(b, low));
        let h = _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8));
        (l, h)
    }

    /// Splits the whole 16-element blocks of 2-byte `data` into its low and high bytes;
    /// returns the elements done.
    ///
    /// # Safety
    /// `lo` and `hi` hold at least one byte per element of `data`.
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn split_planes2(data: &[u8], lo: &mut [u8], hi: &mut [u8]) -> usize {
        let blocks = data.len() / 32;
        debug_assert!(lo.len() >= blocks * 16 && hi.len() >= blocks * 16);
        for i in 0..blocks {
            // SAFETY: data[32i..32i+32] and stream bytes [16i..16i+16] are in bounds by the
            // count above and the caller's contract; unaligned loads/stores.
            unsafe {
                let (l, h) = planes16(data.as_ptr().add(32 * i));
                _mm_storeu_si128(lo.as_mut_ptr().add(16 * i).cast(), l);
                _mm_storeu_si128(hi.as_mut_ptr().add(16 * i).cast(), h);
            }
        }
        blocks * 16
    }

    /// [`split_planes2`] with the top bit of each high byte moved to `signs` (packed, first
    /// element in the lowest bit); returns the elements done, a multiple of 16.
    ///
    /// # Safety
    /// `lo` and `hi` hold at least one byte per element of `data`, `signs` one bit.
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn split_sign_planes2(
        data: &[u8],
        signs: &mut [u8],
        lo: &mut [u8],
        hi: &mut [u8],
    ) -> usize {
        let blocks = data.len() / 32;
        debug_assert!(lo.len() >= blocks * 16 && hi.len() >= blocks * 16);
        debug_assert!(signs.len() >= blocks * 2);
        let low7 = _mm_set1_epi8(0x7f);
        for i in 0..blocks {
            // SAFETY: as in `split_planes2`, and sign bytes [2i, 2i + 2) are in bounds by
            // the caller's contract.
            unsafe {
                let (l, h) = planes16(data.as_ptr().add(32 * i));
                let s = (_mm_movemask_epi8(h) as u16).to_le_bytes();
                signs
                    .as_mut_ptr()
                    .add(2 * i)
                    .cast::<[u8; 2]>()
                    .write_unaligned(s);
                _mm_storeu_si128(lo.as_mut_ptr().add(16 * i).cast(), l);
                _mm_storeu_si128(hi.as_mut_ptr().add(16 * i).cast(), _mm_and_si128(h, low7));
            }
        }
        blocks * 16
    }

    /// Inverse of [`split_planes2`].
    ///
    /// # Safety
    /// `lo` and `hi` hold at least one byte per element of `out`.
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn merge_planes2(lo: &[u8], hi: &[u8], out: &mut [MaybeUninit<u8>]) -> usize {
        let blocks = out.len() / 32;
        debug_assert!(lo.len() >= blocks * 16 && hi.len() >= blocks * 16);
        for i in 0..blocks {
            // SAFETY: as in `split_planes2`.
            unsafe {
                let l = _mm_loadu_si128(lo.as_ptr().add(16 * i).cast());
                let h = _mm_loadu_si128(hi.as_ptr().add(16 * i).cast());
                let dst = out.as_mut_ptr().add(32 * i).cast::<__m128i>();
                _mm_storeu_si128(dst, _mm_unpacklo_epi8(l, h));
                _mm_storeu_si128(dst.add(1), _mm_unpackhi_epi8(l, h));
            }
        }
        blocks * 16
    }

    /// [`merge_planes2`] with the top bit of each high byte taken from the packed `signs`.
    ///
    /// # Safety
    /// `lo` and `hi` hold at least one byte per element of `out`, `signs` one bit.
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn merge_sign_planes2(
        signs: &[u8],
        lo: &[u8],
        hi: &[u8],
        out: &mut [MaybeUninit<u8>],
    ) -> usize {
        let blocks = out.len() / 32;
        debug_assert!(lo.len() >= blocks * 16 && hi.len() >= blocks * 16);
        debug_assert!(signs.len() >= blocks * 2);
        // Byte j of each half tests bit j of its sign byte.
        let select = _mm_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
        let (low7, top) = (_mm_set1_epi8(0x7f), _mm_set1_epi8(0x80u8 as i8));
        for i in 0..blocks {
            // SAFETY: as in `split_planes2`, and sign bytes [2i, 2i + 2) are in bounds by
            // the caller's contract.
            unsafe {
                let l = _mm_loadu_si128(lo.as_ptr().add(16 * i).cast());
                let h = _mm_loadu_si128(hi.as_ptr().add(16 * i).cast());
                let spread = |b: u8| (u64::from(b) * 0x0101_0101_0101_0101) as i64;
                let s = _mm_set_epi64x(spread(signs[2 * i + 1]), spread(signs[2 * i]));
                let set = _mm_cmpeq_epi8(_mm_and_si128(s, select), select);
                let h = _mm_or_si128(_mm_and_si128(h, low7), _mm_and_si128(set, top));
                let dst = out.as_mut_ptr().add(32 * i).cast::<__m128i>();
                _mm_storeu_si128(dst, _mm_unpacklo_epi8(l, h));
                _mm_storeu_si128(dst.add(1), _mm_unpackhi_epi8(l, h));
            }
        }
        blocks * 16
    }

    /// Merges whole 16-element blocks of the four streams into `out`; returns the elements
    /// done.
    ///
    /// # Safety
    /// Every stream holds at least one byte per element of `out`.
    #[target_feature(enable = "sse2")]
    pub(super) unsafe fn merge_f32(
        [e, m2, m1, m0]: [&[u8]; 4],
        out: &mut [MaybeUninit<u8>],
    ) -> usize {
        let blocks = out.len() / 64;
        debug_assert!([e, m2, m1, m0].iter().all(|s| s.len() >= blocks * 16));
        let low7 = _mm_set1_epi8(0x7f);
        for i in 0..blocks {
            let at = 16 * i;
            // SAFETY: stream bytes [16i..16i+16] and out[64i..64i+64] are in bounds by the
            // count above and the caller's contract; unaligned loads/stores.
            unsafe {
                let exp = _mm_loadu_si128(e.as_ptr().add(at).cast());
                let top = _mm_loadu_si128(m2.as_ptr().add(at).cast());
                let b1 = _mm_loadu_si128(m1.as_ptr().add(at).cast());
                let b0 = _mm_loadu_si128(m0.as_ptr().add(at).cast());
                // b2 = e << 7 | (m2 & 0x7f), b3 = (m2 & 0x80) | e >> 1.
                let b2 = _mm_or_si128(
                    _mm_andnot_si128(low7, _mm_slli_epi16(exp, 7)),
                    _mm_and_si128(top, low7),
                );
                let b3 = _mm_or_si128(
                    _mm_andnot_si128(low7, top),
                    _mm_and_si128(_mm_srli_epi16(exp, 1), low7),
                );
                let lo01 = _mm_unpacklo_epi8(b0, b1);
                let hi01 = _mm_unpackhi_epi8(b0, b1);
                let lo23 = _mm_unpacklo_epi8(b2, b3);
                let hi23 = _mm_unpackhi_epi8(b2, b3);
                let dst = out.as_mut_ptr().add(64 * i).cast::<__m128i>();
                _mm_storeu_si128(dst, _mm_unpacklo_epi16(lo01, lo23));
                _mm_storeu_si128(dst.add(1), _mm_unpackhi_epi16(lo01, lo23));
                _mm_storeu_si128(dst.add(2), _mm_unpacklo_epi16(hi01, hi23));
                _mm_storeu_si128(dst.add(3), _mm_unpackhi_epi16(hi01, hi23));
            }
        }
        blocks * 16
    }
}

/// bf16 field split and merge in AVX2, 32 elements at a time.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

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
    pub(super) unsafe fn merge_bf16(e: &[u8], m: &[u8], out: &mut [MaybeUninit<u8>]) -> usize {
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

/// Element `e` (`ES` bytes) as a little-endian integer.
#[inline(always)]
fn key<const ES: usize>(e: &[u8; ES]) -> u64 {
    let mut b = [0u8; 8];
    b[..ES].copy_from_slice(e);
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

/// A palette for `data`: its distinct element values (sorted) and every element's index among
/// them, packed as [`palette_bits`] says; `None` when there are more than `max` (at most 256)
/// values. Stops scanning as soon as the limit is passed.
pub(crate) fn palette_scan(data: &[u8], esize: usize, max: usize) -> Option<(Vec<u64>, Scratch)> {
    debug_assert!(max <= 256);
    // Indices in order of first appearance, renumbered by value once all are known.
    let (found, ids) = match esize {
        1 => {
            if max <= 16 {
                return scan_nibbles(data, max);
            }
            let mut seen = [false; 256];
            for &b in data {
                seen[usize::from(b)] = true;
            }
            let found: Vec<u64> = (0..256u64).filter(|&v| seen[v as usize]).collect();
            if found.len() > max {
                return None;
            }
            let packed = palette_indices(data, 1, &found, palette_bits(found.len()));
            return Some((found, packed));
        }
        2 => {
            // A direct 64 Ki-entry table: a bitset to find the values (8 KiB, in L1), then
            // a byte table of their ranks to index them (two passes beat one through a
            // wider table).
            let mut values = Vec::with_capacity(max + 1);
            let mut seen = vec![0u64; 1024];
            for c in data.as_chunks::<2>().0 {
                let v = usize::from(u16::from_le_bytes(*c));
                let (w, bit) = (v >> 6, 1u64 << (v & 63));
                if seen[w] & bit == 0 {
                    seen[w] |= bit;
                    values.push(v as u64);
                    if values.len() > max {
                        return None;
                    }
                }
            }
            values.sort_unstable();
            let packed = palette_indices(data, 2, &values, palette_bits(values.len()));
            return Some((values, packed));
        }
        4 => scan_es::<4>(data, max)?,
        8 => scan_es::<8>(data, max)?,
        // No layout has other element sizes.
        _ => return None,
    };
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_unstable_by_key(|&i| found[i]);
    let mut rank = [0u8; 256];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r as u8;
    }
    let values: Vec<u64> = order.iter().map(|&i| found[i]).collect();
    let packed = pack_with(ids.as_chunks::<1>().0, palette_bits(values.len()), |e| {
        rank[usize::from(e[0])]
    });
    Some((values, packed))
}

/// [`palette_scan`] of bytes for at most `max <= 16` values in one pass: each byte's index by
/// first appearance, two to a byte as they come, then renumbered by value and repacked at
/// the palette's width in a pass over half as many bytes. (Finding the values and then
/// indexing them took two passes over the bytes: 45% of a ternary int8 compress.)
fn scan_nibbles(data: &[u8], max: usize) -> Option<(Vec<u64>, Scratch)> {
    debug_assert!(max <= 16);
    const UNSEEN: u8 = 0xff;
    let mut id = [UNSEEN; 256];
    let mut found: Vec<u8> = Vec::with_capacity(17);
    let (pairs, odd) = data.as_chunks::<2>();
    let mut nibbles = mem::scratch(pairs.len() + odd.len());
    let mut index = |b: u8, id: &mut [u8; 256]| -> Option<u8> {
        if id[usize::from(b)] == UNSEEN {
            if found.len() == max {
                return None;
            }
            id[usize::from(b)] = found.len() as u8;
            found.push(b);
        }
        Some(id[usize::from(b)])
    };
    for (n, pair) in nibbles.iter_mut().zip(pairs) {
        let (mut a, mut b) = (id[usize::from(pair[0])], id[usize::from(pair[1])]);
        if a | b >= 16 {
            // A first appearance (rare: at most 16 in all).
            a = index(pair[0], &mut id)?;
            b = index(pair[1], &mut id)?;
        }
        *n = a | b << 4;
    }
    if let [last] = odd {
        nibbles[pairs.len()] = index(*last, &mut id)?;
    }
    // Renumber by value: `rank[first-appearance index]`.
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_unstable_by_key(|&i| found[i]);
    let mut rank = [0u8; 16];
    for (r, &i) in order.iter().enumerate() {
        rank[i] = r as u8;
    }
    let values: Vec<u64> = order.iter().map(|&i| u64::from(found[i])).collect();
    let bits = palette_bits(values.len());
    // Each nibble pair as the two renumbered indices at the palette's width, side by side.
    let pair_at =
        |bits: u8| -> [u8; 256] { std::array::from_fn(|p| rank[p & 15] | rank[p >> 4] << bits) };
    let n = data.len();
    let mut packed = match bits {
        4 => {
            let table = pair_at(4);
            let mut packed = nibbles;
            packed.iter_mut().for_each(|p| *p = table[usize::from(*p)]);
            packed
        }
        2 => {
            let table = pair_at(2);
            let mut packed = mem::scratch(packed_len(n, 2));
            let (twos, rest) = nibbles.as_chunks::<2>();
            for (p, q) in packed.iter_mut().zip(twos) {
                *p = table[usize::from(q[0])] | table[usize::from(q[1])] << 4;
            }
            if let [q] = rest {
                packed[twos.len()] = table[usize::from(*q)];
            }
            packed
        }
        _ => {
            let table = pair_at(1);
            let mut packed = mem::scratch(packed_len(n, 1));
            let (fours, rest) = nibbles.as_chunks::<4>();
            for (p, q) in packed.iter_mut().zip(fours) {
                *p = (0..4).fold(0, |p, k| p | table[usize::from(q[k])] << (2 * k));
            }
            if !rest.is_empty() {
                packed[fours.len()] = rest
                    .iter()
                    .enumerate()
                    .fold(0, |p, (k, &q)| p | table[usize::from(q)] << (2 * k));
            }
            packed
        }
    };
    // An odd byte's missing partner read as index 0 above: the bits past the last index
    // are left 0, as the decoder expects.
    let used = n * usize::from(bits) % 8;
    if used != 0
        && let Some(last) = packed.last_mut()
    {
        *last &= (1u8 << used) - 1;
    }
    Some((values, packed))
}

/// The distinct values of `data` in order of first appearance and each element's position
/// among them; `None` past `max` values.
fn scan_es<const ES: usize>(data: &[u8], max: usize) -> Option<(Vec<u64>, Scratch)> {
    let mut found = Vec::with_capacity(max + 1);
    let elems = data.as_chunks::<ES>().0;
    let mut ids = mem::scratch(elems.len());
    let mut map = SmallMap::new();
    for (id, e) in ids.iter_mut().zip(elems) {
        let k = key(e);
        let s = map.slot(k);
        if map.vals[s] == u16::MAX {
            if found.len() == max {
                return None;
            }
            map.keys[s] = k;
            map.vals[s] = found.len() as u16;
            found.push(k);
        }
        *id = map.vals[s] as u8;
    }
    Some((found, ids))
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
pub(crate) fn palette_indices(data: &[u8], esize: usize, values: &[u64], bits: u8) -> Scratch {
    match esize {
        1 => {
            let mut map = [0u8; 256];
            for (i, &v) in values.iter().enumerate() {
                map[v as usize] = i as u8;
            }
            pack_with(data.as_chunks::<1>().0, bits, |e| map[usize::from(e[0])])
        }
        2 => {
            let mut map = vec![0u8; 1 << 16];
            for (i, &v) in values.iter().enumerate() {
                map[v as usize] = i as u8;
            }
            pack_with(data.as_chunks::<2>().0, bits, |e| {
                map[usize::from(u16::from_le_bytes(*e))]
            })
        }
        4 => indices_es::<4>(data, values, bits),
        8 => indices_es::<8>(data, values, bits),
        // `palette_scan` offers no palette for other element sizes.
        _ => unreachable!("palette of {esize}-byte elements"),
    }
}

fn indices_es<const ES: usize>(data: &[u8], values: &[u64], bits: u8) -> Scratch {
    let mut map = SmallMap::new();
    for (i, &v) in values.iter().enumerate() {
        let s = map.slot(v);
        map.keys[s] = v;
        map.vals[s] = i as u16;
    }
    pack_with(data.as_chunks::<ES>().0, bits, |e| {
        map.vals[map.slot(key(e))] as u8
    })
}

/// Packs `index(e)` of every element, `bits` (1, 2, 4, 8) per index, first in the lowest bits.
#[inline(always)]
fn pack_with<const ES: usize>(
    elems: &[[u8; ES]],
    bits: u8,
    mut index: impl FnMut(&[u8; ES]) -> u8,
) -> Scratch {
    match bits {
        1 => pack_groups::<ES, 8>(elems, index),
        2 => pack_groups::<ES, 4>(elems, index),
        4 => pack_groups::<ES, 2>(elems, index),
        _ => {
            let mut packed = mem::scratch(elems.len());
            for (p, e) in packed.iter_mut().zip(elems) {
                *p = index(e);
            }
            packed
        }
    }
}

/// `PER` indices of `8 / PER` bits into each byte.
#[inline(always)]
fn pack_groups<const ES: usize, const PER: usize>(
    elems: &[[u8; ES]],
    mut index: impl FnMut(&[u8; ES]) -> u8,
) -> Scratch {
    let bits = 8 / PER;
    let mut byte_of = |group: &[[u8; ES]]| {
        group
            .iter()
            .enumerate()
            .fold(0u8, |byte, (k, e)| byte | (index(e) << (k * bits)))
    };
    let (groups, rest) = elems.as_chunks::<PER>();
    let mut packed = mem::scratch(groups.len() + usize::from(!rest.is_empty()));
    // Whole groups are fixed-size arrays, so the fold over one unrolls.
    for (p, g) in packed.iter_mut().zip(groups) {
        *p = byte_of(g);
    }
    if !rest.is_empty() {
        packed[groups.len()] = byte_of(rest);
    }
    packed
}

/// Bytes needed for `n` packed `bits`-bit values.
pub(crate) fn packed_len(n: usize, bits: u8) -> usize {
    (n * usize::from(bits)).div_ceil(8)
}

/// Writes elements from packed palette indices, initializing every byte of `out`. Fails on an
/// index beyond the palette.
pub(crate) fn palette_expand(
    packed: &[u8],
    bits: u8,
    esize: usize,
    values: &[u64],
    out: &mut [MaybeUninit<u8>],
) -> Result<()> {
    debug_assert_eq!(packed.len(), packed_len(out.len() / esize, bits));
    // Which packed bytes hold only indices inside the palette: checked once per byte, and
    // the failure reported after the loop rather than branched on per element.
    let per = 8 / usize::from(bits);
    let mask = (1usize << bits) - 1;
    let valid: Vec<bool> = (0..256usize)
        .map(|b| (0..per).all(|k| (b >> (k * usize::from(bits))) & mask < values.len()))
        .collect();
    let ok = match esize {
        1 => expand_bits::<1>(packed, bits, values, &valid, out),
        2 => expand_bits::<2>(packed, bits, values, &valid, out),
        4 => expand_bits::<4>(packed, bits, values, &valid, out),
        8 => expand_bits::<8>(packed, bits, values, &valid, out),
        _ => false,
    };
    if !ok {
        return Err(malformed(format!(
            "palette index beyond the {} palette values",
            values.len()
        )));
    }
    Ok(())
}

/// [`expand`] for `bits`-bit indices.
fn expand_bits<const ES: usize>(
    packed: &[u8],
    bits: u8,
    values: &[u64],
    valid: &[bool],
    out: &mut [MaybeUninit<u8>],
) -> bool {
    match bits {
        8 => expand::<ES, 1>(packed, values, valid, out),
        4 => expand::<ES, 2>(packed, values, valid, out),
        2 => expand::<ES, 4>(packed, values, valid, out),
        _ => expand::<ES, 8>(packed, values, valid, out),
    }
}

/// Expands each packed byte into its `PER` elements of `ES` bytes through a table of all 256
/// byte values: one table copy per byte instead of a shift, mask and lookup per element.
/// Returns false when a byte holds an index beyond the palette.
fn expand<const ES: usize, const PER: usize>(
    packed: &[u8],
    values: &[u64],
    valid: &[bool],
    out: &mut [MaybeUninit<u8>],
) -> bool {
    let bits = 8 / PER;
    let mask = (1usize << bits) - 1;
    let element = |i: usize| -> [u8; ES] {
        let v = values.get(i).copied().unwrap_or(0);
        v.to_le_bytes()[..ES].try_into().expect("ES <= 8")
    };
    // An array, not a Vec: indexing it with a byte needs no bounds check.
    let table: Box<[[[u8; ES]; PER]; 256]> = Box::new(std::array::from_fn(|b| {
        std::array::from_fn(|k| element((b >> (k * bits)) & mask))
    }));
    let groups = out.len() / ES / PER;
    if packed.len() < groups {
        return false; // (the caller decoded exactly `packed_len` bytes)
    }
    let mut dst = out.as_mut_ptr().cast::<[[u8; ES]; PER]>();
    let mut packed_groups = &packed[..groups];
    // Whole-byte indices are checked by their largest against the palette's length, in one
    // vectorised pass (looking up validity beside each element kept the expansion loop at
    // ~2.3 cycles an element); packed ones by a table lookup per byte, as they expand.
    let (mut ok, valid) = if PER == 1 {
        let max = packed_groups.iter().copied().max();
        (max.is_none_or(|m| usize::from(m) < values.len()), None)
    } else {
        (true, Some(valid))
    };
    let group = ES * PER;
    if group == 2 && PER == 1 {
        // Whole-byte indices of two-byte elements (INT8 in bf16 and fp16): four to an
        // eight-byte store.
        let t16: [u16; 256] = std::array::from_fn(|b| {
            let e = table[b].as_flattened();
            u16::from_le_bytes([e[0], e[1]])
        });
        let (quads, rest) = packed_groups.as_chunks::<4>();
        let d64 = dst.cast::<u64>();
        for (g, q) in quads.iter().enumerate() {
            let v = u64::from(t16[usize::from(q[0])])
                | u64::from(t16[usize::from(q[1])]) << 16
                | u64::from(t16[usize::from(q[2])]) << 32
                | u64::from(t16[usize::from(q[3])]) << 48;
            // SAFETY: quad `g` spans bytes `8 g..8 g + 8` of `out`, inside its `2 groups`.
            unsafe { d64.add(g).write_unaligned(v.to_le()) };
        }
        // SAFETY: `4 quads.len() <= groups` groups were written.
        dst = unsafe { dst.add(quads.len() * 4) };
        packed_groups = rest;
    } else if group == 2 || group == 4 {
        // Other small groups (INT4 in a byte, ternary bytes, INT4 in bf16) go several to an
        // eight-byte store too.
        let words: [u64; 256] = std::array::from_fn(|b| {
            let mut w = [0u8; 8];
            w[..group].copy_from_slice(table[b].as_flattened());
            u64::from_le_bytes(w)
        });
        let done = if group == 2 {
            expand_words::<4>(packed_groups, &words, valid, dst.cast(), &mut ok)
        } else {
            expand_words::<2>(packed_groups, &words, valid, dst.cast(), &mut ok)
        };
        // SAFETY: `done <= groups` groups were written.
        dst = unsafe { dst.add(done) };
        packed_groups = &packed_groups[done..];
    }
    for (g, &b) in packed_groups.iter().enumerate() {
        // SAFETY: group `g < groups` spans bytes `g * ES * PER..(g + 1) * ES * PER` of `out`,
        // in bounds by `groups`; the array type has alignment 1. (A raw write because `out`
        // may be fresh memory: zeroing it first cost a tenth of an INT8 decode.)
        unsafe { dst.add(g).write(table[usize::from(b)]) };
        if let Some(valid) = valid {
            ok &= valid[usize::from(b)];
        }
    }
    let written = groups * ES * PER;
    let tail = mem::zeroed(&mut out[written..]);
    let rest = tail.as_chunks_mut::<ES>().0;
    if !rest.is_empty() {
        // The last byte's unused high bits are not looked at, as the encoder leaves them 0.
        let Some(&b) = packed.get(groups) else {
            return false;
        };
        for (k, e) in rest.iter_mut().enumerate() {
            let i = (usize::from(b) >> (k * bits)) & mask;
            ok &= i < values.len();
            *e = element(i);
        }
    }
    ok
}

/// Expands `K` packed bytes at a time through `words` (each byte's group of `8 / K` bytes,
/// zero-extended) into one eight-byte store at `dst`, checking each byte against `valid`
/// when given; returns the bytes expanded (a multiple of `K`).
fn expand_words<const K: usize>(
    packed: &[u8],
    words: &[u64; 256],
    valid: Option<&[bool]>,
    dst: *mut u8,
    ok: &mut bool,
) -> usize {
    let shift = 64 / K as u32;
    let (blocks, _) = packed.as_chunks::<K>();
    for (i, block) in blocks.iter().enumerate() {
        let mut v = 0u64;
        for (k, &b) in block.iter().enumerate() {
            v |= words[usize::from(b)] << (shift * k as u32);
        }
        if let Some(valid) = valid {
            *ok &= block.iter().fold(true, |a, &b| a & valid[usize::from(b)]);
        }
        // SAFETY: block `i` expands to bytes `8 i..8 i + 8` past `dst`, which the caller
        // holds for every group of `packed`.
        unsafe { dst.add(8 * i).cast::<u64>().write_unaligned(v.to_le()) };
    }
    blocks.len() * K
}

/// Number of all-zero elements.
pub(crate) fn count_zero_elements(data: &[u8], esize: usize) -> usize {
    // Sums of comparisons over fixed-size arrays, which LLVM vectorises (the filter-and-count
    // form stayed scalar: 6% of an fp16 compress).
    fn count<const ES: usize>(data: &[u8]) -> usize {
        data.as_chunks::<ES>()
            .0
            .iter()
            .map(|c| usize::from(*c == [0u8; ES]))
            .sum()
    }
    // One- and two-byte elements are counted in blocks of 255 into a byte, whose lanes are as
    // narrow as the comparisons (the sum above widens each to 64 bits: counting was 14% of a
    // ternary compress, and it halved on sparse bf16).
    fn count_narrow<const ES: usize>(data: &[u8]) -> usize {
        data.as_chunks::<ES>()
            .0
            .chunks(255)
            .map(|block| {
                let zeros = block.iter().fold(0u8, |n, c| n + u8::from(*c == [0u8; ES]));
                usize::from(zeros)
            })
            .sum()
    }
    match esize {
        1 => count_narrow::<1>(data),
        2 => count_narrow::<2>(data),
        4 => count::<4>(data),
        8 => count::<8>(data),
        _ => data
            .chunks_exact(esize)
            .filter(|c| c.iter().all(|&b| b == 0))
            .count(),
    }
}

/// Splits elements into a bitmap of the non-zero ones (bit set = non-zero, first element in
/// the lowest bit) and the non-zero elements themselves.
pub(crate) fn sparse_split(data: &[u8], esize: usize, nonzero: usize) -> (Scratch, Scratch) {
    match esize {
        2 => sparse_split_es::<2>(data, nonzero),
        4 => sparse_split_es::<4>(data, nonzero),
        8 => sparse_split_es::<8>(data, nonzero),
        _ => {
            let n = data.len() / esize;
            let mut bitmap = mem::scratch(n.div_ceil(8));
            bitmap.fill(0);
            let mut nz = mem::scratch(nonzero * esize);
            let mut slots = nz.chunks_exact_mut(esize);
            for (i, c) in data.chunks_exact(esize).enumerate() {
                if c.iter().any(|&b| b != 0) {
                    bitmap[i / 8] |= 1 << (i % 8);
                    slots
                        .next()
                        .expect("nonzero counts them")
                        .copy_from_slice(c);
                }
            }
            (bitmap, nz)
        }
    }
}

/// Split for fixed element sizes: SSSE3 shuffles for 2- and 4-byte elements where the CPU has
/// them, then [`sparse_split_words`] for the rest.
fn sparse_split_es<const ES: usize>(data: &[u8], nonzero: usize) -> (Scratch, Scratch) {
    let n = data.len() / ES;
    let mut bitmap = mem::scratch(n.div_ceil(8));
    bitmap.fill(0);
    // 16 bytes of slack: the vector path stores whole registers past the last element.
    let mut nz = mem::scratch(nonzero * ES + 16);
    #[allow(unused_mut)]
    let (mut bytes, mut at) = (0usize, 0usize);
    #[cfg(target_arch = "x86_64")]
    if (ES == 2 || ES == 4) && std::arch::is_x86_feature_detected!("ssse3") {
        // SAFETY: SSSE3 is available (checked above); `nz` holds every non-zero element of
        // `data` plus 16 bytes, as the kernel requires.
        (bytes, at) = unsafe { ssse3::split::<ES>(data, &mut bitmap, &mut nz) };
    }
    let k = sparse_split_words::<ES>(
        &data[bytes * 8 * ES..n * ES],
        &mut bitmap[bytes..],
        &mut nz[at..],
    );
    debug_assert_eq!(at + k, nonzero * ES);
    nz.truncate(nonzero * ES);
    (bitmap, nz)
}

/// Split for fixed element sizes, 64 elements per bitmap word: the word's bits first (a
/// compare per element, no branch), then one loop trip per non-zero element to gather it.
/// Returns the bytes written to `nz`.
fn sparse_split_words<const ES: usize>(data: &[u8], bitmap: &mut [u8], nz: &mut [u8]) -> usize {
    let (elems, _) = data.as_chunks::<ES>();
    let (slots, _) = nz.as_chunks_mut::<ES>();
    let mut k = 0usize;
    for (word, group) in bitmap.chunks_mut(8).zip(elems.chunks(64)) {
        let mut bits = 0u64;
        for (j, e) in group.iter().enumerate() {
            bits |= u64::from(*e != [0u8; ES]) << j;
        }
        word.copy_from_slice(&bits.to_le_bytes()[..word.len()]);
        while bits != 0 {
            slots[k] = group[bits.trailing_zeros() as usize];
            k += 1;
            bits &= bits - 1;
        }
    }
    k * ES
}

/// Inverse of [`sparse_split`]. Fails when the bitmap and the non-zero count disagree.
/// Writes the elements back from the bitmap and the non-zero elements, initializing every
/// byte of `out` (zero elements included) when it succeeds.
pub(crate) fn sparse_merge(
    bitmap: &[u8],
    nz: &[u8],
    esize: usize,
    out: &mut [MaybeUninit<u8>],
) -> Result<()> {
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
            for (i, c) in mem::zeroed(out).chunks_exact_mut(esize).enumerate() {
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

/// Merge for fixed element sizes: SSSE3 shuffles for 2- and 4-byte elements where the CPU has
/// them, then [`sparse_merge_words`] for the rest.
fn sparse_merge_es<const ES: usize>(bitmap: &[u8], nz: &[u8], out: &mut [MaybeUninit<u8>]) {
    #[allow(unused_mut)]
    let (mut bytes, mut at) = (0usize, 0usize);
    #[cfg(target_arch = "x86_64")]
    if (ES == 2 || ES == 4) && std::arch::is_x86_feature_detected!("ssse3") {
        // SAFETY: SSSE3 is available (checked above); the kernel bounds every load and
        // store itself.
        (bytes, at) = unsafe { ssse3::merge::<ES>(bitmap, nz, out) };
    }
    // The rest (all of it without SSSE3) is zeroed first: the word loop sets non-zero
    // elements only.
    let rest = mem::zeroed(&mut out[bytes * 8 * ES..]);
    sparse_merge_words::<ES>(&bitmap[bytes..], &nz[at..], rest);
}

/// Merge for fixed element sizes, 64 elements per bitmap word, into zeroed `out`: each set bit
/// takes the next non-zero element (one loop trip per non-zero element, not per element).
fn sparse_merge_words<const ES: usize>(bitmap: &[u8], nz: &[u8], out: &mut [u8]) {
    let (values, _) = nz.as_chunks::<ES>();
    let (elems, _) = out.as_chunks_mut::<ES>();
    let mut values = values.iter();
    for (word, group) in bitmap.chunks(8).zip(elems.chunks_mut(64)) {
        let mut w = [0u8; 8];
        w[..word.len()].copy_from_slice(word);
        let mut bits = u64::from_le_bytes(w);
        while bits != 0 {
            let j = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            // The caller checked that the bitmap has exactly as many set bits as values.
            group[j] = *values.next().expect("counted");
        }
    }
}

/// The sparse split and merge for 2- and 4-byte elements in SSSE3: 16 bytes of elements per
/// step, moved by one byte shuffle whose control comes from a table indexed by the step's
/// bitmap bits.
#[cfg(target_arch = "x86_64")]
mod ssse3 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// Shuffle controls that gather the set elements of an `8 * ES / 16`-element step (mask
    /// `m`) to the front (`compress`) or spread the front elements to the set positions
    /// (`expand`, zero elsewhere). Entries past `1 << (16 / ES)` are unused.
    const fn tables<const ES: usize>() -> ([[u8; 16]; 256], [[u8; 16]; 256]) {
        let per = 16 / ES;
        let mut compress = [[0x80u8; 16]; 256];
        let mut expand = [[0x80u8; 16]; 256];
        let mut m = 0;
        while m < 1 << per {
            let mut k = 0;
            let mut j = 0;
            while j < per {
                if m >> j & 1 == 1 {
                    let mut b = 0;
                    while b < ES {
                        compress[m][k * ES + b] = (j * ES + b) as u8;
                        expand[m][j * ES + b] = (k * ES + b) as u8;
                        b += 1;
                    }
                    k += 1;
                }
                j += 1;
            }
            m += 1;
        }
        (compress, expand)
    }

    static TABLES_2: ([[u8; 16]; 256], [[u8; 16]; 256]) = tables::<2>();
    static TABLES_4: ([[u8; 16]; 256], [[u8; 16]; 256]) = tables::<4>();

    /// Bitmap bits of the 16 bytes `v`: one per element, set for a non-zero element.
    #[inline]
    #[target_feature(enable = "ssse3")]
    fn nonzero_bits<const ES: usize>(v: __m128i) -> usize {
        let zero = _mm_setzero_si128();
        if ES == 2 {
            let z = _mm_cmpeq_epi16(v, zero);
            (!_mm_movemask_epi8(_mm_packs_epi16(z, z)) & 0xff) as usize
        } else {
            (!_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpeq_epi32(v, zero))) & 0xf) as usize
        }
    }

    /// Splits whole bitmap bytes' worth of `data` (8 elements each): fills `bitmap` and `nz`
    /// from the start; returns the bitmap bytes done and the `nz` bytes written.
    ///
    /// # Safety
    /// `ES` is 2 or 4; `nz` holds every non-zero element of `data` plus 16 bytes.
    #[target_feature(enable = "ssse3")]
    pub(super) unsafe fn split<const ES: usize>(
        data: &[u8],
        bitmap: &mut [u8],
        nz: &mut [u8],
    ) -> (usize, usize) {
        let compress = if ES == 2 { &TABLES_2.0 } else { &TABLES_4.0 };
        let steps = 8 * ES / 16; // 16-byte steps per bitmap byte
        let per = 16 / ES; // elements per step
        let bytes = (data.len() / (8 * ES)).min(bitmap.len());
        let mut at = 0usize;
        for (i, byte) in bitmap[..bytes].iter_mut().enumerate() {
            let mut bits = 0usize;
            for s in 0..steps {
                // SAFETY: the step's 16 bytes lie in `data` (i < bytes); the store writes 16
                // bytes at `at`, which is at most the non-zero bytes written so far, and `nz`
                // has 16 bytes of slack past all of them.
                unsafe {
                    let v = _mm_loadu_si128(data.as_ptr().add((i * steps + s) * 16).cast());
                    let m = nonzero_bits::<ES>(v);
                    let ctrl = _mm_loadu_si128(compress[m].as_ptr().cast());
                    debug_assert!(at + 16 <= nz.len());
                    _mm_storeu_si128(nz.as_mut_ptr().add(at).cast(), _mm_shuffle_epi8(v, ctrl));
                    at += m.count_ones() as usize * ES;
                    bits |= m << (s * per);
                }
            }
            *byte = bits as u8;
        }
        (bytes, at)
    }

    /// Merges whole bitmap bytes while 16 bytes of `nz` can be loaded; returns the bitmap
    /// bytes done and the `nz` bytes used.
    ///
    /// # Safety
    /// `ES` is 2 or 4.
    #[target_feature(enable = "ssse3")]
    pub(super) unsafe fn merge<const ES: usize>(
        bitmap: &[u8],
        nz: &[u8],
        out: &mut [MaybeUninit<u8>],
    ) -> (usize, usize) {
        let expand = if ES == 2 { &TABLES_2.1 } else { &TABLES_4.1 };
        let steps = 8 * ES / 16;
        let per = 16 / ES;
        let mask = (1usize << per) - 1;
        let bytes = (out.len() / (8 * ES)).min(bitmap.len());
        let mut at = 0usize;
        for (i, &byte) in bitmap[..bytes].iter().enumerate() {
            // Each step loads 16 bytes of values: stop where that would pass the end.
            if at + 8 * ES + 16 > nz.len() {
                return (i, at);
            }
            for s in 0..steps {
                let m = (usize::from(byte) >> (s * per)) & mask;
                // SAFETY: the load reads nz[at..at + 16], in bounds by the check above (a
                // byte's steps use at most 8 * ES bytes); the store writes the step's 16
                // bytes of `out`, in bounds as i < bytes.
                unsafe {
                    let v = _mm_loadu_si128(nz.as_ptr().add(at).cast());
                    let ctrl = _mm_loadu_si128(expand[m].as_ptr().cast());
                    let dst = out.as_mut_ptr().add((i * steps + s) * 16);
                    _mm_storeu_si128(dst.cast(), _mm_shuffle_epi8(v, ctrl));
                }
                at += m.count_ones() as usize * ES;
            }
        }
        (bytes, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte buffer as the output of a merge or an expansion.
    fn uninit(buf: &mut [u8]) -> &mut [MaybeUninit<u8>] {
        // SAFETY: the functions under test write only bytes into their output.
        unsafe { mem::as_uninit(buf) }
    }

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
            Layout::SignPlanes(1),
            Layout::SignPlanes(2),
            Layout::SignPlanes(4),
            Layout::SignPlanes(8),
        ] {
            let streams = layout.split(&data);
            assert_eq!(streams.len(), layout.streams());
            let n = data.len() / layout.esize();
            for (i, s) in streams.iter().enumerate() {
                assert_eq!(s.len(), layout.stream_len(i, n), "{layout:?} stream {i}");
            }
            let refs: Vec<&[u8]> = streams.iter().map(|s| &s[..]).collect();
            let mut back = vec![0u8; data.len()];
            layout.merge(&refs, uninit(&mut back));
            assert_eq!(back, data, "{layout:?}");
        }
    }

    #[test]
    fn sign_planes_pack_the_signs_and_ignore_bits_the_split_leaves_zero() {
        // fp16 -1.5, 2.0, -0.0, then 8 positive and 2 negative elements: 13 signs, two bytes.
        let mut elems = vec![0xBE00u16, 0x4000, 0x8000];
        elems.extend([0x3C00u16; 8]);
        elems.extend([0xBC00u16; 2]);
        let data: Vec<u8> = elems.iter().flat_map(|e| e.to_le_bytes()).collect();
        let s = Layout::SignPlanes(2).split(&data);
        assert_eq!(&s[0][..], &[0b0000_0101, 0b0001_1000]);
        assert_eq!(&s[1][..3], &[0, 0, 0]);
        assert_eq!(&s[2][..3], &[0x3E, 0x40, 0]);
        // Set sign bits in the top plane and in the last sign byte's unused bits: ignored.
        let signs = [0b0000_0101, 0b1111_1000];
        let top: Vec<u8> = s[2].iter().map(|b| b | 0x80).collect();
        for n in [13, 40] {
            let (signs, top, lo): (Vec<u8>, Vec<u8>, Vec<u8>) = if n == 13 {
                (signs.to_vec(), top.clone(), s[1].to_vec())
            } else {
                // Long enough for the vector path: the same 13 repeated with zeros between.
                let d: Vec<u8> = data.iter().copied().cycle().take(2 * n).collect();
                let t = Layout::SignPlanes(2).split(&d);
                let top = t[2].iter().map(|b| b | 0x80).collect();
                (t[0].to_vec(), top, t[1].to_vec())
            };
            let mut back = vec![0u8; 2 * n];
            Layout::SignPlanes(2).merge(&[&signs, &lo, &top], uninit(&mut back));
            let want: Vec<u8> = data.iter().copied().cycle().take(2 * n).collect();
            assert_eq!(back, want, "{n} elements");
        }
    }

    #[test]
    fn exponent_streams_hold_only_exponent_bits() {
        // -1.5 in each float format: sign set, exponent = bias, top mantissa bit set.
        let split = |layout: Layout, data: &[u8]| -> Vec<Vec<u8>> {
            layout.split(data).iter().map(|s| s.to_vec()).collect()
        };
        let bf16 = 0xBFC0u16.to_le_bytes();
        assert_eq!(
            split(Layout::Bf16, &bf16),
            vec![vec![127], vec![0x80 | 0x40]]
        );
        let f16 = 0xBE00u16.to_le_bytes();
        assert_eq!(
            split(Layout::F16, &f16),
            vec![vec![15], vec![0x4 | 0x2], vec![0]]
        );
        let f32 = (-1.5f32).to_bits().to_le_bytes();
        assert_eq!(split(Layout::F32, &f32)[..2], [vec![127], vec![0xC0]]);
        let f64 = (-1.5f64).to_bits().to_le_bytes();
        let s = Layout::F64.split(&f64);
        assert_eq!((s[0][0], s[1][0], s[2][0]), (0xff, 0x3, 0x18));
    }

    /// The one-pass byte scan (at most 16 values) agrees with the two-pass one, at odd and
    /// even lengths, whatever order the values first appear in.
    #[test]
    fn byte_palettes_scan_in_one_pass_as_in_two() {
        for n_values in [1usize, 2, 3, 4, 5, 11, 16, 17] {
            for len in [0usize, 1, 2, 7, 8, 999, 1000] {
                let data: Vec<u8> = noise(len)
                    .iter()
                    .map(|&r| (200 - 7 * (r as usize % n_values)) as u8)
                    .collect();
                let one = palette_scan(&data, 1, 16);
                let two = palette_scan(&data, 1, 256);
                match (one, two) {
                    (Some((v1, p1)), Some((v2, p2))) => {
                        assert_eq!((v1, &p1[..]), (v2, &p2[..]), "{n_values} values, {len}");
                    }
                    (None, Some((v2, _))) => assert!(v2.len() > 16),
                    (one, two) => panic!(
                        "{n_values} values, {len}: {:?} {:?}",
                        one.is_some(),
                        two.is_some()
                    ),
                }
            }
        }
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
                let (values, packed) = palette_scan(&data, esize, 256).unwrap();
                let bits = palette_bits(values.len());
                assert_eq!(packed[..], palette_indices(&data, esize, &values, bits)[..]);
                assert_eq!(packed.len(), packed_len(data.len() / esize, bits));
                let mut back = vec![0u8; data.len()];
                palette_expand(&packed, bits, esize, &values, uninit(&mut back)).unwrap();
                assert_eq!(back, data, "esize {esize} values {n_values}");
                assert!(palette_scan(&data, esize, values.len() - 1).is_none());
            }
        }
        let mut out = [0u8; 4];
        assert!(palette_expand(&[0x03], 4, 2, &[1, 2], uninit(&mut out)).is_err());
        // Whole-byte indices: one past the palette is refused wherever it stands, in the
        // four-at-a-time part or the tail.
        let values: Vec<u64> = (0..17).collect();
        for at in [0, 5, 9, 10] {
            let mut packed = vec![16u8; 11];
            packed[at] = 17;
            let mut out = vec![0u8; 22];
            let r = palette_expand(&packed, 8, 2, &values, uninit(&mut out));
            assert!(r.is_err(), "index 17 at {at}");
        }
        // Packed indices: a field past the palette, in the eight-byte-store part or the tail.
        for (bits, esize, n_values, bad) in [
            (2u8, 1usize, 3usize, 0b11u8),
            (4, 1, 5, 0x50),
            (4, 2, 9, 0x0f),
        ] {
            let values: Vec<u64> = (0..n_values as u64).collect();
            for at in [0, 3, 8] {
                let mut packed = vec![0u8; 9];
                packed[at] = bad;
                let mut out = vec![0u8; 9 * (8 / usize::from(bits)) * esize];
                let r = palette_expand(&packed, bits, esize, &values, uninit(&mut out));
                assert!(
                    r.is_err(),
                    "{bits}-bit indices, {esize}-byte elements, byte {at}"
                );
            }
        }
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
        sparse_merge(&bitmap, &nz, 4, uninit(&mut back)).unwrap();
        assert_eq!(back, data);
        assert!(sparse_merge(&bitmap, &nz[4..], 4, uninit(&mut back)).is_err());
        let mut high = bitmap.to_vec();
        *high.last_mut().unwrap() |= 0x80;
        assert!(sparse_merge(&high, &nz, 4, uninit(&mut back)).is_err());
        // Every element size, over every density (the vector paths and their scalar tails).
        for es in [2usize, 4, 8] {
            for keep in [1usize, 2, 3, 7] {
                let mut data = noise(es * 333);
                for (i, c) in data.chunks_exact_mut(es).enumerate() {
                    if i % keep != 0 {
                        c.fill(0);
                    }
                }
                let nonzero = 333 - count_zero_elements(&data, es);
                let (bitmap, nz) = sparse_split(&data, es, nonzero);
                assert_eq!(nz.len(), nonzero * es);
                let mut back = vec![1u8; data.len()];
                sparse_merge(&bitmap, &nz, es, uninit(&mut back)).unwrap();
                assert_eq!(back, data, "esize {es}, every {keep}th kept");
            }
        }
    }
}
