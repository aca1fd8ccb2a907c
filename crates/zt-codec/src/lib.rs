//! **ztc1**: a lossless codec for the bytes of model weights. Pure computation: bytes and a
//! dtype in, a self-describing, checksummed frame out, and back. No file I/O.
//!
//! ```
//! use zt_codec::{compress, decompress, CompressOptions};
//! use zt_core::DType;
//!
//! let weights: Vec<u8> = (0..4096u32).flat_map(|i| ((i % 64) as u16 + 0x3c00).to_le_bytes()).collect();
//! let frame = compress(&weights, Some(DType::BF16), &CompressOptions::default())?;
//! assert_eq!(decompress(&frame)?, weights);
//! # Ok::<(), zt_core::Error>(())
//! ```
//!
//! API: [`compress`], [`decompress`], [`decompress_into`] (into a caller's buffer),
//! [`frame_info`] (header only), [`compress_delta`] / [`decompress_delta`] (XOR against an
//! equal-length reference checkpoint), with [`CompressOptions`] ([`Effort`], chunk size,
//! threads) and [`DecompressOptions`] (threads, a decoded-size limit for untrusted frames).
//! Every error is a [`zt_core::Error`]; hostile frames give errors, never panics, and nothing
//! is allocated before the header has been validated against the frame.
//!
//! # How it works
//!
//! 1. **Whole-buffer redundancy** (before chunking). If the buffer is one block repeated
//!    (`data[p..] == data[..len-p]` for a period `p <= min(len/2, 8 MiB)`, found by
//!    searching for a 64-byte probe with `memchr::memmem` and verifying in parallel), only
//!    the first `p` bytes are coded and the rest is one *copy* segment. Otherwise the buffer
//!    is cut into chunks (1 MiB by default, 32 MiB at effort max) and a chunk equal to an
//!    earlier one (a sampled xxh3-128 fingerprint, then compared byte for byte) becomes a
//!    copy segment; consecutive copies merge.
//! 2. **Per chunk, a transform** (chunks are coded and decoded in parallel with rayon):
//!    - *constant*: one element repeated;
//!    - *field split*: floats are split into an exponent stream, kept pure, and the sign
//!      travelling with the mantissa bytes (table below); integers into byte planes;
//!    - fp16 alone: *byte planes*, whose high byte codes the exponent with the top mantissa
//!      bits it depends on, and *sign planes*, the same with the near-random sign bits packed
//!      apart, which leaves Huffman 4.5-bit symbols instead of 5.5-bit ones (a fifth faster
//!      to decode at the same size); a sample of the input picks one of the three;
//!    - *palette*: at most 256 distinct element values (dequantised INT4/INT8/FP8 in a wide
//!      container) become a sorted codebook plus indices packed 8/4/2/1 bits wide for at
//!      most 256/16/4/2 values (a packed byte is one symbol to the entropy coder, so INT4
//!      pairs are coded jointly);
//!    - *sparse*: a bitmap of the non-zero elements plus the non-zero elements, themselves
//!      field-split or palettised;
//!    - *zstd* of the whole chunk (long-distance matching on), *stored* as the last resort,
//!      so a frame is never more than its header plus one byte per chunk larger than the
//!      input.
//! 3. **Per stream, an entropy stage**: stored, constant, order-0 rANS, order-1 rANS, zstd,
//!    or four-stream Huffman (see [`rans`] and [`huffman`] for the coders).
//!
//! | dtype | streams (exponent first) |
//! |---|---|
//! | bf16 `s e8 m7` | `e8`, `s<<7 \| m7` |
//! | f16 `s e5 m10` | `e5`, `s<<2 \| m[9:8]`, `m[7:0]` |
//! | f32 `s e8 m23` | `e8`, `s<<7 \| m[22:16]`, `m[15:8]`, `m[7:0]` |
//! | f64 `s e11 m52` | `e[7:0]`, `e[10:8]`, `s<<4 \| m[51:48]`, `m[47:40]`, ..., `m[7:0]` |
//! | i16..u64 | byte planes, least significant first |
//! | u8, i8, bool, opaque | the bytes (a palette when at most 16 values) |
//!
//! **Effort tiers.** [`Effort::Default`] chooses the transform (split, palette, each with or
//! without the sparse split) from byte histograms (exact for coded streams, a 1/8 sample to
//! dismiss near-random ones) and entropy-codes every stream where that saves 1%: with
//! Huffman where its codes average at most 6 bits a symbol and cost at most 2.5% more than
//! order-0 rANS (exponents: about 1.8%, for a decoder about 2.7 times as fast; fp16 high
//! bytes less their sign: 0.6%, 1.5 times), with rANS where Huffman would lose more (streams
//! dominated by one byte, such as delta residues) or gain no speed (INT8 palette indices, 6-8
//! bits a symbol). [`Effort::Fast`] does the same
//! with thresholds of 1/8 and 10%: near-random mantissas are stored, so decoding is mostly
//! copies and table lookups. [`Effort::Max`] encodes every candidate for real and keeps the
//! smallest: each transform with and without sparse, order-0 and order-1 rANS and zstd-19
//! per stream (zstd only when a 64 KiB sample suggests it can win), and whole-chunk
//! zstd-19. All tiers decode with the same [`decompress`].
//!
//! # Why a hand-written Huffman coder
//!
//! zstd's Huffman stage (huff0, the core of ZipNN) is internal to libzstd: neither `zstd-safe`
//! nor `zstd-sys` exposes it, and its `HUF_*` API changes between zstd releases. The Huffman
//! crates on crates.io (`huffman-rust`, `compress-huffman-rs`) decode bit by bit from a tree.
//! Ours (`huffman.rs`, ~300 lines) decodes four bitstreams side by side from one 2048-entry
//! table that yields up to four symbols per lookup: on a bf16 exponent stream (2.55 bits a
//! symbol, `--example rans_speed`, one thread, best of 6 alternated runs) it decodes about
//! 2.6 G symbols/s, twice our vector rANS (1.2 G/s, held there by the gathered lookups: about
//! 10 cycles per 8-lane gather on this AMD Zen 3), at 1.021x the entropy against rANS's 1.0015x.
//!
//! # Why a hand-written rANS
//!
//! No crate on crates.io gives a fast interleaved static rANS (checked with `cargo info`,
//! late 2026): `rans` 0.4 and `ryg-rans-sys` 1.2 wrap ryg_rans's byte-wise single-state C
//! coder (a C toolchain, one symbol per call); `constriction` 0.5 is a research library,
//! generic over entropy models, with one state. Ours is ~300 lines of safe Rust plus an AVX2
//! path (32 lanes, gathered table lookups, a 16-byte word load spread over the lanes that
//! renormalise) behind runtime detection, with the scalar path decoding the same streams.
//! On a bf16 exponent stream (`cargo run --release -p zt-codec --example rans_speed`, one
//! thread, this 2-core shared machine, same run): **ours 500 MB/s encode, 1012 MB/s decode;
//! constriction 213 MB/s encode, 49 MB/s decode**, both at 1.0015x the order-0 entropy. The
//! tests check it against constriction bit for bit: with one lane our stream *is*
//! constriction's `AnsCoder<u16, u32>` stream (12-bit model, state started at 2^16), encoded
//! by either and decoded by the other.
//!
//! # Frame format (version 1)
//!
//! Integers are little-endian; `var` is an unsigned LEB128 varint (at most 10 bytes).
//!
//! ```text
//! magic      4   "ZTC1"
//! version    1   1
//! dtype      1   0 opaque bytes, 1 f64, 2 f32, 3 f16, 4 bf16, 5 i64, 6 i32, 7 i16, 8 i8,
//!                9 u64, 10 u32, 11 u16, 12 u8, 13 bool
//! flags      1   bit 0: delta frame; other bits must be 0
//! decoded    var decoded length, at most 2^48
//! chunk      var the encoder's chunk size (informational), at most 64 MiB
//! segments   var number of segment-table entries (each takes at least 3 bytes)
//! [delta]    var reference length, then 16 bytes: xxh3-128 of the reference (u128 LE)
//! table      per segment: u8 kind, var len, var arg
//!              kind 0 CODED: len decoded bytes (1..=64 MiB); arg payload bytes
//!              kind 1 COPY:  len decoded bytes (>= 1); arg distance d, 1 <= d <= start:
//!                            out[start + i] = out[start - d + i] for i = 0, 1, ... in order
//!                            (so d < len repeats the last d bytes)
//! crc        u32 CRC-32C (Castagnoli) of the decoded bytes (of the XOR residue for a delta)
//! hcrc       u32 CRC-32C of every header byte before this field
//! payloads   the CODED segments' payloads in table order, filling the frame exactly
//! ```
//!
//! Segments are laid end to end from offset 0 and must cover exactly `decoded` bytes. A
//! delta frame decodes to the residue, which is XORed with the reference after its length
//! and digest have been checked.
//!
//! A chunk payload (`esize` = the dtype's size, 1 for opaque; `n = len / esize` elements;
//! the `len % esize` trailing bytes are the *tail*):
//!
//! ```text
//! u8 transform
//!   0 STORED   the chunk's bytes
//!   1 CONST    one element (esize bytes), repeated n times | tail
//!   2 SPLIT    the layout's streams, in the order of the table above | tail
//!   3 PALETTE  u8 index bits (1, 2, 4, 8) | u8 values-1 (2..=2^bits values) | values (esize
//!              bytes each, strictly ascending as LE integers) | stream of n indices packed
//!              8/bits per byte, first in the low bits | tail
//!   4 SPARSE   var non-zero count z | stream of the ceil(n/8)-byte bitmap (bit i set when
//!              element i has a non-zero byte; first in the low bit; spare bits 0) | u8 inner
//!              transform (2 or 3) | its body over the z non-zero elements | tail
//!   5 ZSTD     a zstd frame of the whole chunk
//! ```
//!
//! A stream of known decoded length `m`:
//!
//! ```text
//! u8 coder
//!   0 RAW    m bytes
//!   1 CONST  u8 value, repeated m times
//!   2 RANS0  u32 length | order-0 rANS stream (layout in `rans`)
//!   3 RANS1  u32 length | order-1 rANS stream
//!   4 ZSTD   u32 length | zstd frame decoding to exactly m bytes
//!   5 HUF    u32 length | four-stream Huffman coding (layout in `huffman`)
//! ```
//!
//! rANS streams (32-bit states in `[2^16, 2^32)`, 16-bit renormalisation, frequencies
//! normalised to 4096): `u8 log2(lanes)` (0..=5) | frequency table | `lanes` u32 final
//! states | u16 words. Order 0: symbol i is coded by lane `i mod lanes`, all lanes sharing
//! the word stream in symbol order. Order 1 (8 lanes): `u8 contexts-1`, then per context
//! (ascending) a `u8` gap and a frequency table; lane j codes the j-th of 8 equal segments
//! (the last takes the remainder) with the previous byte of its segment as context (0 at
//! its start). Frequency table: `u8 symbols-1` (2..=256 symbols), then per symbol
//! (ascending) a `u8` gap (value minus previous value minus one) and a var frequency in
//! `1..4096`; the frequencies sum to exactly 4096. Decoding must consume the words exactly
//! and end with every lane in state 2^16.
//!
//! # Measured
//!
//! `cargo xtask bench-codec --mb 32 --runs 3` (32 MB per workload, 2 threads for every codec,
//! best of 3, z4ai 0.2.0 and zipnn 0.5.4 from `.venv-bench` in the same run; a 2-vCPU AMD
//! EPYC shared with other tenants, so speeds are noisy). Ratios:
//!
//! | workload | ztc default | ztc max | ZipNN | z4ai default | z4ai max | order-0 field bound |
//! |---|---:|---:|---:|---:|---:|---:|
//! | iid bf16 N(0, 0.02) | 1.51014 | 1.52084 | 1.50988 | 1.51668 | 1.51712 | 1.5214 |
//! | iid fp16 | 1.18606 | 1.18836 | 1.18566 | 1.18591 | 1.18827 | 1.1842 |
//! | iid fp32 | 1.20323 | 1.21169 | 1.20297 | 1.19938 | 1.20543 | 1.2119 |
//! | z4ai's scale mixture, bf16 | 1.41728 | 1.42677 | 1.41714 | 1.41794 | 1.42353 | 1.4272 |
//! | one block tiled 40x, bf16 | 60.39 | 60.73 | 1.51 | 58.12 | 58.12 | - |
//! | one block tiled 40x, fp32 | 48.12 | 48.36 | 1.20 | 47.28 | 47.28 | - |
//! | 50% zeros, bf16 | 2.541 | 2.556 | 2.197 | 2.471 | 2.471 | - |
//! | 50% zeros, fp32 | 2.239 | 2.253 | 1.860 | 2.211 | 2.211 | - |
//! | INT8 dequantised, bf16 | 2.4016 | 2.4026 | 2.071 | 2.3940 | 2.3940 | - |
//! | INT8 dequantised, fp32 | 4.7606 | 4.7792 | 1.965 | 4.7608 | 4.7608 | - |
//! | INT4 dequantised, bf16 | 5.756 | 5.756 | 3.874 | 5.419 | 5.419 | - |
//! | INT4 dequantised, fp32 | 11.31 | 11.40 | 4.59 | 10.77 | 10.77 | - |
//! | bf16 delta, 5% of weights updated | 22.27 | 22.67 | 1.51 (no delta) | 21.17 | - | - |
//!
//! Max beats every peer tier on every workload (iid fp16 by 0.008%). Default is at or above
//! ZipNN everywhere and above z4ai's default on iid fp16 (sign planes); it codes float
//! exponents with Huffman (as ZipNN does), which leaves it 0.4% under z4ai's default on iid
//! bf16, for a decoder about 2.7 times as fast on those streams.
//!
//! Speed, MB/s compress / decompress at default effort, same run (at commit 3683a03 with the
//! bench's second round of ztc default and ZipNN):
//!
//! | workload | ztc default | ZipNN | decode vs ZipNN |
//! |---|---:|---:|---:|
//! | iid bf16 | 2096 / 6677 | 1067 / 4479 | 1.49 |
//! | iid fp16 | 2038 / 4917 | 1539 / 4234 | 1.16 |
//! | iid fp32 | 2355 / 9801 | 1067 / 6568 | 1.49 |
//! | scale mixture, bf16 | 2102 / 6348 | 1700 / 4398 | 1.44 |
//! | tiled bf16 / fp32 | 11844 / 8419, 10482 / 9662 | 1720 / 4442, 1418 / 6242 | 1.90, 1.55 |
//! | 50% zeros bf16 / fp32 | 1935 / 7016, 1921 / 8337 | 857 / 2450, 866 / 2294 | 2.86, 3.63 |
//! | INT8 in bf16 / fp32 | 1224 / 3206, 1480 / 5476 | 1122 / 2530, 906 / 2433 | 1.27, 2.25 |
//! | INT4 in bf16 / fp32 | 1513 / 5315, 1639 / 8309 | 1139 / 2654, 961 / 2540 | 2.00, 3.27 |
//! | delta (ZipNN: the checkpoint from scratch) | 2080 / 4826 | 1238 / 4385 | 1.10 |
//!
//! Default compresses and decodes faster than ZipNN on every workload. The closest are iid
//! fp16's decode (1.16 here; 1.04 in the run before at 948d72c, 1.26, 1.09 and 1.12 in
//! single-workload runs, and a median of 1.14 over five alternated runs on the same bytes),
//! the delta's decode (1.10; 1.11, 1.27 and 1.06) and INT8-in-bf16's compress (1.09; 1.28).
//! fp16 decoding is bound by the Huffman lookups of the high bytes (over half its time even
//! at 4.5 bits a symbol) and by the merge writing the output. What the decode
//! side does besides the entropy stages was cut to the minimum: the output is never zeroed
//! (fresh memory is written directly), the checksum runs at 35-40 GB/s (`crc`), the frame
//! checksum's pieces combine in well under a microsecond each, a delta's reference is hashed
//! chunk by chunk right after it is XORed (while in cache), the encoder's intermediates come
//! from per-thread buffers, and the Huffman loop counts its safe rounds ahead instead of
//! checking each.

