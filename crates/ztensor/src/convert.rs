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
    /// When the one source is a safetensors file, keep its JSON header (root attribute
    /// [`SAFETENSORS_HEADER_ATTRIBUTE`]) so that [`convert_to_safetensors`] restores the
    /// identical file, byte for byte. Costs the header's size (a few KiB to ~1 MiB).
    pub restorable: bool,
}

/// Root attribute holding the original safetensors JSON header of a file converted with
/// [`ConvertOptions::restorable`].
pub const SAFETENSORS_HEADER_ATTRIBUTE: &str = "zt.safetensors_header";

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
    let readers = sources
        .iter()
        .map(|p| crate::open(p.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let readers: Vec<&dyn TensorReader> = readers.iter().map(|r| r.as_ref()).collect();
    convert_readers(&readers, dest, options)
}

/// The JSON header of a safetensors file exactly as stored (the reader validated it already).
#[cfg(feature = "safetensors")]
pub(crate) fn read_safetensors_header(path: &Path) -> Result<String> {
    use std::io::Read;
    let context = |e: std::io::Error| Error::from(e).in_file(path);
    let mut file = std::fs::File::open(path).map_err(context)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(context)?;
    let len = u64::from_le_bytes(len);
    if len > zt_safetensors::MAX_HEADER_LEN {
        return Err(Error::LimitExceeded {
            what: "safetensors JSON header".into(),
            size: len,
            limit: zt_safetensors::MAX_HEADER_LEN,
        }
        .in_file(path));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(context)?;
    String::from_utf8(header).map_err(|e| {
        Error::malformed("safetensors", format!("JSON header is not UTF-8: {e}")).in_file(path)
    })
}

/// [`convert`] from readers that are already open: a caller can wrap them (to rename tensors,
/// filter them or report progress) before they are copied. [`ConvertOptions::restorable`]
/// applies when the one reader is a safetensors reader (or a wrapper reporting its format name
/// and path).
pub fn convert_readers(
    readers: &[&dyn TensorReader],
    dest: impl AsRef<Path>,
    options: &ConvertOptions,
) -> Result<ConvertSummary> {
    #[allow(unused_mut)]
    let mut extra = Attributes::new();
    #[cfg(feature = "safetensors")]
    if options.restorable
        && let [source] = readers
        && source.format_name() == crate::FileFormat::Safetensors.name()
    {
        extra.insert(
            SAFETENSORS_HEADER_ATTRIBUTE.to_owned(),
            crate::Value::Text(read_safetensors_header(source.path())?),
        );
    }
    convert_readers_with(readers, dest.as_ref(), options, extra)
}

/// `extra` root attributes are added after the sources' metadata.
fn convert_readers_with(
    readers: &[&dyn TensorReader],
    dest: &Path,
    options: &ConvertOptions,
    extra: Attributes,
) -> Result<ConvertSummary> {
    let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
    for reader in readers {
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
    let mut metadata = Attributes::new();
    if !options.drop_metadata {
        for reader in readers {
            metadata.extend(
                reader
                    .metadata()
                    .iter()
                    // A converted file holds every tensor itself: no base. An original
                    // safetensors header is kept: restoring checks that it still fits.
                    .filter(|(key, _)| key.as_str() != zt_format::BASE_ATTRIBUTE)
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
    }
    metadata.extend(extra);
    if !metadata.is_empty() {
        writer.set_attributes(Some(metadata));
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
    for reader in readers {
        summary.bytes_read += copy_tensors(*reader, &mut writer, component_options)?;
        summary.tensors += reader.len();
    }
    summary.file_size = writer.finish()?;
    Ok(summary)
}

/// Root attributes that describe how one particular file is stored (its base, its original
/// safetensors header) rather than what the tensors mean: not carried into other files.
fn is_layout_attribute(key: &str) -> bool {
    key == SAFETENSORS_HEADER_ATTRIBUTE || key == zt_format::BASE_ATTRIBUTE
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
    let reader = crate::open(source.as_ref())?;
    write_safetensors_from(reader.as_ref(), dest)
}

/// [`convert_to_safetensors`] from a reader that is already open (e.g. a checkpoint delta
/// opened with its base).
#[cfg(feature = "safetensors")]
pub fn write_safetensors_from(reader: &dyn TensorReader, dest: impl AsRef<Path>) -> Result<u64> {
    use zt_safetensors::{SafetensorsTensor, write_safetensors};

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
    if let Some(crate::Value::Text(header)) = reader.metadata().get(SAFETENSORS_HEADER_ATTRIBUTE) {
        // The file came from a safetensors file: write its header back verbatim, which gives
        // the original bytes. If the tensors no longer fit it (the file was edited since), fall
        // through to the canonical layout.
        match zt_safetensors::write_safetensors_with_header(
            dest.as_ref(),
            header.as_bytes(),
            &tensors,
            &Default::default(),
        ) {
            Err(e) if matches!(e.kind(), Error::InvalidArgument(_)) => {}
            result => return result,
        }
    }
    let mut metadata = BTreeMap::new();
    for (key, value) in reader.metadata() {
        if is_layout_attribute(key) {
            continue;
        }
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
