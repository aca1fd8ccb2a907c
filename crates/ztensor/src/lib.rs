//! ztensor: one safe, fast way to read tensor files, and one canonical format (`.zt`) to write.
//!
//! This facade re-exports the focused crates of the workspace:
//!
//! - [`core`] (`zt-core`): dtypes, shapes, tensor descriptions, the [`TensorReader`] trait and
//!   the [`Error`] enum shared by every format;
//! - [`zt`] (`zt-format`): the `.zt` container (reader, streaming writer, append, remove,
//!   replace), byte-compatible with zTensor 1.2.
//!
//! [`open`] detects a file's format from its bytes and returns a reader for it.

use std::path::Path;

pub use zt_core as core;
pub use zt_core::{
    Attributes, ChecksumAlgorithm, Component, DType, Digest, Encoding, Error, Format, LogicalType,
    Result, Shape, TensorBytes, TensorInfo, TensorReader, Value,
};
pub use zt_format as zt;
pub use zt_format::{
    ComponentData, ComponentOptions, Compression, OpenOptions, Writer, WriterOptions, ZtReader,
    remove_tensors, replace_tensor,
};

/// A file format ztensor can detect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileFormat {
    /// `.zt`, current (`ZTEN1000`) or legacy (`ZTEN0001`).
    Zt,
}

impl FileFormat {
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Zt => "zt",
        }
    }
}

/// Detects the format of the file at `path` from its first bytes.
pub fn detect(path: impl AsRef<Path>) -> Result<FileFormat> {
    use std::io::Read;
    let path = path.as_ref();
    let mut head = [0u8; 8];
    let mut file = std::fs::File::open(path).map_err(|e| Error::from(e).in_file(path))?;
    let n = file
        .read(&mut head)
        .map_err(|e| Error::from(e).in_file(path))?;
    let head = &head[..n];
    if head == zt_format::MAGIC || head == zt_format::LEGACY_MAGIC {
        return Ok(FileFormat::Zt);
    }
    Err(Error::Unsupported(format!(
        "unrecognised file format (first bytes \"{}\")",
        head.escape_ascii()
    ))
    .in_file(path))
}

/// Opens any supported tensor file, choosing the reader from the file's bytes.
pub fn open(path: impl AsRef<Path>) -> Result<Box<dyn TensorReader>> {
    let path = path.as_ref();
    match detect(path)? {
        FileFormat::Zt => Ok(Box::new(ZtReader::open(path)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_detects_zt_and_refuses_others() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.bin");
        let mut w = Writer::create(&path).unwrap();
        w.add_dense("x", [2], DType::U8, &[1, 2], ComponentOptions::raw())
            .unwrap();
        w.finish().unwrap();
        let r = open(&path).unwrap();
        assert_eq!(r.format_name(), "zt");
        assert_eq!(&*r.dense("x").unwrap(), &[1, 2]);

        let other = dir.path().join("x.zt");
        std::fs::write(&other, b"hello world").unwrap();
        let e = open(&other).err().unwrap();
        assert!(e.to_string().contains("unrecognised"), "{e}");
        assert!(e.to_string().contains("x.zt"), "{e}");
    }
}
