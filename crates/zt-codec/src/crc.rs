//! CRC-32C of decoded bytes, computed in pieces (one per chunk, in parallel) and combined.
//!
//! The combine is zlib's: appending `len` bytes multiplies a CRC by x^(8 len) modulo the
//! polynomial, and x^(8 len) comes from a table of x^(2^k). `crc_fast::checksum_combine`
//! squares 32x32 bit matrices instead, ~20 µs a call: with one call per 1 MiB chunk, made
//! serially after the parallel decode, that was ~4% of a two-thread bf16 decode. This one
//! takes well under a microsecond.

use rayon::prelude::*;

/// CRC-32C (Castagnoli), reflected.
const POLY: u32 = 0x82F6_3B78;

/// x^(2^k) modulo the polynomial, for k in 0..67 (the bit order is reflected: x^0 is bit 31):
/// enough for any 64-bit byte count times 8. (zlib keeps 32 and wraps k, which assumes
/// x^(2^32) = x: not so for this polynomial, whose combines then went wrong from 512 MiB on.)
const X2N: [u32; 67] = {
    let mut t = [0u32; 67];
    t[0] = 1 << 30;
    let mut k = 1;
    while k < 67 {
        t[k] = mul_mod(t[k - 1], t[k - 1]);
        k += 1;
    }
    t
};

/// `a * b` modulo the polynomial. `a` must be non-zero (every power of x is).
const fn mul_mod(a: u32, mut b: u32) -> u32 {
    let mut m = 1u32 << 31;
    let mut p = 0;
    while m != 0 {
        if a & m != 0 {
            p ^= b;
        }
        m >>= 1;
        b = if b & 1 != 0 { (b >> 1) ^ POLY } else { b >> 1 };
    }
    p
}

/// x^(n 2^k) modulo the polynomial, for `k + 64 <= 67`.
const fn x_pow(mut n: u64, mut k: usize) -> u32 {
    let mut p = 1u32 << 31;
    while n != 0 {
        if n & 1 != 0 {
            p = mul_mod(X2N[k], p);
        }
        n >>= 1;
        k += 1;
    }
    p
}

/// The CRC of `a ++ b` from `crc(a)`, `crc(b)` and `b`'s length.
pub(crate) fn combine(crc_a: u32, crc_b: u32, len_b: u64) -> u32 {
    // x^(8 len_b) = x^(len_b 2^3).
    mul_mod(x_pow(len_b, 3), crc_a) ^ crc_b
}

pub(crate) fn crc32c(data: &[u8]) -> u32 {
    #[cfg(all(target_arch = "x86_64", not(miri)))]
    if data.len() >= fold256::MIN_LEN && fold256::available() {
        // SAFETY: `available` checked every CPU feature the kernel is compiled for, and the
        // length is at least `MIN_LEN`.
        return !unsafe { fold256::hybrid(data, !0) };
    }
    crc_fast::crc32_iscsi(data)
}

/// CRC-32C by folding 256-bit lanes with VPCLMULQDQ while the CRC32 instruction takes three
/// more streams, on CPUs that have VPCLMULQDQ with AVX2 but not AVX-512 (AMD Zen 3, Intel
/// Alder Lake client cores), where crc-fast 1.10 folds 128 bits at a time. On this machine's
/// Zen 3: 35-40 GB/s over 64 KiB to 1 MiB, against crc-fast's 18.3 (folding alone: 25.4); a
/// 32 MiB buffer read from memory runs at ~16 against ~17.5. The checksum had been a tenth
/// of a two-thread fp16 decode, whose chunks it reads just after they are written.
///
/// Folding: a 16-byte block `B` (as a polynomial, the first byte's low bit the highest term)
/// followed by `F` more bytes contributes `B x^(8F)` to the rest of the message, and modulo
/// the polynomial that is the carry-less products of its two halves with `x^(8F+31)` and
/// `x^(8F-33)` (the `x^32` and the extra `x` of reflected multiplication are folded into
/// the constants): a 96-bit value aligned like the block `F` bytes on, into which it is
/// XORed. A CRC state is carried into later bytes by XORing it into their first four.
#[cfg(all(target_arch = "x86_64", not(miri)))]
mod fold256 {
    use std::arch::x86_64::*;

    use super::x_pow;

    /// Below this the setup costs more than the folding gains.
    pub(super) const MIN_LEN: usize = 256;

