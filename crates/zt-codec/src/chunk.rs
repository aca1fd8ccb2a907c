//! One chunk: pick a transform, code its streams, and the inverse.
//!
//! ```text
//! u8 transform
//!   0 STORED   the chunk's bytes
//!   1 CONST    one element (esize bytes), repeated | tail
//!   2 SPLIT    one stream per field or byte plane of the dtype's layout | tail
//!   3 PALETTE  palette | tail
//!   4 SPARSE   varint non-zero count | bitmap stream | u8 inner (2, 3, 6 or 7) | inner body
//!              over the non-zero elements | tail
//!   5 ZSTD     a zstd frame of the whole chunk (long-distance matching on)
//!   6 PLANES   one stream per byte plane, least significant first | tail
//!   7 SIGN_PLANES  stream of the packed sign bits (top bit of each element) | the byte planes
//!              as PLANES, sign bit cleared | tail
//! palette: u8 index bits (1, 2, 4, 8) | u8 values-1 | values (esize bytes each, ascending)
//!          | stream of packed indices (8/bits per byte, first in the low bits)
//! tail:    the last `len % esize` bytes of the chunk, verbatim
//! ```
//!
//! Streams are coded as described in `stream`. The sparse bitmap has one bit per element, set
//! for a non-zero element (any byte non-zero), first element in the lowest bit.

use std::mem::MaybeUninit;

use zt_core::Result;

use crate::bytes::{Reader, malformed, put_varint};
use crate::mem::{self, Scratch};
use crate::stream::Stats;
use crate::stream::{self, Policy};
use crate::transform::{self, Layout};

pub(crate) const STORED: u8 = 0;
pub(crate) const CONST: u8 = 1;
pub(crate) const SPLIT: u8 = 2;
pub(crate) const PALETTE: u8 = 3;
pub(crate) const SPARSE: u8 = 4;
pub(crate) const ZSTD: u8 = 5;
/// Byte planes of a float layout's elements (as [`Layout::Planes`]), the alternative to its
/// field split. fp16 gains from it: its 5-bit exponent and the top mantissa bits depend on each
/// other (weights are not uniform inside a binade), and the high byte codes them together.
pub(crate) const PLANES: u8 = 6;
/// Packed sign bits, then byte planes without the sign (as [`Layout::SignPlanes`]): fp16's
/// byte planes with the high byte's near-random sign bit apart, which decode faster.
pub(crate) const SIGN_PLANES: u8 = 7;

/// Which split of the elements into streams a SPLIT-like body uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fields {
    /// The dtype's own layout (`SPLIT`).
    Split,
    /// Byte planes (`PLANES`).
    Planes,
    /// Packed signs and byte planes (`SIGN_PLANES`).
    SignPlanes,
}

impl Fields {
    fn layout(self, dtype_layout: Layout) -> Layout {
        match self {
            Fields::Split => dtype_layout,
            Fields::Planes => Layout::Planes(dtype_layout.esize()),
            Fields::SignPlanes => Layout::SignPlanes(dtype_layout.esize()),
        }
    }

    fn id(self) -> u8 {
        match self {
            Fields::Split => SPLIT,
            Fields::Planes => PLANES,
            Fields::SignPlanes => SIGN_PLANES,
        }
    }

    /// The fields of a SPLIT-like transform id.
    fn from_id(id: u8) -> Option<Fields> {
        match id {
            SPLIT => Some(Fields::Split),
            PLANES => Some(Fields::Planes),
            SIGN_PLANES => Some(Fields::SignPlanes),
            _ => None,
        }
    }
}

/// How hard the chunk encoder tries.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkPolicy {
    pub stream: Policy,
    /// Encode every candidate transform for real (plus whole-chunk zstd) and keep the
    /// smallest; otherwise choose by estimates from histograms.
    pub exhaustive: bool,
    /// Consider the sparse transform from this fraction of all-zero elements on.
    pub sparse_min_fraction: f64,
    /// The frame's choice among the field split, the byte planes and the sign planes for fp16
    /// below exhaustive effort, made once from a sample of the whole buffer; `None`: each chunk
    /// samples itself.
    pub f16_fields: Option<Fields>,
}