mod bytes;
mod chunk;
mod crc;
mod dedup;
mod frame;
pub mod huffman;
mod mem;
pub mod rans;
mod stream;
mod transform;

use std::mem::MaybeUninit;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use xxhash_rust::xxh3::xxh3_128;
use zt_core::{DType, Error, Result};

use crate::chunk::ChunkPolicy;
use crate::frame::{DeltaRef, Planned, SegKind};
use crate::stream::Policy;
use crate::transform::Layout;

/// The frame magic, `"ZTC1"`.
pub const MAGIC: &[u8; 4] = frame::MAGIC;
/// The largest decoded length a frame may declare (256 TiB).
pub const MAX_DECODED_LEN: u64 = frame::MAX_DECODED_LEN;
/// Default chunk size of [`Effort::Fast`] and [`Effort::Default`]: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: usize = 1 << 20;
/// Default chunk size of [`Effort::Max`]: 32 MiB. Each chunk carries its own rANS tables and
/// states (a few hundred bytes per stream, ~0.02% of near-random weights at 1 MiB), and a
/// near-uniform stream (fp16's low mantissa byte) pays for its table only over millions of
/// elements. The price: one thread per chunk when decoding, and an encoder that holds several
/// candidate encodings of a chunk at once (a few hundred MiB per thread).
pub const MAX_EFFORT_CHUNK_SIZE: usize = 32 << 20;
/// Smallest accepted chunk size: 4 KiB.
pub const MIN_CHUNK_SIZE: usize = 4 << 10;
/// Largest accepted chunk size: 64 MiB.
pub const MAX_CHUNK_SIZE: usize = frame::MAX_CHUNK as usize;