    /// The two fold constants for a distance of `bytes`, as the low and high lane.
    const fn fold_by(bytes: u64) -> (i64, i64) {
        (
            x_pow(8 * bytes + 31, 0) as i64,
            x_pow(8 * bytes - 33, 0) as i64,
        )
    }

    const BY_128: (i64, i64) = fold_by(128);
    /// Folds of block `j` of the last 128 bytes onto block 7: 16 (7 - j) bytes.
    const ONTO_LAST: [(i64, i64); 7] = {
        let mut t = [(0, 0); 7];
        let mut j = 0;
        while j < 7 {
            t[j] = fold_by(16 * (7 - j as u64));
            j += 1;
        }
        t
    };

    /// The features the kernel needs, on a CPU without AVX-512 (with it, crc-fast folds 512
    /// bits at a time).
    pub(super) fn available() -> bool {
        !is_x86_feature_detected!("avx512vl")
            && is_x86_feature_detected!("vpclmulqdq")
            && is_x86_feature_detected!("avx2")
            && is_x86_feature_detected!("pclmulqdq")
            && is_x86_feature_detected!("sse4.2")
    }

    /// Fold steps per superblock of [`hybrid`].
    const STEPS: usize = 64;
    /// Bytes of each of [`hybrid`]'s three CRC32-instruction streams per superblock: five
    /// words a step, which the CRC32 unit takes in about the time the carry-less multiplier
    /// folds 128 bytes.
    const STREAM: usize = 40 * STEPS;
    /// Bytes folded per superblock: the 128 the accumulators start with, then one step each.
    const FOLDED: usize = 128 * (STEPS + 1);
    const SUPER: usize = FOLDED + 3 * STREAM;
    /// From the last 128 folded bytes of a superblock to the first 128 of the next.
    const BY_SUPER: (i64, i64) = fold_by((SUPER - 128 * STEPS) as u64);

    /// Multiplies a raw CRC state by `x^(8 bytes)`: the state of the same bytes followed by
    /// `bytes` zeros. (The product with `x^(8 bytes - 33)` has the `x^33` of the CRC32
    /// instruction's reduction to make up.)
    #[target_feature(enable = "pclmulqdq,sse4.2")]
    fn shift(state: u32, k: u64) -> u32 {
        let p = _mm_clmulepi64_si128::<0x00>(
            _mm_cvtsi64_si128(i64::from(state)),
            _mm_cvtsi64_si128(k as i64),
        );
        _mm_crc32_u64(0, _mm_cvtsi128_si64(p) as u64) as u32
    }

    const fn shift_by(bytes: usize) -> u64 {
        x_pow(8 * bytes as u64 - 33, 0) as u64
    }

    /// The raw CRC state after `data` from `state` (no final inversion). Long inputs go in
    /// superblocks: the first `FOLDED` bytes are folded while three CRC32-instruction
    /// streams take the `3 STREAM` after them, on another execution unit, and the streams'
    /// states are shifted into place and joined to the fold's.
    ///
    /// # Safety
    /// The CPU must have every feature [`available`] checks.
    #[target_feature(enable = "vpclmulqdq,avx2,pclmulqdq,sse4.2")]
    pub(super) unsafe fn hybrid(data: &[u8], state: u32) -> u32 {
        if data.len() < SUPER {
            // SAFETY: the caller's guarantee.
            return unsafe { raw(data, state) };
        }
        let load = |at: usize| {
            let b = &data[at..at + 32];
            // SAFETY: `b` is 32 readable bytes; the load is unaligned.
            unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
        };
        let first = |at: usize, state: u32| {
            let inject = _mm256_setr_epi32(state as i32, 0, 0, 0, 0, 0, 0, 0);
            [
                _mm256_xor_si256(load(at), inject),
                load(at + 32),
                load(at + 64),
                load(at + 96),
            ]
        };
        let k128 = _mm256_setr_epi64x(BY_128.0, BY_128.1, BY_128.0, BY_128.1);
        let k_super = _mm256_setr_epi64x(BY_SUPER.0, BY_SUPER.1, BY_SUPER.0, BY_SUPER.1);
        let word = |b: &[u8], w: usize| {
            u64::from_le_bytes(b[8 * w..8 * w + 8].try_into().expect("8 bytes"))
        };
        let mut at = 0;
        let mut acc = first(0, state);
        loop {
            // `acc` holds everything before `at + 128`, folded into the 128 bytes from `at`.
            let folded = &data[at + 128..at + FOLDED];
            let streams = &data[at + FOLDED..at + SUPER];
            let (a, rest) = streams.split_at(STREAM);
            let (b, c) = rest.split_at(STREAM);
            let (mut sa, mut sb, mut sc) = (0u64, 0u64, 0u64);
            let steps = folded
                .chunks_exact(128)
                .zip(a.chunks_exact(40))
                .zip(b.chunks_exact(40))
                .zip(c.chunks_exact(40));
            for (((f, a), b), c) in steps {
                for (i, v) in acc.iter_mut().enumerate() {
                    // SAFETY: `f` is 128 readable bytes; the load is unaligned.
                    let d = unsafe { _mm256_loadu_si256(f[32 * i..].as_ptr().cast()) };
                    *v = fold_onto(*v, k128, d);
                }
                for w in 0..5 {
                    sa = _mm_crc32_u64(sa, word(a, w));
                    sb = _mm_crc32_u64(sb, word(b, w));
                    sc = _mm_crc32_u64(sc, word(c, w));
                }
            }
            // The three streams as one state at the end of the superblock, as if from 0.
            let streams = shift(sa as u32, const { shift_by(2 * STREAM) })
                ^ shift(sb as u32, const { shift_by(STREAM) })
                ^ sc as u32;
            let next = at + SUPER;
            if next + SUPER > data.len() {
                let folded = reduce(acc);
                let state = shift(folded, const { shift_by(3 * STREAM) }) ^ streams;
                // SAFETY: the caller's guarantee.
                return unsafe { raw(&data[next..], state) };
            }
            // On to the next superblock, its first four bytes carrying the streams' state.
            for (v, n) in acc.iter_mut().zip(first(next, streams)) {
                *v = fold_onto(*v, k_super, n);
            }
            at = next;
        }
    }

