//! `_Writer` and the whole-file operations (`remove_tensors`, `replace_tensor`).

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use ztensor::codec::Effort;
use ztensor::{
    ChecksumAlgorithm, ComponentData, ComponentOptions, Compression, DType, Error, Format,
    LogicalType, Writer,
};

use crate::buffer::{InputBuffer, RawBytes};
use crate::errors::IntoPyResult;
use crate::values;

/// A storage dtype from its short (`f32`) or NumPy-style (`float32`) name.
pub fn parse_dtype(name: &str) -> Result<DType, Error> {
    DType::from_name(name).or_else(|_| DType::from_long_name(name))
}

pub fn parse_effort(name: &str) -> PyResult<Effort> {
    match name {
        "fast" => Ok(Effort::Fast),
        "default" => Ok(Effort::Default),
        "max" => Ok(Effort::Max),
        other => Err(PyValueError::new_err(format!(
            "unknown codec effort '{other}' (expected 'fast', 'default' or 'max')"
        ))),
    }
}

/// `"raw"`, `"zstd"`, `"zstd:LEVEL"`, `"codec"` or `"codec:EFFORT"`.
pub fn parse_compression(spec: &str) -> PyResult<Compression> {
    let (kind, arg) = match spec.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (spec, None),
    };
    match (kind, arg) {
        ("raw", None) => Ok(Compression::Raw),
        ("zstd", None) => Ok(Compression::Zstd(3)),
        ("zstd", Some(level)) => {
            let level: i32 = level
                .parse()
                .map_err(|_| PyValueError::new_err(format!("bad zstd level '{level}'")))?;
            if !(-7..=22).contains(&level) {
                return Err(PyValueError::new_err(format!(
                    "zstd level {level} is outside -7..=22"
                )));
            }
            Ok(Compression::Zstd(level))
        }
        ("codec", None) => Ok(Compression::Codec(Effort::Default)),
        ("codec", Some(effort)) => Ok(Compression::Codec(parse_effort(effort)?)),
        _ => Err(PyValueError::new_err(format!(
            "unknown compression '{spec}' (expected raw, zstd[:LEVEL] or codec[:fast|default|max])"
        ))),
    }
}

/// Writes a `.zt` file (the Python `ztensor.Writer` wraps it). Nothing appears under the final
/// name until `finish`; a writer dropped or discarded before that leaves no file behind (an
/// append is truncated back to what the file was).
#[pyclass(frozen, name = "_Writer", module = "ztensor._native")]
pub struct PyWriter {
    inner: Mutex<Option<Writer>>,
    path: PathBuf,
}

/// One component as Python passes it: role, dtype name, logical type, contiguous buffer.
type ComponentArg<'py> = (String, String, Option<String>, Bound<'py, PyAny>);

impl PyWriter {
    fn lock(&self) -> MutexGuard<'_, Option<Writer>> {
        // A panic while holding the lock cannot leave the writer half-updated in a way later
        // calls could misread: every operation either completes or reports an error.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn finished_error(&self) -> Error {
        Error::InvalidArgument("the writer is already finished".into()).in_file(&self.path)
    }
}

#[pymethods]
impl PyWriter {
    /// Starts a new file at `path`, or with `append=True` adds tensors to an existing one.
    #[new]
    #[pyo3(signature = (path, append = false))]
    fn new(py: Python<'_>, path: PathBuf, append: bool) -> PyResult<PyWriter> {
        let writer = py
            .detach(|| {
                if append {
                    Writer::append(&path)
                } else {
                    Writer::create(&path)
                }
            })
            .py_err(py)?;
        Ok(PyWriter {
            inner: Mutex::new(Some(writer)),
            path,
        })
    }

    #[getter]
    fn path(&self) -> PathBuf {
        self.path.clone()
    }

    #[getter]
    fn finished(&self) -> bool {
        self.lock().is_none()
    }

