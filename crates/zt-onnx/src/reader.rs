//! [`OnnxReader`]: the initializers of an ONNX model as tensors.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use prost::Message;
use zt_core::{
    Attributes, ByteRange, Component, DType, Encoding, Error, Format, MappedFile, Shape,
    TensorBytes, TensorInfo, TensorReader, Value,
};

use crate::external::{ExternalFiles, ExternalRef};
use crate::proto::tensor_proto::{DataLocation, DataType};
use crate::proto::{OperatorSetIdProto, SparseTensorProto, StringStringEntryProto, TensorProto};
use crate::types::OnnxType;
use crate::wire::{Field, Fields, WireValue};
use crate::{FORMAT, MAX_EXTERNAL_ENTRIES, MAX_METADATA_ENTRIES, MAX_RANK};

/// An open ONNX model: its initializers (then its sparse initializers) in file order.
pub struct OnnxReader {
    path: PathBuf,
    model: Arc<MappedFile>,
    /// External data files, indexed by [`Source::External`].
    externals: Vec<Arc<MappedFile>>,
    tensors: Vec<Tensor>,
    by_name: HashMap<String, usize>,
    metadata: Attributes,
}

impl std::fmt::Debug for OnnxReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OnnxReader")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .field("external_files", &self.externals.len())
            .finish()
    }
}

struct Tensor {
    info: TensorInfo,
    /// Where each component's bytes come from, by role (the keys of `info.components`).
    sources: BTreeMap<String, Source>,
}

/// Where the bytes of one component are.
#[derive(Debug)]
enum Source {
    /// A slice of the model file (`raw_data`): handed out zero-copy.
    Model(Range<usize>),
    /// A slice of an external data file: handed out zero-copy.
    External { file: usize, range: Range<usize> },
    /// Converted at open time (typed protobuf fields, sparse coordinates): handed out as copies.
    Owned(Vec<u8>),
}

/// Lets the memory map own the `Bytes` prost decodes from, so that `raw_data` fields are
/// slices of the map rather than copies (`Bytes::from_owner` needs `AsRef<[u8]>`, which
/// `Arc<MappedFile>` itself does not implement).
struct SharedMap(Arc<MappedFile>);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

/// The parts of `ModelProto` and its graphs that the reader uses, found by [`scan_model`].
#[derive(Debug, Default)]
struct ModelScan {
    metadata: Attributes,
    /// Byte ranges of the `TensorProto` initializers, in file order.
    initializers: Vec<Range<usize>>,
    /// Byte ranges of the `SparseTensorProto` sparse initializers, in file order.
    sparse_initializers: Vec<Range<usize>>,
}

/// A decoded dense tensor: the `data` component of an initializer, or a sparse tensor's values
/// or indices.
struct Loaded {
    shape: Shape,
    ty: OnnxType,
    source: Source,
    component: Component,
    attributes: Attributes,
}

impl OnnxReader {
    /// Opens `path`, decodes its initializers and checks every tensor's byte length against its
    /// shape (external data files are mapped and checked too).
    pub fn open(path: impl AsRef<Path>) -> Result<OnnxReader, Error> {
        let path = path.as_ref();
        Self::open_inner(path).map_err(|e| e.in_file(path))
    }

    fn open_inner(path: &Path) -> Result<OnnxReader, Error> {
        let model = Arc::new(MappedFile::open(path)?);
        // Walking the protobuf touches every message header: no readahead around each.
        let scattered = model.scattered_reads();
        let scan = scan_model(model.bytes())?;
        let mut loader = Loader {
            model: &model,
            whole: Bytes::from_owner(SharedMap(Arc::clone(&model))),
            externals: ExternalFiles::new(path),
        };
        let mut tensors = Vec::new();
        for range in &scan.initializers {
            tensors.push(loader.initializer(range.clone())?);
        }
        for range in &scan.sparse_initializers {
            tensors.push(loader.sparse_initializer(range.clone())?);
        }
        let externals = loader.externals.into_files();
        drop(scattered);
        let mut by_name = HashMap::with_capacity(tensors.len());
        for (index, tensor) in tensors.iter().enumerate() {
            if by_name.insert(tensor.info.name.clone(), index).is_some() {
                return Err(Error::DuplicateName(tensor.info.name.clone()));
            }
        }
        Ok(OnnxReader {
            path: path.to_owned(),
            model,
            externals,
            tensors,
            by_name,
            metadata: scan.metadata,
        })
    }

    /// The mapped model file: borrowed `raw_data` components are slices of it.
    pub fn model_bytes(&self) -> &[u8] {
        self.model.bytes()
    }

