//! The container: header magic, footer, manifest blob, blob placement rules.

use zt_core::{ByteCursor, ByteRange, Error};

/// First and last 8 bytes of every zTensor 2 file.
pub const MAGIC: &[u8; 8] = b"\x89ZT2\r\n\x1a\n";
/// `manifest_offset u64, manifest_length u64, manifest_hash u64, version u32, reserved u32, magic`.
pub const FOOTER_LEN: u64 = 40;
/// Magic plus footer: the smallest file there can be.
pub const MIN_FILE_LEN: u64 = MAGIC.len() as u64 + FOOTER_LEN;
/// The container version this reader reads.
pub const VERSION: u32 = 2;
/// Every blob (and the manifest) starts at a multiple of this, never on the header's page.
pub const BLOB_ALIGNMENT: u64 = 4096;
/// Largest manifest accepted, as in the specification.
pub const MAX_MANIFEST_LEN: u64 = 1 << 30;

/// The format name used in error messages.
pub const FORMAT: &str = "zTensor 2";

/// The fields of the footer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub manifest: ByteRange,
    pub manifest_hash: u64,
    pub version: u32,
}

impl Footer {
    /// A data shard (a file of blobs referenced from another file's manifest) has no manifest:
    /// its footer zeroes the manifest offset, length and hash.
    pub fn is_data_shard(&self) -> bool {
        self.manifest.offset == 0 && self.manifest.length == 0 && self.manifest_hash == 0
    }
}

/// Checks size, both magics and the version, in the specification's order, and reads the footer.
pub fn parse_footer(bytes: &[u8]) -> Result<Footer, Error> {
    let len = bytes.len() as u64;
    if len < MIN_FILE_LEN {
        return Err(Error::Truncated {
            what: format!("{FORMAT} file (magic and footer)"),
            needed: MIN_FILE_LEN,
            available: len,
        });
    }
    if &bytes[..MAGIC.len()] != MAGIC {
        return Err(Error::BadMagic {
            format: FORMAT,
            expected: MAGIC,
            found: bytes[..MAGIC.len()].to_vec(),
        });
    }
    let footer = &bytes[bytes.len() - FOOTER_LEN as usize..];
    if &footer[FOOTER_LEN as usize - MAGIC.len()..] != MAGIC {
        return Err(Error::malformed(
            FORMAT,
            "footer magic missing at the end of the file: it is truncated or was never finished",
        ));
    }
    let mut cursor = ByteCursor::new(footer, FORMAT);
    let offset = cursor.u64("manifest offset")?;
    let length = cursor.u64("manifest length")?;
    let manifest_hash = cursor.u64("manifest hash")?;
    let version = cursor.u32("version")?;
    // The reserved u32 is written as 0 and ignored on read.
    if version != VERSION {
        return Err(Error::Unsupported(format!(
            "{FORMAT} container version {version} (this reader reads version {VERSION})"
        )));
    }
    Ok(Footer {
        manifest: ByteRange { offset, length },
        manifest_hash,
        version,
    })
}

/// End of the area blobs may occupy: everything before the footer.
pub fn data_end(bytes: &[u8]) -> u64 {
    bytes.len() as u64 - FOOTER_LEN
}

/// The manifest bytes, after the length limit, placement and XXH3-64 hash checks.
pub fn manifest_bytes<'a>(bytes: &'a [u8], footer: &Footer) -> Result<&'a [u8], Error> {
    let ByteRange { offset, length } = footer.manifest;
    if footer.is_data_shard() {
        return Err(Error::Unsupported(format!(
            "this is a data shard of a multi-file {FORMAT} checkpoint (it has no manifest): open the root file that lists it"
        )));
    }
    if length > MAX_MANIFEST_LEN {
        return Err(Error::LimitExceeded {
            what: "manifest".into(),
            size: length,
            limit: MAX_MANIFEST_LEN,
        });
    }
    check_blob_placement(footer.manifest, data_end(bytes), "manifest")?;
    let manifest = &bytes[offset as usize..(offset + length) as usize];
    let actual = xxhash_rust::xxh3::xxh3_64(manifest);
    if actual != footer.manifest_hash {
        return Err(Error::ChecksumMismatch {
            component: "manifest".into(),
            expected: format!("xxh3:{:016x}", footer.manifest_hash),
            actual: format!("xxh3:{actual:016x}"),
        });
    }
    Ok(manifest)
}