    fn __contains__(&self, name: &str) -> bool {
        self.lock().as_ref().is_some_and(|w| w.contains(name))
    }

    /// Sets file-level metadata keys (root attributes), keeping the others.
    fn set_metadata(&self, py: Python<'_>, metadata: &Bound<'_, PyDict>) -> PyResult<()> {
        let attributes = values::attributes_from_py(metadata)?;
        let mut guard = self.lock();
        let writer = guard
            .as_mut()
            .ok_or_else(|| self.finished_error())
            .py_err(py)?;
        for (k, v) in attributes {
            writer.set_attribute(k, v);
        }
        Ok(())
    }

    /// Adds one tensor of any format. `compression` is a spec string (see
    /// `parse_compression`), `checksum` one of "none", "crc32c", "sha256".
    #[pyo3(signature = (name, shape, format, components, attributes = None, compression = "raw", checksum = "none"))]
    #[allow(clippy::too_many_arguments)]
    fn add(
        &self,
        py: Python<'_>,
        name: &str,
        shape: Vec<u64>,
        format: &str,
        components: Vec<ComponentArg<'_>>,
        attributes: Option<&Bound<'_, PyDict>>,
        compression: &str,
        checksum: &str,
    ) -> PyResult<()> {
        let options = ComponentOptions {
            compression: parse_compression(compression)?,
            checksum: ChecksumAlgorithm::from_name(checksum).py_err(py)?,
        };
        let attributes = attributes.map(values::attributes_from_py).transpose()?;
        let mut parts = Vec::with_capacity(components.len());
        for (role, dtype, logical, obj) in &components {
            let dtype = parse_dtype(dtype).py_err(py)?;
            let logical = logical.as_deref().map(LogicalType::from_name);
            let buffer = InputBuffer::get(obj, &format!("component '{role}'"), false)?;
            parts.push((role.as_str(), dtype, logical, buffer));
        }
        let raw: Vec<(&str, DType, Option<&LogicalType>, RawBytes)> = parts
            .iter()
            .map(|(role, dtype, logical, buffer)| (*role, *dtype, logical.as_ref(), buffer.raw()))
            .collect();
        let format = Format::from_name(format);
        py.detach(|| {
            let mut guard = self.lock();
            let writer = guard.as_mut().ok_or_else(|| self.finished_error())?;
            let data: Vec<ComponentData<'_>> = raw
                .iter()
                .map(|&(role, dtype, logical_type, bytes)| ComponentData {
                    role,
                    dtype,
                    logical_type,
                    // SAFETY: every buffer in `parts` stays exported (pinned, C-contiguous)
                    // until this method returns, after the closure.
                    bytes: unsafe { bytes.as_slice() },
                })
                .collect();
            writer.add_tensor(name, shape, format, &data, attributes, options)
        })
        .py_err(py)
    }

    /// Writes the manifest and footer and (for a new file) renames it into place. Returns the
    /// file's size.
    fn finish(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| {
            let writer = self.lock().take().ok_or_else(|| self.finished_error())?;
            writer.finish()
        })
        .py_err(py)
    }

    /// Abandons the file: a new file's temporary is removed, an append is rolled back.
    /// Does nothing once finished.
    fn discard(&self, py: Python<'_>) {
        py.detach(|| drop(self.lock().take()));
    }
}

/// Writes `input` without the tensors in `names` to `output` (which may be `input`).
#[pyfunction]
pub fn remove_tensors(
    py: Python<'_>,
    input: PathBuf,
    output: PathBuf,
    names: Vec<String>,
) -> PyResult<()> {
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    py.detach(|| ztensor::remove_tensors(&input, &output, &names))
        .py_err(py)
}

