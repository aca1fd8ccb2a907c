//! Checkpoint deltas between any two readable files (spec section 8.2).
//!
//! [`create`] stores a fine-tuned checkpoint relative to its base: tensors that did not change
//! cost nothing (`zt.ref` copies), changed ones are XOR-delta codec frames when that is smaller
//! than a standalone frame. [`open`] reads such a file given its base, which must be the very
//! file it was made against (length and SHA-256 are checked); [`apply`] expands it into a
//! standalone `.zt` file (or safetensors when the destination ends in `.safetensors`).

use std::path::Path;
use std::sync::Arc;

use crate::{ConvertOptions, ConvertSummary, Result, TensorReader, ZtReader};
pub use zt_format::{BaseIdentity, DeltaOptions, DeltaSummary};

/// Writes `dest`, a `.zt` file holding every tensor of `target` relative to `base`. Both may be
/// any format [`crate::open`] reads.
pub fn create(
    base: impl AsRef<Path>,
    target: impl AsRef<Path>,
    dest: impl AsRef<Path>,
    options: &DeltaOptions,
) -> Result<DeltaSummary> {
    let base = crate::open(base)?;
    let target_path = target.as_ref();
    let target = crate::open(target_path)?;
    let mut options = options.clone();
    #[cfg(feature = "safetensors")]
    if crate::detect(target_path)? == crate::FileFormat::Safetensors {
        // Keep the target's header so that `apply` to safetensors gives back the same bytes.
        options.attributes.insert(
            crate::SAFETENSORS_HEADER_ATTRIBUTE.to_owned(),
            crate::Value::Text(crate::convert::read_safetensors_header(target_path)?),
        );
    }
    zt_format::write_delta(base.as_ref(), target.as_ref(), dest, &options)
}

/// Opens a checkpoint-delta file with its base (any format), after checking that the base is
/// the file the delta was made against.
pub fn open(delta: impl AsRef<Path>, base: impl AsRef<Path>) -> Result<ZtReader> {
    let base: Arc<dyn TensorReader> = Arc::from(crate::open(base)?);
    ZtReader::open(delta)?.with_base(base)
}

/// Expands a checkpoint-delta file into a standalone file at `dest`: `.zt` stored as `options`
/// say, or safetensors when `dest` ends in `.safetensors` (byte-identical to the original target
/// when that was a safetensors file, since [`create`] keeps its header).
pub fn apply(
    base: impl AsRef<Path>,
    delta: impl AsRef<Path>,
    dest: impl AsRef<Path>,
    options: &ConvertOptions,
) -> Result<ConvertSummary> {
    let reader = open(delta, base)?;
    let dest = dest.as_ref();
    #[cfg(feature = "safetensors")]
    if dest
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
    {
        let file_size = crate::convert::write_safetensors_from(&reader, dest)?;
        return Ok(ConvertSummary {
            tensors: reader.len(),
            bytes_read: 0,
            file_size,
        });
    }
    crate::convert_readers(&[&reader], dest, options)
}