/// The elements' coding, before it is written. (A few per chunk: their size does not matter.)
#[allow(clippy::large_enum_variant)]
enum Body {
    Split {
        fields: Fields,
        streams: Vec<Scratch>,
        hists: Vec<Stats>,
    },
    Palette {
        values: Vec<u64>,
        bits: u8,
        index: Scratch,
        hist: Stats,
    },
}

impl Body {
    fn split(layout: Layout, data: &[u8], p: &Policy) -> Body {
        Body::fields(layout, Fields::Split, data, p)
    }

    /// The elements split into streams as `fields` says.
    fn fields(layout: Layout, fields: Fields, data: &[u8], p: &Policy) -> Body {
        let streams = fields.layout(layout).split(data);
        let hists = streams.iter().map(|s| stream::stats(s, p)).collect();
        Body::Split {
            fields,
            streams,
            hists,
        }
    }

    fn palette(data: &[u8], esize: usize, values: Vec<u64>, p: &Policy) -> Body {
        let bits = transform::palette_bits(values.len());
        let index = transform::palette_indices(data, esize, &values, bits);
        Body::palette_from(values, index, p)
    }

    fn palette_from(values: Vec<u64>, index: Scratch, p: &Policy) -> Body {
        let bits = transform::palette_bits(values.len());
        let hist = stream::stats(&index, p);
        Body::Palette {
            values,
            bits,
            index,
            hist,
        }
    }

    fn estimate(&self, esize: usize, p: &Policy) -> usize {
        match self {
            Body::Split { streams, hists, .. } => streams
                .iter()
                .zip(hists)
                .map(|(s, h)| stream::estimate(h, s.len(), p))
                .sum(),
            Body::Palette {
                values,
                index,
                hist,
                ..
            } => 2 + values.len() * esize + stream::estimate(hist, index.len(), p),
        }
    }

    /// Estimated size of the same body over the non-zero elements only: every all-zero
    /// element put exactly one known symbol into each stream, so removing them from the
    /// histograms is exact (packed palette indices are approximated proportionally).
    fn estimate_without_zeros(&self, esize: usize, zeros: usize, n: usize, p: &Policy) -> usize {
        let nz = n - zeros;
        match self {
            Body::Split { fields, hists, .. } => hists
                .iter()
                .enumerate()
                .map(|(i, st)| {
                    if *fields == Fields::SignPlanes && i == 0 {
                        // Packed signs: eight elements a byte, so only proportionally.
                        return stream::estimate(st, n.div_ceil(8), p) * nz / n.max(1);
                    }
                    let mut st = st.clone();
                    if st.exact {
                        st.hist[0] -= zeros as u32;
                    }
                    stream::estimate(&st, nz, p)
                })
                .sum(),
            Body::Palette {
                values, bits, hist, ..
            } => {
                let book = 2 + values.len() * esize;
                match values.iter().position(|&v| v == 0) {
                    Some(z) if *bits == 8 && hist.exact => {
                        let mut st = hist.clone();
                        st.hist[z] -= zeros as u32;
                        book + stream::estimate(&st, nz, p)
                    }
                    _ => self.estimate(esize, p) * nz / n.max(1),
                }
            }
        }
    }

    fn write(&self, esize: usize, p: &Policy, out: &mut Vec<u8>) {
        match self {
            Body::Split {
                fields,
                streams,
                hists,
            } => {
                out.push(fields.id());
                for (s, h) in streams.iter().zip(hists) {
                    stream::encode(s, h, p, out);
                }
            }
            Body::Palette {
                values,
                bits,
                index,
                hist,
            } => {
                out.push(PALETTE);
                out.push(*bits);
                out.push((values.len() - 1) as u8);
                for v in values {
                    out.extend_from_slice(&v.to_le_bytes()[..esize]);
                }
                stream::encode(index, hist, p, out);
            }
        }
    }

