//! `_Reader`: any file `ztensor::open` reads, with zero-copy access to raw components.
//!
//! Zero-copy works through a second, private map of the file. The format reader maps the file
//! read-only (shared); its borrowed slices are translated to the same offsets in a
//! `MAP_PRIVATE` writable map of the same file, so Python gets arrays that are writable
//! copy-on-write: a write copies the page for this process and never reaches the file. Where
//! the reader's map is not known (formats whose reader does not expose it, or data borrowed from
//! a delta file's base), borrowed slices are handed out read-only instead.

use std::any::Any;
use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::{MmapMut, MmapOptions};
use pyo3::IntoPyObjectExt;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use ztensor::{Error, FileFormat, TensorReader, ZtReader};

use crate::buffer::{Buffer, InputBuffer};
use crate::errors::IntoPyResult;
use crate::values;

/// A reader and the maps that Python arrays may point into; shared by every [`Buffer`] that
/// borrows from it, so the file stays mapped until the last array is gone.
pub struct ReaderState {
    reader: Arc<dyn TensorReader>,
    /// The same reader when the file is `.zt`, for decoding straight into caller buffers.
    zt: Option<Arc<ZtReader>>,
    /// Address and length of the reader's own map of the whole file, when the reader says.
    known: Option<(usize, usize)>,
    cow: Option<CowMap>,
}

/// The private, copy-on-write map of the file.
struct CowMap {
    /// Taken once from `map` before any `Buffer` points into it: Rust never forms a reference
    /// to the map's bytes afterwards, since Python may be writing them.
    base: usize,
    len: usize,
    _map: MmapMut,
}

impl ReaderState {
    fn open(path: &Path, base: Option<&Path>) -> Result<ReaderState, Error> {
        // Opened first: if the path still names this inode after the reader opened it, both
        // maps are of the same file.
        let file = File::open(path).map_err(|e| Error::from(e).in_file(path))?;
        let before = file.metadata().map_err(|e| Error::from(e).in_file(path))?;
        let (reader, zt, known) = open_reader(path, base)?;
        let cow = match known {
            Some((_, known_len)) if known_len > 0 => {
                let same_file = std::fs::metadata(path).is_ok_and(|now| {
                    now.dev() == before.dev()
                        && now.ino() == before.ino()
                        && now.len() == known_len as u64
                });
                if same_file {
                    // SAFETY: a private (copy-on-write) map of a file opened read-only: writes
                    // through it stay in this process. Like the reader's own map, its one hazard
                    // is another process truncating the file while it is mapped (SIGBUS), which
                    // ztensor documents as unsupported.
                    let mut map = unsafe { MmapOptions::new().map_copy(&file) }
                        .map_err(|e| Error::from(e).in_file(path))?;
                    (map.len() == known_len).then(|| CowMap {
                        base: map.as_mut_ptr() as usize,
                        len: map.len(),
                        _map: map,
                    })
                } else {
                    None
                }
            }
            _ => None,
        };
        Ok(ReaderState {
            reader,
            zt,
            known,
            cow,
        })
    }

    /// Hands `bytes` to Python: owned bytes move into the buffer, borrowed ones are copied when
    /// `copy`, else exposed where they lie.
    fn expose(self: &Arc<Self>, bytes: Cow<'_, [u8]>, copy: bool) -> Buffer {
        let slice = match bytes {
            Cow::Owned(v) => return Buffer::from_vec(v),
            Cow::Borrowed(s) if copy || s.is_empty() => return Buffer::from_vec(s.to_vec()),
            Cow::Borrowed(s) => s,
        };
        let (addr, len) = (slice.as_ptr() as usize, slice.len());
        let owner: Arc<dyn Any + Send + Sync> = self.clone();
        if let (Some((known_base, known_len)), Some(cow)) = (self.known, &self.cow)
            && addr >= known_base
            && addr + len <= known_base + known_len
        {
            let offset = addr - known_base;
            // SAFETY: the reader's map and the private map are maps of the same file of the
            // same length (checked in `open`), so the same offset holds the same bytes; the
            // private map lives in `self`, which the buffer keeps alive, and Rust never reads
            // it, so Python's copy-on-write writes are invisible to Rust and to the file.
            return unsafe { Buffer::borrowed((cow.base + offset) as *const u8, len, true, owner) };
        }
        // SAFETY: the slice borrows from the reader (or the base file it holds), which lives in
        // `self`; it is never written, so it is exposed read-only.
        unsafe { Buffer::borrowed(slice.as_ptr(), len, false, owner) }
    }

