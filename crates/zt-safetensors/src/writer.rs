//! [`write_safetensors`]: the reference library's exact bytes, written atomically.

use std::collections::{BTreeMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use safetensors::Dtype;
use safetensors::tensor::TensorInfo as HeaderEntry;
use serde::ser::{Serialize, SerializeMap, Serializer};
use zt_core::{DType, Error, LogicalType, Shape, TensorInfo};

use crate::dtype::{data_len, safetensors_dtype};
use crate::{MAX_HEADER_LEN, METADATA_KEY};

/// One tensor to write: its element bytes as they go into the file (little-endian, row-major).
#[derive(Debug, Clone, PartialEq)]
pub struct SafetensorsTensor<'a> {
    pub name: &'a str,
    pub dtype: DType,
    /// FP8/FP6/FP4 kinds on `u8`, `Complex64` on `f32`; see [`crate::safetensors_dtype`].
    pub logical_type: Option<LogicalType>,
    /// The logical shape, in elements: an FP4 tensor of shape `[3, 8]` holds 12 bytes, a
    /// complex64 tensor of shape `[2]` holds 16.
    pub shape: &'a [u64],
    pub bytes: &'a [u8],
}

impl<'a> SafetensorsTensor<'a> {
    /// A tensor of a plain dtype (no logical type).
    pub fn new(name: &'a str, dtype: DType, shape: &'a [u64], bytes: &'a [u8]) -> Self {
        SafetensorsTensor {
            name,
            dtype,
            logical_type: None,
            shape,
            bytes,
        }
    }

    pub fn with_logical_type(mut self, logical_type: LogicalType) -> Self {
        self.logical_type = Some(logical_type);
        self
    }

    /// The dense tensor `info` of any reader with its element bytes. Sparse and quantized
    /// tensors have no safetensors form and are refused ([`Error::NotDense`]).
    pub fn from_dense(info: &'a TensorInfo, bytes: &'a [u8]) -> Result<Self, Error> {
        let data = info.dense_component()?;
        Ok(SafetensorsTensor {
            name: &info.name,
            dtype: data.dtype,
            logical_type: data.logical_type.clone(),
            shape: info.shape.dims(),
            bytes,
        })
    }
}

/// How [`write_safetensors_with`] writes.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// `fsync` the file before it is renamed into place, and its directory after. Without it a
    /// crash soon after the rename can leave an empty or partial file under the final name.
    pub sync: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions { sync: true }
    }
}