    /// The same kind of body over other elements (the non-zero ones).
    fn rebuild(&self, layout: Layout, data: &[u8], p: &Policy) -> Body {
        match self {
            Body::Split { fields, .. } => Body::fields(layout, *fields, data, p),
            Body::Palette { values, .. } => {
                let values: Vec<u64> = values.iter().copied().filter(|&v| v != 0).collect();
                if values.len() < 2 {
                    // One value left: a palette of one would need a zero-bit index.
                    Body::split(layout, data, p)
                } else {
                    Body::palette(data, layout.esize(), values, p)
                }
            }
        }
    }

    /// An upper bound on the all-zero elements: each one put a 0 into every split stream.
    fn zero_bound(&self, n: usize) -> usize {
        match self {
            Body::Split { fields, hists, .. } => hists
                .iter()
                // Packed signs count groups of eight, not elements.
                .skip(usize::from(*fields == Fields::SignPlanes))
                .filter(|st| st.exact)
                .map(|st| st.hist[0] as usize)
                .min()
                .unwrap_or(n),
            Body::Palette {
                values, bits, hist, ..
            } => match values.iter().position(|&v| v == 0) {
                None => 0,
                // One index byte per element: the histogram counts the zeros exactly.
                Some(z) if *bits == 8 && hist.exact => hist.hist[z] as usize,
                Some(_) => n,
            },
        }
    }
}

/// Estimated bytes for a bitmap with `zeros` clear bits of `n`, zeros assumed independent.
fn bitmap_estimate(n: usize, zeros: usize) -> usize {
    let p = zeros as f64 / n as f64;
    let h = if p <= 0.0 || p >= 1.0 {
        0.0
    } else {
        -(p * p.log2() + (1.0 - p) * (1.0 - p).log2())
    };
    ((n as f64 * h / 8.0) as usize + 48).min(n.div_ceil(8) + 1)
}

/// Writes the sparse transform of `body`, its non-zero elements coded as `inner` builds them.
fn write_sparse(
    layout: Layout,
    body: &[u8],
    nonzero: usize,
    inner: impl FnOnce(&[u8]) -> Body,
    p: &Policy,
    out: &mut Vec<u8>,
) {
    let es = layout.esize();
    let (bitmap, nz) = transform::sparse_split(body, es, nonzero);
    out.push(SPARSE);
    put_varint(out, nonzero as u64);
    stream::encode(&bitmap, &stream::stats(&bitmap, p), p, out);
    inner(&nz).write(es, p, out);
}

