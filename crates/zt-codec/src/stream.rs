//! The entropy stage: one byte stream in, the cheapest of a few codings out.
//!
//! ```text
//! u8 coder
//!   0 RAW    the bytes themselves (the stream length is known from context)
//!   1 CONST  u8 value, repeated for the whole stream
//!   2 RANS0  u32 length | order-0 rANS stream
//!   3 RANS1  u32 length | order-1 rANS stream
//!   4 ZSTD   u32 length | zstd frame
//!   5 HUF    u32 length | Huffman stream (four bitstreams)
//! ```
//!
//! (A fixed-width length lets the encoder write the payload in place and patch its length.)

use std::ops::Deref;

use zt_core::Result;

use crate::bytes::{Reader, malformed};
use crate::huffman;
use crate::mem::{Scratch, scratch};
use crate::rans::{self, Histogram};

pub(crate) const RAW: u8 = 0;
pub(crate) const CONST: u8 = 1;
pub(crate) const RANS0: u8 = 2;
pub(crate) const RANS1: u8 = 3;
pub(crate) const ZSTD: u8 = 4;
pub(crate) const HUF: u8 = 5;

/// How hard the entropy stage tries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Use order-0 rANS only when the estimate saves at least this fraction of the raw size.
    pub rans_min_gain: f64,
    /// Encode every candidate coding for real and keep the smallest (order-1 rANS and zstd
    /// at `zstd_level` included).
    pub exhaustive: bool,
    pub zstd_level: i32,
    /// Below exhaustive effort: code a stream with Huffman (faster to decode while its codes
    /// average at most 6 bits) instead of order-0 rANS when it is at most this fraction
    /// larger (at most [`LONG_CODES_MAX_LOSS`] over 4 bits a symbol). `None`: rANS only.
    pub huffman_max_loss: Option<f64>,
}

/// The most Huffman may cost above rANS on a stream of 4-6 bits a symbol, where it decodes
/// only ~1.2x faster (packed 4-bit palette index pairs lose ~1% and keep rANS).
const LONG_CODES_MAX_LOSS: f64 = 0.005;

/// The entropy coding the estimates chose for a stream below exhaustive effort.
enum Choice {
    Raw,
    Rans0,
    Huffman(Box<[u8; 256]>),
}

/// Picks the coding of a stream with exact statistics `hist` of `len` bytes (two or more
/// distinct), and its estimated size including the coder byte.
fn choose(hist: &Histogram, len: usize, policy: &Policy) -> (Choice, usize) {
    let rans_est = rans::estimate_o0(hist) + 5;
    let (mut choice, mut est) = (Choice::Rans0, rans_est);
    if let Some(loss) = policy.huffman_max_loss
        && let Some(lens) = huffman::code_lengths(hist)
    {
        let huf_est = huffman::coded_size(hist, &lens) + 5;
        // Huffman decodes faster only while a table lookup often yields two or more
        // symbols: much faster at 4 bits a symbol or less (exponents), somewhat up to 6
        // (fp16 high bytes less their sign: 1.5x, for a loss of ~0.6%), and no faster
        // beyond (INT8 palette indices), where the vector rANS decoder is also closer to
        // the entropy.
        let loss = if huf_est * 2 <= len {
            loss
        } else if huf_est * 4 <= len * 3 {
            loss.min(LONG_CODES_MAX_LOSS)
        } else {
            -1.0
        };
        if huf_est as f64 <= rans_est as f64 * (1.0 + loss) {
            (choice, est) = (Choice::Huffman(Box::new(lens)), huf_est);
        }
    }
    if (est as f64) <= len as f64 * (1.0 - policy.rans_min_gain) {
        (choice, est)
    } else {
        (Choice::Raw, len + 1)
    }
}