/// How hard the encoder works. Every tier decodes with the same [`decompress`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Effort {
    /// Speed first: the same transforms, but entropy coding only for streams it shrinks by at
    /// least 1/8 (exponents, palette indices), with Huffman where codes average at most 6 bits
    /// and cost at most 10% more than rANS; nearly incompressible streams are stored, so
    /// decoding is mostly copies.
    Fast,
    /// Transforms and codings chosen by estimates from byte histograms: entropy coding
    /// wherever it saves at least 1%, with Huffman (fast to decode) where codes average at
    /// most 6 bits and cost at most 2.5% more than order-0 rANS.
    #[default]
    Default,
    /// Every candidate encoded for real, the smallest kept: each transform with and without
    /// the sparse split, order-0 and order-1 rANS and zstd-19 for each stream, and
    /// whole-chunk zstd-19 with long-distance matching. Slow to encode, decodes like the rest.
    Max,
}

impl Effort {
    fn chunk_policy(self) -> ChunkPolicy {
        match self {
            Effort::Fast => ChunkPolicy {
                stream: Policy {
                    rans_min_gain: 0.125,
                    exhaustive: false,
                    zstd_level: 1,
                    huffman_max_loss: Some(0.10),
                },
                exhaustive: false,
                sparse_min_fraction: 0.25,
                f16_fields: None,
            },
            Effort::Default => ChunkPolicy {
                stream: Policy {
                    rans_min_gain: 0.01,
                    exhaustive: false,
                    zstd_level: 3,
                    huffman_max_loss: Some(0.025),
                },
                exhaustive: false,
                sparse_min_fraction: 1.0 / 16.0,
                f16_fields: None,
            },
            Effort::Max => ChunkPolicy {
                stream: Policy {
                    rans_min_gain: 0.0,
                    exhaustive: true,
                    zstd_level: 19,
                    huffman_max_loss: None,
                },
                exhaustive: true,
                sparse_min_fraction: 1.0 / 256.0,
                f16_fields: None,
            },
        }
    }
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressOptions {
    pub effort: Effort,
    /// Bytes per chunk, the unit of parallelism and of local statistics: a multiple of 8 in
    /// [`MIN_CHUNK_SIZE`]`..=`[`MAX_CHUNK_SIZE`]. Default [`DEFAULT_CHUNK_SIZE`];
    /// [`CompressOptions::with_effort`] picks [`MAX_EFFORT_CHUNK_SIZE`] for [`Effort::Max`].
    pub chunk_size: usize,
    /// Worker threads; `None` uses rayon's global pool (one per core).
    pub threads: Option<usize>,
}

impl Default for CompressOptions {
    fn default() -> Self {
        CompressOptions {
            effort: Effort::Default,
            chunk_size: DEFAULT_CHUNK_SIZE,
            threads: None,
        }
    }
}

impl CompressOptions {
    /// The settings of an effort tier, with its default chunk size.
    pub fn with_effort(effort: Effort) -> Self {
        CompressOptions {
            effort,
            chunk_size: match effort {
                Effort::Max => MAX_EFFORT_CHUNK_SIZE,
                Effort::Fast | Effort::Default => DEFAULT_CHUNK_SIZE,
            },
            ..Self::default()
        }
    }
}

/// Decoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecompressOptions {
    /// Worker threads; `None` uses rayon's global pool.
    pub threads: Option<usize>,
    /// Refuse frames that declare more decoded bytes than this (a small frame can
    /// legitimately expand enormously, e.g. one block repeated, so bound what you accept from
    /// untrusted sources). Default [`MAX_DECODED_LEN`].
    pub max_decoded_len: u64,
}

