//! `ztensor::Error` as the Python exception classes of `ztensor._errors`.
//!
//! The classes are defined in Python so that they can also derive from the built-in exception a
//! caller expects (a missing tensor is a `KeyError`, a missing file a `FileNotFoundError`).
//! Every instance carries `kind` (the Rust variant), `path` and `tensor` (or `None`).

use pyo3::prelude::*;
use ztensor::Error;

/// The `ztensor._errors` class for an error, by the innermost variant.
fn class_name(e: &Error) -> &'static str {
    match e.kind() {
        Error::Io(io) if io.kind() == std::io::ErrorKind::NotFound => "ZTensorFileNotFoundError",
        Error::Io(_) => "ZTensorIOError",
        Error::BadMagic { .. }
        | Error::Truncated { .. }
        | Error::Manifest(_)
        | Error::Header(_)
        | Error::Malformed { .. }
        | Error::OutOfBounds { .. }
        | Error::Misaligned { .. }
        | Error::Overlap { .. }
        | Error::LengthMismatch { .. }
        | Error::ShapeOverflow(_)
        | Error::BadDigest { .. } => "FormatError",
        Error::ChecksumMismatch { .. } => "ChecksumError",
        Error::Decompress { .. } => "DecompressError",
        Error::LimitExceeded { .. } => "LimitExceededError",
        Error::ForbiddenGlobal { .. } => "ForbiddenGlobalError",
        Error::UnknownDType(_) | Error::UnsupportedEncoding(_) | Error::Unsupported(_) => {
            "UnsupportedError"
        }
        Error::BaseRequired(_) | Error::WrongBase(_) => "BaseFileError",
        Error::TensorNotFound(_) => "TensorNotFoundError",
        Error::ComponentNotFound { .. } => "ComponentNotFoundError",
        Error::NotDense { .. } => "NotDenseError",
        Error::DuplicateName(_) => "DuplicateNameError",
        Error::InvalidArgument(_) => "InvalidArgumentError",
        _ => "ZTensorError",
    }
}

fn variant_name(e: &Error) -> &'static str {
    match e.kind() {
        Error::Io(_) => "Io",
        Error::BadMagic { .. } => "BadMagic",
        Error::Truncated { .. } => "Truncated",
        Error::LimitExceeded { .. } => "LimitExceeded",
        Error::Manifest(_) => "Manifest",
        Error::Header(_) => "Header",
        Error::Malformed { .. } => "Malformed",
        Error::ForbiddenGlobal { .. } => "ForbiddenGlobal",
        Error::UnknownDType(_) => "UnknownDType",
        Error::UnsupportedEncoding(_) => "UnsupportedEncoding",
        Error::OutOfBounds { .. } => "OutOfBounds",
        Error::Misaligned { .. } => "Misaligned",
        Error::Overlap { .. } => "Overlap",
        Error::LengthMismatch { .. } => "LengthMismatch",
        Error::ShapeOverflow(_) => "ShapeOverflow",
        Error::ChecksumMismatch { .. } => "ChecksumMismatch",
        Error::BadDigest { .. } => "BadDigest",
        Error::Decompress { .. } => "Decompress",
        Error::BaseRequired(_) => "BaseRequired",
        Error::WrongBase(_) => "WrongBase",
        Error::TensorNotFound(_) => "TensorNotFound",
        Error::ComponentNotFound { .. } => "ComponentNotFound",
        Error::NotDense { .. } => "NotDense",
        Error::DuplicateName(_) => "DuplicateName",
        Error::Unsupported(_) => "Unsupported",
        Error::InvalidArgument(_) => "InvalidArgument",
        _ => "Other",
    }
}

/// Builds the Python exception for `e`. Falls back to the import error if `ztensor._errors`
/// itself cannot be loaded (a broken installation).
pub fn to_pyerr(py: Python<'_>, e: Error) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let module = py.import("ztensor._errors")?;
        let class = module.getattr(class_name(&e))?;
        let instance = class.call1((e.to_string(),))?;
        instance.setattr("kind", variant_name(&e))?;
        instance.setattr("path", e.path().map(|p| p.to_string_lossy().into_owned()))?;
        instance.setattr("tensor", e.tensor().map(str::to_owned))?;
        Ok(PyErr::from_value(instance))
    };
    build().unwrap_or_else(|import_error| import_error)
}

/// `Result<T, ztensor::Error>` to `PyResult<T>`.
pub trait IntoPyResult<T> {
    fn py_err(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for Result<T, Error> {
    fn py_err(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| to_pyerr(py, e))
    }
}
