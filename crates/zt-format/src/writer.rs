//! The streaming `.zt` writer: create (under a temporary name, renamed on finish) and append.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions as FsOpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use zt_core::{
    Attributes, ByteRange, ChecksumAlgorithm, Component, DType, Digest, Encoding, Error, Format,
    LogicalType, Shape, TensorInfo, Value,
};

use crate::checksum::Hasher;
use crate::manifest::{Manifest, encode_manifest};
use crate::reader::{OpenOptions, Variant, ZtReader, dense_len};
use crate::{ALIGNMENT, CODEC_ENCODING, MAGIC};

const BUFFER_SIZE: usize = 256 << 10;
const ZEROS: [u8; ALIGNMENT as usize] = [0; ALIGNMENT as usize];

/// How a component's bytes are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    #[default]
    Raw,
    /// One zstd frame at this level (0 = libzstd's default, 3; negative = fast levels).
    Zstd(i32),
    /// One frame of the weight codec (encoding `ztc1`), at this effort. The codec sees the
    /// component's dtype and picks its transforms from it. Files using it are refused whole by
    /// zTensor 1.2.3 (it does not know the encoding), never misread.
    Codec(zt_codec::Effort),
}

/// Per-component storage options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ComponentOptions {
    pub compression: Compression,
    pub checksum: ChecksumAlgorithm,
}

impl ComponentOptions {
    pub fn raw() -> Self {
        Self::default()
    }

    pub fn zstd(level: i32) -> Self {
        ComponentOptions {
            compression: Compression::Zstd(level),
            checksum: ChecksumAlgorithm::None,
        }
    }

    pub fn codec(effort: zt_codec::Effort) -> Self {
        ComponentOptions {
            compression: Compression::Codec(effort),
            checksum: ChecksumAlgorithm::None,
        }
    }

    pub fn with_checksum(mut self, checksum: ChecksumAlgorithm) -> Self {
        self.checksum = checksum;
        self
    }
}

/// One component handed to [`Writer::add_tensor`].
#[derive(Debug, Clone, Copy)]
pub struct ComponentData<'a> {
    pub role: &'a str,
    pub dtype: DType,
    pub logical_type: Option<&'a LogicalType>,
    pub bytes: &'a [u8],
}

impl<'a> ComponentData<'a> {
    pub fn new(role: &'a str, dtype: DType, bytes: &'a [u8]) -> Self {
        ComponentData {
            role,
            dtype,
            logical_type: None,
            bytes,
        }
    }
}

/// Writer-wide options.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// `fsync` the data before the file is renamed into place (or the append is committed).
    pub sync: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions { sync: true }
    }
}

enum Mode {
    /// Writing `temp`; renamed to `path` on finish, removed if abandoned.
    Create { temp: PathBuf },
    /// Appending after the footer that ends at `committed_len`; truncated back if abandoned.
    Append { committed_len: u64 },
}

/// Writes a `.zt` file tensor by tensor, component by component, without holding data in memory.
///
/// A new file is written under a hidden temporary name in the same directory and renamed over
/// `path` by [`finish`](Writer::finish); dropping an unfinished writer removes the temporary file,
/// so no broken file ever appears under the final name.
pub struct Writer {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    pos: u64,
    manifest: Manifest,
    mode: Mode,
    options: WriterOptions,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .field("tensors", &self.manifest.objects.len())
            .field("finished", &self.out.is_none())
            .finish()
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

fn temp_path_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out.zt".to_owned());
    let unique = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.{}-{unique}.ztmp", std::process::id()))
}

impl Writer {
    /// Starts a new file at `path` (replacing any existing file only when finished).
    pub fn create(path: impl AsRef<Path>) -> Result<Writer, Error> {
        Writer::create_with(path, WriterOptions::default())
    }

