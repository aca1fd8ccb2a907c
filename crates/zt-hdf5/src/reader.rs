//! [`Hdf5Reader`]: every numeric dataset of an HDF5 file as a tensor.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};

use hdf5::dataset::Layout;
use hdf5::filters::Filter;
use hdf5::{Dataset, Group, IndexType, IterationOrder, LinkType, LocationType};
use zt_core::{
    Attributes, ByteRange, Component, Encoding, Error, Format, MappedFile, Shape, TensorBytes,
    TensorInfo, TensorReader, Value,
};

use crate::attrs::read_attributes;
use crate::types::Element;
use crate::{DEFAULT_MAX_READ_LEN, FORMAT, MAX_GROUP_DEPTH, MAX_LINKS};

/// The HDF5 format signature. It sits at offset 0, or at 512, 1024, 2048, ... after a user block.
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// How to open an HDF5 file.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Refuse to read a dataset through libhdf5 (decompressing, converting, or producing fill
    /// values) when its elements take more than this many bytes.
    pub max_read_len: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_read_len: DEFAULT_MAX_READ_LEN,
        }
    }
}

/// An open HDF5 file: its numeric datasets, by path, sorted.
pub struct Hdf5Reader {
    path: PathBuf,
    options: OpenOptions,
    /// Our own map of the file: contiguous datasets are slices of it.
    map: MappedFile,
    tensors: BTreeMap<String, Tensor>,
    metadata: Attributes,
    /// Keeps libhdf5's handle open for the datasets read through the library.
    _file: hdf5::File,
}

impl std::fmt::Debug for Hdf5Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hdf5Reader")
            .field("path", &self.path)
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

struct Tensor {
    info: TensorInfo,
    source: Source,
}

/// Where a dataset's element bytes come from.
enum Source {
    /// Contiguous, unfiltered, little-endian: a slice of the map (zero-copy).
    Map(Range<usize>),
    /// Read through libhdf5 on demand: chunked, filtered, compact, big-endian, or never written
    /// (fill value).
    Library { dataset: Dataset, element: Element },
    /// No elements.
    Empty,
}

/// What the walk over the file's groups found.
#[derive(Default)]
struct Walk {
    datasets: Vec<(String, Dataset)>,
    /// Objects (and attributes) that are not tensors, with the reason.
    skipped: Vec<(String, String)>,
}

/// A libhdf5 failure as a zt-core error, with libhdf5's own message.
pub(crate) fn lib_error(what: &str, e: hdf5::Error) -> Error {
    Error::malformed(FORMAT, format!("{what}: libhdf5 says: {e}"))
}

