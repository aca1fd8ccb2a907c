//! The one trait every format reader implements.

use std::borrow::Cow;
use std::path::Path;

use crate::{Attributes, Error, TensorInfo};

/// Bytes of a component: a view into the reader's memory map when they lie raw in the file
/// (zero-copy), or an owned buffer when they had to be decoded, converted or gathered.
///
/// A borrowed view keeps the file's own alignment: it is 64-byte aligned in `.zt` files, but
/// foreign formats (npz, ONNX, pickle) may place data at any offset, so callers that need typed
/// access must check alignment (or copy) rather than assume it.
pub type TensorBytes<'a> = Cow<'a, [u8]>;

/// Read access to the tensors of one file, whatever its format.
///
/// Implementations validate everything they hand out: a name listed by [`names`](Self::names)
/// has an [`info`](Self::info), and every byte range they return was checked against the file.
pub trait TensorReader: Send + Sync {
    /// A short format name: `"zt"`, `"safetensors"`, `"pickle"`, ...
    fn format_name(&self) -> &str;

    /// The file this reader was opened on.
    fn path(&self) -> &Path;

    /// Tensor names in a stable order (sorted by UTF-8 bytes unless the format defines one).
    fn names(&self) -> Vec<&str>;

    /// The same names in the order their data lies in the file: reading tensors in this order
    /// goes through the file front to back, which keeps the kernel's readahead useful on a cold
    /// file. By default: tensors with bytes in place (a component `location`) by their first
    /// offset, then the others in [`names`](Self::names) order.
    fn names_in_file_order(&self) -> Vec<&str> {
        let mut names: Vec<(u64, usize, &str)> = self
            .names()
            .into_iter()
            .enumerate()
            .map(|(i, name)| {
                let offset = self
                    .info(name)
                    .ok()
                    .and_then(|info| {
                        info.components
                            .values()
                            .filter_map(|c| c.location.map(|r| r.offset))
                            .min()
                    })
                    .unwrap_or(u64::MAX);
                (offset, i, name)
            })
            .collect();
        names.sort_unstable();
        names.into_iter().map(|(_, _, name)| name).collect()
    }

    /// Shape, format, components and attributes of one tensor.
    fn info(&self, name: &str) -> Result<&TensorInfo, Error>;

    /// File-level metadata (`.zt` root attributes, safetensors `__metadata__`, GGUF KVs, ...).
    fn metadata(&self) -> &Attributes;

    /// The decoded bytes of one component.
    fn component(&self, name: &str, component: &str) -> Result<TensorBytes<'_>, Error>;

    /// The element bytes of a dense tensor, checked against its shape.
    fn dense(&self, name: &str) -> Result<TensorBytes<'_>, Error> {
        let info = self.info(name)?;
        let expected = info.dense_byte_len()?;
        let bytes = self.component(name, "data")?;
        if let Some(expected) = expected.filter(|&e| e != bytes.len() as u64) {
            return Err(Error::LengthMismatch {
                component: "data".into(),
                expected,
                actual: bytes.len() as u64,
            }
            .in_tensor(name));
        }
        Ok(bytes)
    }

    /// Number of tensors.
    fn len(&self) -> usize {
        self.names().len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn contains(&self, name: &str) -> bool {
        self.info(name).is_ok()
    }
}