/// Writes `tensors` and `metadata` as a safetensors file with the bytes of the reference
/// library's `save_file` / `serialize` (see the crate docs for the one deliberate difference),
/// under a temporary name in the same directory renamed over `path` on success. Returns the
/// file's size. Nothing is created when the input is invalid; an I/O error removes the
/// temporary file.
pub fn write_safetensors(
    path: impl AsRef<Path>,
    tensors: &[SafetensorsTensor<'_>],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<u64, Error> {
    write_safetensors_with(path, tensors, metadata, &WriteOptions::default())
}

/// [`write_safetensors`] with options.
pub fn write_safetensors_with(
    path: impl AsRef<Path>,
    tensors: &[SafetensorsTensor<'_>],
    metadata: Option<&BTreeMap<String, String>>,
    options: &WriteOptions,
) -> Result<u64, Error> {
    let path = path.as_ref();
    let layout = Layout::plan(tensors, metadata).map_err(|e| e.in_file(path))?;
    write_atomically(path, options.sync, |out| layout.write_to(out))
        .map_err(|e| e.in_file(path))?;
    Ok(layout.file_len())
}

/// Writes a safetensors file whose JSON header is `header`, byte for byte (as read from an
/// original file: its key order, spacing and padding are kept), with each tensor's bytes at the
/// `data_offsets` the header gives it. This is how a file converted to `.zt` is restored to the
/// identical file. The header is validated as strictly as when reading, and must describe
/// exactly `tensors` (same names, dtypes, shapes and byte lengths); anything else is refused
/// before the file is created.
pub fn write_safetensors_with_header(
    path: impl AsRef<Path>,
    header: &[u8],
    tensors: &[SafetensorsTensor<'_>],
    options: &WriteOptions,
) -> Result<u64, Error> {
    let path = path.as_ref();
    let order = plan_with_header(header, tensors).map_err(|e| e.in_file(path))?;
    let data_len: u64 = order.iter().map(|t| t.bytes.len() as u64).sum();
    write_atomically(path, options.sync, |out| {
        out.write_all(&(header.len() as u64).to_le_bytes())?;
        out.write_all(header)?;
        for tensor in &order {
            out.write_all(tensor.bytes)?;
        }
        Ok(())
    })
    .map_err(|e| e.in_file(path))?;
    Ok(8 + header.len() as u64 + data_len)
}

/// The tensors in data-section order, once `header` is known to describe exactly them.
fn plan_with_header<'t, 'a>(
    header: &[u8],
    tensors: &'t [SafetensorsTensor<'a>],
) -> Result<Vec<&'t SafetensorsTensor<'a>>, Error> {
    if header.len() as u64 > MAX_HEADER_LEN {
        return Err(Error::LimitExceeded {
            what: "safetensors JSON header".into(),
            size: header.len() as u64,
            limit: MAX_HEADER_LEN,
        });
    }
    let parsed = crate::header::parse_json(header)?;
    let section_len = parsed
        .tensors
        .iter()
        .map(|(_, e)| e.data_offsets.1)
        .max()
        .unwrap_or(0);
    let laid_out = crate::header::lay_out(parsed.tensors, 8 + header.len() as u64, section_len)?;
    let mut by_name: BTreeMap<&str, &'t SafetensorsTensor<'a>> = BTreeMap::new();
    for tensor in tensors {
        if by_name.insert(tensor.name, tensor).is_some() {
            return Err(Error::DuplicateName(tensor.name.to_owned()));
        }
    }
    let mismatch = |name: &str, why: String| {
        Error::InvalidArgument(format!(
            "the safetensors header does not fit tensor '{name}': {why}"
        ))
    };
    let mut order = Vec::with_capacity(laid_out.len());
    for (name, info) in &laid_out {
        let tensor = by_name
            .remove(name.as_str())
            .ok_or_else(|| mismatch(name, "the header names it, the tensors do not".into()))?;
        let data = &info.components["data"];
        if data.dtype != tensor.dtype || data.logical_type != tensor.logical_type {
            return Err(mismatch(
                name,
                format!("dtype {} in the header, {} given", data.dtype, tensor.dtype),
            ));
        }
        if info.shape.dims() != tensor.shape {
            return Err(mismatch(
                name,
                format!(
                    "shape {:?} in the header, {:?} given",
                    info.shape.dims(),
                    tensor.shape
                ),
            ));
        }
        let range = data.location.expect("laid out");
        if range.length != tensor.bytes.len() as u64 {
            return Err(mismatch(
                name,
                format!(
                    "{} bytes in the header, {} given",
                    range.length,
                    tensor.bytes.len()
                ),
            ));
        }
        order.push((range.offset, tensor));
    }
    if let Some(extra) = by_name.keys().next() {
        return Err(mismatch(extra, "the header does not name it".into()));
    }
    order.sort_by_key(|(offset, t)| (*offset, t.name));
    Ok(order.into_iter().map(|(_, t)| t).collect())
}

/// The whole file in memory, as the reference `safetensors.serialize` returns it.
pub fn serialize_safetensors(
    tensors: &[SafetensorsTensor<'_>],
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<Vec<u8>, Error> {
    let layout = Layout::plan(tensors, metadata)?;
    let mut out = Vec::with_capacity(usize::try_from(layout.file_len()).unwrap_or(0));
    layout.write_to(&mut out)?;
    Ok(out)
}

/// Where everything goes: the padded JSON header and the tensors in data-section order.
struct Layout<'t, 'a> {
    header: Vec<u8>,
    order: Vec<&'t SafetensorsTensor<'a>>,
    data_len: u64,
}

impl<'t, 'a> Layout<'t, 'a> {
    /// The reference `serialize`'s layout: tensors sorted by dtype, largest alignment first
    /// (the crate's `Dtype` order, descending), then by name; packed back to back from data
    /// offset 0; compact JSON with `__metadata__` first and the entries in data order; the
    /// header padded with spaces to a multiple of 8.
    fn plan(
        tensors: &'t [SafetensorsTensor<'a>],
        metadata: Option<&BTreeMap<String, String>>,
    ) -> Result<Layout<'t, 'a>, Error> {
        let mut names = HashSet::with_capacity(tensors.len());
        let mut planned = Vec::with_capacity(tensors.len());
        for tensor in tensors {
            if !names.insert(tensor.name) {
                return Err(Error::DuplicateName(tensor.name.to_owned()));
            }
            let (dtype, shape) = checked_entry(tensor).map_err(|e| e.in_tensor(tensor.name))?;
            planned.push((dtype, shape, tensor));
        }
        planned.sort_by(|(left, _, l), (right, _, r)| right.cmp(left).then(l.name.cmp(r.name)));

        let mut offset = 0usize;
        let mut entries = Vec::with_capacity(planned.len());
        let mut order = Vec::with_capacity(planned.len());
        for (dtype, shape, tensor) in planned {
            // The bytes are in memory, so their total length fits in a usize.
            let end = offset + tensor.bytes.len();
            let entry = HeaderEntry {
                dtype,
                shape,
                data_offsets: (offset, end),
            };
            entries.push((tensor.name, entry));
            order.push(tensor);
            offset = end;
        }

        let mut header = serde_json::to_vec(&HeaderOut {
            metadata,
            entries: &entries,
        })
        .map_err(|e| Error::InvalidArgument(format!("cannot encode the header: {e}")))?;
        header.resize(header.len().next_multiple_of(8), b' ');
        if header.len() as u64 > MAX_HEADER_LEN {
            return Err(Error::LimitExceeded {
                what: "safetensors JSON header".into(),
                size: header.len() as u64,
                limit: MAX_HEADER_LEN,
            });
        }
        Ok(Layout {
            header,
            order,
            data_len: offset as u64,
        })
    }

    fn file_len(&self) -> u64 {
        8 + self.header.len() as u64 + self.data_len
    }

    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(&(self.header.len() as u64).to_le_bytes())?;
        out.write_all(&self.header)?;
        for tensor in &self.order {
            out.write_all(tensor.bytes)?;
        }
        Ok(())
    }
}

/// The safetensors dtype and `usize` shape of a tensor whose bytes match its shape.
fn checked_entry(tensor: &SafetensorsTensor<'_>) -> Result<(Dtype, Vec<usize>), Error> {
    if tensor.name == METADATA_KEY {
        return Err(Error::InvalidArgument(format!(
            "a tensor cannot be named '{METADATA_KEY}': the header keeps that key for metadata"
        )));
    }
    let dtype = safetensors_dtype(tensor.dtype, tensor.logical_type.as_ref())?;
    let expected = data_len(dtype, &Shape::from(tensor.shape))?.map_err(Error::InvalidArgument)?;
    if expected != tensor.bytes.len() as u64 {
        return Err(Error::LengthMismatch {
            component: "data".into(),
            expected,
            actual: tensor.bytes.len() as u64,
        });
    }
    let dims = tensor
        .shape
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| Error::ShapeOverflow(tensor.shape.to_vec())))
        .collect::<Result<_, _>>()?;
    Ok((dtype, dims))
}

