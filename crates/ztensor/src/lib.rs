//! ztensor: one safe, fast way to read tensor files, and one canonical format (`.zt`) to write.
//!
//! This facade re-exports the focused crates of the workspace, one per job:
//!
//! | module | crate | feature | reads |
//! |---|---|---|---|
//! | [`core`] | `zt-core` | always | shared types, the [`TensorReader`] trait, [`Error`] |
//! | [`zt`] | `zt-format` | always | `.zt` (zTensor 1.x, legacy `ZTEN0001`), and writes it |
//! | [`safetensors`] | `zt-safetensors` | `safetensors` (default) | `.safetensors`, and writes it |
//! | [`pickle`] | `zt-pickle` | `pickle` (default) | PyTorch `.pt/.pth/.bin` (zip and legacy), never running code |
//! | [`gguf`] | `zt-gguf` | `gguf` (default) | GGUF v1-v3, quantized blocks kept as they are |
//! | [`npz`] | `zt-npz` | `npz` (default) | NumPy `.npy` and `.npz` |
//! | [`onnx`] | `zt-onnx` | `onnx` (default) | ONNX initializers, external data included |
//! | `hdf5` | `zt-hdf5` | `hdf5` (opt-in: links libhdf5) | HDF5 datasets |
//! | [`zt2`] | `zt-v2` | `zt2` (default) | zTensor 2.x `.zt` |
//!
//! [`open`] detects a file's format from its bytes (the extension only breaks ties) and returns
//! a reader for it; [`convert`] turns any readable files into one `.zt` file ([`convert_readers`]
//! from readers the caller opened and possibly wrapped); [`verify`] checks a file's structure,
//! digests and (deep) every component; [`migrate`] rewrites an older `.zt` as a current one;
//! [`sample`] generates a deterministic Llama-shaped model for demos and tests.

mod convert;
pub mod delta;
mod detect;
mod migrate;
pub mod sample;
mod verify;

use std::path::Path;

pub use convert::{
    ConvertOptions, ConvertSummary, SAFETENSORS_HEADER_ATTRIBUTE, convert, convert_readers,
    copy_tensors,
};
#[cfg(feature = "safetensors")]
pub use convert::{convert_to_safetensors, write_safetensors_from};
pub use detect::{FileFormat, detect};
pub use migrate::migrate;
pub use verify::{VerifyOptions, VerifyReport, verify};
pub use zt_codec as codec;
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
#[cfg(feature = "gguf")]
pub use zt_gguf as gguf;
#[cfg(feature = "hdf5")]
pub use zt_hdf5 as hdf5;
#[cfg(feature = "npz")]
pub use zt_npz as npz;
#[cfg(feature = "onnx")]
pub use zt_onnx as onnx;
#[cfg(feature = "pickle")]
pub use zt_pickle as pickle;
#[cfg(feature = "safetensors")]
pub use zt_safetensors as safetensors;
#[cfg(feature = "zt2")]
pub use zt_v2 as zt2;

/// Opens any supported tensor file, choosing the reader from the file's bytes.
pub fn open(path: impl AsRef<Path>) -> Result<Box<dyn TensorReader>> {
    let path = path.as_ref();
    open_as(path, detect(path)?)
}

/// Opens a file with the reader of `format`, without detection.
pub fn open_as(path: impl AsRef<Path>, format: FileFormat) -> Result<Box<dyn TensorReader>> {
    let path = path.as_ref();
    match format {
        FileFormat::Zt => Ok(Box::new(ZtReader::open(path)?)),
        #[cfg(feature = "safetensors")]
        FileFormat::Safetensors => Ok(Box::new(zt_safetensors::SafetensorsReader::open(path)?)),
        #[cfg(feature = "pickle")]
        FileFormat::Pickle => Ok(Box::new(zt_pickle::PickleReader::open(path)?)),
        #[cfg(feature = "gguf")]
        FileFormat::Gguf => Ok(Box::new(zt_gguf::GgufReader::open(path)?)),
        #[cfg(feature = "npz")]
        FileFormat::Npy | FileFormat::Npz => Ok(Box::new(zt_npz::NpzReader::open(path)?)),
        #[cfg(feature = "onnx")]
        FileFormat::Onnx => Ok(Box::new(zt_onnx::OnnxReader::open(path)?)),
        #[cfg(feature = "hdf5")]
        FileFormat::Hdf5 => Ok(Box::new(zt_hdf5::Hdf5Reader::open(path)?)),
        #[cfg(feature = "zt2")]
        FileFormat::ZtV2 => Ok(Box::new(zt_v2::ZtV2Reader::open(path)?)),
        #[allow(unreachable_patterns)]
        other => Err(Error::Unsupported(format!(
            "{other} files: this build of ztensor was compiled without the `{other}` feature"
        ))
        .in_file(path)),
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

    #[test]
    fn convert_copies_everything_and_refuses_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.zt");
        let mut w = Writer::create(&a).unwrap();
        w.set_attribute("source", "a");
        w.add_dense("x", [2], DType::F32, &[0; 8], ComponentOptions::zstd(3))
            .unwrap();
        w.add_coo("s", [4], DType::U8, &[7], &[2], ComponentOptions::raw())
            .unwrap();
        w.finish().unwrap();
        let b = dir.path().join("b.zt");
        let mut w = Writer::create(&b).unwrap();
        w.add_dense("y", [1], DType::U8, &[9], ComponentOptions::raw())
            .unwrap();
        w.finish().unwrap();

        let out = dir.path().join("out.zt");
        let options = ConvertOptions {
            checksum: ChecksumAlgorithm::Sha256,
            ..ConvertOptions::default()
        };
        let summary = convert(&[&a, &b], &out, &options).unwrap();
        assert_eq!(summary.tensors, 3);
        let r = ZtReader::open(&out).unwrap();
        assert_eq!(r.names(), vec!["s", "x", "y"]);
        assert_eq!(r.metadata()["source"], Value::from("a"));
        assert_eq!(r.info("s").unwrap().format, Format::SparseCoo);
        assert_eq!(r.verify_all(true).unwrap(), 4);

        let e = convert(&[&a, &a], dir.path().join("dup.zt"), &options).unwrap_err();
        assert!(e.to_string().contains("'s' is in both"), "{e}");
        assert!(!dir.path().join("dup.zt").exists());
    }
}
