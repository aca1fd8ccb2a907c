//! [`PickleReader`]: tensors of a checkpoint, validated at open, bytes handed out zero-copy where
//! they lie raw in the file.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use zt_core::{
    Attributes, ByteRange, Component, Encoding, Error, Format, MappedFile, Shape, TensorBytes,
    TensorInfo, TensorReader,
};

use crate::Limits;
use crate::container::{self, Archive, CheckpointKind, Record, RecordSource};
use crate::flatten::flatten_with;
use crate::torch::{Tensor, TorchDtype, malformed};

/// An open PyTorch checkpoint (`torch.save`, zip or legacy).
pub struct PickleReader {
    path: PathBuf,
    map: Arc<MappedFile>,
    kind: CheckpointKind,
    archive: Option<Archive>,
    storages: Vec<StorageSlot>,
    tensors: Vec<Entry>,
    by_name: HashMap<String, usize>,
    metadata: Attributes,
}

impl std::fmt::Debug for PickleReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PickleReader")
            .field("path", &self.path)
            .field("kind", &self.kind)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

/// One storage record, with its inflated bytes once a deflated record has been read.
struct StorageSlot {
    key: String,
    record: Record,
    inflated: OnceLock<Result<Vec<u8>, String>>,
}

/// How to get one tensor's element bytes out of its storage record.
struct Entry {
    info: TensorInfo,
    storage: usize,
    dtype: &'static TorchDtype,
    /// Byte offset of element 0 within the record.
    origin: u64,
    size: Vec<u64>,
    stride: Vec<u64>,
    contiguous: bool,
    /// Bytes of the C-order result.
    len: u64,
    big_endian: bool,
    conj: bool,
    neg: bool,
}

impl Entry {
    /// Whether the element bytes are the record's bytes, untouched.
    fn raw(&self) -> bool {
        let needs_swap = self.big_endian && self.dtype.dtype.size() > 1;
        self.contiguous && !self.conj && !self.neg && !needs_swap
    }
}

impl PickleReader {
    /// Opens and validates a checkpoint: the pickle is run through the restricted machine, every
    /// tensor's extent is checked against its storage record, and nothing is read beyond the
    /// records' headers and the pickle itself.
    pub fn open(path: impl AsRef<Path>) -> Result<PickleReader, Error> {
        Self::open_with_limits(path, &Limits::default())
    }

    /// [`open`](Self::open) with other bounds on the pickle machine and the walk.
    pub fn open_with_limits(
        path: impl AsRef<Path>,
        limits: &Limits,
    ) -> Result<PickleReader, Error> {
        let path = path.as_ref();
        Self::open_inner(path, limits).map_err(|e| e.in_file(path))
    }

    fn open_inner(path: &Path, limits: &Limits) -> Result<PickleReader, Error> {
        let map = Arc::new(MappedFile::open(path)?);
        // Reading one zip header (or legacy size field) per storage: no readahead around each.
        let scattered = map.scattered_reads();
        let opened = container::open(&map, limits)?;
        drop(scattered);
        let big_endian = matches!(
            opened.kind,
            CheckpointKind::Zip {
                big_endian: true,
                ..
            }
        );
        let flat = flatten_with(&opened.pickle, limits)?;

        let mut storages: Vec<StorageSlot> = Vec::new();
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        let mut tensors = Vec::with_capacity(flat.tensors.len());
        let mut by_name = HashMap::with_capacity(flat.tensors.len());
        for (name, tensor) in &flat.tensors {
            let key = tensor.storage.key.as_str();
            let slot = match slot_of.get(key) {
                Some(&slot) => slot,
                None => {
                    let record = *opened.records.get(key).ok_or_else(|| {
                        malformed(format!("storage '{key}' has no data record in the file"))
                            .in_tensor(name)
                    })?;
                    storages.push(StorageSlot {
                        key: key.to_owned(),
                        record,
                        inflated: OnceLock::new(),
                    });
                    slot_of.insert(key, storages.len() - 1);
                    storages.len() - 1
                }
            };
            let slot_ref = &storages[slot];
            let entry = plan(name, tensor, slot, slot_ref, big_endian, limits)
                .map_err(|e| e.in_tensor(name))?;
            by_name.insert(name.clone(), tensors.len());
            tensors.push(entry);
        }
        Ok(PickleReader {
            path: path.to_owned(),
            map: Arc::clone(&map),
            kind: opened.kind,
            archive: opened.archive,
            storages,
            tensors,
            by_name,
            metadata: flat.metadata,
        })
    }

    /// Which `torch.save` layout the file uses.
    pub fn kind(&self) -> &CheckpointKind {
        &self.kind
    }