    /// Decoded bytes of a component into a fresh buffer: straight from the file for `.zt`,
    /// through the format reader otherwise.
    fn read_owned(&self, name: &str, role: &str) -> Result<Option<Vec<u8>>, Error> {
        let Some(zt) = &self.zt else {
            return Ok(None);
        };
        let info = zt.info(name)?;
        if role == "data" {
            info.dense_component().map_err(|e| e.in_file(zt.path()))?;
        }
        let Some(component) = info.components.get(role) else {
            return Ok(None);
        };
        let Some(len) = component.decoded_len else {
            return Ok(None);
        };
        let len = usize::try_from(len).map_err(|_| Error::LimitExceeded {
            what: format!("component '{role}'"),
            size: len,
            limit: usize::MAX as u64,
        })?;
        // Probe: `vec![0; n]` aborts the process when the allocation fails.
        let mut probe: Vec<u8> = Vec::new();
        probe.try_reserve_exact(len).map_err(|_| {
            Error::LimitExceeded {
                what: format!("component '{role}' (out of memory)"),
                size: len as u64,
                limit: 0,
            }
            .in_tensor(name)
        })?;
        drop(probe);
        let mut out = vec![0u8; len];
        zt.read_component_into(name, role, &mut out)?;
        Ok(Some(out))
    }

    fn component(self: &Arc<Self>, name: &str, role: &str, copy: bool) -> Result<Buffer, Error> {
        if copy && let Some(v) = self.read_owned(name, role)? {
            return Ok(Buffer::from_vec(v));
        }
        let bytes = if role == "data" && self.reader.info(name)?.format == ztensor::Format::Dense {
            self.reader.dense(name)?
        } else {
            self.reader.component(name, role)?
        };
        Ok(self.expose(bytes, copy))
    }
}

type Opened = (
    Arc<dyn TensorReader>,
    Option<Arc<ZtReader>>,
    Option<(usize, usize)>,
);

fn span(bytes: &[u8]) -> Option<(usize, usize)> {
    Some((bytes.as_ptr() as usize, bytes.len()))
}

/// Opens `path` with the reader its bytes call for, keeping the concrete reader where it says
/// where its map is.
fn open_reader(path: &Path, base: Option<&Path>) -> Result<Opened, Error> {
    if let Some(base) = base {
        let r = Arc::new(ztensor::delta::open(path, base)?);
        let known = span(r.file_bytes());
        return Ok((r.clone(), Some(r), known));
    }
    Ok(match ztensor::detect(path)? {
        FileFormat::Zt => {
            let r = Arc::new(ZtReader::open(path)?);
            let known = span(r.file_bytes());
            (r.clone(), Some(r), known)
        }
        FileFormat::Safetensors => {
            let r = ztensor::safetensors::SafetensorsReader::open(path)?;
            let known = span(r.file_bytes());
            (Arc::new(r), None, known)
        }
        FileFormat::Pickle => {
            let r = ztensor::pickle::PickleReader::open(path)?;
            let known = span(r.file_bytes());
            (Arc::new(r), None, known)
        }
        FileFormat::ZtV2 => {
            let r = ztensor::zt2::ZtV2Reader::open(path)?;
            let known = span(r.file_bytes());
            (Arc::new(r), None, known)
        }
        FileFormat::Onnx => {
            let r = ztensor::onnx::OnnxReader::open(path)?;
            let known = span(r.model_bytes());
            (Arc::new(r), None, known)
        }
        other => (Arc::from(ztensor::open_as(path, other)?), None, None),
    })
}

/// An open tensor file (the Python `ztensor.Reader` wraps it).
#[pyclass(frozen, name = "_Reader", module = "ztensor._native")]
pub struct PyReader {
    state: Arc<ReaderState>,
}

#[pymethods]
impl PyReader {
    /// Opens `path` (any supported format, detected from its bytes). With `base`, `path` is a
    /// checkpoint-delta `.zt` file made against `base`.
    #[new]
    #[pyo3(signature = (path, base = None))]
    fn new(py: Python<'_>, path: PathBuf, base: Option<PathBuf>) -> PyResult<PyReader> {
        let state = py
            .detach(|| ReaderState::open(&path, base.as_deref()))
            .py_err(py)?;
        Ok(PyReader {
            state: Arc::new(state),
        })
    }

    /// Short format name: "zt", "safetensors", "pickle", "gguf", "npz", "onnx", "zt2", ...
    #[getter]
    fn format(&self) -> String {
        self.state.reader.format_name().to_owned()
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.state.reader.path().to_owned()
    }