/// Encodes one chunk. The result is never longer than `data.len() + 1`.
pub(crate) fn encode(data: &[u8], layout: Layout, policy: &ChunkPolicy) -> Vec<u8> {
    let es = layout.esize();
    let n = data.len() / es;
    let (body, tail) = data.split_at(n * es);
    let stored = || {
        let mut v = Vec::with_capacity(data.len() + 1);
        v.push(STORED);
        v.extend_from_slice(data);
        v
    };
    if n == 0 {
        return stored();
    }
    let first = &body[..es];
    if body.chunks_exact(es).all(|c| c == first) {
        let mut v = vec![CONST];
        v.extend_from_slice(first);
        v.extend_from_slice(tail);
        return v;
    }
    let p = &policy.stream;
    // Single-byte elements gain from a palette only through packing (<= 16 values).
    let max_values = if es == 1 { 16 } else { 256 };
    let palette = transform::palette_scan(body, es, max_values)
        .filter(|(v, _)| v.len() >= 2)
        .map(|(v, index)| Body::palette_from(v, index, p));
    if !policy.exhaustive
        && let Some(palette) = palette
    {
        // A palette codes the joint distribution of the element bits, which the field split
        // can only match, so the estimates need not compare them.
        return encode_with(layout, body, tail, palette, None, policy);
    }
    // The exact count of all-zero elements is a pass over the chunk (a twelfth of an fp16
    // compress): below Max it is taken only when a sample finds enough zeros to matter here,
    // and otherwise left to `encode_with`, which counts only when the histograms allow it.
    let zeros = (policy.exhaustive || zeros_likely(body, es))
        .then(|| transform::count_zero_elements(body, es));
    if !policy.exhaustive
        && let Some(zeros) = zeros
        && zeros < n
        && 2 * zeros >= n
    {
        // Mostly zeros (pruned weights, checkpoint deltas): the sparse transform wins, and
        // a body over every element would be built only to have its size estimated.
        let fields = preferred_fields(layout, body, policy);
        let inner = |nz: &[u8]| Body::fields(layout, fields, nz, p);
        let mut out = Vec::with_capacity(data.len() + 64);
        write_sparse(layout, body, n - zeros, inner, p, &mut out);
        out.extend_from_slice(tail);
        return if out.len() > data.len() {
            stored()
        } else {
            out
        };
    }
    if !policy.exhaustive && layout == Layout::F16 {
        // fp16's byte planes compete with its field split; a sample picks one, so that only
        // the winner is built.
        let base = Body::fields(layout, preferred_fields(layout, body, policy), body, p);
        return encode_with(layout, body, tail, base, zeros, policy);
    }
    let split = Body::split(layout, body, p);
    if policy.exhaustive {
        // Byte planes compete with the field split where they can win: every float layout.
        let is_float = matches!(
            layout,
            Layout::Bf16 | Layout::F16 | Layout::F32 | Layout::F64
        );
        let planes = is_float.then(|| Body::fields(layout, Fields::Planes, body, p));
        let zeros = zeros.unwrap_or_else(|| transform::count_zero_elements(body, es));
        let sign_planes =
            (layout == Layout::F16).then(|| Body::fields(layout, Fields::SignPlanes, body, p));
        let sparse_ok =
            zeros > 0 && zeros < n && zeros as f64 >= n as f64 * policy.sparse_min_fraction;
        let mut cands = vec![stored()];
        for b in [
            Some(&split),
            planes.as_ref(),
            sign_planes.as_ref(),
            palette.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            let mut v = Vec::new();
            b.write(es, p, &mut v);
            v.extend_from_slice(tail);
            cands.push(v);
            if sparse_ok {
                let mut v = Vec::new();
                write_sparse(
                    layout,
                    body,
                    n - zeros,
                    |nz| b.rebuild(layout, nz, p),
                    p,
                    &mut v,
                );
                v.extend_from_slice(tail);
                cands.push(v);
            }
        }
        let so_far = cands.iter().map(Vec::len).min().unwrap_or(data.len());
        if stream::zstd_may_win(data, so_far, p.zstd_level)
            && let Some(z) = stream::zstd_encode_ldm(data, p.zstd_level)
        {
            let mut v = vec![ZSTD];
            v.extend_from_slice(&z);
            cands.push(v);
        }
        // Ties keep the earlier (cheaper to decode) candidate.
        return cands
            .into_iter()
            .reduce(|a, b| if b.len() < a.len() { b } else { a })
            .expect("stored is a candidate");
    }

    // Below Max the field split is the base (fp16 chose its split above), and `encode_with`
    // weighs it against the palette, sparse and zstd.
    encode_with(layout, body, tail, split, zeros, policy)
}

/// Whether at least 3/8 of the elements of `body` may be all-zero: counted exactly in bodies
/// under 64 KiB, else in every eighth block of 4 KiB (whole elements, as 4096 is a multiple of
/// every element size).
fn zeros_likely(body: &[u8], es: usize) -> bool {
    const BLOCK: usize = 4096;
    if body.len() < 16 * BLOCK {
        return true;
    }
    let (zeros, elems) = body.chunks(BLOCK).step_by(8).fold((0, 0), |(z, e), b| {
        (z + transform::count_zero_elements(b, es), e + b.len() / es)
    });
    8 * zeros >= 3 * elems
}