impl Default for DecompressOptions {
    fn default() -> Self {
        DecompressOptions {
            threads: None,
            max_decoded_len: MAX_DECODED_LEN,
        }
    }
}

/// What a frame's header says, read without decoding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    pub decoded_len: u64,
    /// `None` for opaque bytes.
    pub dtype: Option<DType>,
    pub is_delta: bool,
    /// Length of the reference a delta frame was made against.
    pub reference_len: Option<u64>,
    /// The chunk size the encoder used.
    pub chunk_size: u64,
    /// Segments in the table: coded chunks plus copies.
    pub segments: usize,
    /// Segments that are copies of earlier bytes (dedup, repeated blocks).
    pub copy_segments: usize,
    /// Bytes of header and segment table.
    pub header_len: usize,
    /// CRC-32C of the decoded bytes (of the XOR residue, for a delta frame).
    pub crc32c: u32,
}

/// Reads a frame's header and segment table (fully validated) without decoding anything.
pub fn frame_info(frame: &[u8]) -> Result<FrameInfo> {
    let h = frame::parse(frame)?;
    Ok(FrameInfo {
        decoded_len: h.decoded_len,
        dtype: h.dtype,
        is_delta: h.delta.is_some(),
        reference_len: h.delta.map(|d| d.len),
        chunk_size: h.chunk_size,
        segments: h.segments.len(),
        copy_segments: h
            .segments
            .iter()
            .filter(|s| matches!(s.kind, SegKind::Copy { .. }))
            .count(),
        header_len: h.header_len,
        crc32c: h.crc,
    })
}

/// Compresses `data`, whose elements are of `dtype` (`None`: opaque bytes). The length need
/// not be a multiple of the element size. The frame is never more than a small header (plus
/// one byte per chunk) larger than `data`.
pub fn compress(data: &[u8], dtype: Option<DType>, opts: &CompressOptions) -> Result<Vec<u8>> {
    check_options(opts)?;
    with_pool(opts.threads, || encode_frame(data, dtype, opts, None))
}

/// Compresses `data` as a delta against `reference`, a buffer of the same length and layout
/// (the previous checkpoint): the XOR of the two is coded, so unchanged elements cost almost
/// nothing. The frame records the reference's length and xxh3-128 digest, and
/// [`decompress_delta`] refuses any other reference.
pub fn compress_delta(
    data: &[u8],
    reference: &[u8],
    dtype: Option<DType>,
    opts: &CompressOptions,
) -> Result<Vec<u8>> {
    check_options(opts)?;
    if data.len() != reference.len() {
        return Err(Error::InvalidArgument(format!(
            "delta needs a reference of the data's length: data is {} bytes, reference {}",
            data.len(),
            reference.len()
        )));
    }
    with_pool(opts.threads, || {
        // The reference's digest is one serial pass: it runs beside the parallel XOR.
        let (digest, residue) = rayon::join(
            || xxh3_128(reference).to_le_bytes(),
            || {
                let mut residue = vec![0u8; data.len()];
                residue
                    .par_chunks_mut(XOR_PIECE)
                    .zip(data.par_chunks(XOR_PIECE))
                    .zip(reference.par_chunks(XOR_PIECE))
                    .for_each(|((r, d), b)| {
                        for ((r, d), b) in r.iter_mut().zip(d).zip(b) {
                            *r = d ^ b;
                        }
                    });
                residue
            },
        );
        let delta = DeltaRef {
            len: reference.len() as u64,
            digest,
        };
        encode_frame(&residue, dtype, opts, Some(delta))
    })
}

/// Decodes a frame into a new buffer.
pub fn decompress(frame: &[u8]) -> Result<Vec<u8>> {
    decompress_with(frame, &DecompressOptions::default())
}

/// Decodes a frame into a new buffer, with explicit threads and size limit.
pub fn decompress_with(frame: &[u8], opts: &DecompressOptions) -> Result<Vec<u8>> {
    let h = frame::parse(frame)?;
    refuse_delta(&h)?;
    let mut out = alloc_output(h.decoded_len, opts)?;
    // (The capacity may exceed the length asked for: only `n` bytes are decoded and kept.)
    let n = h.decoded_len as usize;
    with_pool(opts.threads, || {
        decode_frame(
            frame,
            &h,
            Out::fresh(&mut out.spare_capacity_mut()[..n]),
            None,
        )
    })?;
    // SAFETY: `decode_frame` succeeded on a fresh output, so it initialized all `n` bytes.
    unsafe { out.set_len(n) };
    Ok(out)
}