/// A stream's byte histogram, exact or from a sample.
#[derive(Clone)]
pub(crate) struct Stats {
    pub hist: Histogram,
    /// False when only a sample was counted, which already showed the stream is not worth
    /// entropy coding: it will be stored raw.
    pub exact: bool,
}

/// Streams at least this long are sampled first.
const SAMPLE_FROM: usize = 64 << 10;

/// Counts `data`'s bytes. Below [`Policy::exhaustive`], a long stream is first sampled (every
/// 8th 4 KiB block); when the sample's entropy is clearly above what makes rANS worth it
/// (near-random mantissa bytes), the full count is skipped.
pub(crate) fn stats(data: &[u8], policy: &Policy) -> Stats {
    if data.len() >= SAMPLE_FROM && !policy.exhaustive {
        let mut hist = [0u32; 256];
        for block in data.chunks(4096).step_by(8) {
            for (h, c) in hist.iter_mut().zip(rans::histogram(block)) {
                *h += c;
            }
        }
        let total: u64 = hist.iter().map(|&c| u64::from(c)).sum();
        let bits_per_byte = rans::entropy_bits(&hist) / total as f64;
        // A margin of 0.5% of the raw size over the threshold absorbs sampling error.
        if bits_per_byte / 8.0 > 1.0 - policy.rans_min_gain + 0.005 {
            return Stats { hist, exact: false };
        }
    }
    Stats {
        hist: rans::histogram(data),
        exact: true,
    }
}

/// Estimated coded size of a stream of `len` bytes with these statistics under `policy`
/// (including its coder byte).
pub(crate) fn estimate(st: &Stats, len: usize, policy: &Policy) -> usize {
    if len == 0 {
        return 1;
    }
    if !st.exact {
        return len + 1;
    }
    if rans::distinct(&st.hist) <= 1 {
        return 2;
    }
    choose(&st.hist, len, policy).1
}

/// Appends the coding of `data` (with `st` from [`stats`] of it) to `out`.
pub(crate) fn encode(data: &[u8], st: &Stats, policy: &Policy, out: &mut Vec<u8>) {
    if data.is_empty() {
        out.push(RAW);
        return;
    }
    if st.exact && rans::distinct(&st.hist) == 1 {
        out.extend_from_slice(&[CONST, data[0]]);
        return;
    }
    if policy.exhaustive {
        encode_best(data, &st.hist, policy, out);
        return;
    }
    let choice = if st.exact {
        choose(&st.hist, data.len(), policy).0
    } else {
        Choice::Raw
    };
    if !matches!(choice, Choice::Raw) {
        // Coded in place; the length is patched in afterwards.
        let start = out.len();
        out.push(if matches!(choice, Choice::Rans0) {
            RANS0
        } else {
            HUF
        });
        out.extend_from_slice(&[0; 4]);
        match &choice {
            Choice::Huffman(lens) => huffman::encode(data, lens, out),
            _ => rans::encode_o0(data, &st.hist, out),
        }
        let len = out.len() - start - 5;
        if len + 4 < data.len() {
            out[start + 1..start + 5].copy_from_slice(&(len as u32).to_le_bytes());
            return;
        }
        out.truncate(start);
    }
    out.push(RAW);
    out.extend_from_slice(data);
}

/// Tries every coding and keeps the smallest.
fn encode_best(data: &[u8], hist: &Histogram, policy: &Policy, out: &mut Vec<u8>) {
    let mut cands: Vec<(u8, Vec<u8>)> = Vec::new();
    let mut o0 = Vec::new();
    rans::encode_o0(data, hist, &mut o0);
    cands.push((RANS0, o0));
    if data.len() >= 1024 {
        let mut o1 = Vec::new();
        rans::encode_o1(data, &mut o1);
        cands.push((RANS1, o1));
    }
    let so_far = cands.iter().map(|c| c.1.len()).min().unwrap_or(data.len());
    if zstd_may_win(data, so_far, policy.zstd_level)
        && let Ok(z) = zstd::bulk::compress(data, policy.zstd_level)
    {
        cands.push((ZSTD, z));
    }
    // A coded stream must beat raw by its 5 bytes of coder and length.
    let best = cands
        .into_iter()
        .filter(|c| c.1.len() + 5 < data.len() + 1)
        .min_by_key(|c| c.1.len())
        .unwrap_or((RAW, Vec::new()));
    match best {
        (RAW, _) => {
            out.push(RAW);
            out.extend_from_slice(data);
        }
        (coder, payload) => {
            out.push(coder);
            out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
            out.extend_from_slice(&payload);
        }
    }
}