    /// The raw CRC state after `data` from `state`, folding 128 bytes a step.
    ///
    /// # Safety
    /// The CPU must have every feature [`available`] checks.
    #[target_feature(enable = "vpclmulqdq,avx2,pclmulqdq,sse4.2")]
    unsafe fn raw(data: &[u8], state: u32) -> u32 {
        if data.len() < MIN_LEN {
            let mut state = state;
            let (words, bytes) = data.as_chunks::<8>();
            for w in words {
                state = _mm_crc32_u64(u64::from(state), u64::from_le_bytes(*w)) as u32;
            }
            for &b in bytes {
                state = _mm_crc32_u8(state, b);
            }
            return state;
        }
        let load = |at: usize| {
            let b = &data[at..at + 32];
            // SAFETY: `b` is 32 readable bytes; the load is unaligned.
            unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
        };
        // The initial state is XORed into the first four bytes.
        let inject = _mm256_setr_epi32(state as i32, 0, 0, 0, 0, 0, 0, 0);
        let mut acc = [
            _mm256_xor_si256(load(0), inject),
            load(32),
            load(64),
            load(96),
        ];
        let k128 = _mm256_setr_epi64x(BY_128.0, BY_128.1, BY_128.0, BY_128.1);
        let mut at = 128;
        while at + 128 <= data.len() {
            for (i, a) in acc.iter_mut().enumerate() {
                *a = fold_onto(*a, k128, load(at + 32 * i));
            }
            at += 128;
        }
        let state = reduce(acc);
        // SAFETY: the caller's guarantee; fewer than `MIN_LEN` bytes are left.
        unsafe { raw(&data[at..], state) }
    }

    /// The raw CRC state after the 128 bytes that `acc` holds (from state 0): its eight
    /// 16-byte blocks folded onto the last one, which goes through the CRC32 instruction.
    #[target_feature(enable = "avx2,pclmulqdq,sse4.2")]
    fn reduce(acc: [__m256i; 4]) -> u32 {
        let blocks = acc.map(|a| [_mm256_castsi256_si128(a), _mm256_extracti128_si256::<1>(a)]);
        let blocks = blocks.as_flattened();
        let mut v = blocks[7];
        for (b, k) in blocks[..7].iter().zip(ONTO_LAST) {
            v = _mm_xor_si128(v, fold16(*b, k));
        }
        let state = _mm_crc32_u64(0, _mm_cvtsi128_si64(v) as u64);
        _mm_crc32_u64(state, _mm_extract_epi64::<1>(v) as u64) as u32
    }