/// The split of an fp16 chunk below exhaustive effort: the frame's choice, or the chunk's own
/// sample. Other layouts use their field split.
fn preferred_fields(layout: Layout, body: &[u8], policy: &ChunkPolicy) -> Fields {
    if layout != Layout::F16 {
        return Fields::Split;
    }
    policy
        .f16_fields
        .unwrap_or_else(|| smallest_fields(layout, body, &policy.stream))
}

/// The split (field split, byte planes, or signs and byte planes) that codes `body` smallest by
/// estimates over a sample of at most 32 blocks of 4 KiB spread evenly over it; ties go to the
/// faster to decode (signs and planes, then planes).
pub(crate) fn smallest_fields(layout: Layout, body: &[u8], p: &Policy) -> Fields {
    const BLOCK: usize = 4096;
    const BLOCKS: usize = 32;
    let es = layout.esize();
    let sample: Vec<u8>;
    let blocks = body.len() / BLOCK;
    let sample = if blocks > BLOCKS {
        sample = (0..BLOCKS).fold(Vec::with_capacity(BLOCKS * BLOCK), |mut v, k| {
            let at = k * blocks / BLOCKS * BLOCK;
            v.extend_from_slice(&body[at..at + BLOCK]);
            v
        });
        &sample[..sample.len() / es * es]
    } else {
        &body[..body.len() / es * es]
    };
    [Fields::SignPlanes, Fields::Planes, Fields::Split]
        .into_iter()
        .map(|f| (f, Body::fields(layout, f, sample, p).estimate(es, p)))
        .reduce(|a, b| if b.1 < a.1 { b } else { a })
        .expect("three candidates")
        .0
}

/// The number of all-zero elements, counted only when `body`'s histograms leave room for
/// enough of them to make the sparse transform worth considering (else 0).
fn count_zeros(body: &Body, elems: &[u8], es: usize, policy: &ChunkPolicy) -> usize {
    let n = elems.len() / es;
    if (body.zero_bound(n) as f64) < n as f64 * policy.sparse_min_fraction {
        0
    } else {
        transform::count_zero_elements(elems, es)
    }
}

/// Writes the chunk with `base` as its body, or the sparse transform over it when that is
/// estimated smaller; stored when neither beats the chunk's own bytes.
fn encode_with(
    layout: Layout,
    body: &[u8],
    tail: &[u8],
    base: Body,
    known_zeros: Option<usize>,
    policy: &ChunkPolicy,
) -> Vec<u8> {
    let (es, p) = (layout.esize(), &policy.stream);
    let n = body.len() / es;
    let len = body.len() + tail.len();
    let zeros = known_zeros.unwrap_or_else(|| count_zeros(&base, body, es, policy));
    let sparse_ok = zeros > 0 && zeros < n && zeros as f64 >= n as f64 * policy.sparse_min_fraction;
    let base_est = base.estimate(es, p);
    let sparse_est = sparse_ok
        .then(|| bitmap_estimate(n, zeros) + base.estimate_without_zeros(es, zeros, n, p) + 4);
    // Room for the worst case (stored), so the output never reallocates while it grows.
    let mut out = Vec::with_capacity(len + 64);
    match sparse_est {
        Some(s) if s < base_est => write_sparse(
            layout,
            body,
            n - zeros,
            |nz| base.rebuild(layout, nz, p),
            p,
            &mut out,
        ),
        _ => base.write(es, p, &mut out),
    }
    out.extend_from_slice(tail);
    if out.len() > len {
        out.clear();
        out.push(STORED);
        out.extend_from_slice(body);
        out.extend_from_slice(tail);
    }
    out
}