    /// The whole mapped file (borrowed tensor bytes point into it).
    pub fn file_bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    fn entry(&self, name: &str) -> Result<&Entry, Error> {
        self.by_name
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| Error::TensorNotFound(name.to_owned()))
    }

    /// The bytes of a whole storage record: the mapped file, or the inflated copy (inflated once,
    /// on first use, and kept).
    fn record_bytes(&self, storage: usize) -> Result<&[u8], Error> {
        let slot = &self.storages[storage];
        match slot.record.source {
            RecordSource::Mapped { offset } => self.map.slice(offset, slot.record.len, &slot.key),
            RecordSource::Deflated { entry, compressed } => {
                let archive = self
                    .archive
                    .as_ref()
                    .ok_or_else(|| malformed("deflated record without a zip archive"))?;
                let inflated = slot.inflated.get_or_init(|| {
                    let what = format!("data/{}", slot.key);
                    container::inflate(archive, entry, compressed, slot.record.len, &what)
                        .map_err(|e| e.to_string())
                });
                inflated.as_deref().map_err(|reason| Error::Decompress {
                    component: format!("data/{}", slot.key),
                    reason: reason.clone(),
                })
            }
        }
    }

    fn data(&self, entry: &Entry) -> Result<TensorBytes<'_>, Error> {
        let record = self.record_bytes(entry.storage)?;
        if entry.len == 0 {
            return Ok(Cow::Borrowed(&record[..0]));
        }
        let es = entry.dtype.element_size;
        if entry.raw() {
            return Ok(Cow::Borrowed(slice(record, entry.origin, entry.len)?));
        }
        let mut out = if entry.contiguous {
            slice(record, entry.origin, entry.len)?.to_vec()
        } else {
            gather(
                record,
                entry.origin,
                es,
                &entry.size,
                &entry.stride,
                entry.len,
            )?
        };
        let unit = entry.dtype.dtype.size();
        if entry.big_endian && unit > 1 {
            for scalar in out.chunks_exact_mut(unit) {
                scalar.reverse();
            }
        }
        // torch's lazy bits, resolved as `resolve_conj()` then `resolve_neg()` would: flip the
        // sign bit (the top bit of the last little-endian byte) of each imaginary part, then of
        // every scalar.
        if entry.conj {
            for imag in out.chunks_exact_mut(unit).skip(1).step_by(2) {
                imag[unit - 1] ^= 0x80;
            }
        }
        if entry.neg {
            for scalar in out.chunks_exact_mut(unit) {
                scalar[unit - 1] ^= 0x80;
            }
        }
        Ok(Cow::Owned(out))
    }
}

fn slice(bytes: &[u8], offset: u64, len: u64) -> Result<&[u8], Error> {
    zt_core::checked_slice(bytes, offset, len, "tensor data")
}

/// Checks one tensor against its storage record and works out how to read it.
fn plan(
    name: &str,
    tensor: &Tensor,
    storage: usize,
    slot: &StorageSlot,
    big_endian: bool,
    limits: &Limits,
) -> Result<Entry, Error> {
    let dtype = tensor.dtype;
    let es = dtype.element_size;
    let overflow = || Error::ShapeOverflow(tensor.size.clone());
    let declared = tensor.storage.record_len()?;
    if declared > slot.record.len {
        return Err(malformed(format!(
            "storage '{}' declares {declared} bytes but its record holds {}",
            slot.key, slot.record.len
        )));
    }
    let span = tensor.storage.span()?;
    let numel = tensor
        .size
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    let len = numel.checked_mul(es).ok_or_else(overflow)?;
    let offset_bytes = tensor.storage_offset.checked_mul(es).ok_or_else(overflow)?;
    let origin = span.offset.checked_add(offset_bytes).ok_or_else(overflow)?;
    if numel > 0 {
        // The furthest element any index can reach, in elements past storage_offset.
        let last = tensor
            .size
            .iter()
            .zip(&tensor.stride)
            .try_fold(0u64, |acc, (&d, &s)| {
                acc.checked_add((d - 1).checked_mul(s)?)
            })
            .ok_or_else(overflow)?;
        let extent = last
            .checked_add(1)
            .and_then(|n| n.checked_mul(es))
            .and_then(|n| n.checked_add(offset_bytes))
            .ok_or_else(overflow)?;
        if extent > span.len {
            return Err(Error::OutOfBounds {
                component: format!("view of storage '{}'", slot.key),
                offset: offset_bytes,
                length: extent - offset_bytes,
                file_len: span.len,
            });
        }
    }
    let contiguous = is_contiguous(&tensor.size, &tensor.stride);
    // Overlapping views (stride 0, as `expand` makes) can describe far more elements than their
    // storage holds; materializing them is capped.
    if !contiguous && len > span.len && len > limits.max_expanded_len {
        return Err(Error::LimitExceeded {
            what: "materialized overlapping view".into(),
            size: len,
            limit: limits.max_expanded_len,
        });
    }
    let entry = Entry {
        info: TensorInfo {
            name: name.to_owned(),
            shape: logical_shape(tensor)?,
            format: Format::Dense,
            components: Default::default(),
            attributes: None,
        },
        storage,
        dtype,
        origin,
        size: tensor.size.clone(),
        // A dimension of size 1 never moves the address, whatever its stride says: zeroing it
        // keeps `gather`'s arithmetic within the extent checked above.
        stride: tensor
            .size
            .iter()
            .zip(&tensor.stride)
            .map(|(&d, &s)| if d == 1 { 0 } else { s })
            .collect(),
        contiguous,
        len,
        big_endian,
        conj: tensor.conj,
        neg: tensor.neg,
    };
    let (location, encoding) = match slot.record.source {
        RecordSource::Mapped { offset } if entry.raw() => {
            // Zero-size tensors point at the record's start, which is always in the file.
            let start = if len == 0 { offset } else { offset + origin };
            (
                Some(ByteRange {
                    offset: start,
                    length: len,
                }),
                Encoding::Raw,
            )
        }
        RecordSource::Mapped { .. } => (None, Encoding::Raw),
        RecordSource::Deflated { .. } => (None, Encoding::Other("deflate".into())),
    };
    let component = Component {
        dtype: dtype.dtype,
        logical_type: dtype.logical_type(),
        location,
        encoding,
        decoded_len: Some(len),
        digest: None,
    };
    let mut entry = entry;
    entry.info.components.insert("data".into(), component);
    Ok(entry)
}

