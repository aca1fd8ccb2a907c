//! The frame header and segment table: writing, and parsing with every length and count
//! checked against the frame before it is used.

use std::ops::Range;

use zt_core::{DType, Result};

use crate::bytes::{Reader, malformed, put_varint};

pub(crate) const MAGIC: &[u8; 4] = b"ZTC1";
pub(crate) const VERSION: u8 = 1;
pub(crate) const FLAG_DELTA: u8 = 1;

/// Largest decoded length a frame may declare (256 TiB).
pub(crate) const MAX_DECODED_LEN: u64 = 1 << 48;
/// Largest decoded length of one coded segment (a chunk).
pub(crate) const MAX_CHUNK: u64 = 64 << 20;

pub(crate) const SEG_CODED: u8 = 0;
pub(crate) const SEG_COPY: u8 = 1;

/// The dtype's code in the frame: 0 for opaque bytes, then `DType::ALL` order from 1.
pub(crate) fn dtype_code(d: Option<DType>) -> u8 {
    match d {
        None => 0,
        Some(d) => 1 + DType::ALL.iter().position(|&x| x == d).expect("listed") as u8,
    }
}

fn dtype_from_code(c: u8) -> Result<Option<DType>> {
    match c {
        0 => Ok(None),
        c => DType::ALL
            .get(usize::from(c) - 1)
            .copied()
            .map(Some)
            .ok_or_else(|| malformed(format!("unknown dtype code {c}"))),
    }
}

/// What a delta frame was made against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DeltaRef {
    pub len: u64,
    /// xxh3-128 of the reference, little-endian.
    pub digest: [u8; 16],
}

