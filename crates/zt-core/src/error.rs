//! The one error type of every ztensor reader and writer.

use std::io;
use std::path::PathBuf;

/// What went wrong, as precisely as the reader could tell.
///
/// Low-level code raises the bare variant; the layer that knows the file or the tensor wraps it
/// with [`Error::in_file`] / [`Error::in_tensor`], so the message reads
/// `model.zt: tensor 'w': component 'data' ...`. [`Error::kind`] strips the wrappers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),

    #[error(
        "not a {format} file: expected magic \"{}\", found \"{}\"",
        expected.escape_ascii(),
        found.escape_ascii()
    )]
    BadMagic {
        format: &'static str,
        expected: &'static [u8],
        found: Vec<u8>,
    },

    #[error("file is truncated: {what} needs {needed} bytes but the file has {available}")]
    Truncated {
        what: String,
        needed: u64,
        available: u64,
    },

    #[error("{what} of {size} bytes exceeds the limit of {limit} bytes")]
    LimitExceeded { what: String, size: u64, limit: u64 },

    #[error("malformed manifest: {0}")]
    Manifest(String),

    #[error("malformed header: {0}")]
    Header(String),

    /// A foreign file that breaks its format's rules.
    #[error("malformed {format} file: {reason}")]
    Malformed {
        format: &'static str,
        reason: String,
    },

    /// A pickle that asks for a global the restricted unpickler does not allow: it is never
    /// imported or called.
    #[error("pickle refers to '{global}', which is not allowed (only what rebuilds tensors is)")]
    ForbiddenGlobal { global: String },

    #[error("unknown dtype '{0}'")]
    UnknownDType(String),

    #[error("unsupported encoding '{0}'")]
    UnsupportedEncoding(String),

    #[error(
        "component '{component}' at {offset}..+{length} lies outside the data area (file length {file_len})"
    )]
    OutOfBounds {
        component: String,
        offset: u64,
        length: u64,
        file_len: u64,
    },

    #[error("component '{component}' offset {offset} is not a multiple of {alignment}")]
    Misaligned {
        component: String,
        offset: u64,
        alignment: u64,
    },

    #[error("components '{first}' and '{second}' overlap")]
    Overlap { first: String, second: String },

    #[error("component '{component}' holds {actual} bytes but its shape needs {expected}")]
    LengthMismatch {
        component: String,
        expected: u64,
        actual: u64,
    },

    #[error("shape {0:?} overflows a 64-bit byte count")]
    ShapeOverflow(Vec<u64>),

    #[error("checksum mismatch in component '{component}': expected {expected}, computed {actual}")]
    ChecksumMismatch {
        component: String,
        expected: String,
        actual: String,
    },

    #[error("component '{component}' has a digest that cannot be checked: '{digest}'")]
    BadDigest { component: String, digest: String },

    #[error("cannot decompress component '{component}': {reason}")]
    Decompress { component: String, reason: String },

    /// A checkpoint-delta file was read without the base file its tensors refer to.
    #[error("this file stores tensors relative to a base file ({0}); open it with that base")]
    BaseRequired(String),

    /// The base given for a checkpoint-delta file is not the one it was made against.
    #[error("wrong base file: {0}")]
    WrongBase(String),

    #[error("tensor '{0}' not found")]
    TensorNotFound(String),

    #[error("tensor '{tensor}' has no component '{component}'")]
    ComponentNotFound { tensor: String, component: String },

    #[error("tensor '{tensor}' is {format}, not dense")]
    NotDense { tensor: String, format: String },

    #[error("duplicate tensor name '{0}'")]
    DuplicateName(String),

    #[error("unsupported: {0}")]
    Unsupported(String),

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("{}: {source}", path.display())]
    InFile {
        path: PathBuf,
        #[source]
        source: Box<Error>,
    },

    #[error("tensor '{name}': {source}")]
    InTensor {
        name: String,
        #[source]
        source: Box<Error>,
    },
}

impl Error {
    /// Wraps the error with the file it happened in (once: an error that already names a file
    /// is returned unchanged).
    pub fn in_file(self, path: impl Into<PathBuf>) -> Error {
        match self {
            e @ Error::InFile { .. } => e,
            e => Error::InFile {
                path: path.into(),
                source: Box::new(e),
            },
        }
    }

    /// Wraps the error with the tensor it happened in, unless it already names one.
    pub fn in_tensor(self, name: &str) -> Error {
        match self {
            e @ (Error::InTensor { .. }
            | Error::InFile { .. }
            | Error::TensorNotFound(_)
            | Error::ComponentNotFound { .. }
            | Error::NotDense { .. }
            | Error::DuplicateName(_)) => e,
            e => Error::InTensor {
                name: name.to_owned(),
                source: Box::new(e),
            },
        }
    }

    /// The innermost error, without file and tensor context.
    pub fn kind(&self) -> &Error {
        match self {
            Error::InFile { source, .. } | Error::InTensor { source, .. } => source.kind(),
            e => e,
        }
    }

    /// The file named by the error, if any.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            Error::InFile { path, .. } => Some(path),
            Error::InTensor { source, .. } => source.path(),
            _ => None,
        }
    }

    /// The tensor named by the error, if any.
    pub fn tensor(&self) -> Option<&str> {
        match self {
            Error::InFile { source, .. } => source.tensor(),
            Error::InTensor { name, .. } => Some(name),
            Error::TensorNotFound(name) | Error::DuplicateName(name) => Some(name),
            Error::ComponentNotFound { tensor, .. } | Error::NotDense { tensor, .. } => {
                Some(tensor)
            }
            _ => None,
        }
    }

    pub fn manifest(msg: impl Into<String>) -> Error {
        Error::Manifest(msg.into())
    }

    pub fn malformed(format: &'static str, reason: impl Into<String>) -> Error {
        Error::Malformed {
            format,
            reason: reason.into(),
        }
    }
}

/// Shorthand used by every ztensor crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_reads_outside_in() {
        let e = Error::LengthMismatch {
            component: "data".into(),
            expected: 16,
            actual: 12,
        }
        .in_tensor("w")
        .in_file("/tmp/m.zt");
        assert_eq!(
            e.to_string(),
            "/tmp/m.zt: tensor 'w': component 'data' holds 12 bytes but its shape needs 16"
        );
        assert!(matches!(e.kind(), Error::LengthMismatch { .. }));
        assert_eq!(e.tensor(), Some("w"));
        assert_eq!(e.path().unwrap().to_str(), Some("/tmp/m.zt"));
        // Wrapping twice does not stack names.
        let again = e.in_file("/other");
        assert_eq!(again.path().unwrap().to_str(), Some("/tmp/m.zt"));
    }
}