    /// Two 16-byte blocks carried `k`'s distance forward and XORed into the data there.
    #[inline]
    #[target_feature(enable = "vpclmulqdq,avx2")]
    fn fold_onto(v: __m256i, k: __m256i, data: __m256i) -> __m256i {
        let lo = _mm256_clmulepi64_epi128::<0x00>(v, k);
        let hi = _mm256_clmulepi64_epi128::<0x11>(v, k);
        _mm256_xor_si256(_mm256_xor_si256(lo, hi), data)
    }

    /// Block `b` carried `k`'s distance forward.
    #[target_feature(enable = "pclmulqdq,sse4.2")]
    fn fold16(b: __m128i, k: (i64, i64)) -> __m128i {
        let k = _mm_set_epi64x(k.1, k.0);
        _mm_xor_si128(
            _mm_clmulepi64_si128::<0x00>(b, k),
            _mm_clmulepi64_si128::<0x11>(b, k),
        )
    }
}

/// Folds `(crc, len)` pieces, in order, into the CRC of their concatenation.
pub(crate) fn concat(pieces: impl IntoIterator<Item = (u32, u64)>) -> u32 {
    // The CRC of no bytes is 0, so 0 is the fold's identity.
    pieces
        .into_iter()
        .fold(0u32, |acc, (crc, len)| combine(acc, crc, len))
}

/// The CRC of `data`, in parallel pieces of `piece` bytes.
pub(crate) fn parallel(data: &[u8], piece: usize) -> u32 {
    let pieces: Vec<(u32, u64)> = data
        .par_chunks(piece)
        .map(|c| (crc32c(c), c.len() as u64))
        .collect();
    concat(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combine_matches_the_crc_of_the_concatenation() {
        let data: Vec<u8> = (0..10_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let whole = crc32c(&data);
        for cut in [0, 1, 7, 8, 9, 1000, 4096, 9999, 10_000] {
            let (a, b) = data.split_at(cut);
            assert_eq!(
                combine(crc32c(a), crc32c(b), b.len() as u64),
                whole,
                "cut {cut}"
            );
        }
        let pieces = data.chunks(333).map(|c| (crc32c(c), c.len() as u64));
        assert_eq!(concat(pieces), whole);
        assert_eq!(parallel(&data, 1024), whole);
        assert_eq!(concat([]), crc32c(&[]));
    }

    /// The folding kernel itself (where the CPU has it) and the dispatch against crc-fast, at
    /// every length around the kernel's thresholds and block boundaries, at odd offsets.
    #[test]
    fn crc32c_agrees_with_crc_fast() {
        #[cfg(all(target_arch = "x86_64", not(miri)))]
        let kernel = fold256::available();
        #[cfg(not(all(target_arch = "x86_64", not(miri))))]
        let kernel = false;
        if !kernel {
            eprintln!("no VPCLMULQDQ/AVX2 kernel on this CPU: only the dispatch is checked");
        }
        let data: Vec<u8> = (0..70_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        // Superblocks of the hybrid kernel are 16000 bytes.
        let around = |n: usize| n - 130..n + 130;
        let lens = (0..700)
            .chain([1023, 1024, 1025, 4096 + 15, 16_384])
            .chain(around(16_000))
            .chain(around(32_000))
            .chain(around(48_000))
            .chain([64_000, 69_000]);
        for len in lens {
            for off in [0, 1, 3, 17] {
                let d = &data[off..off + len];
                let expected = crc_fast::crc32_iscsi(d);
                assert_eq!(crc32c(d), expected, "len {len} at {off}");
                #[cfg(all(target_arch = "x86_64", not(miri)))]
                if kernel {
                    // SAFETY: `available` found every feature the kernel needs.
                    let raw = unsafe { fold256::hybrid(d, !0) };
                    assert_eq!(!raw, expected, "kernel, len {len} at {off}");
                }
            }
        }
        // The standard check value.
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        let zeros = vec![0u8; 4096];
        assert_eq!(crc32c(&zeros), crc_fast::crc32_iscsi(&zeros));
    }

    #[test]
    fn combine_agrees_with_crc_fast_at_large_lengths() {
        for len in [1u64 << 20, (1 << 32) + 3, u64::MAX / 3] {
            let expected = crc_fast::checksum_combine(
                crc_fast::CrcAlgorithm::Crc32Iscsi,
                0x1234_5678,
                0x9abc_def0,
                len,
            ) as u32;
            assert_eq!(
                combine(0x1234_5678, 0x9abc_def0, len),
                expected,
                "len {len}"
            );
        }
    }
}