/// Decodes one chunk payload (exactly `src`) into `out` (exactly the chunk's length), and
/// initializes every byte of `out` when it succeeds.
pub(crate) fn decode(src: &[u8], layout: Layout, out: &mut [MaybeUninit<u8>]) -> Result<()> {
    let es = layout.esize();
    let n = out.len() / es;
    let mut r = Reader::new(src);
    let kind = r.u8("chunk transform")?;
    if let SPLIT | PLANES | SIGN_PLANES | PALETTE | SPARSE = kind {
        // The common cases write the fresh output without zeroing it first.
        let (body, tail) = out.split_at_mut(n * es);
        match (kind, Fields::from_id(kind)) {
            (_, Some(fields)) => decode_split(&mut r, fields.layout(layout), body)?,
            (PALETTE, _) => decode_palette(&mut r, es, body)?,
            _ => decode_sparse(&mut r, layout, body)?,
        }
        let rest = r.take(tail.len(), "chunk tail")?;
        mem::write(tail, rest);
        return expect_end(&r);
    }
    let out = mem::zeroed(out);
    let (body, tail) = out.split_at_mut(n * es);
    match kind {
        STORED => {
            out.copy_from_slice(r.take(out.len(), "stored chunk")?);
            return expect_end(&r);
        }
        ZSTD => return stream::zstd_decode_exact(r.rest(), out),
        CONST => {
            let first = r.take(es, "constant element")?;
            for c in body.chunks_exact_mut(es) {
                c.copy_from_slice(first);
            }
        }
        k => return Err(malformed(format!("unknown chunk transform {k}"))),
    }
    tail.copy_from_slice(r.take(tail.len(), "chunk tail")?);
    expect_end(&r)
}

fn expect_end(r: &Reader<'_>) -> Result<()> {
    if r.remaining() != 0 {
        return Err(malformed(format!(
            "chunk has {} trailing bytes",
            r.remaining()
        )));
    }
    Ok(())
}

/// A SPARSE body: bitmap, inner transform over the non-zero elements, then the merge.
fn decode_sparse(r: &mut Reader<'_>, layout: Layout, out: &mut [MaybeUninit<u8>]) -> Result<()> {
    let es = layout.esize();
    let n = out.len() / es;
    let nonzero = r.varint_max(n as u64, "sparse non-zero count")?;
    let bitmap = stream::decode(r, n.div_ceil(8))?;
    let mut nz = mem::scratch(nonzero * es);
    // SAFETY: the decoders below write only bytes through the view.
    let nz_out = unsafe { mem::as_uninit(nz.as_mut_slice()) };
    let inner = r.u8("sparse inner transform")?;
    match Fields::from_id(inner) {
        Some(fields) => decode_split(r, fields.layout(layout), nz_out)?,
        None if inner == PALETTE => decode_palette(r, es, nz_out)?,
        None => {
            return Err(malformed(format!(
                "sparse chunk with inner transform {inner}"
            )));
        }
    }
    transform::sparse_merge(&bitmap, &nz, es, out)
}

fn decode_split(r: &mut Reader<'_>, layout: Layout, out: &mut [MaybeUninit<u8>]) -> Result<()> {
    let n = out.len() / layout.esize();
    let streams = (0..layout.streams())
        .map(|i| stream::decode(r, layout.stream_len(i, n)))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&[u8]> = streams.iter().map(|s| &s[..]).collect();
    layout.merge(&refs, out);
    Ok(())
}

fn decode_palette(r: &mut Reader<'_>, esize: usize, out: &mut [MaybeUninit<u8>]) -> Result<()> {
    let n = out.len() / esize;
    let bits = r.u8("palette index bits")?;
    if ![1, 2, 4, 8].contains(&bits) {
        return Err(malformed(format!("palette index width {bits} bits")));
    }
    let count = usize::from(r.u8("palette size")?) + 1;
    if count < 2 || count > 1 << bits {
        return Err(malformed(format!(
            "palette of {count} values with {bits}-bit indices"
        )));
    }
    let raw = r.take(count * esize, "palette values")?;
    let values: Vec<u64> = raw
        .chunks_exact(esize)
        .map(|c| {
            let mut b = [0u8; 8];
            b[..esize].copy_from_slice(c);
            u64::from_le_bytes(b)
        })
        .collect();
    if values.windows(2).any(|w| w[0] >= w[1]) {
        return Err(malformed("palette values are not strictly ascending"));
    }
    let packed = stream::decode(r, transform::packed_len(n, bits))?;
    transform::palette_expand(&packed, bits, esize, &values, out)
}