/// One run of decoded bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SegKind {
    /// Decoded from a chunk payload at this range of the frame.
    Coded(Range<usize>),
    /// `out[start + i] = out[start - dist + i]` for each i in order (so `dist < len` repeats
    /// the last `dist` bytes).
    Copy { dist: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Segment {
    pub start: u64,
    pub len: u64,
    pub kind: SegKind,
}

#[derive(Debug, Clone)]
pub(crate) struct Header {
    pub dtype: Option<DType>,
    pub delta: Option<DeltaRef>,
    pub decoded_len: u64,
    pub chunk_size: u64,
    pub crc: u32,
    pub segments: Vec<Segment>,
    pub header_len: usize,
}

/// A segment as the encoder plans it: decoded length and either a payload or a distance.
pub(crate) enum Planned {
    Coded(Vec<u8>),
    Copy { dist: u64 },
}

/// Writes a whole frame.
pub(crate) fn write(
    dtype: Option<DType>,
    delta: Option<DeltaRef>,
    decoded_len: u64,
    chunk_size: u64,
    crc: u32,
    segments: &[(u64, Planned)],
) -> Vec<u8> {
    let payload: usize = segments
        .iter()
        .map(|(_, s)| match s {
            Planned::Coded(p) => p.len(),
            Planned::Copy { .. } => 0,
        })
        .sum();
    let mut out = Vec::with_capacity(payload + 64 + 24 * segments.len());
    crate::mem::advise_huge_pages(out.as_mut_ptr(), out.capacity());
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(dtype_code(dtype));
    out.push(if delta.is_some() { FLAG_DELTA } else { 0 });
    put_varint(&mut out, decoded_len);
    put_varint(&mut out, chunk_size);
    put_varint(&mut out, segments.len() as u64);
    if let Some(d) = delta {
        put_varint(&mut out, d.len);
        out.extend_from_slice(&d.digest);
    }
    for (len, s) in segments {
        match s {
            Planned::Coded(p) => {
                out.push(SEG_CODED);
                put_varint(&mut out, *len);
                put_varint(&mut out, p.len() as u64);
            }
            Planned::Copy { dist, .. } => {
                out.push(SEG_COPY);
                put_varint(&mut out, *len);
                put_varint(&mut out, *dist);
            }
        }
    }
    out.extend_from_slice(&crc.to_le_bytes());
    let header_crc = crc_fast::crc32_iscsi(&out);
    out.extend_from_slice(&header_crc.to_le_bytes());
    for (_, s) in segments {
        if let Planned::Coded(p) = s {
            out.extend_from_slice(p);
        }
    }
    out
}

/// Parses and validates the header and segment table of `frame`.
pub(crate) fn parse(frame: &[u8]) -> Result<Header> {
    if frame.len() < 4 || &frame[..4] != MAGIC {
        return Err(zt_core::Error::BadMagic {
            format: "ztc1 frame",
            expected: MAGIC,
            found: frame[..frame.len().min(4)].to_vec(),
        });
    }
    let mut r = Reader::new(&frame[4..]);
    let version = r.u8("version")?;
    if version != VERSION {
        return Err(zt_core::Error::Unsupported(format!(
            "ztc1 frame version {version} (this build reads version {VERSION})"
        )));
    }
    let dtype = dtype_from_code(r.u8("dtype")?)?;
    let flags = r.u8("flags")?;
    if flags & !FLAG_DELTA != 0 {
        return Err(malformed(format!("unknown flags {flags:#04x}")));
    }
    let decoded_len = r.varint("decoded length")?;
    if decoded_len > MAX_DECODED_LEN {
        return Err(zt_core::Error::LimitExceeded {
            what: "ztc1 decoded length".into(),
            size: decoded_len,
            limit: MAX_DECODED_LEN,
        });
    }
    let chunk_size = r.varint("chunk size")?;
    if chunk_size > MAX_CHUNK {
        return Err(malformed(format!(
            "chunk size {chunk_size} exceeds {MAX_CHUNK}"
        )));
    }
    // Every table entry takes at least 3 bytes: this bounds the allocation by the frame.
    let count = r.varint_max(r.remaining() as u64 / 3, "segment count")?;
    let delta = if flags & FLAG_DELTA != 0 {
        let len = r.varint("reference length")?;
        let digest: [u8; 16] = r
            .take(16, "reference digest")?
            .try_into()
            .expect("16 bytes");
        // A delta is an XOR with an equal-length reference: refuse anything else here, so
        // that `frame_info` users never see such a frame as valid.
        if len != decoded_len {
            return Err(malformed(format!(
                "delta of {decoded_len} bytes against a reference of {len}"
            )));
        }
        Some(DeltaRef { len, digest })
    } else {
        None
    };
    let mut segments = Vec::with_capacity(count);
    let mut pos = 0u64;
    let mut payload = 0u64;
    for i in 0..count {
        let kind = r.u8("segment kind")?;
        let len = r.varint("segment length")?;
        let arg = r.varint("segment argument")?;
        if len == 0 || len > decoded_len - pos {
            return Err(malformed(format!(
                "segment {i} of {len} bytes at {pos} overruns the decoded length {decoded_len}"
            )));
        }
        let kind = match kind {
            SEG_CODED => {
                if len > MAX_CHUNK {
                    return Err(malformed(format!(
                        "chunk {i} of {len} bytes exceeds {MAX_CHUNK}"
                    )));
                }
                if arg > frame.len() as u64 - payload {
                    return Err(malformed(format!("chunk {i} payload overruns the frame")));
                }
                let start = payload as usize;
                payload += arg;
                SegKind::Coded(start..payload as usize)
            }
            SEG_COPY => {
                if arg == 0 || arg > pos {
                    return Err(malformed(format!(
                        "copy segment {i} at {pos} reaches back {arg} bytes"
                    )));
                }
                SegKind::Copy { dist: arg }
            }
            k => return Err(malformed(format!("unknown segment kind {k}"))),
        };
        segments.push(Segment {
            start: pos,
            len,
            kind,
        });
        pos += len;
    }
    if pos != decoded_len {
        return Err(malformed(format!(
            "segments cover {pos} bytes, the frame declares {decoded_len}"
        )));
    }
    let crc = r.u32_le("checksum")?;
    let header_len = 4 + r.pos();
    let stored_header_crc = r.u32_le("header checksum")?;
    let header_crc = crc_fast::crc32_iscsi(&frame[..header_len]);
    if header_crc != stored_header_crc {
        return Err(zt_core::Error::ChecksumMismatch {
            component: "ztc1 frame header".into(),
            expected: format!("{stored_header_crc:08x}"),
            actual: format!("{header_crc:08x}"),
        });
    }
    let header_len = header_len + 4;
    if payload != (frame.len() - header_len) as u64 {
        return Err(malformed(format!(
            "chunk payloads take {payload} bytes but {} follow the header",
            frame.len() - header_len
        )));
    }
    for s in &mut segments {
        if let SegKind::Coded(range) = &mut s.kind {
            *range = range.start + header_len..range.end + header_len;
        }
    }
    Ok(Header {
        dtype,
        delta,
        decoded_len,
        chunk_size,
        crc,
        segments,
        header_len,
    })
}