    fn tensor(&self, name: &str) -> Result<&Tensor, Error> {
        self.by_name
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| Error::TensorNotFound(name.to_owned()))
    }

    fn source_bytes<'a>(&'a self, source: &'a Source) -> &'a [u8] {
        source_bytes(&self.model, &self.externals, source)
    }
}

fn source_bytes<'a>(
    model: &'a MappedFile,
    externals: &'a [Arc<MappedFile>],
    source: &'a Source,
) -> &'a [u8] {
    match source {
        Source::Model(range) => &model.bytes()[range.clone()],
        Source::External { file, range } => &externals[*file].bytes()[range.clone()],
        Source::Owned(bytes) => bytes,
    }
}

impl TensorReader for OnnxReader {
    fn format_name(&self) -> &str {
        "onnx"
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn names(&self) -> Vec<&str> {
        self.tensors.iter().map(|t| t.info.name.as_str()).collect()
    }

    fn info(&self, name: &str) -> Result<&TensorInfo, Error> {
        self.tensor(name).map(|t| &t.info)
    }

    fn metadata(&self) -> &Attributes {
        &self.metadata
    }

    fn component(&self, name: &str, component: &str) -> Result<TensorBytes<'_>, Error> {
        let tensor = self.tensor(name)?;
        let source = tensor
            .sources
            .get(component)
            .ok_or_else(|| Error::ComponentNotFound {
                tensor: name.to_owned(),
                component: component.to_owned(),
            })?;
        let bytes = self.source_bytes(source);
        Ok(match source {
            Source::Model(_) | Source::External { .. } => Cow::Borrowed(bytes),
            Source::Owned(_) => Cow::Owned(bytes.to_vec()),
        })
    }

    fn len(&self) -> usize {
        self.tensors.len()
    }
}

/// Refuses `count` items of `what` beyond `limit` (the crate constant named `constant`).
pub(crate) fn check_limit(
    what: &str,
    count: usize,
    limit: usize,
    constant: &str,
) -> Result<(), Error> {
    if count > limit {
        return Err(Error::Unsupported(format!(
            "{what}: {count} is more than zt-onnx reads ({constant} = {limit})"
        )));
    }
    Ok(())
}

fn decode_error(what: &str, e: prost::DecodeError) -> Error {
    Error::malformed(FORMAT, format!("{what}: {e}"))
}

fn text(bytes: &[u8], what: &str) -> Result<String, Error> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| Error::malformed(FORMAT, format!("{what} is not valid UTF-8")))
}

/// Walks `ModelProto` and its `GraphProto`s: model-level fields become metadata, initializers
/// are located but not decoded yet. Fields the reader does not use (nodes, functions, training
/// info, ...) are skipped without being decoded.
fn scan_model(bytes: &[u8]) -> Result<ModelScan, Error> {
    let mut scan = ModelScan::default();
    let mut opsets = Vec::new();
    let mut props = Vec::new();
    let mut graphs = Vec::new();
    for field in Fields::new(bytes, 0) {
        let field = field?;
        let put = |scan: &mut ModelScan, key: &str, value: Value| {
            scan.metadata.insert(key.to_owned(), value);
        };
        match field.number {
            1 => put(
                &mut scan,
                "ir_version",
                Value::from(field.varint("ir_version")? as i64),
            ),
            5 => put(
                &mut scan,
                "model_version",
                Value::from(field.varint("model_version")? as i64),
            ),
            2 | 3 | 4 | 6 => {
                let key = match field.number {
                    2 => "producer_name",
                    3 => "producer_version",
                    4 => "domain",
                    _ => "doc_string",
                };
                let value = text(&bytes[field.bytes(key)?], key)?;
                put(&mut scan, key, Value::Text(value));
            }
            7 => graphs.push(field.bytes("graph")?),
            8 => {
                check_metadata_count(opsets.len() + props.len())?;
                let opset = OperatorSetIdProto::decode(&bytes[field.bytes("opset_import")?])
                    .map_err(|e| decode_error("opset_import", e))?;
                opsets.push((Value::from(opset.domain()), Value::from(opset.version())));
            }
            14 => {
                check_metadata_count(opsets.len() + props.len())?;
                let prop = StringStringEntryProto::decode(&bytes[field.bytes("metadata_props")?])
                    .map_err(|e| decode_error("metadata_props", e))?;
                props.push((Value::from(prop.key()), Value::from(prop.value())));
            }
            _ => {}
        }
    }
    // Every ONNX model sets ir_version; a file without it is some other protobuf (or not one).
    if !scan.metadata.contains_key("ir_version") {
        return Err(Error::malformed(FORMAT, "no ir_version: not an ONNX model"));
    }
    if !opsets.is_empty() {
        scan.metadata
            .insert("opset_import".into(), Value::Map(opsets));
    }
    if !props.is_empty() {
        scan.metadata
            .insert("metadata_props".into(), Value::Map(props));
    }
    // A message field that occurs twice is merged (protobuf rules): the graphs' initializer
    // lists concatenate.
    for graph in graphs {
        for field in Fields::new(&bytes[graph.clone()], graph.start) {
            let field: Field = field?;
            match field.number {
                2 => {
                    let name = text(&bytes[field.bytes("graph name")?], "graph name")?;
                    scan.metadata.insert("graph_name".into(), Value::Text(name));
                }
                5 => scan.initializers.push(field.bytes("initializer")?),
                15 => scan
                    .sparse_initializers
                    .push(field.bytes("sparse_initializer")?),
                _ => {}
            }
        }
    }
    Ok(scan)
}