    pub fn create_with(path: impl AsRef<Path>, options: WriterOptions) -> Result<Writer, Error> {
        let path = path.as_ref().to_owned();
        let temp = temp_path_for(&path);
        let file = FsOpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(|e| Error::from(e).in_file(&temp))?;
        let mut out = BufWriter::with_capacity(BUFFER_SIZE, file);
        let mut writer = Writer {
            path,
            out: None,
            pos: 0,
            manifest: Manifest::default(),
            mode: Mode::Create { temp },
            options,
        };
        out.write_all(MAGIC).map_err(|e| writer.io_error(e))?;
        writer.out = Some(out);
        writer.pos = MAGIC.len() as u64;
        Ok(writer)
    }

    /// Opens an existing file to add tensors to it.
    ///
    /// New components go after the current footer, which stays intact until the new manifest and
    /// footer are written (and synced): if the process dies at any point, the file still opens
    /// with its earlier tensors (see "Append and recovery" in the spec). Dropping the writer
    /// without [`finish`](Writer::finish) truncates the file back to what it was.
    pub fn append(path: impl AsRef<Path>) -> Result<Writer, Error> {
        Writer::append_with(path, WriterOptions::default())
    }

    pub fn append_with(path: impl AsRef<Path>, options: WriterOptions) -> Result<Writer, Error> {
        let path = path.as_ref().to_owned();
        let (manifest, committed_len) = {
            let reader = ZtReader::open_with(&path, OpenOptions::default())?;
            if reader.variant() == Variant::Legacy {
                return Err(Error::Unsupported(
                    "appending to a legacy ZTEN0001 file; migrate it first".into(),
                )
                .in_file(&path));
            }
            (reader.manifest().clone(), reader.layout().end)
        };
        let file = FsOpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::from(e).in_file(&path))?;
        let mut writer = Writer {
            path,
            out: None,
            pos: committed_len,
            manifest,
            mode: Mode::Append { committed_len },
            options,
        };
        // Drop what an earlier, interrupted append left behind the committed footer.
        file.set_len(committed_len)
            .map_err(|e| writer.io_error(e))?;
        let mut out = BufWriter::with_capacity(BUFFER_SIZE, file);
        out.seek(SeekFrom::Start(committed_len))
            .map_err(|e| writer.io_error(e))?;
        writer.out = Some(out);
        Ok(writer)
    }

    /// The final path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File-level metadata, stored as the manifest's root `attributes`.
    pub fn attributes(&self) -> Option<&Attributes> {
        self.manifest.attributes.as_ref()
    }

    pub fn set_attributes(&mut self, attributes: Option<Attributes>) {
        self.manifest.attributes = attributes;
    }

    pub fn set_attribute(&mut self, key: impl Into<String>, value: impl Into<Value>) {
        self.manifest
            .attributes
            .get_or_insert_with(Attributes::new)
            .insert(key.into(), value.into());
    }

    pub fn contains(&self, name: &str) -> bool {
        self.manifest.objects.contains_key(name)
    }

    /// Adds a dense tensor from its little-endian element bytes.
    pub fn add_dense(
        &mut self,
        name: &str,
        shape: impl Into<Shape>,
        dtype: DType,
        bytes: &[u8],
        options: ComponentOptions,
    ) -> Result<(), Error> {
        self.add_dense_typed(name, shape, dtype, None, bytes, options)
    }

    /// Adds a dense tensor whose elements carry a logical type (FP8, complex, ...).
    pub fn add_dense_typed(
        &mut self,
        name: &str,
        shape: impl Into<Shape>,
        dtype: DType,
        logical_type: Option<&LogicalType>,
        bytes: &[u8],
        options: ComponentOptions,
    ) -> Result<(), Error> {
        let shape = shape.into();
        let probe = TensorInfo {
            name: name.to_owned(),
            shape: shape.clone(),
            format: Format::Dense,
            components: BTreeMap::new(),
            attributes: None,
        };
        let mut data = Component::raw(dtype, 0, 0);
        data.logical_type = logical_type.cloned();
        if let Some(expected) = dense_len(&probe, "data", &data).map_err(|e| e.in_tensor(name))?
            && expected != bytes.len() as u64
        {
            return Err(Error::LengthMismatch {
                component: "data".into(),
                expected,
                actual: bytes.len() as u64,
            }
            .in_tensor(name)
            .in_file(&self.path));
        }
        let component = ComponentData {
            role: "data",
            dtype,
            logical_type,
            bytes,
        };
        self.add_tensor(name, shape, Format::Dense, &[component], None, options)
    }

    /// Adds a CSR matrix: `values` (nnz elements of `dtype`), column `indices` (nnz) and row
    /// pointers `indptr` (rows + 1). Indices are stored as u64, as the spec requires.
    #[allow(clippy::too_many_arguments)]
    pub fn add_csr(
        &mut self,
        name: &str,
        shape: [u64; 2],
        dtype: DType,
        values: &[u8],
        indices: &[u64],
        indptr: &[u64],
        options: ComponentOptions,
    ) -> Result<(), Error> {
        let [rows, cols] = shape;
        let nnz = indices.len() as u64;
        let check = || -> Result<(), Error> {
            if values.len() as u64 != nnz * dtype.size() as u64 {
                return Err(Error::InvalidArgument(format!(
                    "CSR has {nnz} indices but {} bytes of {dtype} values",
                    values.len()
                )));
            }
            if indptr.len() as u64 != rows.saturating_add(1) {
                return Err(Error::InvalidArgument(format!(
                    "CSR indptr has {} entries; {rows} rows need {}",
                    indptr.len(),
                    rows.saturating_add(1)
                )));
            }
            if indptr.first() != Some(&0)
                || indptr.last() != Some(&nnz)
                || indptr.windows(2).any(|w| w[0] > w[1])
            {
                return Err(Error::InvalidArgument(
                    "CSR indptr must rise from 0 to the number of values".into(),
                ));
            }
            if let Some(bad) = indices.iter().find(|&&c| c >= cols) {
                return Err(Error::InvalidArgument(format!(
                    "CSR column index {bad} is out of range for {cols} columns"
                )));
            }
            Ok(())
        };
        check().map_err(|e| e.in_tensor(name).in_file(&self.path))?;
        let indices = u64_bytes(indices);
        let indptr = u64_bytes(indptr);
        self.add_tensor(
            name,
            Shape::from(shape),
            Format::SparseCsr,
            &[
                ComponentData::new("values", dtype, values),
                ComponentData::new("indices", DType::U64, &indices),
                ComponentData::new("indptr", DType::U64, &indptr),
            ],
            None,
            options,
        )
    }

    /// Adds a COO tensor: `values` (nnz elements) and `coords`, ndim x nnz u64 indices stored
    /// dimension by dimension (all dim-0 indices first).
    pub fn add_coo(
        &mut self,
        name: &str,
        shape: impl Into<Shape>,
        dtype: DType,
        values: &[u8],
        coords: &[u64],
        options: ComponentOptions,
    ) -> Result<(), Error> {
        let shape = shape.into();
        let ndim = shape.rank();
        let check = || -> Result<(), Error> {
            if !values.len().is_multiple_of(dtype.size()) {
                return Err(Error::InvalidArgument(format!(
                    "COO values are {} bytes, not a whole number of {dtype}",
                    values.len()
                )));
            }
            let nnz = values.len() / dtype.size();
            if coords.len() != ndim * nnz {
                return Err(Error::InvalidArgument(format!(
                    "COO needs {ndim} x {nnz} coordinates, got {}",
                    coords.len()
                )));
            }
            for (dim, &extent) in shape.dims().iter().enumerate() {
                let row = &coords[dim * nnz..(dim + 1) * nnz];
                if let Some(bad) = row.iter().find(|&&c| c >= extent) {
                    return Err(Error::InvalidArgument(format!(
                        "COO coordinate {bad} is out of range for dimension {dim} of size {extent}"
                    )));
                }
            }
            Ok(())
        };
        check().map_err(|e| e.in_tensor(name).in_file(&self.path))?;
        let coords = u64_bytes(coords);
        self.add_tensor(
            name,
            shape,
            Format::SparseCoo,
            &[
                ComponentData::new("values", dtype, values),
                ComponentData::new("coords", DType::U64, &coords),
            ],
            None,
            options,
        )
    }

    /// Adds a group-quantized weight: packed integer data plus per-group scales (and optional
    /// zero points), with `bits` and `group_size` recorded in the tensor's attributes.
    #[allow(clippy::too_many_arguments)]
    pub fn add_quantized_group(
        &mut self,
        name: &str,
        shape: impl Into<Shape>,
        bits: u32,
        group_size: u64,
        packed_weight: ComponentData<'_>,
        scales: ComponentData<'_>,
        zeros: Option<ComponentData<'_>>,
        options: ComponentOptions,
    ) -> Result<(), Error> {
        let mut attributes = Attributes::new();
        attributes.insert("bits".into(), Value::from(u64::from(bits)));
        attributes.insert("group_size".into(), Value::from(group_size));
        let mut components = vec![
            ComponentData {
                role: "packed_weight",
                ..packed_weight
            },
            ComponentData {
                role: "scales",
                ..scales
            },
        ];
        if let Some(z) = zeros {
            components.push(ComponentData { role: "zeros", ..z });
        }
        self.add_tensor(
            name,
            shape,
            Format::QuantizedGroup,
            &components,
            Some(attributes),
            options,
        )
    }

    /// Adds a tensor of any format. Components are written in the order given.
    pub fn add_tensor(
        &mut self,
        name: &str,
        shape: impl Into<Shape>,
        format: Format,
        components: &[ComponentData<'_>],
        attributes: Option<Attributes>,
        options: ComponentOptions,
    ) -> Result<(), Error> {
        let mut tensor = self.begin_tensor(name, shape, format)?;
        for c in components {
            tensor.write_component(c.role, c.dtype, c.logical_type.cloned(), c.bytes, options)?;
        }
        tensor.set_attributes(attributes);
        tensor.finish()
    }

    /// Starts a tensor whose components are streamed one by one.
    pub fn begin_tensor(
        &mut self,
        name: &str,
        shape: impl Into<Shape>,
        format: Format,
    ) -> Result<TensorWriter<'_>, Error> {
        self.ensure_open()?;
        if self.manifest.objects.contains_key(name) {
            return Err(Error::DuplicateName(name.to_owned()).in_file(&self.path));
        }
        let shape = shape.into();
        shape
            .numel()
            .map_err(|e| e.in_tensor(name).in_file(&self.path))?;
        Ok(TensorWriter {
            writer: self,
            info: TensorInfo {
                name: name.to_owned(),
                shape,
                format,
                components: BTreeMap::new(),
                attributes: None,
            },
        })
    }

    fn ensure_open(&self) -> Result<(), Error> {
        if self.out.is_none() {
            return Err(
                Error::InvalidArgument("the writer is already finished".into()).in_file(&self.path),
            );
        }
        Ok(())
    }

    fn io_error(&self, e: io::Error) -> Error {
        Error::from(e).in_file(&self.path)
    }

    fn pad_to_alignment(&mut self) -> Result<(), Error> {
        let pad = (ALIGNMENT - self.pos % ALIGNMENT) % ALIGNMENT;
        let out = self.out.as_mut().expect("checked open");
        out.write_all(&ZEROS[..pad as usize])
            .map_err(|e| Error::from(e).in_file(&self.path))?;
        self.pos += pad;
        Ok(())
    }

    /// Streams one component from `source` at the next aligned offset.
    fn write_stream(
        &mut self,
        dtype: DType,
        logical_type: Option<LogicalType>,
        source: Source<'_, '_>,
        options: ComponentOptions,
    ) -> Result<Component, Error> {
        self.pad_to_alignment()?;
        let offset = self.pos;
        let out = self.out.as_mut().expect("checked open");
        let mut sink = CountingWriter {
            inner: out,
            hasher: Hasher::new(options.checksum),
            written: 0,
        };
        let (encoding, decoded_len) = match options.compression {
            Compression::Raw => (Encoding::Raw, source.copy_to(&mut sink)?),
            Compression::Zstd(level) => {
                let mut encoder = zstd::stream::write::Encoder::new(&mut sink, level)?;
                let n = source.copy_to(&mut encoder)?;
                encoder.finish()?;
                (Encoding::Zstd, n)
            }
            Compression::Codec(effort) => {
                let owned;
                let bytes = match source {
                    Source::Slice(bytes) => bytes,
                    Source::Reader(reader) => {
                        let mut buffer = Vec::new();
                        reader.read_to_end(&mut buffer)?;
                        owned = buffer;
                        &owned[..]
                    }
                };
                let frame = zt_codec::compress(
                    bytes,
                    Some(dtype),
                    &zt_codec::CompressOptions::with_effort(effort),
                )?;
                sink.write_all(&frame)?;
                (
                    Encoding::Other(CODEC_ENCODING.to_owned()),
                    bytes.len() as u64,
                )
            }
        };
        let length = sink.written;
        let digest = sink.hasher.finish();
        self.pos += length;
        Ok(Component {
            dtype,
            logical_type,
            location: Some(ByteRange { offset, length }),
            encoding,
            decoded_len: Some(decoded_len),
            digest,
        })
    }

    /// Writes bytes that are already encoded (a codec frame made elsewhere, or nothing for a
    /// `zt.ref` copy), hashing them for `checksum`.
    #[allow(clippy::too_many_arguments)]
    fn write_precoded(
        &mut self,
        dtype: DType,
        logical_type: Option<LogicalType>,
        encoding: Encoding,
        stored: &[u8],
        decoded_len: u64,
        checksum: ChecksumAlgorithm,
    ) -> Result<Component, Error> {
        self.pad_to_alignment()?;
        let offset = self.pos;
        let out = self.out.as_mut().expect("checked open");
        let mut sink = CountingWriter {
            inner: out,
            hasher: Hasher::new(checksum),
            written: 0,
        };
        sink.write_all(stored)?;
        let digest = sink.hasher.finish();
        self.pos += stored.len() as u64;
        Ok(Component {
            dtype,
            logical_type,
            location: Some(ByteRange {
                offset,
                length: stored.len() as u64,
            }),
            encoding,
            decoded_len: Some(decoded_len),
            digest,
        })
    }

    /// Copies a component's stored bytes unchanged (already encoded, digest already known).
    pub(crate) fn write_stored(
        &mut self,
        name: &str,
        role: &str,
        template: &Component,
        stored: &[u8],
    ) -> Result<Component, Error> {
        self.ensure_open()?;
        self.pad_to_alignment()?;
        let offset = self.pos;
        let out = self.out.as_mut().expect("checked open");
        out.write_all(stored)
            .map_err(|e| Error::from(e).in_tensor(name).in_file(&self.path))?;
        self.pos += stored.len() as u64;
        let _ = role;
        Ok(Component {
            location: Some(ByteRange {
                offset,
                length: stored.len() as u64,
            }),
            ..template.clone()
        })
    }

    pub(crate) fn insert_object(&mut self, info: TensorInfo) -> Result<(), Error> {
        if self.manifest.objects.contains_key(&info.name) {
            return Err(Error::DuplicateName(info.name).in_file(&self.path));
        }
        self.manifest.objects.insert(info.name.clone(), info);
        Ok(())
    }

    /// Writes the manifest and footer, syncs, and (for a new file) renames it into place.
    /// Returns the size of the file.
    pub fn finish(mut self) -> Result<u64, Error> {
        self.ensure_open()?;
        let result = self.finish_inner();
        if result.is_err() {
            self.abandon();
        }
        result
    }

    fn finish_inner(&mut self) -> Result<u64, Error> {
        let manifest = encode_manifest(&self.manifest).map_err(|e| e.in_file(&self.path))?;
        let appending = matches!(self.mode, Mode::Append { .. });
        let sync = self.options.sync;
        let out = self.out.as_mut().expect("checked open");
        let result = (|| -> io::Result<()> {
            if appending && sync {
                // The new blobs must be durable before the footer that points at them.
                out.flush()?;
                out.get_ref().sync_data()?;
            }
            out.write_all(&manifest)?;
            out.write_all(&(manifest.len() as u64).to_le_bytes())?;
            out.write_all(MAGIC)?;
            out.flush()?;
            if sync {
                out.get_ref().sync_all()?;
            }
            Ok(())
        })();
        // On error `self.out` is still set, so `finish` abandons: the temporary file is removed,
        // or an append is truncated back to its committed footer.
        result.map_err(|e| self.io_error(e))?;
        let size = self.pos + manifest.len() as u64 + crate::FOOTER_LEN;
        if let Mode::Create { temp } = &self.mode {
            fs::rename(temp, &self.path).map_err(|e| self.io_error(e))?;
            if sync {
                sync_parent_dir(&self.path);
            }
        }
        // Committed: nothing is left to clean up.
        self.out = None;
        Ok(size)
    }

    /// Throws away everything written since the writer was opened.
    fn abandon(&mut self) {
        let out = self.out.take();
        match &self.mode {
            Mode::Create { temp } => {
                drop(out);
                let _ = fs::remove_file(temp);
            }
            Mode::Append { committed_len } => {
                if let Some(out) = out {
                    // Best effort: the committed footer is intact either way.
                    if let Ok(file) = out.into_inner() {
                        let _ = file.set_len(*committed_len);
                    }
                }
            }
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if self.out.is_some() {
            self.abandon();
        }
    }
}

