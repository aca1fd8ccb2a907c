//! Whole-file operations: remove tensors into a new file, replace a tensor in place.

use std::fs::OpenOptions as FsOpenOptions;
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
    let in_place = encode_manifest(&manifest)?;

    // Crash safety: at every moment the last complete footer of the file describes either the
    // old or the new version (the reader's recovery rule, spec 6.2).
    // 1. Append the new bytes and a manifest pointing at them after the current end: until the
    //    new footer is complete, the old one is the last complete footer.
    let file = FsOpenOptions::new().read(true).write(true).open(path)?;
    let appended_at = layout.end.next_multiple_of(crate::ALIGNMENT);
    file.set_len(appended_at)?;
    file.write_all_at(bytes, appended_at)?;
    file.sync_data()?;
    let mut staged = manifest.clone();
    let staged_data = staged
        .objects
        .get_mut(name)
        .and_then(|info| info.components.get_mut("data"))
        .expect("found above");
    staged_data.location = Some(zt_core::ByteRange {
        offset: appended_at,
        length: range.length,
    });
    let staged = encode_manifest(&staged)?;
    let staged_end = write_footer_at(&file, appended_at + range.length, &staged)?;
    file.set_len(staged_end)?;
    file.sync_all()?;
    // 2. The file now reads as the new version through the appended copy. Put the bytes in
    //    place and the final manifest over the old one: while this happens the appended footer
    //    stays the last one in the file, and the old manifest region is exactly as long as the
    //    final manifest (same structure, same digest algorithm), so nothing the appended
    //    version uses is touched. A size difference would come from a malformed digest made
    //    canonical; then the appended version simply stays (dead space, as after an append).
    let old_footer = layout.end - layout.manifest.offset;
    if in_place.len() as u64 + crate::FOOTER_LEN != old_footer {
        return Ok(());
    }
    file.write_all_at(bytes, range.offset)?;
    file.sync_data()?;
    let end = write_footer_at(&file, layout.manifest.offset, &in_place)?;
    file.sync_data()?;
    // 3. Cut the appended copy: the in-place footer becomes the last one.
    file.set_len(end)?;
    file.sync_all()?;
    Ok(())
}

/// Writes a manifest, its length and the magic at `offset`; returns the end.
fn write_footer_at(file: &std::fs::File, offset: u64, manifest: &[u8]) -> Result<u64, Error> {
    let mut footer = Vec::with_capacity(manifest.len() + 16);
    footer.extend_from_slice(manifest);
    footer.extend_from_slice(&(manifest.len() as u64).to_le_bytes());
    footer.extend_from_slice(MAGIC);
    file.write_all_at(&footer, offset)?;
    Ok(offset + footer.len() as u64)
}

/// Cuts the unfinished tail that an interrupted append or replace left after the last complete
/// footer, so that readers without recovery (zTensor 1.2.3) open the file again. Returns the
/// number of bytes cut (0 when the file was complete). The file is opened with recovery first,
/// so a file with no complete footer at all is an error and is left untouched.
pub fn repair(path: impl AsRef<Path>) -> Result<u64, Error> {
    let path = path.as_ref();
    let (end, tail) = {
        let reader = ZtReader::open(path)?;
        (reader.layout().end, reader.unfinished_tail())
    };
    if tail > 0 {
        let file = FsOpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| Error::from(e).in_file(path))?;
        file.set_len(end)
            .and_then(|()| file.sync_all())
            .map_err(|e| Error::from(e).in_file(path))?;
    }
    Ok(tail)
}