impl Hdf5Reader {
    /// Opens `path` with libhdf5, walks every group and describes every numeric dataset. No
    /// element data is read: contiguous datasets are located in the map, the others are read
    /// through libhdf5 when asked for.
    pub fn open(path: impl AsRef<Path>) -> Result<Hdf5Reader, Error> {
        Self::open_with(path, OpenOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<Hdf5Reader, Error> {
        let path = path.as_ref();
        Self::open_inner(path, options).map_err(|e| e.in_file(path))
    }

    fn open_inner(path: &Path, options: OpenOptions) -> Result<Hdf5Reader, Error> {
        let map = MappedFile::open(path)?;
        check_signature(map.bytes())?;
        let file = hdf5::File::open(path).map_err(|e| lib_error("cannot open the file", e))?;
        let mut walk = walk(&file)?;
        let mut tensors = BTreeMap::new();
        for (name, dataset) in std::mem::take(&mut walk.datasets) {
            match describe(&map, &name, dataset, &mut walk.skipped) {
                Ok(Some(tensor)) => {
                    tensors.insert(name, tensor);
                }
                Ok(None) => {}
                Err(e) => return Err(e.in_tensor(&name)),
            }
        }
        let mut metadata = read_attributes(&file, "/", &mut walk.skipped)
            .map_err(|e| lib_error("reading the root group's attributes", e))?;
        if !walk.skipped.is_empty() {
            walk.skipped.sort();
            let skipped = walk
                .skipped
                .into_iter()
                .map(|(path, reason)| (Value::Text(path), Value::Text(reason)))
                .collect();
            metadata.insert("zt.skipped".into(), Value::Map(skipped));
        }
        Ok(Hdf5Reader {
            path: path.to_owned(),
            options,
            map,
            tensors,
            metadata,
            _file: file,
        })
    }

    fn tensor(&self, name: &str) -> Result<&Tensor, Error> {
        self.tensors
            .get(name)
            .ok_or_else(|| Error::TensorNotFound(name.to_owned()))
    }

    /// The mapped file: borrowed components are slices of it.
    pub fn mapped_bytes(&self) -> &[u8] {
        self.map.bytes()
    }
}

/// Refuses files without the HDF5 signature before libhdf5 sees them.
fn check_signature(bytes: &[u8]) -> Result<(), Error> {
    let mut offset = 0usize;
    while offset.saturating_add(SIGNATURE.len()) <= bytes.len() {
        if bytes[offset..].starts_with(SIGNATURE) {
            return Ok(());
        }
        offset = if offset == 0 {
            512
        } else {
            offset.saturating_mul(2)
        };
    }
    Err(Error::BadMagic {
        format: FORMAT,
        expected: SIGNATURE,
        found: bytes[..bytes.len().min(SIGNATURE.len())].to_vec(),
    })
}

/// Walks the groups depth-first from the root, following links in name order, and lists each
/// object once (under the first path that reaches it, as h5py's `visititems` does): hard links
/// that lead back to a visited group cannot loop. Soft and external links are not followed.
fn walk(file: &hdf5::File) -> Result<Walk, Error> {
    struct Frame {
        group: Group,
        prefix: String,
        links: std::vec::IntoIter<(String, LinkType)>,
    }
    fn frame(group: Group, prefix: String) -> Result<Frame, Error> {
        let mut links = Vec::new();
        group
            .iter_visit(IndexType::Name, IterationOrder::Increasing, |name, info| {
                links.push((name.to_owned(), info.link_type));
                Ok(())
            })
            .map_err(|e| lib_error(&format!("listing group '/{prefix}'"), e))?;
        Ok(Frame {
            group,
            prefix,
            links: links.into_iter(),
        })
    }
    // Objects are identified by their address token. hdf5-metno's token type is comparable but
    // not hashable, so its debug text (the address) is the key.
    let identity = |info: &hdf5::LocationInfo| format!("{:?}", info.token);
    let root = file
        .as_group()
        .map_err(|e| lib_error("opening the root group", e))?;
    let mut seen = HashSet::from([identity(
        &root
            .loc_info()
            .map_err(|e| lib_error("reading the root group", e))?,
    )]);
    let mut walk = Walk::default();
    let mut stack = vec![frame(root, String::new())?];
    let mut links_seen = 0usize;
    while let Some(top) = stack.last_mut() {
        let Some((name, link_type)) = top.links.next() else {
            stack.pop();
            continue;
        };
        links_seen += 1;
        if links_seen > MAX_LINKS {
            return Err(Error::Unsupported(format!(
                "more than MAX_LINKS ({MAX_LINKS}) links in the file"
            )));
        }
        let path = format!("{}{name}", top.prefix);
        match link_type {
            LinkType::Soft => walk.skipped.push((path, "soft link (not followed)".into())),
            LinkType::External => walk
                .skipped
                .push((path, "external link to another file (not followed)".into())),
            LinkType::Hard => {
                let error = |e| lib_error(&format!("opening '/{path}'"), e);
                let info = top.group.loc_info_by_name(&name).map_err(error)?;
                if !seen.insert(identity(&info)) {
                    continue;
                }
                match info.loc_type {
                    LocationType::Group => {
                        let group = top.group.group(&name).map_err(error)?;
                        if stack.len() >= MAX_GROUP_DEPTH {
                            return Err(Error::Unsupported(format!(
                                "groups nested deeper than MAX_GROUP_DEPTH ({MAX_GROUP_DEPTH}) at '/{path}'"
                            )));
                        }
                        stack.push(frame(group, format!("{path}/"))?);
                    }
                    LocationType::Dataset => {
                        let dataset = top.group.dataset(&name).map_err(error)?;
                        walk.datasets.push((path, dataset));
                    }
                    // Named datatypes (and maps) hold no tensor data.
                    #[allow(unreachable_patterns)]
                    _ => {}
                }
            }
        }
    }
    Ok(walk)
}

/// The tensor a dataset is, `None` (with a note in `skipped`) when it is not one.
fn describe(
    map: &MappedFile,
    name: &str,
    dataset: Dataset,
    skipped: &mut Vec<(String, String)>,
) -> Result<Option<Tensor>, Error> {
    let mut skip = |reason: String| {
        skipped.push((name.to_owned(), reason));
        Ok(None)
    };
    let space = dataset
        .space()
        .map_err(|e| lib_error("reading the dataspace", e))?;
    if space.is_null() {
        return skip("null dataspace (no data)".into());
    }
    let file_type = dataset
        .dtype()
        .map_err(|e| lib_error("reading the datatype", e))?;
    let element = match file_type.to_descriptor() {
        Ok(descriptor) => match Element::from_descriptor(&descriptor) {
            Ok(element) => element,
            Err(reason) => return skip(reason),
        },
        Err(e) => return skip(format!("unsupported datatype: {e}")),
    };
    let create = dataset
        .dcpl()
        .map_err(|e| lib_error("reading the creation properties", e))?;
    // External raw storage and virtual datasets make libhdf5 open other files that this one
    // names: never followed.
    if !create.external().is_empty() {
        return skip("raw data in external files (not followed)".into());
    }
    let layout = create.layout();
    if !matches!(
        layout,
        Layout::Compact | Layout::Contiguous | Layout::Chunked
    ) {
        return skip("virtual dataset mapping other datasets (not followed)".into());
    }
    let shape = Shape::new(
        space
            .shape()
            .into_iter()
            .map(|d| d as u64)
            .collect::<Vec<_>>(),
    );
    let Some(byte_len) = shape
        .numel()
        .ok()
        .and_then(|n| n.checked_mul(element.size()))
    else {
        return skip(format!("shape {shape} overflows a 64-bit byte count"));
    };
    check_extents(
        &space,
        (layout == Layout::Chunked).then(|| create.chunk()),
        element,
    )?;
    let filters = create.filters();
    let attributes = read_attributes(&dataset, name, skipped)
        .map_err(|e| lib_error("reading the dataset's attributes", e))?;
    let memory_type = element
        .memory_type()
        .map_err(|e| lib_error("building the memory type", e))?;
    // The file bytes are the element bytes when nothing transforms them on the way.
    let in_place = match dataset.offset() {
        Some(offset)
            if cfg!(target_endian = "little")
                && layout == Layout::Contiguous
                && filters.is_empty()
                && file_type == memory_type
                && byte_len > 0 =>
        {
            Some(offset)
        }
        _ => None,
    };
    let (source, location) = if byte_len == 0 {
        (Source::Empty, None)
    } else if let Some(offset) = in_place {
        // libhdf5 has checked the offset against its own view of the file; ours is checked too.
        map.slice(offset, byte_len, "data")?;
        let range = offset as usize..(offset + byte_len) as usize;
        let location = ByteRange {
            offset,
            length: byte_len,
        };
        (Source::Map(range), Some(location))
    } else {
        (Source::Library { dataset, element }, None)
    };
    let encoding = if filters.is_empty() {
        Encoding::Raw
    } else {
        Encoding::Other(
            filters
                .iter()
                .map(filter_name)
                .collect::<Vec<_>>()
                .join("+"),
        )
    };
    let component = Component {
        dtype: element.dtype(),
        logical_type: element.logical_type(),
        location,
        encoding,
        decoded_len: Some(byte_len),
        digest: None,
    };
    Ok(Some(Tensor {
        info: TensorInfo {
            name: name.to_owned(),
            shape,
            format: Format::Dense,
            components: BTreeMap::from([("data".to_owned(), component)]),
            attributes: (!attributes.is_empty()).then_some(attributes),
        },
        source,
    }))
}

/// Checks the dataspace and chunk shape the way libhdf5 does when it creates a dataset:
/// libhdf5 1.10 trusts them when reading, and damaged ones (a dimension beyond its maximum, a
/// chunk larger than the dataset may ever grow) make it loop for minutes or copy chunk-sized
/// buffers out of bounds. `chunk` is `Some` for chunked datasets.
fn check_extents(
    space: &hdf5::Dataspace,
    chunk: Option<Option<Vec<usize>>>,
    element: Element,
) -> Result<(), Error> {
    let (dims, max_dims) = (space.shape(), space.maxdims());
    let invalid = |why: String| Err(Error::malformed(FORMAT, why));
    if dims
        .iter()
        .zip(&max_dims)
        .any(|(&d, &max)| max.is_some_and(|max| d > max))
    {
        return invalid(format!(
            "dataspace {dims:?} exceeds its maximum {max_dims:?}"
        ));
    }
    let Some(chunk) = chunk else {
        return Ok(());
    };
    let Some(chunk) = chunk.filter(|c| c.len() == max_dims.len()) else {
        return invalid(format!(
            "chunk shape missing or of the wrong rank for {max_dims:?}"
        ));
    };
    let fits = |(&c, &max): (&usize, &Option<usize>)| c > 0 && max.is_none_or(|m| c <= m.max(1));
    if !chunk.iter().zip(&max_dims).all(fits) {
        return invalid(format!(
            "chunk shape {chunk:?} does not fit the dataset's maximum shape {max_dims:?}"
        ));
    }
    // libhdf5 limits one chunk to 4 GiB.
    let chunk_bytes = chunk
        .iter()
        .try_fold(element.size(), |n, &c| n.checked_mul(c as u64));
    if chunk_bytes.is_none_or(|n| n > u64::from(u32::MAX)) {
        return invalid(format!("chunk shape {chunk:?} holds more than 4 GiB"));
    }
    Ok(())
}

/// Short names of the filter pipeline, in `Encoding::Other` ("shuffle+deflate").
fn filter_name(filter: &Filter) -> String {
    match filter {
        Filter::Deflate(_) => "deflate".into(),
        Filter::Shuffle => "shuffle".into(),
        Filter::Fletcher32 => "fletcher32".into(),
        Filter::SZip(..) => "szip".into(),
        Filter::NBit => "nbit".into(),
        Filter::ScaleOffset(_) => "scaleoffset".into(),
        Filter::LZF => "lzf".into(),
        Filter::User(id, _) => format!("filter{id}"),
        // Filters of optional hdf5-metno features (blosc, zfp).
        #[allow(unreachable_patterns)]
        other => format!("{other:?}").to_lowercase(),
    }
}

impl TensorReader for Hdf5Reader {
    fn format_name(&self) -> &str {
        "hdf5"
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn names(&self) -> Vec<&str> {
        self.tensors.keys().map(String::as_str).collect()
    }

    fn info(&self, name: &str) -> Result<&TensorInfo, Error> {
        self.tensor(name).map(|t| &t.info)
    }

    fn metadata(&self) -> &Attributes {
        &self.metadata
    }

    fn component(&self, name: &str, component: &str) -> Result<TensorBytes<'_>, Error> {
        let tensor = self.tensor(name)?;
        if component != "data" {
            return Err(Error::ComponentNotFound {
                tensor: name.to_owned(),
                component: component.to_owned(),
            });
        }
        let read = || -> Result<TensorBytes<'_>, Error> {
            Ok(match &tensor.source {
                Source::Map(range) => Cow::Borrowed(&self.map.bytes()[range.clone()]),
                Source::Empty => Cow::Owned(Vec::new()),
                Source::Library { dataset, element } => {
                    let expected = tensor.info.components["data"].decoded_len.unwrap_or(0);
                    if expected > self.options.max_read_len {
                        return Err(Error::LimitExceeded {
                            what: "dataset read through libhdf5".into(),
                            size: expected,
                            limit: self.options.max_read_len,
                        });
                    }
                    // libhdf5 sizes its read by its own element count: it must agree with the
                    // overflow-checked one the limit was applied to.
                    let count = dataset
                        .space()
                        .map_err(|e| lib_error("reading the dataspace", e))?
                        .size();
                    if (count as u64).checked_mul(element.size()) != Some(expected) {
                        return Err(Error::malformed(
                            FORMAT,
                            format!("libhdf5 counts {count} elements, the shape {expected} bytes"),
                        ));
                    }
                    let bytes = element.read(dataset, count)?;
                    Cow::Owned(bytes)
                }
            })
        };
        read().map_err(|e| e.in_tensor(name).in_file(&self.path))
    }

    fn len(&self) -> usize {
        self.tensors.len()
    }
}
