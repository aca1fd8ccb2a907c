//! Shared vocabulary of the ztensor workspace.
//!
//! Every format crate (`zt-format` for `.zt`, and one crate per foreign format) describes its
//! tensors with these types and implements [`TensorReader`], so the `ztensor` facade, the CLI
//! and the Python bindings handle every file the same way:
//!
//! - [`DType`]: the closed set of storage types; [`LogicalType`]: the open set of meanings
//!   (FP8, FP4, complex, ...) layered on top.
//! - [`Shape`]: dimensions with overflow-checked element and byte counts.
//! - [`TensorInfo`]: name, shape, [`Format`], [`Component`]s and [`Attributes`].
//! - [`TensorBytes`]: component bytes, borrowed from a memory map or owned.
//! - [`Error`]: one error enum whose variants say what was wrong, wrapped with the file and
//!   tensor it happened in.

mod dtype;
mod error;
mod mapped;
mod reader;
mod shape;
mod tensor;

pub use dtype::{DType, LogicalType};
pub use error::{Error, Result};
pub use mapped::{ByteCursor, MappedFile, ScatteredReads, checked_slice};
pub use reader::{TensorBytes, TensorReader};
pub use shape::Shape;
pub use tensor::{
    Attributes, ByteRange, ChecksumAlgorithm, Component, Digest, Encoding, Format, TensorInfo,
    Value,
};