    /// Tensor names in the reader's stable order.
    fn names(&self) -> Vec<String> {
        self.state
            .reader
            .names()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    /// Tensor names in the order their data lies in the file.
    fn names_in_file_order(&self) -> Vec<String> {
        self.state
            .reader
            .names_in_file_order()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    fn __len__(&self) -> usize {
        self.state.reader.len()
    }

    fn __contains__(&self, name: &str) -> bool {
        self.state.reader.contains(name)
    }

    /// File-level metadata as a dict.
    fn metadata(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        values::attributes_to_py(py, self.state.reader.metadata())
    }

    /// Everything known about one tensor, as a dict (no data is read).
    fn info(&self, py: Python<'_>, name: &str) -> PyResult<Py<PyAny>> {
        let info = self.state.reader.info(name).py_err(py)?;
        let d = PyDict::new(py);
        d.set_item("name", &info.name)?;
        d.set_item("shape", PyList::new(py, info.shape.dims())?)?;
        d.set_item("format", info.format.name())?;
        let components = PyDict::new(py);
        for (role, c) in &info.components {
            let cd = PyDict::new(py);
            cd.set_item("dtype", c.dtype.long_name())?;
            cd.set_item("type", c.logical_type.as_ref().map(|t| t.name().to_owned()))?;
            cd.set_item("offset", c.location.map(|r| r.offset))?;
            cd.set_item("length", c.location.map(|r| r.length))?;
            cd.set_item("encoding", c.encoding.name())?;
            cd.set_item("decoded_length", c.decoded_len)?;
            cd.set_item("digest", c.digest.as_ref().map(|d| d.to_string()))?;
            components.set_item(role, cd)?;
        }
        d.set_item("components", components)?;
        let attributes = match &info.attributes {
            Some(a) => values::attributes_to_py(py, a)?,
            None => py.None(),
        };
        d.set_item("attributes", attributes)?;
        d.into_py_any(py)
    }

    /// The decoded bytes of one component: zero-copy from the file when they lie there raw and
    /// `copy` is false, else a buffer of their own. `role="data"` of a dense tensor is checked
    /// against its shape.
    #[pyo3(signature = (name, role = "data", copy = false))]
    fn component(&self, py: Python<'_>, name: &str, role: &str, copy: bool) -> PyResult<Buffer> {
        let state = &self.state;
        py.detach(|| state.component(name, role, copy)).py_err(py)
    }

    /// Decodes one component straight into `dst`, a writable C-contiguous buffer of exactly its
    /// decoded size (`.zt` files decode without any intermediate copy).
    #[pyo3(signature = (name, role, dst))]
    fn read_into(
        &self,
        py: Python<'_>,
        name: &str,
        role: &str,
        dst: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let dst = InputBuffer::get(dst, "the destination", true)?;
        let out = dst.raw();
        let state = &self.state;
        py.detach(|| -> Result<(), Error> {
            // SAFETY: `dst` stays exported (pinned, writable, C-contiguous) until this function
            // returns, after the closure.
            let out = unsafe { out.as_mut_slice() };
            if let Some(zt) = &state.zt {
                return zt.read_component_into(name, role, out);
            }
            let bytes =
                if role == "data" && state.reader.info(name)?.format == ztensor::Format::Dense {
                    state.reader.dense(name)?
                } else {
                    state.reader.component(name, role)?
                };
            if bytes.len() != out.len() {
                return Err(Error::LengthMismatch {
                    component: role.to_owned(),
                    expected: bytes.len() as u64,
                    actual: out.len() as u64,
                }
                .in_tensor(name)
                .in_file(state.reader.path()));
            }
            out.copy_from_slice(&bytes);
            Ok(())
        })
        .py_err(py)
    }

    /// Verifies every digest (and, with `decode`, that every component decodes); returns how
    /// many digests were checked. `.zt` files only.
    #[pyo3(signature = (decode = true))]
    fn verify(&self, py: Python<'_>, decode: bool) -> PyResult<usize> {
        let state = &self.state;
        py.detach(|| match &state.zt {
            Some(zt) => zt.verify_all(decode),
            None => Err(Error::Unsupported(format!(
                "verify is for .zt files; this is {}",
                state.reader.format_name()
            ))),
        })
        .py_err(py)
    }

    /// `(address, length)` of the copy-on-write map that zero-copy arrays point into, or None
    /// when this file's arrays are not served from one.
    fn _map_range(&self) -> Option<(usize, usize)> {
        self.state.cow.as_ref().map(|c| (c.base, c.len))
    }
}
