//! Converting any readable file into `.zt`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{
    Attributes, ChecksumAlgorithm, ComponentOptions, Compression, Error, Result, TensorReader,
    Writer,
};

/// How `convert` stores what it writes.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Compression of every component (default: raw).
    pub compression: Compression,
    /// Checksum of every component (default: none).
    pub checksum: ChecksumAlgorithm,
    /// Drop the sources' file-level metadata instead of keeping it as root attributes.
    pub drop_metadata: bool,
}

/// What `convert` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertSummary {
    pub tensors: usize,
    /// Decoded bytes of every component read.
    pub bytes_read: u64,
    /// Size of the written file.
    pub file_size: u64,
}

/// Converts one or more tensor files of any supported format into one `.zt` file.
///
/// Every tensor keeps its name, shape, format, component dtypes and logical types, and
/// attributes; the sources' file-level metadata becomes root attributes (a later source wins on
/// a key both have). Names must be unique across the sources: a duplicate is reported before
/// anything is written. The output appears atomically when everything succeeded.
pub fn convert(
    sources: &[impl AsRef<Path>],
    dest: impl AsRef<Path>,
    options: &ConvertOptions,
) -> Result<ConvertSummary> {
    let dest = dest.as_ref();
    let readers = sources
        .iter()
        .map(|p| crate::open(p.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for reader in &readers {
        for name in reader.names() {
            if let Some(first) = seen.insert(name.to_owned(), reader.path().to_owned()) {
                return Err(Error::InvalidArgument(format!(
                    "tensor '{name}' is in both {} and {}; names must be unique",
                    first.display(),
                    reader.path().display()
                )));
            }
        }
    }
    let mut writer = Writer::create(dest)?;
    if !options.drop_metadata {
        let mut metadata = Attributes::new();
        for reader in &readers {
            metadata.extend(reader.metadata().clone());
        }
        if !metadata.is_empty() {
            writer.set_attributes(Some(metadata));
        }
    }
    let component_options = ComponentOptions {
        compression: options.compression,
        checksum: options.checksum,
    };
    let mut summary = ConvertSummary {
        tensors: 0,
        bytes_read: 0,
        file_size: 0,
    };
    for reader in &readers {
        summary.bytes_read += copy_tensors(reader.as_ref(), &mut writer, component_options)?;
        summary.tensors += reader.len();
    }
    summary.file_size = writer.finish()?;
    Ok(summary)
}

/// Copies every tensor of `reader` into `writer`; returns the bytes read.
pub fn copy_tensors(
    reader: &dyn TensorReader,
    writer: &mut Writer,
    options: ComponentOptions,
) -> Result<u64> {
    let mut bytes_read = 0;
    for name in reader.names_in_file_order() {
        let info = reader.info(name)?;
        let mut tensor = writer.begin_tensor(name, info.shape.clone(), info.format.clone())?;
        for (role, component) in &info.components {
            let bytes = reader.component(name, role)?;
            bytes_read += bytes.len() as u64;
            tensor.write_component(
                role,
                component.dtype,
                component.logical_type.clone(),
                &bytes,
                options,
            )?;
        }
        tensor.set_attributes(info.attributes.clone());
        tensor.finish()?;
    }
    Ok(bytes_read)
}

/// Writes every tensor of `source` (any readable format) as a safetensors file.
///
/// Only dense tensors with a safetensors dtype can be written; anything else (sparse,
/// quantized blocks, unknown logical types) is refused by name before the file is created. Text
/// metadata becomes `__metadata__`; a non-text metadata value is refused, since safetensors
/// metadata is string to string. Returns the size of the written file.
#[cfg(feature = "safetensors")]
pub fn convert_to_safetensors(source: impl AsRef<Path>, dest: impl AsRef<Path>) -> Result<u64> {
    use zt_safetensors::{SafetensorsTensor, write_safetensors};

    let reader = crate::open(source.as_ref())?;
    let names = reader.names();
    let mut bytes = Vec::with_capacity(names.len());
    for name in &names {
        bytes.push(reader.dense(name)?);
    }
    let mut tensors = Vec::with_capacity(names.len());
    for (name, data) in names.iter().zip(&bytes) {
        let info = reader.info(name)?;
        tensors
            .push(SafetensorsTensor::from_dense(info, data).map_err(|e| e.in_file(reader.path()))?);
    }
    let mut metadata = BTreeMap::new();
    for (key, value) in reader.metadata() {
        match value {
            crate::Value::Text(text) => {
                metadata.insert(key.clone(), text.clone());
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "metadata '{key}' is {other:?}; safetensors metadata holds only text"
                ))
                .in_file(reader.path()));
            }
        }
    }
    let metadata = (!metadata.is_empty()).then_some(&metadata);
    write_safetensors(dest, &tensors, metadata)
}