/// Decodes a frame into `out`, which must be exactly the decoded length long
/// ([`frame_info`] tells it). On error `out` holds unspecified bytes.
pub fn decompress_into(frame: &[u8], out: &mut [u8]) -> Result<()> {
    decompress_into_with(frame, out, &DecompressOptions::default())
}

/// [`decompress_into`] with explicit threads (the size limit is `out`'s length).
pub fn decompress_into_with(frame: &[u8], out: &mut [u8], opts: &DecompressOptions) -> Result<()> {
    let h = frame::parse(frame)?;
    refuse_delta(&h)?;
    if out.len() as u64 != h.decoded_len {
        return Err(Error::InvalidArgument(format!(
            "output buffer is {} bytes but the frame decodes to {}",
            out.len(),
            h.decoded_len
        )));
    }
    with_pool(opts.threads, || {
        decode_frame(frame, &h, Out::init(out), None)
    })
}

/// Decodes a delta frame made by [`compress_delta`] against `reference`. A reference of the
/// wrong length is refused with [`Error::LengthMismatch`], one with other contents with
/// [`Error::ChecksumMismatch`], both naming the component `"delta reference"`.
pub fn decompress_delta(frame: &[u8], reference: &[u8]) -> Result<Vec<u8>> {
    decompress_delta_with(frame, reference, &DecompressOptions::default())
}

/// [`decompress_delta`] with explicit threads and size limit.
pub fn decompress_delta_with(
    frame: &[u8],
    reference: &[u8],
    opts: &DecompressOptions,
) -> Result<Vec<u8>> {
    let h = frame::parse(frame)?;
    check_reference_shape(&h, reference)?;
    let mut out = alloc_output(h.decoded_len, opts)?;
    // (The capacity may exceed the length asked for: only `n` bytes are decoded and kept.)
    let n = h.decoded_len as usize;
    with_pool(opts.threads, || {
        decode_delta(
            frame,
            &h,
            reference,
            Out::fresh(&mut out.spare_capacity_mut()[..n]),
        )
    })?;
    // SAFETY: `decode_delta` succeeded on a fresh output, so it initialized all `n` bytes.
    unsafe { out.set_len(n) };
    Ok(out)
}

/// [`decompress_delta`] into `out`, which must be exactly the decoded length long (the size
/// limit is `out`'s length). On error `out` holds unspecified bytes.
pub fn decompress_delta_into_with(
    frame: &[u8],
    reference: &[u8],
    out: &mut [u8],
    opts: &DecompressOptions,
) -> Result<()> {
    let h = frame::parse(frame)?;
    check_reference_shape(&h, reference)?;
    if out.len() as u64 != h.decoded_len {
        return Err(Error::InvalidArgument(format!(
            "output buffer is {} bytes but the frame decodes to {}",
            out.len(),
            h.decoded_len
        )));
    }
    with_pool(opts.threads, || {
        decode_delta(frame, &h, reference, Out::init(out))
    })
}

/// The cheap half of the reference check: a delta frame, and a reference of its length.
fn check_reference_shape(h: &frame::Header, reference: &[u8]) -> Result<()> {
    let Some(d) = h.delta else {
        return Err(Error::InvalidArgument(
            "not a delta frame: decode it with decompress, without a reference".into(),
        ));
    };
    if reference.len() as u64 != d.len {
        return Err(Error::LengthMismatch {
            component: "delta reference".into(),
            expected: d.len,
            actual: reference.len() as u64,
        });
    }
    if d.len != h.decoded_len {
        return Err(bytes::malformed(format!(
            "delta of {} bytes against a reference of {}",
            h.decoded_len, d.len
        )));
    }
    Ok(())
}

/// A reference digest (xxh3-128, little-endian) against the frame's record of it.
fn check_reference_digest(h: &frame::Header, digest: [u8; 16]) -> Result<()> {
    let Some(d) = h.delta else {
        return Err(Error::InvalidArgument("not a delta frame".into()));
    };
    if digest != d.digest {
        return Err(Error::ChecksumMismatch {
            component: "delta reference".into(),
            expected: format!("xxh3-128:{}", hex(&d.digest)),
            actual: format!("xxh3-128:{}", hex(&digest)),
        });
    }
    Ok(())
}

/// Decodes a delta frame onto `reference` and checks the reference's digest. On a mismatch
/// the output holds garbage, and the error says why.
fn decode_delta(frame: &[u8], h: &frame::Header, reference: &[u8], out: Out<'_>) -> Result<()> {
    let has_copies = h
        .segments
        .iter()
        .any(|s| matches!(s.kind, SegKind::Copy { .. }));
    if !has_copies {
        // Each chunk is XORed onto the reference right after it is decoded, and that part
        // of the reference is hashed right after, while it is still in cache.
        let onto = XorOnto::new(reference, h);
        let decoded = decode_frame(frame, h, out, Some(&onto));
        let digest = onto.finish();
        return decoded.and(check_reference_digest(h, digest));
    }
    // A copy reads earlier residue bytes, so the whole residue comes first, and the
    // reference's digest (one serial pass over it) is taken beside it.
    let Out { buf, fresh } = out;
    let (digest, decoded) = rayon::join(
        || xxh3_128(reference).to_le_bytes(),
        || {
            decode_frame(
                frame,
                h,
                Out {
                    buf: &mut *buf,
                    fresh,
                },
                None,
            )
        },
    );
    decoded?;
    check_reference_digest(h, digest)?;
    // SAFETY: `decode_frame` succeeded on `buf`, so every byte of it is initialized.
    let out = unsafe { mem::assume_init(buf) };
    out.par_chunks_mut(XOR_PIECE)
        .zip(reference.par_chunks(XOR_PIECE))
        .for_each(|(o, r)| xor_into(o, r));
    Ok(())
}

/// The reference a delta frame's coded chunks are XORed onto, and its xxh3-128 taken in
/// order while they are decoded.
///
/// Hashing the reference in one pass of its own read it all from memory a second time (an
/// eighth of a two-thread delta decode). Here the chunks are handed out in order, and
/// whichever worker finishes the chunk the hash has reached hashes it, and any finished
/// after it, while they are still in cache.
struct XorOnto<'r> {
    reference: &'r [u8],
    /// The reference ranges of the coded chunks, in order.
    ranges: Vec<std::ops::Range<usize>>,
    /// `xored[k]`: chunk `k` is XORed (or failed: the hash is then finished serially).
    xored: Vec<std::sync::atomic::AtomicBool>,
    /// Held by the one worker advancing the hash.
    hashing: std::sync::atomic::AtomicBool,
    state: Mutex<HashFront>,
}

