//! [`Hdf5Reader`]: every numeric dataset of an HDF5 file as a tensor.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hdf5::dataset::Layout;
use hdf5::filters::Filter;
use hdf5::{Dataset, Group, IndexType, IterationOrder, LinkType, LocationType};
use zt_core::{
    Attributes, ByteRange, Component, Encoding, Error, Format, MappedFile, Shape, TensorBytes,
    TensorInfo, TensorReader, Value,
};

use crate::attrs::read_attributes;
#[cfg(unix)]
use crate::isolate::{self, Failure, SharedBuffer, signal_name};
use crate::types::Element;
#[cfg(unix)]
use crate::types::allocate;
#[cfg(unix)]
use crate::wire::{self, garbled};
use crate::{DEFAULT_MAX_READ_LEN, DEFAULT_TIMEOUT, FORMAT, MAX_GROUP_DEPTH, MAX_LINKS};
#[cfg(unix)]
use crate::{ISOLATED_READ_RATE, MAX_PROBE_REPLY};

/// The HDF5 format signature. It sits at offset 0, or at 512, 1024, 2048, ... after a user block.
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// How to open an HDF5 file.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Refuse to read a dataset through libhdf5 (decompressing, converting, or producing fill
    /// values) when its elements take more than this many bytes.
    pub max_read_len: u64,
    /// Run libhdf5 on the file only in forked child processes (one to open, one per read
    /// through the library), never in this one, so that a crash, a hang or memory corruption
    /// of libhdf5 on a damaged file becomes an error: see the crate docs, "Untrusted files".
    /// On by default on unix; ignored elsewhere (no `fork`), where libhdf5 always runs
    /// in-process.
    pub isolate: bool,
    /// With `isolate`, how long libhdf5 may take before its child is killed and the open or
    /// read fails as hung: opening (walking and describing every object) gets this, a read
    /// gets this plus one second per [`ISOLATED_READ_RATE`](crate::ISOLATED_READ_RATE) bytes.
    /// Files with very many objects may need more than [`DEFAULT_TIMEOUT`].
    pub timeout: Duration,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            max_read_len: DEFAULT_MAX_READ_LEN,
            isolate: cfg!(unix),
            timeout: DEFAULT_TIMEOUT,
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
    /// Keeps libhdf5's handle open for the datasets read through the library in this process;
    /// `None` when isolated (this process never opens the file with libhdf5).
    _file: Option<hdf5::File>,
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
    element: Element,
    source: Source,
}

