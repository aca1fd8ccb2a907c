//! Whole-file operations: remove tensors into a new file, replace a tensor in place.

use std::fs::OpenOptions as FsOpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use zt_core::{Encoding, Error, Format, TensorInfo};

use crate::manifest::encode_manifest;
use crate::reader::{OpenOptions, Variant, ZtReader};
use crate::writer::{Writer, WriterOptions, recompute_digest};
use crate::{MAGIC, checksum};

/// Writes `input` without the tensors in `names` to `output`.
///
/// Every name must exist (checked before anything is written). Kept tensors are copied stored
/// byte for byte (compressed components stay compressed, digests stay valid) after their digests
/// were verified, in name order with components in name order, as zTensor 1.2.3 does. `output`
/// may be `input`: the result is written under a temporary name and renamed over it.
pub fn remove_tensors(
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    names: &[&str],
) -> Result<(), Error> {
    let (input, output) = (input.as_ref(), output.as_ref());
    let reader = ZtReader::open(input)?;
    for name in names {
        if !reader.manifest().objects.contains_key(*name) {
            return Err(Error::TensorNotFound((*name).to_owned()).in_file(input));
        }
    }
    let mut writer = Writer::create_with(output, WriterOptions::default())?;
    writer.set_attributes(reader.manifest().attributes.clone());
    for (name, info) in &reader.manifest().objects {
        if names.contains(&name.as_str()) {
            continue;
        }
        copy_object(&reader, &mut writer, info)?;
    }
    writer.finish()?;
    Ok(())
}

/// Copies one tensor's stored bytes from `reader` into `writer`, verifying digests on the way.
pub fn copy_object(reader: &ZtReader, writer: &mut Writer, info: &TensorInfo) -> Result<(), Error> {
    let mut copied = TensorInfo {
        components: Default::default(),
        ..info.clone()
    };
    for (role, component) in &info.components {
        let stored = reader.stored_bytes(&info.name, role)?;
        checksum::verify(role, component.digest.as_ref(), stored)
            .map_err(|e| e.in_tensor(&info.name).in_file(reader_path(reader)))?;
        let written = writer.write_stored(&info.name, role, component, stored)?;
        copied.components.insert(role.clone(), written);
    }
    writer.insert_object(copied)
}

fn reader_path(reader: &ZtReader) -> &Path {
    zt_core::TensorReader::path(reader)
}

/// Overwrites the bytes of a raw dense tensor in place. `bytes` must have exactly the stored
/// length; the digest (crc32c or sha256) is recomputed and the manifest rewritten.
pub fn replace_tensor(path: impl AsRef<Path>, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let path = path.as_ref();
    replace_inner(path, name, bytes).map_err(|e| e.in_tensor(name).in_file(path))
}

fn replace_inner(path: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let (mut manifest, layout) = {
        let reader = ZtReader::open_with(path, OpenOptions::default())?;
        if reader.variant() == Variant::Legacy {
            return Err(Error::Unsupported(
                "replacing in a legacy ZTEN0001 file; migrate it first".into(),
            ));
        }
        (reader.manifest().clone(), reader.layout())
    };
    let info = manifest
        .objects
        .get_mut(name)
        .ok_or_else(|| Error::TensorNotFound(name.to_owned()))?;
    if info.format != Format::Dense {
        return Err(Error::NotDense {
            tensor: name.to_owned(),
            format: info.format.name().to_owned(),
        });
    }
    let data = info
        .components
        .get_mut("data")
        .ok_or_else(|| Error::ComponentNotFound {
            tensor: name.to_owned(),
            component: "data".into(),
        })?;
    if data.encoding != Encoding::Raw {
        return Err(Error::Unsupported(format!(
            "replacing a {}-encoded tensor in place; rewrite the file instead",
            data.encoding
        )));
    }
    let range = data.location.expect("validated");
    if range.length != bytes.len() as u64 {
        return Err(Error::LengthMismatch {
            component: "data".into(),
            expected: range.length,
            actual: bytes.len() as u64,
        });
    }
    data.digest = recompute_digest(data.digest.as_ref(), bytes);
    let encoded = encode_manifest(&manifest)?;
    let file = FsOpenOptions::new().read(true).write(true).open(path)?;
    file.write_all_at(bytes, range.offset)?;
    let mut file = file;
    file.seek(SeekFrom::Start(layout.manifest.offset))?;
    file.write_all(&encoded)?;
    file.write_all(&(encoded.len() as u64).to_le_bytes())?;
    file.write_all(MAGIC)?;
    let end = layout.manifest.offset + encoded.len() as u64 + crate::FOOTER_LEN;
    file.set_len(end)?;
    file.sync_all()?;
    Ok(())
}