/// torch's `is_contiguous`: row-major strides, ignoring dimensions of size 1 (any stride works
/// there) and any tensor with no elements.
fn is_contiguous(size: &[u64], stride: &[u64]) -> bool {
    if size.contains(&0) {
        return true;
    }
    let mut expected = 1u64;
    for (&d, &s) in size.iter().zip(stride).rev() {
        if d != 1 {
            if s != expected {
                return false;
            }
            expected = expected.saturating_mul(d);
        }
    }
    true
}

/// The shape a reader reports: torch's, except FP4 pairs, where torch counts bytes and the
/// logical shape counts values (last dimension doubled; a scalar byte is two values).
fn logical_shape(tensor: &Tensor) -> Result<Shape, Error> {
    let mut dims = tensor.size.clone();
    if tensor.dtype.is_fp4_pair() {
        match dims.last_mut() {
            Some(last) => {
                *last = last
                    .checked_mul(2)
                    .ok_or_else(|| Error::ShapeOverflow(tensor.size.clone()))?
            }
            None => dims.push(2),
        }
    }
    Ok(Shape::new(dims))
}

/// Side of the square tiles a strided 2-D block is copied in: 32x32 elements of at most 16 bytes
/// keep the source lines read and the destination lines written in L1.
const TILE: usize = 32;

/// Copies a strided view into C order, `es` bytes per element. Cost: one pass over the output
/// plus the output buffer itself. Rows are copied whole when the innermost stride is 1; other
/// views (a transposed weight) are copied in cache-sized tiles of their two innermost
/// dimensions: a transposed 128 MiB f32 matrix takes ~165 ms here (~0.8 GB/s), half the time of
/// an element-by-element loop.
fn gather(
    record: &[u8],
    origin: u64,
    es: u64,
    size: &[u64],
    stride: &[u64],
    len: u64,
) -> Result<Vec<u8>, Error> {
    // `plan` checked the extent; checking it again here makes every index below in bounds.
    let last = size
        .iter()
        .zip(stride)
        .map(|(&d, &s)| d.saturating_sub(1).saturating_mul(s))
        .fold(0u64, u64::saturating_add);
    let end = last
        .saturating_add(1)
        .saturating_mul(es)
        .saturating_add(origin);
    if end > record.len() as u64 {
        return Err(malformed("strided view reaches past its storage"));
    }
    let mut out = vec![0u8; len as usize];
    if len == 0 {
        return Ok(out);
    }
    let origin = origin as usize;
    match es {
        1 => gather_into::<1>(record, origin, size, stride, &mut out),
        2 => gather_into::<2>(record, origin, size, stride, &mut out),
        4 => gather_into::<4>(record, origin, size, stride, &mut out),
        8 => gather_into::<8>(record, origin, size, stride, &mut out),
        16 => gather_into::<16>(record, origin, size, stride, &mut out),
        other => return Err(malformed(format!("unexpected element size {other}"))),
    }
    Ok(out)
}

