//! `zt.zstd-seekable/1`: the standard zstd seekable format.
//!
//! A blob is a run of independent zstd frames, each decoding to at most [`MAX_FRAME_DECODED`]
//! bytes and carrying a content checksum, followed by the seek table: a skippable frame (magic
//! `0x184D2A5E`) holding one `(compressed u32, decompressed u32[, checksum u32])` entry per frame,
//! the frame count, a descriptor byte (bit 7: checksum column present; bits 2..6 reserved) and
//! the seekable magic `0x8F92EAB1`.
//!
//! The seek table is validated against the blob before anything is allocated: the frames must
//! tile the bytes before the table exactly, every non-final frame decodes to the same size (what
//! makes seeking O(1)), no frame may claim more output than zstd can produce from its input
//! ([`MAX_EXPANSION`]), and the totals must equal the manifest's `decoded_length`. Each frame is
//! then decoded into its own slice of the output with an exact size check, so a frame that
//! decodes to more than its entry says stops at the slice end.

use std::ops::Range;

use zstd::zstd_safe;

/// The encoding name in manifests.
pub const ENCODING: &str = "zt.zstd-seekable/1";

/// Largest decoded size of one frame.
pub const MAX_FRAME_DECODED: u64 = 16 << 20;

/// Most bytes a zstd frame can decode to per stored byte: an RLE block is a 3-byte header plus
/// one byte and expands to at most 128 KiB. A seek table claiming more is lying, so this bounds
/// every allocation by the blob's size.
pub const MAX_EXPANSION: u64 = 32 * 1024;

const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
const SEEKABLE_MAGIC: u32 = 0x8F92_EAB1;
const ZSTD_FRAME_MAGIC: u32 = 0xFD2F_B528;
/// Skippable frame header: magic + frame size.
const SKIPPABLE_HEADER_LEN: u64 = 8;
/// Seek table footer: frame count, descriptor, seekable magic.
const SEEK_FOOTER_LEN: u64 = 9;
const CHECKSUM_FLAG: u8 = 0x80;
const RESERVED_DESCRIPTOR_BITS: u8 = 0x7c;
/// Frame header descriptor bit that says the frame ends with a content checksum.
const CONTENT_CHECKSUM_FLAG: u8 = 0x04;

/// One frame: where its bytes lie in the blob and how many bytes it decodes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub stored: Range<usize>,
    pub decoded: u64,
}

/// A validated seek table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeekTable {
    pub frames: Vec<Frame>,
    pub decoded_len: u64,
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"))
}

/// Parses and validates the seek table at the end of `blob`.
pub fn parse_seek_table(blob: &[u8]) -> Result<SeekTable, String> {
    let blob_len = blob.len() as u64;
    if blob_len < SKIPPABLE_HEADER_LEN + SEEK_FOOTER_LEN {
        return Err(format!(
            "stream of {blob_len} bytes is too short for a seek table"
        ));
    }
    let footer_at = (blob_len - SEEK_FOOTER_LEN) as usize;
    let frame_count = u64::from(u32_at(blob, footer_at));
    let descriptor = blob[footer_at + 4];
    if u32_at(blob, footer_at + 5) != SEEKABLE_MAGIC {
        return Err("missing seekable footer magic".into());
    }
    if descriptor & RESERVED_DESCRIPTOR_BITS != 0 {
        return Err(format!(
            "reserved seek table descriptor bits set (0x{descriptor:02x})"
        ));
    }
    let entry_len: u64 = if descriptor & CHECKSUM_FLAG != 0 {
        12
    } else {
        8
    };
    // Cannot overflow: frame_count < 2^32 and entry_len <= 12.
    let table_payload = frame_count * entry_len + SEEK_FOOTER_LEN;
    let table_len = SKIPPABLE_HEADER_LEN + table_payload;
    if table_len > blob_len {
        return Err(format!(
            "seek table of {frame_count} frames ({table_len} bytes) is larger than the {blob_len}-byte stream"
        ));
    }
    let table_at = (blob_len - table_len) as usize;
    if u32_at(blob, table_at) != SKIPPABLE_MAGIC
        || u64::from(u32_at(blob, table_at + 4)) != table_payload
    {
        return Err("malformed seek table skippable frame".into());
    }

    // The count is bounded by the blob's size (checked above), so this allocation is too.
    let mut frames = Vec::with_capacity(frame_count as usize);
    let mut stored_end = 0u64;
    let mut decoded_len = 0u64;
    for i in 0..frame_count as usize {
        let entry = table_at + SKIPPABLE_HEADER_LEN as usize + i * entry_len as usize;
        let stored = u64::from(u32_at(blob, entry));
        let decoded = u64::from(u32_at(blob, entry + 4));
        if decoded > MAX_FRAME_DECODED {
            return Err(format!(
                "frame {i} decodes to {decoded} bytes: frame content exceeds 16 MiB"
            ));
        }
        if decoded > stored.saturating_mul(MAX_EXPANSION) {
            return Err(format!(
                "frame {i} claims {decoded} bytes from {stored} stored bytes, more than zstd can produce"
            ));
        }
        let start = stored_end;
        stored_end = stored_end.saturating_add(stored);
        if stored_end > table_at as u64 {
            return Err(format!(
                "frame sizes do not cover the stream: frame {i} ends at {stored_end}, past the seek table at {table_at}"
            ));
        }
        decoded_len += decoded;
        frames.push(Frame {
            stored: start as usize..stored_end as usize,
            decoded,
        });
    }
    if stored_end != table_at as u64 {
        return Err(format!(
            "frame sizes do not cover the stream: frames end at {stored_end}, the seek table starts at {table_at}"
        ));
    }
    if let Some((_last, rest)) = frames.split_last()
        && let Some(first) = rest.first()
        && rest.iter().any(|f| f.decoded != first.decoded)
    {
        return Err("non-final frames must be equal-sized".into());
    }
    Ok(SeekTable {
        frames,
        decoded_len,
    })
}