fn check_metadata_count(count: usize) -> Result<(), Error> {
    check_limit(
        "opset_import and metadata_props entries",
        count + 1,
        MAX_METADATA_ENTRIES,
        "MAX_METADATA_ENTRIES",
    )
}

/// Walks a `TensorProto` before prost decodes it: refuses STRING data, and repeated fields
/// whose decoded form would be much larger than their encoding (1-byte dims, 2-byte
/// `external_data` entries) beyond the limits, before anything is allocated for them. Returns
/// the tensor's name (for error messages; empty if it has none).
fn precheck_tensor(bytes: &[u8], base: usize) -> Result<String, Error> {
    let (mut name, mut dims, mut external, mut strings) = (String::new(), 0usize, 0usize, false);
    for field in Fields::new(bytes, base) {
        let field = field?;
        match (field.number, &field.value) {
            // Packed dims: one varint ends at every byte without the continuation bit.
            (1, WireValue::Bytes(range)) => {
                let packed = &bytes[range.start - base..range.end - base];
                dims += packed.iter().filter(|&&b| b < 0x80).count();
            }
            (1, _) => dims += 1,
            (6, _) => strings = true,
            (8, WireValue::Bytes(range)) => {
                name = String::from_utf8_lossy(&bytes[range.start - base..range.end - base])
                    .into_owned();
            }
            (13, _) => external += 1,
            _ => {}
        }
    }
    let check = || {
        if strings {
            return Err(OnnxType::from_code(DataType::String as i32).unwrap_err());
        }
        check_limit("tensor rank", dims, MAX_RANK, "MAX_RANK")?;
        check_limit(
            "external_data entries",
            external,
            MAX_EXTERNAL_ENTRIES,
            "MAX_EXTERNAL_ENTRIES",
        )
    };
    check().map_err(|e| e.in_tensor(&name))?;
    Ok(name)
}

/// Decodes tensors during [`OnnxReader::open`].
struct Loader<'a> {
    model: &'a MappedFile,
    /// The whole model as `Bytes` owned by the map: prost's `raw_data` slices point into it.
    whole: Bytes,
    externals: ExternalFiles,
}