/// The view as a stack of 2-D blocks (its two innermost dimensions; a vector is one row, a
/// scalar one element), walked with an odometer over the outer dimensions.
fn gather_into<const ES: usize>(
    record: &[u8],
    origin: usize,
    size: &[u64],
    stride: &[u64],
    out: &mut [u8],
) {
    let n = size.len();
    let dim = |i: usize| size[i] as usize;
    let step = |i: usize| stride[i] as usize * ES;
    let (rows, cols, row_step, col_step) = match n {
        0 => (1, 1, 0, ES),
        1 => (1, dim(0), 0, step(0)),
        _ => (dim(n - 2), dim(n - 1), step(n - 2), step(n - 1)),
    };
    let outer = n.saturating_sub(2);
    let mut index = vec![0usize; outer];
    let mut base = origin;
    for block in out.chunks_exact_mut(rows * cols * ES) {
        copy_block::<ES>(record, base, cols, row_step, col_step, block);
        for d in (0..outer).rev() {
            index[d] += 1;
            base += step(d);
            if index[d] < dim(d) {
                break;
            }
            base -= step(d) * dim(d);
            index[d] = 0;
        }
    }
}

/// One 2-D block: `dst` holds its rows of `cols` elements in C order.
fn copy_block<const ES: usize>(
    src: &[u8],
    base: usize,
    cols: usize,
    row_step: usize,
    col_step: usize,
    dst: &mut [u8],
) {
    let row_len = cols * ES;
    if col_step == ES {
        for (i, row) in dst.chunks_exact_mut(row_len).enumerate() {
            let at = base + i * row_step;
            row.copy_from_slice(&src[at..at + row_len]);
        }
        return;
    }
    let rows = dst.len() / row_len;
    for i0 in (0..rows).step_by(TILE) {
        for j0 in (0..cols).step_by(TILE) {
            for i in i0..(i0 + TILE).min(rows) {
                let src_row = base + i * row_step;
                let dst_row = &mut dst[i * row_len..(i + 1) * row_len];
                for j in j0..(j0 + TILE).min(cols) {
                    let at = src_row + j * col_step;
                    dst_row[j * ES..(j + 1) * ES].copy_from_slice(&src[at..at + ES]);
                }
            }
        }
    }
}

impl TensorReader for PickleReader {
    fn format_name(&self) -> &str {
        "pickle"
    }

    fn path(&self) -> &Path {
        &self.path
    }

    /// In pickle order (dict insertion order).
    fn names(&self) -> Vec<&str> {
        self.tensors.iter().map(|e| e.info.name.as_str()).collect()
    }

    fn info(&self, name: &str) -> Result<&TensorInfo, Error> {
        self.entry(name)
            .map(|e| &e.info)
            .map_err(|e| e.in_file(&self.path))
    }

    fn metadata(&self) -> &Attributes {
        &self.metadata
    }

    fn component(&self, name: &str, component: &str) -> Result<TensorBytes<'_>, Error> {
        let run = || {
            let entry = self.entry(name)?;
            if component != "data" {
                return Err(Error::ComponentNotFound {
                    tensor: name.to_owned(),
                    component: component.to_owned(),
                });
            }
            self.data(entry).map_err(|e| e.in_tensor(name))
        };
        run().map_err(|e| e.in_file(&self.path))
    }

    fn len(&self) -> usize {
        self.tensors.len()
    }

    fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguity_follows_torch() {
        assert!(is_contiguous(&[2, 3], &[3, 1]));
        assert!(!is_contiguous(&[2, 3], &[1, 2]));
        assert!(is_contiguous(&[1, 3], &[99, 1]));
        assert!(is_contiguous(&[2, 0], &[7, 7]));
        assert!(is_contiguous(&[], &[]));
        assert!(!is_contiguous(&[4, 5], &[0, 1]));
    }

    #[test]
    fn gather_transposes_and_repeats() {
        // A 2x3 matrix stored row-major; read its transpose (3x2, strides 1, 3).
        let record: Vec<u8> = (0..6).collect();
        let t = gather(&record, 0, 1, &[3, 2], &[1, 3], 6).unwrap();
        assert_eq!(t, [0, 3, 1, 4, 2, 5]);
        // Every other column of rows, starting at element 1.
        let s = gather(&record, 1, 1, &[2, 1], &[3, 2], 2).unwrap();
        assert_eq!(s, [1, 4]);
        // Stride 0: one row repeated.
        let e = gather(&record, 0, 2, &[3, 1], &[0, 1], 6).unwrap();
        assert_eq!(e, [0, 1, 0, 1, 0, 1]);
        // A scalar.
        assert_eq!(gather(&record, 4, 2, &[], &[], 2).unwrap(), [4, 5]);
        // Past the end: an error, not a panic.
        assert!(gather(&record, 5, 2, &[2], &[1], 4).is_err());
    }
}