/// Overwrites the bytes of a raw dense tensor in place; `data` must have exactly its size.
#[pyfunction]
pub fn replace_tensor(
    py: Python<'_>,
    path: PathBuf,
    name: &str,
    data: &Bound<'_, PyAny>,
) -> PyResult<()> {
    let buffer = InputBuffer::get(data, "data", false)?;
    let raw = buffer.raw();
    py.detach(|| {
        // SAFETY: `buffer` stays exported until this function returns, after the closure.
        let bytes = unsafe { raw.as_slice() };
        ztensor::replace_tensor(&path, name, bytes)
    })
    .py_err(py)
}

/// Converts tensor files of any format into one `.zt` file; returns a summary dict.
#[pyfunction]
#[pyo3(signature = (sources, dest, compression = "raw", checksum = "none", restorable = false, drop_metadata = false))]
pub fn convert(
    py: Python<'_>,
    sources: Vec<PathBuf>,
    dest: PathBuf,
    compression: &str,
    checksum: &str,
    restorable: bool,
    drop_metadata: bool,
) -> PyResult<Py<PyAny>> {
    let options = ztensor::ConvertOptions {
        compression: parse_compression(compression)?,
        checksum: ChecksumAlgorithm::from_name(checksum).py_err(py)?,
        drop_metadata,
        restorable,
    };
    let summary = py
        .detach(|| ztensor::convert(&sources, &dest, &options))
        .py_err(py)?;
    let d = PyDict::new(py);
    d.set_item("tensors", summary.tensors)?;
    d.set_item("bytes_read", summary.bytes_read)?;
    d.set_item("file_size", summary.file_size)?;
    Ok(d.into_any().unbind())
}

/// Writes the dense tensors of any readable file as a safetensors file (byte-identical to the
/// original when `source` was converted from safetensors with `restorable`). Returns its size.
#[pyfunction]
pub fn convert_to_safetensors(py: Python<'_>, source: PathBuf, dest: PathBuf) -> PyResult<u64> {
    py.detach(|| ztensor::convert_to_safetensors(&source, &dest))
        .py_err(py)
}

/// Writes `dest`, a checkpoint-delta `.zt` file holding `target` relative to `base` (both any
/// readable format); returns a summary dict.
#[pyfunction]
#[pyo3(signature = (base, target, dest, effort = "default", checksum = "crc32c", threads = None))]
pub fn delta_create(
    py: Python<'_>,
    base: PathBuf,
    target: PathBuf,
    dest: PathBuf,
    effort: &str,
    checksum: &str,
    threads: Option<usize>,
) -> PyResult<Py<PyAny>> {
    let options = ztensor::delta::DeltaOptions {
        effort: parse_effort(effort)?,
        checksum: ChecksumAlgorithm::from_name(checksum).py_err(py)?,
        threads,
        ..Default::default()
    };
    let s = py
        .detach(|| ztensor::delta::create(&base, &target, &dest, &options))
        .py_err(py)?;
    let d = PyDict::new(py);
    d.set_item("tensors", s.tensors)?;
    d.set_item("copies", s.copies)?;
    d.set_item("deltas", s.deltas)?;
    d.set_item("full", s.full)?;
    d.set_item("bytes_in", s.bytes_in)?;
    d.set_item("file_size", s.file_size)?;
    Ok(d.into_any().unbind())
}

/// Expands a checkpoint-delta file into a standalone file (`.zt`, or safetensors when `dest`
/// ends in `.safetensors`). Returns the number of tensors.
#[pyfunction]
#[pyo3(signature = (base, delta, dest, compression = "raw", checksum = "none"))]
pub fn delta_apply(
    py: Python<'_>,
    base: PathBuf,
    delta: PathBuf,
    dest: PathBuf,
    compression: &str,
    checksum: &str,
) -> PyResult<usize> {
    let options = ztensor::ConvertOptions {
        compression: parse_compression(compression)?,
        checksum: ChecksumAlgorithm::from_name(checksum).py_err(py)?,
        ..Default::default()
    };
    py.detach(|| ztensor::delta::apply(&base, &delta, &dest, &options))
        .map(|s| s.tensors)
        .py_err(py)
}