/// The header object: `__metadata__` (keys sorted) first, then the entries in data order.
struct HeaderOut<'e> {
    metadata: Option<&'e BTreeMap<String, String>>,
    entries: &'e [(&'e str, HeaderEntry)],
}

impl Serialize for HeaderOut<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // No length hint, on purpose: the reference passes `tensors + metadata keys`, which is 0
        // for an empty `__metadata__` and no tensors, and serde_json then closes the object at
        // once and writes the unreadable `{},"__metadata__":{}}`. Any other input gives the same
        // bytes with or without the hint.
        let mut map = serializer.serialize_map(None)?;
        if let Some(metadata) = self.metadata {
            map.serialize_entry(METADATA_KEY, metadata)?;
        }
        for (name, entry) in self.entries {
            map.serialize_entry(name, entry)?;
        }
        map.end()
    }
}

/// Writes a new file under a temporary name beside `path` and renames it over `path`.
fn write_atomically(
    path: &Path,
    sync: bool,
    write: impl FnOnce(&mut BufWriter<&File>) -> io::Result<()>,
) -> Result<(), Error> {
    let temp = TempFile::beside(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, &temp.file);
    write(&mut out)?;
    out.flush()?;
    drop(out);
    if sync {
        temp.file.sync_all()?;
    }
    temp.rename_to(path)?;
    if sync {
        sync_parent_dir(path);
    }
    Ok(())
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A new file under a unique hidden name in the destination's directory, removed when dropped
/// unless it was renamed into place.
struct TempFile {
    path: PathBuf,
    file: File,
    renamed: bool,
}

impl TempFile {
    fn beside(dest: &Path) -> Result<TempFile, Error> {
        let name = dest.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!("'{}' does not name a file", dest.display()))
        })?;
        let name = name.to_string_lossy();
        loop {
            let unique = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
            let path =
                dest.with_file_name(format!(".{name}.{}-{unique}.sttmp", std::process::id()));
            // `create_new`: never truncate someone else's file, even a stale temporary one.
            match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(file) => {
                    return Ok(TempFile {
                        path,
                        file,
                        renamed: false,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && unique < 1_000_000 => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn rename_to(mut self, dest: &Path) -> io::Result<()> {
        fs::rename(&self.path, dest)?;
        self.renamed = true;
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.renamed {
            // Best effort: the error that got us here is the one worth reporting.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Makes the rename durable (best effort: not every platform can open a directory).
fn sync_parent_dir(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_text(bytes: &[u8]) -> &str {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        std::str::from_utf8(&bytes[8..8 + n]).unwrap()
    }

    #[test]
    fn empty_metadata_without_tensors_is_readable() {
        // The reference writes `{},"__metadata__":{}}` here; we write what it meant.
        let bytes = serialize_safetensors(&[], Some(&BTreeMap::new())).unwrap();
        assert_eq!(header_text(&bytes), "{\"__metadata__\":{}}     ");
        safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let bytes = serialize_safetensors(&[], None).unwrap();
        assert_eq!(bytes, b"\x08\0\0\0\0\0\0\0{}      ");
    }

    #[test]
    fn order_is_dtype_then_name() {
        let f32s = [0u8; 8];
        let bytes3 = [1u8, 2, 3];
        let tensors = [
            SafetensorsTensor::new("b", DType::U8, &[3], &bytes3),
            SafetensorsTensor::new("a", DType::U8, &[3], &bytes3),
            SafetensorsTensor::new("z", DType::F32, &[2], &f32s),
        ];
        let bytes = serialize_safetensors(&tensors, None).unwrap();
        assert_eq!(
            header_text(&bytes).trim_end(),
            r#"{"z":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"U8","shape":[3],"data_offsets":[8,11]},"b":{"dtype":"U8","shape":[3],"data_offsets":[11,14]}}"#
        );
    }

    #[test]
    fn invalid_input_is_refused_before_writing() {
        let four = [0u8; 4];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        let cases: Vec<(Vec<SafetensorsTensor>, &str)> = vec![
            (
                vec![SafetensorsTensor::new("a", DType::F32, &[2], &four)],
                "holds 4 bytes but its shape needs 8",
            ),
            (
                vec![
                    SafetensorsTensor::new("a", DType::U8, &[4], &four),
                    SafetensorsTensor::new("a", DType::I8, &[4], &four),
                ],
                "duplicate tensor name 'a'",
            ),
            (
                vec![SafetensorsTensor::new(
                    "__metadata__",
                    DType::U8,
                    &[4],
                    &four,
                )],
                "cannot be named '__metadata__'",
            ),
            (
                vec![
                    SafetensorsTensor::new("c", DType::F64, &[2], &four)
                        .with_logical_type(LogicalType::Complex128),
                ],
                "safetensors has no dtype for f64 storage with logical type 'complex128'",
            ),
            (
                vec![
                    SafetensorsTensor::new("f4", DType::U8, &[3], &four)
                        .with_logical_type(LogicalType::F4E2M1),
                ],
                "is not a whole number of bytes",
            ),
            (
                vec![SafetensorsTensor::new(
                    "big",
                    DType::U8,
                    &[1 << 40, 1 << 40],
                    &four,
                )],
                "overflows",
            ),
        ];
        for (tensors, message) in cases {
            let err = write_safetensors(&path, &tensors, None).unwrap_err();
            assert!(err.to_string().contains(message), "{err}");
            assert_eq!(err.path(), Some(path.as_path()));
        }
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
