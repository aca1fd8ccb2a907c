//! Read-only memory maps and bounds-checked parsing over them, shared by every reader.

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::{Advice, Mmap};

use crate::Error;

/// A whole file mapped read-only. Empty files have no map (mapping zero bytes fails).
#[derive(Debug)]
pub struct MappedFile {
    path: PathBuf,
    file: File,
    map: Option<Mmap>,
}

impl MappedFile {
    pub fn open(path: impl AsRef<Path>) -> Result<MappedFile, Error> {
        let path = path.as_ref();
        let open = || -> Result<MappedFile, Error> {
            let file = File::open(path)?;
            let len = file.metadata()?.len();
            let map = if len == 0 {
                None
            } else {
                // SAFETY: the map is read-only and lives as long as this value. Its one hazard is
                // another process truncating the file while it is mapped (SIGBUS on access);
                // like every mmap-based tensor reader, ztensor documents that files must not be
                // truncated while open.
                Some(unsafe { Mmap::map(&file)? })
            };
            Ok(MappedFile {
                path: path.to_owned(),
                file,
                map,
            })
        };
        open().map_err(|e| e.in_file(path))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open file, for positional reads that should not go through the map.
    pub fn file(&self) -> &File {
        &self.file
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    pub fn len(&self) -> u64 {
        self.bytes().len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.bytes().is_empty()
    }

    /// Tells the kernel that the map is about to be read in small scattered pieces (a parser
    /// visiting one header per tensor), until the returned guard is dropped.
    ///
    /// Without it, each first touch of a cold page makes the kernel read ahead megabytes around
    /// it: a zip or protobuf parser that visits a header per tensor then pulls a quarter of a
    /// multi-GB checkpoint into memory, out of order, before any tensor is read. The guard
    /// restores normal readahead for the bulk reads that follow.
    pub fn scattered_reads(&self) -> ScatteredReads<'_> {
        if let Some(map) = &self.map {
            // Advice is only a hint: a kernel that refuses it changes nothing but speed.
            let _ = map.advise(Advice::Random);
        }
        ScatteredReads { file: self }
    }

    /// `length` bytes at `offset`, or an error that says what lies outside the file.
    pub fn slice(&self, offset: u64, length: u64, what: &str) -> Result<&[u8], Error> {
        checked_slice(self.bytes(), offset, length, what)
    }
}

/// Restores normal readahead on drop; see [`MappedFile::scattered_reads`].
#[must_use = "readahead is restored when the guard is dropped"]
pub struct ScatteredReads<'a> {
    file: &'a MappedFile,
}

impl Drop for ScatteredReads<'_> {
    fn drop(&mut self) {
        if let Some(map) = &self.file.map {
            let _ = map.advise(Advice::Normal);
        }
    }
}

impl AsRef<[u8]> for MappedFile {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

/// `bytes[offset..offset + length]`, with overflow and bounds checked.
pub fn checked_slice<'a>(
    bytes: &'a [u8],
    offset: u64,
    length: u64,
    what: &str,
) -> Result<&'a [u8], Error> {
    let end = offset.checked_add(length);
    match end {
        Some(end) if end <= bytes.len() as u64 => Ok(&bytes[offset as usize..end as usize]),
        _ => Err(Error::OutOfBounds {
            component: what.to_owned(),
            offset,
            length,
            file_len: bytes.len() as u64,
        }),
    }
}

/// A little-endian reader over a byte slice in which every read is bounds-checked: a length or
/// count taken from a file can never read past its end or allocate more than is there.
#[derive(Debug, Clone)]
pub struct ByteCursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    format: &'static str,
}

impl<'a> ByteCursor<'a> {
    /// `format` names the file format in error messages.
    pub fn new(bytes: &'a [u8], format: &'static str) -> ByteCursor<'a> {
        ByteCursor {
            bytes,
            pos: 0,
            format,
        }
    }

    pub fn position(&self) -> u64 {
        self.pos as u64
    }

    pub fn remaining(&self) -> u64 {
        (self.bytes.len() - self.pos) as u64
    }

    pub fn seek(&mut self, pos: u64) -> Result<(), Error> {
        if pos > self.bytes.len() as u64 {
            return Err(self.truncated("seek target", pos));
        }
        self.pos = pos as usize;
        Ok(())
    }

    fn truncated(&self, what: &str, needed: u64) -> Error {
        Error::Truncated {
            what: format!("{} {what} at offset {}", self.format, self.pos),
            needed,
            available: self.remaining(),
        }
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8], Error> {
        if n > self.remaining() {
            return Err(self.truncated(what, n));
        }
        let start = self.pos;
        self.pos += n as usize;
        Ok(&self.bytes[start..self.pos])
    }

    pub fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N], Error> {
        Ok(self
            .take(N as u64, what)?
            .try_into()
            .expect("length checked"))
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, Error> {
        Ok(self.array::<1>(what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Result<u16, Error> {
        self.array(what).map(u16::from_le_bytes)
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, Error> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub fn u64(&mut self, what: &str) -> Result<u64, Error> {
        self.array(what).map(u64::from_le_bytes)
    }

    pub fn i32(&mut self, what: &str) -> Result<i32, Error> {
        self.array(what).map(i32::from_le_bytes)
    }

    pub fn i64(&mut self, what: &str) -> Result<i64, Error> {
        self.array(what).map(i64::from_le_bytes)
    }

    pub fn f32(&mut self, what: &str) -> Result<f32, Error> {
        self.array(what).map(f32::from_le_bytes)
    }

    pub fn f64(&mut self, what: &str) -> Result<f64, Error> {
        self.array(what).map(f64::from_le_bytes)
    }

    /// A count of items each at least `min_item_bytes` long: refused when the rest of the input
    /// could not hold that many, so the caller can allocate for it safely.
    pub fn count(&mut self, count: u64, min_item_bytes: u64, what: &str) -> Result<usize, Error> {
        let needed = count.checked_mul(min_item_bytes.max(1));
        match needed {
            Some(n) if n <= self.remaining() => Ok(count as usize),
            _ => Err(Error::malformed(
                self.format,
                format!(
                    "{what} count {count} at offset {} cannot fit in the {} bytes left",
                    self.pos,
                    self.remaining()
                ),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_checks_every_read() {
        let mut c = ByteCursor::new(&[1, 0, 0, 0, 2], "test");
        assert_eq!(c.u32("n").unwrap(), 1);
        assert!(matches!(
            c.u32("m"),
            Err(Error::Truncated {
                needed: 4,
                available: 1,
                ..
            })
        ));
        assert_eq!(c.u8("b").unwrap(), 2);
        assert!(c.take(1, "x").is_err());
        let mut c = ByteCursor::new(&[0; 16], "test");
        assert_eq!(c.count(2, 8, "items").unwrap(), 2);
        assert!(c.count(3, 8, "items").is_err());
        assert!(c.count(u64::MAX, 8, "items").is_err());
        assert!(checked_slice(&[0; 4], u64::MAX, 2, "x").is_err());
        assert_eq!(checked_slice(&[0, 1, 2, 3], 1, 2, "x").unwrap(), &[1, 2]);
    }
}