/// A blob must start on a 4096-byte boundary after the header's page (zero-length blobs too) and
/// end before the footer.
pub fn check_blob_placement(range: ByteRange, data_end: u64, what: &str) -> Result<(), Error> {
    if range.offset < BLOB_ALIGNMENT {
        return Err(Error::malformed(
            FORMAT,
            format!(
                "'{what}' at offset {} lies on the header's page (blobs start at {BLOB_ALIGNMENT} or later)",
                range.offset
            ),
        ));
    }
    if !range.offset.is_multiple_of(BLOB_ALIGNMENT) {
        return Err(Error::Misaligned {
            component: what.to_owned(),
            offset: range.offset,
            alignment: BLOB_ALIGNMENT,
        });
    }
    match range.end() {
        Some(end) if end <= data_end => Ok(()),
        _ => Err(Error::OutOfBounds {
            component: what.to_owned(),
            offset: range.offset,
            length: range.length,
            file_len: data_end + FOOTER_LEN,
        }),
    }
}

/// Blobs within one file must be identical `(offset, length)` pairs (tied weights) or disjoint.
/// Zero-length blobs take no bytes and are exempt.
pub fn check_overlaps(mut ranges: Vec<(ByteRange, String)>) -> Result<(), Error> {
    ranges.retain(|(r, _)| r.length > 0);
    ranges.sort_by_key(|(r, _)| (r.offset, r.length));
    // The range reaching furthest so far; ranges were bounds-checked, so `end` cannot overflow.
    let mut furthest: Option<(ByteRange, &str)> = None;
    for (range, label) in &ranges {
        if let Some((previous, previous_label)) = furthest {
            let previous_end = previous.offset + previous.length;
            if *range == previous {
                continue;
            }
            if range.offset < previous_end {
                return Err(Error::Overlap {
                    first: previous_label.to_owned(),
                    second: label.clone(),
                });
            }
        }
        let end = range.offset + range.length;
        if furthest.is_none_or(|(f, _)| end > f.offset + f.length) {
            furthest = Some((*range, label));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(offset: u64, length: u64) -> ByteRange {
        ByteRange { offset, length }
    }

    #[test]
    fn overlap_rules() {
        let ok = vec![
            (r(4096, 10), "a".into()),
            (r(4096, 10), "b".into()),
            (r(8192, 4096), "c".into()),
            (r(12288, 0), "d".into()),
            (r(8192, 0), "e".into()),
        ];
        check_overlaps(ok).unwrap();
        let partial = vec![(r(4096, 4097), "a".into()), (r(8192, 10), "b".into())];
        assert!(matches!(
            check_overlaps(partial),
            Err(Error::Overlap { first, second }) if first == "a" && second == "b"
        ));
        let same_start = vec![(r(4096, 10), "a".into()), (r(4096, 20), "b".into())];
        assert!(check_overlaps(same_start).is_err());
        // A long range hiding a later one behind a shorter one.
        let nested = vec![
            (r(4096, 16384), "a".into()),
            (r(8192, 10), "b".into()),
            (r(12288, 10), "c".into()),
        ];
        assert!(check_overlaps(nested).is_err());
    }

    #[test]
    fn placement() {
        check_blob_placement(r(4096, 4), 4100, "x").unwrap();
        assert!(matches!(
            check_blob_placement(r(4100, 4), 8192, "x"),
            Err(Error::Misaligned { .. })
        ));
        assert!(
            check_blob_placement(r(0, 0), 8192, "x")
                .unwrap_err()
                .to_string()
                .contains("header's page")
        );
        assert!(matches!(
            check_blob_placement(r(4096, u64::MAX), 8192, "x"),
            Err(Error::OutOfBounds { .. })
        ));
    }
}
