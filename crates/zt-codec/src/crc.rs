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
fn x_pow(mut n: u64, mut k: usize) -> u32 {
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
    crc_fast::crc32_iscsi(data)
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