/// How far [`XorOnto`]'s hash has got.
struct HashFront {
    hasher: xxhash_rust::xxh3::Xxh3,
    /// The next chunk to hash.
    next: usize,
    /// Reference bytes hashed.
    pos: usize,
}

impl<'r> XorOnto<'r> {
    fn new(reference: &'r [u8], h: &frame::Header) -> Self {
        let ranges: Vec<_> = h
            .segments
            .iter()
            .filter(|s| matches!(s.kind, SegKind::Coded(_)))
            .map(|s| s.start as usize..(s.start + s.len) as usize)
            .collect();
        XorOnto {
            reference,
            xored: ranges.iter().map(|_| Default::default()).collect(),
            ranges,
            hashing: Default::default(),
            state: Mutex::new(HashFront {
                hasher: xxhash_rust::xxh3::Xxh3::new(),
                next: 0,
                pos: 0,
            }),
        }
    }

    /// Marks chunk `k` done and advances the hash as far as the finished chunks allow,
    /// unless another worker is advancing it.
    fn done(&self, k: usize) {
        use std::sync::atomic::Ordering::SeqCst;
        self.xored[k].store(true, SeqCst);
        // Every access is SeqCst: a worker that marks its chunk and finds the hash busy
        // has marked it before the busy one lets go, and that one looks again after.
        while self
            .hashing
            .compare_exchange(false, true, SeqCst, SeqCst)
            .is_ok()
        {
            let next = {
                let mut front = lock(&self.state);
                self.advance(&mut front);
                front.next
            };
            self.hashing.store(false, SeqCst);
            if next == self.ranges.len() || !self.xored[next].load(SeqCst) {
                return;
            }
        }
    }

    /// Hashes the finished chunks from the next one on.
    fn advance(&self, front: &mut HashFront) {
        use std::sync::atomic::Ordering::SeqCst;
        while front.next < self.ranges.len() && self.xored[front.next].load(SeqCst) {
            // (`max`: a frame's segments are in order, but the hash must not panic if not.)
            let end = self.ranges[front.next].end.max(front.pos);
            front.hasher.update(&self.reference[front.pos..end]);
            (front.next, front.pos) = (front.next + 1, end);
        }
    }

    /// The reference's xxh3-128, little-endian: what the workers hashed, then the rest.
    fn finish(self) -> [u8; 16] {
        let mut front = self.state.into_inner().unwrap_or_else(|e| e.into_inner());
        front.hasher.update(&self.reference[front.pos..]);
        front.hasher.digest128().to_le_bytes()
    }
}

fn xor_into(out: &mut [u8], reference: &[u8]) {
    for (o, r) in out.iter_mut().zip(reference) {
        *o ^= r;
    }
}

const XOR_PIECE: usize = 1 << 20;
/// Pieces in which copies are filled and checksummed in parallel.
const COPY_PIECE: usize = 4 << 20;

fn hex(b: &[u8]) -> String {
    b.iter().rev().map(|x| format!("{x:02x}")).collect()
}

fn check_options(opts: &CompressOptions) -> Result<()> {
    let c = opts.chunk_size;
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&c) || !c.is_multiple_of(8) {
        return Err(Error::InvalidArgument(format!(
            "chunk size {c} must be a multiple of 8 in {MIN_CHUNK_SIZE}..={MAX_CHUNK_SIZE}"
        )));
    }
    if opts.threads == Some(0) {
        return Err(Error::InvalidArgument("threads must be at least 1".into()));
    }
    Ok(())
}

fn refuse_delta(h: &frame::Header) -> Result<()> {
    if h.delta.is_some() {
        return Err(Error::InvalidArgument(
            "delta frame: decode it with decompress_delta and its reference".into(),
        ));
    }
    Ok(())
}

/// An empty buffer with room for the decoded length, or an error (not an abort) when it
/// cannot be had. It is left uninitialized: zeroing it here (as `vec![0; n]` does when the
/// allocator reuses freed memory) was one serial pass over the whole output, a fifth of a
/// two-thread bf16 decode. The common transforms write it directly; the others, and copies,
/// zero their part in parallel first ([`Out::fresh`]).
fn alloc_output(len: u64, opts: &DecompressOptions) -> Result<Vec<u8>> {
    let too_big = || Error::LimitExceeded {
        what: "ztc1 decoded length".into(),
        size: len,
        limit: opts.max_decoded_len,
    };
    if len > opts.max_decoded_len {
        return Err(too_big());
    }
    let n = usize::try_from(len).map_err(|_| too_big())?;
    // `try_reserve_exact`: a failed allocation is an error here, where `vec!` would abort.
    let mut out: Vec<u8> = Vec::new();
    out.try_reserve_exact(n).map_err(|_| too_big())?;
    mem::advise_huge_pages(out.as_mut_ptr(), n);
    Ok(out)
}

/// Runs `f` on a pool of `threads` workers, or on the global pool.
///
/// Pools are built once per size and kept: a fresh pool per call would cost thread start-up
/// and, worse, the workers' scratch buffers (decode streams, rANS words) every time.
fn with_pool<R: Send>(threads: Option<usize>, f: impl FnOnce() -> R + Send) -> R {
    type Pools = Vec<(usize, Arc<rayon::ThreadPool>)>;
    static POOLS: Mutex<Pools> = Mutex::new(Vec::new());
    let Some(n) = threads else {
        return f();
    };
    let pool = {
        let mut pools = POOLS.lock().unwrap_or_else(|e| e.into_inner());
        match pools.iter().find(|(k, _)| *k == n) {
            Some((_, p)) => Some(Arc::clone(p)),
            None => match rayon::ThreadPoolBuilder::new().num_threads(n).build() {
                Ok(p) => {
                    let p = Arc::new(p);
                    pools.push((n, Arc::clone(&p)));
                    Some(p)
                }
                Err(_) => None,
            },
        }
    };
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}