impl Loader<'_> {
    /// A dense initializer (`GraphProto.initializer`).
    fn initializer(&mut self, range: Range<usize>) -> Result<Tensor, Error> {
        let name = precheck_tensor(&self.whole[range.clone()], range.start)?;
        let proto = TensorProto::decode(self.whole.slice(range))
            .map_err(|e| decode_error("initializer", e).in_tensor(&name))?;
        let loaded = self.load(&proto).map_err(|e| e.in_tensor(&name))?;
        Ok(Tensor {
            info: TensorInfo {
                name,
                shape: loaded.shape,
                format: Format::Dense,
                components: BTreeMap::from([("data".to_owned(), loaded.component)]),
                attributes: (!loaded.attributes.is_empty()).then_some(loaded.attributes),
            },
            sources: BTreeMap::from([("data".to_owned(), loaded.source)]),
        })
    }

    /// A sparse initializer, as `sparse_coo`: `values` as stored, and `coords` (u64, ndim x nnz,
    /// dimension by dimension) converted from ONNX's linear or `[nnz, ndim]` indices.
    fn sparse_initializer(&mut self, range: Range<usize>) -> Result<Tensor, Error> {
        // Check the nested tensors and count the dims before prost allocates them.
        let (mut name, mut dims) = (String::new(), 0usize);
        for field in Fields::new(&self.whole[range.clone()], range.start) {
            let field = field?;
            match field.number {
                1 | 2 => {
                    let nested = field.bytes("sparse tensor part")?;
                    let part = precheck_tensor(&self.whole[nested.clone()], nested.start)?;
                    if field.number == 1 {
                        name = part;
                    }
                }
                3 => dims += 1,
                _ => {}
            }
        }
        check_limit("sparse tensor rank", dims, MAX_RANK, "MAX_RANK")
            .map_err(|e| e.in_tensor(&name))?;
        let proto = SparseTensorProto::decode(self.whole.slice(range))
            .map_err(|e| decode_error("sparse_initializer", e).in_tensor(&name))?;
        let values = proto
            .values
            .as_ref()
            .ok_or_else(|| Error::malformed(FORMAT, "sparse initializer without values"))?;
        let name = values.name().to_owned();
        self.load_sparse(&proto, values, &name)
            .map_err(|e| e.in_tensor(&name))
    }

    fn load_sparse(
        &mut self,
        proto: &SparseTensorProto,
        values: &TensorProto,
        name: &str,
    ) -> Result<Tensor, Error> {
        let shape = shape_of(&proto.dims)?;
        let indices = proto
            .indices
            .as_ref()
            .ok_or_else(|| Error::malformed(FORMAT, "sparse initializer without indices"))?;
        let values = self.load(values)?;
        let [nnz] = *values.shape.dims() else {
            return Err(Error::malformed(
                FORMAT,
                format!("sparse values must be 1-D, not of shape {}", values.shape),
            ));
        };
        let indices = self.load(indices)?;
        if indices.ty.data_type != DataType::Int64 {
            return Err(Error::malformed(
                FORMAT,
                format!("sparse indices must be INT64, not {}", indices.ty.name()),
            ));
        }
        let index_bytes = self.bytes(&indices.source);
        let coords = coords_from_indices(index_bytes, indices.shape.dims(), nnz, shape.dims())?;
        let coords_component = Component {
            dtype: DType::U64,
            logical_type: None,
            location: None,
            encoding: Encoding::Raw,
            decoded_len: Some(coords.len() as u64),
            digest: None,
        };
        Ok(Tensor {
            info: TensorInfo {
                name: name.to_owned(),
                shape,
                format: Format::SparseCoo,
                components: BTreeMap::from([
                    ("coords".to_owned(), coords_component),
                    ("values".to_owned(), values.component),
                ]),
                attributes: (!values.attributes.is_empty()).then_some(values.attributes),
            },
            sources: BTreeMap::from([
                ("coords".to_owned(), Source::Owned(coords)),
                ("values".to_owned(), values.source),
            ]),
        })
    }

    fn bytes<'s>(&'s self, source: &'s Source) -> &'s [u8] {
        source_bytes(self.model, self.externals.files(), source)
    }

    /// Shape, type and element bytes of one tensor, checked against each other.
    fn load(&mut self, proto: &TensorProto) -> Result<Loaded, Error> {
        if proto.segment.is_some() {
            return Err(Error::Unsupported(
                "segmented tensors (TensorProto.segment) are not supported".into(),
            ));
        }
        let ty = OnnxType::from_code(proto.data_type())?;
        let shape = shape_of(&proto.dims)?;
        let expected = ty.byte_len(&shape)?;
        let mut attributes = Attributes::new();
        if let Some(doc) = &proto.doc_string {
            attributes.insert("doc_string".into(), Value::from(doc.as_str()));
        }
        let location_code = proto.data_location.unwrap_or(0);
        let external = match DataLocation::try_from(location_code) {
            Ok(DataLocation::External) => true,
            Ok(DataLocation::Default) => false,
            Err(_) => {
                return Err(Error::malformed(
                    FORMAT,
                    format!("unknown data_location {location_code}"),
                ));
            }
        };
        let (source, location) = if external {
            let reference = ExternalRef::parse(&proto.external_data)?;
            attributes.insert("external_data".into(), reference.attribute());
            (self.external(&reference)?, None)
        } else if let Some(raw) = &proto.raw_data {
            self.raw(raw)
        } else {
            (Source::Owned(ty.typed_bytes(proto, expected)?), None)
        };
        let actual = self.bytes(&source).len() as u64;
        if actual != expected {
            return Err(Error::LengthMismatch {
                component: format!(
                    "data ({} {})",
                    ty.name(),
                    if external {
                        "external data"
                    } else {
                        "raw_data"
                    }
                ),
                expected,
                actual,
            });
        }
        let component = Component {
            dtype: ty.dtype,
            logical_type: ty.logical_type.clone(),
            location,
            encoding: Encoding::Raw,
            decoded_len: Some(expected),
            digest: None,
        };
        Ok(Loaded {
            shape,
            ty,
            source,
            component,
            attributes,
        })
    }

    /// `raw_data`: a slice of the model's map, located by its address in the map.
    fn raw(&self, raw: &Bytes) -> (Source, Option<ByteRange>) {
        let map = self.model.bytes();
        let offset = (raw.as_ptr() as usize).wrapping_sub(map.as_ptr() as usize);
        match offset.checked_add(raw.len()) {
            Some(end) if !raw.is_empty() && end <= map.len() => (
                Source::Model(offset..end),
                Some(ByteRange {
                    offset: offset as u64,
                    length: raw.len() as u64,
                }),
            ),
            // prost slices `Bytes` input without copying, so only an empty `raw_data` (which
            // `Bytes` may represent without pointing into the map) lands here.
            _ => (Source::Owned(raw.to_vec()), None),
        }
    }

    /// The bytes an external tensor names, checked against the external file (the caller checks
    /// their length against the shape).
    fn external(&mut self, reference: &ExternalRef) -> Result<Source, Error> {
        let file = self.externals.resolve(&reference.location)?;
        let map = self.externals.file(file);
        let what = format!("external data in {}", reference.location);
        // Without a length, the data runs to the end of the file.
        let length = reference
            .length
            .unwrap_or_else(|| map.len().saturating_sub(reference.offset));
        map.slice(reference.offset, length, &what)?;
        let start = reference.offset as usize;
        Ok(Source::External {
            file,
            range: start..start + length as usize,
        })
    }
}