/// A decoded stream: borrowed from the frame when it was stored raw.
pub(crate) enum Decoded<'a> {
    Borrowed(&'a [u8]),
    Owned(Scratch),
}

impl Deref for Decoded<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Decoded::Borrowed(b) => b,
            Decoded::Owned(v) => v,
        }
    }
}

/// Reads one stream of `n` decoded bytes from `r`.
pub(crate) fn decode<'a>(r: &mut Reader<'a>, n: usize) -> Result<Decoded<'a>> {
    let coder = r.u8("stream coder")?;
    match coder {
        RAW => Ok(Decoded::Borrowed(r.take(n, "raw stream")?)),
        CONST => {
            let b = r.u8("constant stream")?;
            let mut out = scratch(n);
            out.as_mut_slice().fill(b);
            Ok(Decoded::Owned(out))
        }
        RANS0 | RANS1 | ZSTD | HUF => {
            let len = r.u32_le("stream length")? as usize;
            let payload = r.take(len, "stream payload")?;
            // The decoded size is bounded by the chunk, which the frame has validated.
            let mut out = scratch(n);
            let o = out.as_mut_slice();
            match coder {
                RANS0 => rans::decode_o0(payload, o)?,
                RANS1 => rans::decode_o1(payload, o)?,
                HUF => huffman::decode(payload, o)?,
                _ => zstd_decode_exact(payload, o)?,
            }
            Ok(Decoded::Owned(out))
        }
        c => Err(malformed(format!("unknown stream coder {c}"))),
    }
}

/// Decodes a zstd frame that must fill `out` exactly.
pub(crate) fn zstd_decode_exact(src: &[u8], out: &mut [u8]) -> Result<()> {
    let n =
        zstd::bulk::decompress_to_buffer(src, out).map_err(|e| malformed(format!("zstd: {e}")))?;
    if n != out.len() {
        return Err(malformed(format!(
            "zstd stream decodes to {n} bytes, expected {}",
            out.len()
        )));
    }
    Ok(())
}

/// Whether zstd at `level` could beat `best_len` bytes on `data`: a 64 KiB sample from the
/// middle is compressed first (at a high level zstd runs at a few MB/s, and on near-random
/// mantissa bytes it never wins), and the full run happens only when the sample does better
/// than the best coding so far, pro rata.
pub(crate) fn zstd_may_win(data: &[u8], best_len: usize, level: i32) -> bool {
    const SAMPLE: usize = 64 << 10;
    if data.len() <= SAMPLE {
        return true;
    }
    let mid = data.len() / 2 - SAMPLE / 2;
    let sample = &data[mid..mid + SAMPLE];
    match zstd::bulk::compress(sample, level.min(9)) {
        Ok(z) => (z.len() as f64) < best_len as f64 * SAMPLE as f64 / data.len() as f64,
        Err(_) => false,
    }
}

/// zstd with long-distance matching (the opaque fallback for whole chunks).
pub(crate) fn zstd_encode_ldm(data: &[u8], level: i32) -> Option<Vec<u8>> {
    use zstd::zstd_safe::CParameter;
    let mut c = zstd::bulk::Compressor::new(level).ok()?;
    c.set_parameter(CParameter::EnableLongDistanceMatching(true))
        .ok()?;
    c.compress(data).ok()
}