fn encode_frame(
    data: &[u8],
    dtype: Option<DType>,
    opts: &CompressOptions,
    delta: Option<DeltaRef>,
) -> Result<Vec<u8>> {
    let layout = Layout::for_dtype(dtype);
    let mut policy = opts.effort.chunk_policy();
    if layout == Layout::F16 && !policy.exhaustive {
        policy.f16_fields = Some(chunk::smallest_fields(layout, data, &policy.stream));
    }
    let plan = dedup::plan(data, opts.chunk_size, layout.esize());
    let (payloads, crc) = rayon::join(
        || {
            plan.par_iter()
                .map(|seg| match seg {
                    dedup::Seg::Coded { start, len } => {
                        Planned::Coded(chunk::encode(&data[*start..start + len], layout, &policy))
                    }
                    dedup::Seg::Copy { dist, .. } => Planned::Copy { dist: *dist as u64 },
                })
                .collect::<Vec<Planned>>()
        },
        || crc::parallel(data, COPY_PIECE),
    );
    let segments: Vec<(u64, Planned)> = plan.iter().map(|s| s.len() as u64).zip(payloads).collect();
    Ok(frame::write(
        dtype,
        delta,
        data.len() as u64,
        opts.chunk_size as u64,
        crc,
        &segments,
    ))
}

/// A decode's destination: memory the decoder may only write, or already initialized bytes.
struct Out<'a> {
    buf: &'a mut [MaybeUninit<u8>],
    /// Whether `buf` holds uninitialized memory: chunk decoders write it without reading it,
    /// and anything else ([`Out::bytes`]) zeroes its part first.
    fresh: bool,
}

impl<'a> Out<'a> {
    fn fresh(buf: &'a mut [MaybeUninit<u8>]) -> Self {
        Out { buf, fresh: true }
    }

    fn init(buf: &'a mut [u8]) -> Self {
        Out {
            // SAFETY: decoders write only bytes into their output.
            buf: unsafe { mem::as_uninit(buf) },
            fresh: false,
        }
    }

    /// `part` (a piece of this output) as bytes, zeroed first when the output is fresh.
    fn bytes(fresh: bool, part: &mut [MaybeUninit<u8>]) -> &mut [u8] {
        if fresh {
            mem::zeroed(part)
        } else {
            // SAFETY: the output was initialized bytes (`Out::init`), and decoders write only
            // bytes into it.
            unsafe { mem::assume_init(part) }
        }
    }
}

/// One coded chunk's decode: its payload, its part of the output, and where that starts.
struct ChunkJob<'f, 'o> {
    payload: &'f [u8],
    dst: &'o mut [MaybeUninit<u8>],
    start: usize,
}

/// Runs `f` on every job, on all the pool's threads, handing the jobs out in order (rayon's
/// splitting would start one thread at each end), and collects the results in order; the
/// first error stops the handing out.
fn in_order<J: Send, T: Send>(
    jobs: Vec<J>,
    f: impl Fn(usize, J) -> Result<T> + Sync,
) -> Result<Vec<T>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
    let n = jobs.len();
    let jobs: Vec<Mutex<Option<J>>> = jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let results: Vec<Mutex<Option<Result<T>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let (next, failed) = (AtomicUsize::new(0), AtomicBool::new(false));
    let work = || {
        while !failed.load(Relaxed) {
            let k = next.fetch_add(1, Relaxed);
            let Some(job) = jobs.get(k).and_then(|j| lock(j).take()) else {
                return;
            };
            let r = f(k, job);
            failed.fetch_or(r.is_err(), Relaxed);
            *lock(&results[k]) = Some(r);
        }
    };
    // Spawned work, not `broadcast`: a thread that never gets to it cannot hold it up.
    rayon::scope(|s| {
        for _ in 1..rayon::current_num_threads().min(n) {
            s.spawn(|_| work());
        }
        work();
    });
    // Jobs are taken in order, so every job before the first failure ran: the collect stops
    // at that failure before it meets a job that did not.
    results
        .into_iter()
        .map(|r| {
            r.into_inner()
                .unwrap_or_else(|e| e.into_inner())
                .expect("jobs before the first failure all ran")
        })
        .collect()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Decodes the frame into `out`, initializing every byte of it when it succeeds. With
/// `xor_onto`, every coded chunk is XORed with the same range of the reference after its
/// checksum is taken, and the reference hashed (a delta frame without copy segments).
fn decode_frame(
    frame: &[u8],
    h: &frame::Header,
    out: Out<'_>,
    xor_onto: Option<&XorOnto<'_>>,
) -> Result<()> {
    debug_assert_eq!(out.buf.len() as u64, h.decoded_len);
    let layout = Layout::for_dtype(h.dtype);
    let Out { buf, fresh } = out;
    // Coded chunks are independent: hand each its own slice of the output. Copies come
    // after them, and may read any earlier byte.
    let mut jobs: Vec<ChunkJob<'_, '_>> = Vec::new();
    let mut rest: &mut [MaybeUninit<u8>] = &mut *buf;
    let mut at = 0u64;
    for s in &h.segments {
        let (gap, tail) = std::mem::take(&mut rest).split_at_mut((s.start - at) as usize);
        // (The frame's segments are contiguous; a gap would only need initializing.)
        Out::bytes(fresh, gap);
        let (this, tail) = tail.split_at_mut(s.len as usize);
        rest = tail;
        at = s.start + s.len;
        if let SegKind::Coded(range) = &s.kind {
            jobs.push(ChunkJob {
                payload: &frame[range.clone()],
                dst: this,
                start: s.start as usize,
            });
        }
    }
    Out::bytes(fresh, rest);
    /// A chunk's decoded bytes and their checksum.
    fn decode_one<'o>(job: ChunkJob<'_, 'o>, layout: Layout) -> Result<(u32, &'o mut [u8])> {
        chunk::decode(job.payload, layout, job.dst)?;
        // SAFETY: `chunk::decode` succeeded, so it initialized every byte of `dst`.
        let dst = unsafe { mem::assume_init(job.dst) };
        Ok((crc::crc32c(dst), dst))
    }
    let crcs: Vec<u32> = match xor_onto {
        None => jobs
            .into_par_iter()
            .map(|job| decode_one(job, layout).map(|(crc, _)| crc))
            .collect::<Result<Vec<u32>>>()?,
        Some(onto) => in_order(jobs, |k, job| {
            let start = job.start;
            let mut decoded = decode_one(job, layout);
            if let Ok((_, dst)) = &mut decoded {
                xor_into(dst, &onto.reference[start..start + dst.len()]);
            }
            onto.done(k);
            decoded.map(|(crc, _)| crc)
        })?,
    };
    // Copies, in order (a copy may read an earlier copy's bytes). Each fills from the first
    // `dist` bytes of its source, so its pieces are independent.
    let mut pieces: Vec<(u32, u64)> = Vec::with_capacity(h.segments.len());
    let mut coded = crcs.into_iter();
    for s in &h.segments {
        match s.kind {
            SegKind::Coded(_) => pieces.push((coded.next().expect("one per chunk"), s.len)),
            SegKind::Copy { dist } => {
                let (start, len, dist) = (s.start as usize, s.len as usize, dist as usize);
                let (before, after) = buf.split_at_mut(start);
                // SAFETY: everything before a segment is initialized by now: coded chunks by
                // their jobs, gaps by `Out::bytes`, earlier copies by this loop.
                let before = unsafe { mem::assume_init(before) };
                let pattern = &before[start - dist..start - dist + dist.min(len)];
                let piece_crcs: Vec<(u32, u64)> = after[..len]
                    .par_chunks_mut(COPY_PIECE)
                    .enumerate()
                    .map(|(k, piece)| {
                        let piece = Out::bytes(fresh, piece);
                        fill_periodic(piece, pattern, (k * COPY_PIECE) % pattern.len());
                        (crc::crc32c(piece), piece.len() as u64)
                    })
                    .collect();
                pieces.extend(piece_crcs);
            }
        }
    }
    let crc = crc::concat(pieces);
    if crc != h.crc {
        return Err(Error::ChecksumMismatch {
            component: "ztc1 decoded data".into(),
            expected: format!("crc32c:{:08x}", h.crc),
            actual: format!("crc32c:{crc:08x}"),
        });
    }
    Ok(())
}