fn sync_parent_dir(path: &Path) {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Ok(dir) = File::open(parent) {
        let _ = dir.sync_all();
    }
}

/// One tensor being written: add components, then [`finish`](TensorWriter::finish) to record it.
/// Dropping it without finishing leaves its bytes as unreferenced padding in the file.
pub struct TensorWriter<'w> {
    writer: &'w mut Writer,
    info: TensorInfo,
}

impl TensorWriter<'_> {
    /// Writes one component from a byte slice.
    pub fn write_component(
        &mut self,
        role: &str,
        dtype: DType,
        logical_type: Option<LogicalType>,
        bytes: &[u8],
        options: ComponentOptions,
    ) -> Result<(), Error> {
        self.write_source(role, dtype, logical_type, Source::Slice(bytes), options)
    }

    /// Streams one component from any reader (a file, a socket, a decoder).
    pub fn write_component_from(
        &mut self,
        role: &str,
        dtype: DType,
        logical_type: Option<LogicalType>,
        source: &mut dyn Read,
        options: ComponentOptions,
    ) -> Result<(), Error> {
        self.write_source(role, dtype, logical_type, Source::Reader(source), options)
    }

    /// Writes a component whose stored bytes are already encoded: a codec frame made by the
    /// caller (`encoding` "ztc1", e.g. a delta frame) or an empty `zt.ref` copy. `decoded_len` is
    /// recorded as the component's `uncompressed_length`; nothing checks that the bytes decode to
    /// it here (readers do, on every read).
    #[allow(clippy::too_many_arguments)]
    pub fn write_encoded(
        &mut self,
        role: &str,
        dtype: DType,
        logical_type: Option<LogicalType>,
        encoding: Encoding,
        stored: &[u8],
        decoded_len: u64,
        checksum: ChecksumAlgorithm,
    ) -> Result<(), Error> {
        let name = self.info.name.clone();
        let path = self.writer.path.clone();
        let context = |e: Error| e.in_tensor(&name).in_file(&path);
        if self.info.components.contains_key(role) {
            return Err(context(Error::InvalidArgument(format!(
                "component '{role}' written twice"
            ))));
        }
        if encoding == Encoding::Raw && stored.len() as u64 != decoded_len {
            return Err(context(Error::InvalidArgument(format!(
                "raw component '{role}' of {} bytes declared as {decoded_len}",
                stored.len()
            ))));
        }
        if !decoded_len.is_multiple_of(dtype.size() as u64) {
            return Err(context(Error::InvalidArgument(format!(
                "component '{role}' is not a whole number of {dtype} elements"
            ))));
        }
        let component = self
            .writer
            .write_precoded(dtype, logical_type, encoding, stored, decoded_len, checksum)
            .map_err(context)?;
        self.info.components.insert(role.to_owned(), component);
        Ok(())
    }

    /// The tensor's name.
    pub fn name(&self) -> &str {
        &self.info.name
    }

    fn write_source(
        &mut self,
        role: &str,
        dtype: DType,
        logical_type: Option<LogicalType>,
        source: Source<'_, '_>,
        options: ComponentOptions,
    ) -> Result<(), Error> {
        let name = self.info.name.clone();
        let path = self.writer.path.clone();
        let context = |e: Error| e.in_tensor(&name).in_file(&path);
        if self.info.components.contains_key(role) {
            return Err(context(Error::InvalidArgument(format!(
                "component '{role}' written twice"
            ))));
        }
        let component = self
            .writer
            .write_stream(dtype, logical_type, source, options)
            .map_err(context)?;
        let unit = dtype.size() as u64;
        if component.decoded_len.unwrap_or(0) % unit != 0 {
            return Err(context(Error::InvalidArgument(format!(
                "component '{role}' is not a whole number of {dtype} elements"
            ))));
        }
        self.info.components.insert(role.to_owned(), component);
        Ok(())
    }

    pub fn set_attributes(&mut self, attributes: Option<Attributes>) {
        self.info.attributes = attributes;
    }

    /// Records the tensor in the manifest.
    pub fn finish(self) -> Result<(), Error> {
        let TensorWriter { writer, info } = self;
        if info.format == Format::Dense {
            let data = info
                .dense_component()
                .map_err(|e| e.in_file(&writer.path))?;
            if let Some(expected) =
                dense_len(&info, "data", data).map_err(|e| e.in_tensor(&info.name))?
            {
                let actual = data.decoded_len.unwrap_or(0);
                if expected != actual {
                    return Err(Error::LengthMismatch {
                        component: "data".into(),
                        expected,
                        actual,
                    }
                    .in_tensor(&info.name)
                    .in_file(&writer.path));
                }
            }
        }
        writer.insert_object(info)
    }
}

/// Where a component's bytes come from: a slice is written in one call, a reader is streamed.
enum Source<'a, 'r> {
    Slice(&'a [u8]),
    Reader(&'r mut dyn Read),
}

impl Source<'_, '_> {
    fn copy_to(self, sink: &mut dyn Write) -> io::Result<u64> {
        match self {
            Source::Slice(bytes) => {
                sink.write_all(bytes)?;
                Ok(bytes.len() as u64)
            }
            Source::Reader(reader) => io::copy(reader, sink),
        }
    }
}

/// Counts and hashes the stored bytes on their way to the file.
struct CountingWriter<'a, W: Write> {
    inner: &'a mut W,
    hasher: Hasher,
    written: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn u64_bytes(values: &[u64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Recomputes a digest of the same algorithm as `old` over `stored`.
pub(crate) fn recompute_digest(old: Option<&Digest>, stored: &[u8]) -> Option<Digest> {
    match old.and_then(Digest::algorithm) {
        Some(algorithm) => crate::checksum::compute(algorithm, stored),
        None => old.cloned(),
    }
}