/// Where a dataset's element bytes come from.
enum Source {
    /// Contiguous, unfiltered, little-endian: a slice of the map (zero-copy).
    Map(Range<usize>),
    /// Read through libhdf5 on demand: chunked, filtered, compact, big-endian, or never written
    /// (fill value). In this process through the open handle, or (`None`: isolated) in a
    /// child that opens the file and the dataset by its path.
    Library(Option<Dataset>),
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
    /// through libhdf5 when asked for. By default on unix, libhdf5 does this in a child process
    /// (see [`OpenOptions::isolate`]).
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
        #[cfg(unix)]
        if options.isolate {
            let (tensors, metadata) = probe(path, &map, options.timeout)?;
            return Ok(Hdf5Reader {
                path: path.to_owned(),
                options,
                map,
                tensors,
                metadata,
                _file: None,
            });
        }
        let Parsed {
            file,
            tensors,
            metadata,
        } = parse(path, &map)?;
        Ok(Hdf5Reader {
            path: path.to_owned(),
            options,
            map,
            tensors,
            metadata,
            _file: Some(file),
        })
    }

    /// Reads a dataset through libhdf5 (`len` bytes, checked against the limit): in this
    /// process with the open handle, else in a child process.
    fn read_library(
        &self,
        name: &str,
        dataset: Option<&Dataset>,
        element: Element,
        len: u64,
    ) -> Result<Vec<u8>, Error> {
        match dataset {
            Some(dataset) => {
                let count = element_count(dataset, element, len)?;
                element.read(dataset, count)
            }
            #[cfg(unix)]
            None => read_isolated(&self.path, name, element, len, self.options.timeout),
            // Datasets are only left unopened by isolation, which exists on unix only.
            #[cfg(not(unix))]
            None => {
                let _ = name;
                Err(Error::Unsupported("isolated reads without fork".into()))
            }
        }
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

/// The file opened by libhdf5 and everything [`Hdf5Reader::open`] learns from it.
struct Parsed {
    file: hdf5::File,
    tensors: BTreeMap<String, Tensor>,
    metadata: Attributes,
}

/// Opens the file with libhdf5, walks it and describes every dataset: all that opening does
/// with libhdf5, in this process or in the probe's child.
fn parse(path: &Path, map: &MappedFile) -> Result<Parsed, Error> {
    let file = hdf5::File::open(path).map_err(|e| lib_error("cannot open the file", e))?;
    let mut walk = walk(&file)?;
    let mut tensors = BTreeMap::new();
    for (name, dataset) in std::mem::take(&mut walk.datasets) {
        match describe(map, &name, dataset, &mut walk.skipped) {
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
    Ok(Parsed {
        file,
        tensors,
        metadata,
    })
}

/// Opens the file in a child process: [`parse`], plus a walk of the chunk index of every
/// chunked dataset (`H5Dget_num_chunks` visits every entry), so that a damaged index crashes or
/// hangs libhdf5 now rather than at a read. The child replies with what it found (or its error);
/// this process rebuilds the tensors from the reply and never runs libhdf5 on the file.
#[cfg(unix)]
fn probe(
    path: &Path,
    map: &MappedFile,
    timeout: Duration,
) -> Result<(BTreeMap<String, Tensor>, Attributes), Error> {
    let reply = isolate::run(timeout, MAX_PROBE_REPLY, || {
        let mut reply = wire::Writer::default();
        match parse(path, map) {
            Ok(parsed) => {
                for tensor in parsed.tensors.values() {
                    if let Source::Library(Some(dataset)) = &tensor.source
                        && dataset.is_chunked()
                    {
                        // Only a crash or a hang matters here: a damaged index that libhdf5
                        // reports cleanly is reported again by the read.
                        let _ = dataset.num_chunks();
                    }
                }
                reply.u8(0);
                encode_parsed(&mut reply, &parsed);
                // The child exits without closing anything: nothing is left to flush.
                std::mem::forget(parsed);
            }
            Err(e) => {
                reply.u8(1);
                reply.error(&e);
            }
        }
        reply.into_bytes()
    })
    .map_err(|failure| isolation_error(failure, "parsing", timeout, MAX_PROBE_REPLY))?;
    let mut reader = wire::Reader::new(&reply);
    let decoded = (|| match reader.u8()? {
        0 => decode_parsed(&mut reader, map).map(Ok),
        1 => reader.error().map(Err),
        _ => Err(garbled("unknown reply")),
    })();
    match decoded {
        Ok(result) if reader.is_empty() => result,
        Ok(_) => Err(garbled("bytes after the reply")),
        Err(e) => Err(garbled(&e.to_string())),
    }
}

/// The tensors and metadata of a parsed file, for the probe's reply.
#[cfg(unix)]
fn encode_parsed(reply: &mut wire::Writer, parsed: &Parsed) {
    reply.u64(parsed.tensors.len() as u64);
    for (name, tensor) in &parsed.tensors {
        let info = &tensor.info;
        let component = &info.components["data"];
        reply.str(name);
        reply.u64(info.shape.dims().len() as u64);
        for &dim in info.shape.dims() {
            reply.u64(dim);
        }
        reply.u8(tensor.element.index());
        match &tensor.source {
            Source::Map(range) => {
                reply.u8(0);
                reply.u64(range.start as u64);
            }
            Source::Library(_) => reply.u8(1),
            Source::Empty => reply.u8(2),
        }
        match &component.encoding {
            Encoding::Other(name) => {
                reply.u8(1);
                reply.str(name);
            }
            _ => reply.u8(0),
        }
        match &info.attributes {
            Some(attributes) => {
                reply.u8(1);
                reply.attributes(attributes);
            }
            None => reply.u8(0),
        }
    }
    reply.attributes(&parsed.metadata);
}

/// Rebuilds what [`encode_parsed`] sent, checking it as it would check the file: element
/// counts, byte lengths and zero-copy ranges (against this process's own map).
#[cfg(unix)]
fn decode_parsed(
    reader: &mut wire::Reader<'_>,
    map: &MappedFile,
) -> Result<(BTreeMap<String, Tensor>, Attributes), Error> {
    let count = reader.count(16)?;
    let mut tensors = BTreeMap::new();
    for _ in 0..count {
        let name = reader.string()?;
        let ndim = reader.count(8)?;
        let dims = (0..ndim)
            .map(|_| reader.u64())
            .collect::<Result<Vec<_>, _>>()?;
        let shape = Shape::new(dims);
        let element = Element::from_index(reader.u8()?).ok_or_else(|| garbled("element type"))?;
        let source_tag = reader.u8()?;
        let offset = match source_tag {
            0 => Some(reader.u64()?),
            1 | 2 => None,
            _ => return Err(garbled("unknown source")),
        };
        let encoding = match reader.u8()? {
            0 => Encoding::Raw,
            1 => Encoding::Other(reader.string()?),
            _ => return Err(garbled("unknown encoding")),
        };
        let attributes = match reader.u8()? {
            0 => None,
            1 => Some(reader.attributes()?),
            _ => return Err(garbled("attribute flag")),
        };
        let byte_len = shape
            .numel()
            .ok()
            .and_then(|n| n.checked_mul(element.size()))
            .ok_or_else(|| garbled("shape overflows"))?;
        let source = match (source_tag, offset) {
            (0, Some(offset)) if byte_len > 0 => {
                map.slice(offset, byte_len, "data")
                    .map_err(|e| e.in_tensor(&name))?;
                Source::Map(offset as usize..(offset + byte_len) as usize)
            }
            (1, None) if byte_len > 0 => Source::Library(None),
            (2, None) if byte_len == 0 => Source::Empty,
            _ => return Err(garbled("source does not fit the shape")),
        };
        let tensor = Tensor::new(
            &name, shape, element, byte_len, encoding, attributes, source,
        );
        if tensors.insert(name, tensor).is_some() {
            return Err(garbled("duplicate tensor"));
        }
    }
    let metadata = reader.attributes()?;
    Ok((tensors, metadata))
}

/// Reads a dataset through libhdf5 in a child process, which opens the file and the dataset
/// (by its path) and reads into memory shared with this process.
#[cfg(unix)]
fn read_isolated(
    path: &Path,
    name: &str,
    element: Element,
    len: u64,
    timeout: Duration,
) -> Result<Vec<u8>, Error> {
    let len = usize::try_from(len)
        .map_err(|_| Error::Unsupported(format!("a dataset of {len} bytes on this platform")))?;
    let shared = SharedBuffer::new(len).map_err(|e| {
        Error::Unsupported(format!(
            "cannot map {len} bytes of shared memory to read the dataset: {e}"
        ))
    })?;
    let target = shared.as_mut_ptr();
    let timeout = timeout.saturating_add(Duration::from_secs(len as u64 / ISOLATED_READ_RATE));
    let reply = isolate::run(timeout, MAX_ERROR_REPLY, || {
        // SAFETY: the mapping is `len` writable bytes; in the child nothing else refers to it
        // (the parent's `shared` is not read until the child has exited).
        let out = unsafe { std::slice::from_raw_parts_mut(target, len) };
        let mut read = || -> Result<(), Error> {
            let file = hdf5::File::open(path).map_err(|e| lib_error("cannot open the file", e))?;
            let dataset = file
                .dataset(name)
                .map_err(|e| lib_error("opening the dataset", e))?;
            element_count(&dataset, element, len as u64)?;
            element.read_into(&dataset, out)
        };
        let mut reply = wire::Writer::default();
        if let Err(e) = read() {
            reply.error(&e);
        }
        reply.into_bytes()
    })
    .map_err(|failure| isolation_error(failure, "reading the dataset", timeout, MAX_ERROR_REPLY))?;
    if !reply.is_empty() {
        let mut reader = wire::Reader::new(&reply);
        return Err(match reader.error() {
            Ok(e) if reader.is_empty() => e,
            Ok(_) => garbled("bytes after the error"),
            Err(e) => garbled(&e.to_string()),
        });
    }
    let mut out = allocate::<u8>(shared.len())?;
    // SAFETY: `run` has returned, so the child that wrote to the mapping has been reaped, and
    // no other child writes to it.
    out.extend_from_slice(unsafe { shared.bytes() });
    Ok(out)
}

/// Longest reply of a read's child: an error message.
#[cfg(unix)]
const MAX_ERROR_REPLY: usize = 1 << 20;

/// An isolated run's failure as the open's or read's error. `doing` is what libhdf5 was doing
/// ("parsing"); `timeout` and `max_reply` are the limits it ran under.
#[cfg(unix)]
fn isolation_error(failure: Failure, doing: &str, timeout: Duration, max_reply: usize) -> Error {
    let reason = match failure {
        Failure::Signal(libc::SIGKILL) => {
            format!("libhdf5 was killed (SIGKILL, out of memory?) while {doing}")
        }
        Failure::Signal(signal) => format!(
            "libhdf5 crashed ({}) while {doing}; the file is damaged",
            signal_name(signal)
        ),
        Failure::Timeout => format!(
            "libhdf5 hung: still {doing} after {} s, so it was stopped; the file is damaged (or \
             needs a longer OpenOptions::timeout)",
            timeout.as_secs_f64()
        ),
        Failure::TooLarge => {
            return Error::LimitExceeded {
                what: format!("reply of the process isolating libhdf5 while {doing}"),
                size: max_reply as u64 + 1,
                limit: max_reply as u64,
            };
        }
        Failure::Exit(code) => {
            return Error::Io(std::io::Error::other(format!(
                "the process isolating libhdf5 exited with status {code} while {doing}"
            )));
        }
        Failure::Os(e) => return Error::Io(e),
    };
    Error::malformed(FORMAT, reason)
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
    let source = if byte_len == 0 {
        Source::Empty
    } else if let Some(offset) = in_place {
        // libhdf5 has checked the offset against its own view of the file; ours is checked too.
        map.slice(offset, byte_len, "data")?;
        Source::Map(offset as usize..(offset + byte_len) as usize)
    } else {
        Source::Library(Some(dataset))
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
    Ok(Some(Tensor::new(
        name,
        shape,
        element,
        byte_len,
        encoding,
        (!attributes.is_empty()).then_some(attributes),
        source,
    )))
}

impl Tensor {
    /// The tensor of one dataset of `byte_len` element bytes (already checked against the shape
    /// and, for `Source::Map`, against the map).
    fn new(
        name: &str,
        shape: Shape,
        element: Element,
        byte_len: u64,
        encoding: Encoding,
        attributes: Option<Attributes>,
        source: Source,
    ) -> Tensor {
        let location = match &source {
            Source::Map(range) => Some(ByteRange {
                offset: range.start as u64,
                length: byte_len,
            }),
            Source::Library(_) | Source::Empty => None,
        };
        let component = Component {
            dtype: element.dtype(),
            logical_type: element.logical_type(),
            location,
            encoding,
            decoded_len: Some(byte_len),
            digest: None,
        };
        Tensor {
            info: TensorInfo {
                name: name.to_owned(),
                shape,
                format: Format::Dense,
                components: BTreeMap::from([("data".to_owned(), component)]),
                attributes,
            },
            element,
            source,
        }
    }
}

/// The number of elements libhdf5 will read from the dataset: libhdf5 sizes its reads by its own
/// element count, which must agree with the overflow-checked `expected` bytes the read limit
/// was applied to.
fn element_count(dataset: &Dataset, element: Element, expected: u64) -> Result<usize, Error> {
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
    Ok(count)
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
                Source::Library(dataset) => {
                    let expected = tensor.info.components["data"].decoded_len.unwrap_or(0);
                    if expected > self.options.max_read_len {
                        return Err(Error::LimitExceeded {
                            what: "dataset read through libhdf5".into(),
                            size: expected,
                            limit: self.options.max_read_len,
                        });
                    }
                    Cow::Owned(self.read_library(
                        name,
                        dataset.as_ref(),
                        tensor.element,
                        expected,
                    )?)
                }
            })
        };
        read().map_err(|e| e.in_tensor(name).in_file(&self.path))
    }

    fn len(&self) -> usize {
        self.tensors.len()
    }
}