/// Fills `dst` with `pattern` repeated, starting at `pattern[offset]`: one rotated period,
/// then doubling copies within `dst` (so a 1-byte pattern costs log2(len) copies, not len).
fn fill_periodic(dst: &mut [u8], pattern: &[u8], offset: usize) {
    let p = pattern.len();
    let first = (p - offset).min(dst.len());
    dst[..first].copy_from_slice(&pattern[offset..offset + first]);
    let second = offset.min(dst.len() - first);
    dst[first..first + second].copy_from_slice(&pattern[..second]);
    let mut filled = first + second;
    while filled < dst.len() {
        let m = filled.min(dst.len() - filled);
        dst.copy_within(..m, filled);
        filled += m;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decoding into fresh (uninitialized) memory must write every byte, whatever the
    /// chunk's transform; small enough for miri, which checks that no uninitialized byte is
    /// read or returned.
    #[test]
    fn fresh_outputs_are_fully_written() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Gaussian-like bf16 (field split), its fp16 reading (byte planes), 16 distinct values
        // (palette), half zeros (sparse), a repeated block (copies), a constant run; odd
        // lengths leave element tails.
        let mut gauss = || {
            let sum: f32 = (0..4)
                .map(|_| (next() >> 40) as f32 / (1u64 << 24) as f32)
                .sum();
            (sum - 2.0) * 0.03
        };
        let elements = if cfg!(miri) { 300 } else { 3000 };
        let mut bf16: Vec<u8> = (0..elements)
            .flat_map(|_| ((gauss().to_bits() >> 16) as u16).to_le_bytes())
            .collect();
        bf16.push(0x5a);
        let palette: Vec<u8> = (0..elements)
            .flat_map(|_| (0x3c00u16 + (next() % 16) as u16).to_le_bytes())
            .collect();
        let sparse: Vec<u8> = bf16
            .chunks(2)
            .flat_map(|c| {
                if next() % 2 == 0 {
                    [0, 0]
                } else {
                    [c[0], c[1 % c.len()]]
                }
            })
            .collect();
        let block = &bf16[..bf16.len().min(4096)];
        let repeated: Vec<u8> = [block, block, block, &bf16[..100]].concat();
        let constant = vec![7u8; 9000];
        let opts = CompressOptions {
            effort: Effort::Fast,
            chunk_size: MIN_CHUNK_SIZE,
            threads: Some(1),
        };
        let dopts = DecompressOptions {
            threads: Some(1),
            ..Default::default()
        };
        let cases = [
            (&bf16, DType::BF16),
            (&palette, DType::BF16),
            (&bf16, DType::F16),
            (&sparse, DType::BF16),
            (&sparse, DType::F16),
            (&repeated, DType::BF16),
            (&constant, DType::F32),
        ];
        // Under miri (~1000x slower) the two transforms that write fresh memory directly.
        let cases = if cfg!(miri) { &cases[..2] } else { &cases[..] };
        for &(data, dtype) in cases {
            let frame = compress(data, Some(dtype), &opts).unwrap();
            assert_eq!(&decompress_with(&frame, &dopts).unwrap(), data);
        }
        if cfg!(miri) {
            return;
        }
        // A delta whose residue has copies decodes the residue first, then XORs.
        let mut changed = repeated.clone();
        changed[5] ^= 1;
        let frame = compress_delta(&changed, &repeated, Some(DType::BF16), &opts).unwrap();
        let back = decompress_delta_with(&frame, &repeated, &dopts).unwrap();
        assert_eq!(back, changed);
    }

    /// The transform of each coded chunk of `frame`.
    fn transforms(frame: &[u8]) -> Vec<u8> {
        let h = frame::parse(frame).unwrap();
        h.segments
            .iter()
            .filter_map(|s| match &s.kind {
                SegKind::Coded(r) => Some(frame[r.start]),
                SegKind::Copy { .. } => None,
            })
            .collect()
    }

    #[test]
    fn gaussian_fp16_takes_signs_apart_and_sparse_fp16_codes_its_nonzeros_so() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut gauss = || {
            let sum: f64 = (0..12)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 11) as f64 / (1u64 << 53) as f64
                })
                .sum();
            (sum - 6.0) * 0.02
        };
        let data: Vec<u8> = (0..1 << 17)
            .flat_map(|_| half::f16::from_f64(gauss()).to_le_bytes())
            .collect();
        let mut sparse = data.clone();
        for c in sparse.chunks_exact_mut(2).step_by(3) {
            c.fill(0);
        }
        for c in sparse.chunks_exact_mut(6) {
            c[2..4].fill(0);
        }
        for effort in [Effort::Fast, Effort::Default] {
            let opts = CompressOptions {
                chunk_size: 64 << 10,
                ..CompressOptions::with_effort(effort)
            };
            let frame = compress(&data, Some(DType::F16), &opts).unwrap();
            assert!(
                transforms(&frame).iter().all(|&t| t == chunk::SIGN_PLANES),
                "{effort:?}"
            );
            assert_eq!(decompress(&frame).unwrap(), data);
            let frame = compress(&sparse, Some(DType::F16), &opts).unwrap();
            assert!(transforms(&frame).iter().all(|&t| t == chunk::SPARSE));
            assert_eq!(decompress(&frame).unwrap(), sparse);
        }
    }
}