/// Decodes a whole blob whose seek table was validated and whose total was checked against the
/// manifest.
pub fn decode(blob: &[u8], table: &SeekTable) -> Result<Vec<u8>, String> {
    let total = usize::try_from(table.decoded_len)
        .map_err(|_| format!("{} decoded bytes do not fit in memory", table.decoded_len))?;
    let mut out = vec![0u8; total];
    let mut decompressor =
        zstd::bulk::Decompressor::new().map_err(|e| format!("zstd decoder: {e}"))?;
    let mut at = 0usize;
    for (i, frame) in table.frames.iter().enumerate() {
        let stored = &blob[frame.stored.clone()];
        check_frame(i, stored)?;
        let end = at + frame.decoded as usize;
        let written = decompressor
            .decompress_to_buffer(stored, &mut out[at..end])
            .map_err(|e| format!("frame {i}: {e}"))?;
        if written as u64 != frame.decoded {
            return Err(format!(
                "frame {i} decoded to {written} bytes, the seek table declares {}",
                frame.decoded
            ));
        }
        at = end;
    }
    Ok(out)
}

/// A frame must be exactly one zstd frame (not several, not a skippable frame) and carry a
/// content checksum, which the decoder then verifies.
fn check_frame(i: usize, stored: &[u8]) -> Result<(), String> {
    if stored.len() < 5 || u32_at(stored, 0) != ZSTD_FRAME_MAGIC {
        return Err(format!("frame {i} is not a zstd frame"));
    }
    if stored[4] & CONTENT_CHECKSUM_FLAG == 0 {
        return Err(format!("frame {i} has no content checksum"));
    }
    match zstd_safe::find_frame_compressed_size(stored) {
        Ok(n) if n == stored.len() => Ok(()),
        Ok(n) => Err(format!(
            "frame {i} is {n} bytes of zstd, but its seek table entry says {}",
            stored.len()
        )),
        Err(code) => Err(format!("frame {i}: {}", zstd_safe::get_error_name(code))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seekable stream of `chunks`, each compressed into its own checksummed frame.
    pub(crate) fn encode(chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut entries = Vec::new();
        for chunk in chunks {
            let mut encoder = zstd::bulk::Compressor::new(3).unwrap();
            encoder
                .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(true))
                .unwrap();
            let frame = encoder.compress(chunk).unwrap();
            entries.push((frame.len() as u32, chunk.len() as u32));
            out.extend_from_slice(&frame);
        }
        out.extend_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
        out.extend_from_slice(&((entries.len() * 8 + 9) as u32).to_le_bytes());
        for (c, d) in &entries {
            out.extend_from_slice(&c.to_le_bytes());
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        out.push(0);
        out.extend_from_slice(&SEEKABLE_MAGIC.to_le_bytes());
        out
    }

    #[test]
    fn round_trip() {
        let a = vec![7u8; 1000];
        let b = vec![9u8; 400];
        let blob = encode(&[&a, &b]);
        let table = parse_seek_table(&blob).unwrap();
        assert_eq!(table.decoded_len, 1400);
        let out = decode(&blob, &table).unwrap();
        assert_eq!(&out[..1000], &a[..]);
        assert_eq!(&out[1000..], &b[..]);
        let empty = encode(&[]);
        assert_eq!(parse_seek_table(&empty).unwrap().decoded_len, 0);
    }

    #[test]
    fn unequal_frames_are_refused() {
        let blob = encode(&[&[1u8; 10], &[2u8; 20], &[3u8; 5]]);
        assert!(
            parse_seek_table(&blob)
                .unwrap_err()
                .contains("non-final frames must be equal-sized")
        );
    }
}