fn shape_of(dims: &[i64]) -> Result<Shape, Error> {
    let dims = dims
        .iter()
        .map(|&d| {
            u64::try_from(d).map_err(|_| {
                Error::malformed(FORMAT, format!("negative dimension {d} in {dims:?}"))
            })
        })
        .collect::<Result<Vec<u64>, Error>>()?;
    let shape = Shape::new(dims);
    shape.numel()?;
    Ok(shape)
}

/// Converts ONNX sparse indices (INT64 little-endian bytes of shape `[nnz]`, linear offsets into
/// the dense tensor, or `[nnz, ndim]`, one coordinate tuple per value) into `.zt` COO
/// coordinates: u64, `ndim x nnz`, dimension by dimension. Every index is range-checked.
fn coords_from_indices(
    index_bytes: &[u8],
    index_dims: &[u64],
    nnz: u64,
    dims: &[u64],
) -> Result<Vec<u8>, Error> {
    let ndim = dims.len();
    let linear = match *index_dims {
        [n] if n == nnz => true,
        [n, r] if n == nnz && r == ndim as u64 => false,
        _ => {
            return Err(Error::malformed(
                FORMAT,
                format!(
                    "sparse indices of shape {index_dims:?} do not fit {nnz} values of a {ndim}-D tensor"
                ),
            ));
        }
    };
    let nnz = nnz as usize;
    let numel = Shape::from(dims).numel()?;
    let out_of_range = |index: i64| {
        Error::malformed(
            FORMAT,
            format!("sparse index {index} is out of range for shape {dims:?}"),
        )
    };
    // The output is written as little-endian bytes in place, with no intermediate `Vec<i64>`
    // or `Vec<u64>`: coordinates are already up to `MAX_RANK` (64) times the index bytes, the
    // largest expansion any reader makes at open (spec/limits.md), and must not be doubled.
    let mut coords = vec![0u8; ndim * nnz * 8];
    let mut put = |at: usize, value: u64| {
        coords[at * 8..at * 8 + 8].copy_from_slice(&value.to_le_bytes());
    };
    for (k, bytes) in index_bytes.chunks_exact(8).enumerate() {
        let index = i64::from_le_bytes(bytes.try_into().expect("chunks of 8"));
        if linear {
            let mut rest = u64::try_from(index)
                .ok()
                .filter(|&i| i < numel)
                .ok_or_else(|| out_of_range(index))?;
            for axis in (0..ndim).rev() {
                put(axis * nnz + k, rest % dims[axis]);
                rest /= dims[axis];
            }
        } else {
            let (value, axis) = (k / ndim, k % ndim);
            let coordinate = u64::try_from(index)
                .ok()
                .filter(|&i| i < dims[axis])
                .ok_or_else(|| out_of_range(index))?;
            put(axis * nnz + value, coordinate);
        }
    }
    Ok(coords)
}
