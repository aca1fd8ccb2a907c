//! The weight codec (`ztc1` frames) on Python buffers; `ztensor.codec` wraps these.

use pyo3::IntoPyObjectExt;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use ztensor::Error;
use ztensor::codec::{self, CompressOptions, DecompressOptions};

use crate::buffer::{InputBuffer, RawBytes};
use crate::errors::IntoPyResult;
use crate::writer::{parse_dtype, parse_effort};

fn compress_options(
    effort: &str,
    chunk_size: Option<usize>,
    threads: Option<usize>,
) -> PyResult<CompressOptions> {
    let mut opts = CompressOptions::with_effort(parse_effort(effort)?);
    if let Some(c) = chunk_size {
        opts.chunk_size = c;
    }
    opts.threads = threads;
    Ok(opts)
}

fn decompress_options(threads: Option<usize>, max_decoded_len: Option<u64>) -> DecompressOptions {
    DecompressOptions {
        threads,
        max_decoded_len: max_decoded_len.unwrap_or(codec::MAX_DECODED_LEN),
    }
}

fn parse_codec_dtype(py: Python<'_>, dtype: Option<&str>) -> PyResult<Option<ztensor::DType>> {
    dtype.map(parse_dtype).transpose().py_err(py)
}

/// Compresses `data` (any contiguous buffer) into one frame.
#[pyfunction]
#[pyo3(signature = (data, dtype = None, effort = "default", chunk_size = None, threads = None))]
pub fn codec_compress<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    dtype: Option<&str>,
    effort: &str,
    chunk_size: Option<usize>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let opts = compress_options(effort, chunk_size, threads)?;
    let dtype = parse_codec_dtype(py, dtype)?;
    let input = InputBuffer::get(data, "data", false)?;
    let raw = input.raw();
    // SAFETY: `input` stays exported until this function returns.
    let frame = py
        .detach(|| codec::compress(unsafe { raw.as_slice() }, dtype, &opts))
        .py_err(py)?;
    Ok(PyBytes::new(py, &frame))
}

/// Compresses `data` as an XOR delta against `reference` (same length).
#[pyfunction]
#[pyo3(signature = (data, reference, dtype = None, effort = "default", chunk_size = None, threads = None))]
#[allow(clippy::too_many_arguments)]
pub fn codec_compress_delta<'py>(
    py: Python<'py>,
    data: &Bound<'py, PyAny>,
    reference: &Bound<'py, PyAny>,
    dtype: Option<&str>,
    effort: &str,
    chunk_size: Option<usize>,
    threads: Option<usize>,
) -> PyResult<Bound<'py, PyBytes>> {
    let opts = compress_options(effort, chunk_size, threads)?;
    let dtype = parse_codec_dtype(py, dtype)?;
    let input = InputBuffer::get(data, "data", false)?;
    let refb = InputBuffer::get(reference, "reference", false)?;
    let (raw, rawref) = (input.raw(), refb.raw());
    let frame = py
        .detach(|| {
            // SAFETY: both buffers stay exported until this function returns.
            let (d, r) = unsafe { (raw.as_slice(), rawref.as_slice()) };
            codec::compress_delta(d, r, dtype, &opts)
        })
        .py_err(py)?;
    Ok(PyBytes::new(py, &frame))
}

/// Decodes into `out` (exactly the decoded size) or into new `bytes`.
fn decode<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    reference: Option<&Bound<'py, PyAny>>,
    out: Option<&Bound<'py, PyAny>>,
    opts: DecompressOptions,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    let frame_buf = InputBuffer::get(frame, "frame", false)?;
    let ref_buf = reference
        .map(|r| InputBuffer::get(r, "reference", false))
        .transpose()?;
    let raw_frame = frame_buf.raw();
    let raw_ref = ref_buf.as_ref().map(InputBuffer::raw);
    let run = |out: &mut [u8]| -> Result<(), Error> {
        // SAFETY: the frame and reference buffers stay exported until `decode` returns.
        let f = unsafe { raw_frame.as_slice() };
        match raw_ref {
            Some(r) => {
                // SAFETY: as above.
                let reference = unsafe { r.as_slice() };
                codec::decompress_delta_into_with(f, reference, out, &opts)
            }
            None => codec::decompress_into_with(f, out, &opts),
        }
    };
    if let Some(out) = out {
        let out_buf = InputBuffer::get(out, "out", true)?;
        let raw_out: RawBytes = out_buf.raw();
        // SAFETY: `out_buf` stays exported (writable) until this function returns.
        py.detach(|| run(unsafe { raw_out.as_mut_slice() }))
            .py_err(py)?;
        return Ok(None);
    }
    // SAFETY: the frame buffer stays exported until this function returns.
    let info = codec::frame_info(unsafe { raw_frame.as_slice() }).py_err(py)?;
    let too_big = || Error::LimitExceeded {
        what: "ztc1 decoded length".into(),
        size: info.decoded_len,
        limit: opts.max_decoded_len,
    };
    if info.decoded_len > opts.max_decoded_len {
        return Err(too_big()).py_err(py);
    }
    let len = usize::try_from(info.decoded_len)
        .map_err(|_| too_big())
        .py_err(py)?;
    // Probe before Python allocates and zeroes `len` bytes, so an absurd length is an error
    // rather than an out-of-memory kill.
    let mut probe: Vec<u8> = Vec::new();
    probe
        .try_reserve_exact(len)
        .map_err(|_| too_big())
        .py_err(py)?;
    drop(probe);
    let bytes = PyBytes::new_with(py, len, |buf| py.detach(|| run(buf)).py_err(py))?;
    Ok(Some(bytes.into_any()))
}

/// Decodes a frame; with `out`, into that writable buffer (returns None).
#[pyfunction]
#[pyo3(signature = (frame, out = None, threads = None, max_decoded_len = None))]
pub fn codec_decompress<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    out: Option<&Bound<'py, PyAny>>,
    threads: Option<usize>,
    max_decoded_len: Option<u64>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    decode(
        py,
        frame,
        None,
        out,
        decompress_options(threads, max_decoded_len),
    )
}

/// Decodes a delta frame against the reference it was made with.
#[pyfunction]
#[pyo3(signature = (frame, reference, out = None, threads = None, max_decoded_len = None))]
pub fn codec_decompress_delta<'py>(
    py: Python<'py>,
    frame: &Bound<'py, PyAny>,
    reference: &Bound<'py, PyAny>,
    out: Option<&Bound<'py, PyAny>>,
    threads: Option<usize>,
    max_decoded_len: Option<u64>,
) -> PyResult<Option<Bound<'py, PyAny>>> {
    decode(
        py,
        frame,
        Some(reference),
        out,
        decompress_options(threads, max_decoded_len),
    )
}

/// What a frame's header says, without decoding it.
#[pyfunction]
pub fn codec_frame_info(py: Python<'_>, frame: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let buf = InputBuffer::get(frame, "frame", false)?;
    // SAFETY: `buf` stays exported until this function returns.
    let info = codec::frame_info(unsafe { buf.raw().as_slice() }).py_err(py)?;
    let d = PyDict::new(py);
    d.set_item("decoded_length", info.decoded_len)?;
    d.set_item("dtype", info.dtype.map(|t| t.long_name()))?;
    d.set_item("is_delta", info.is_delta)?;
    d.set_item("reference_length", info.reference_len)?;
    d.set_item("chunk_size", info.chunk_size)?;
    d.set_item("segments", info.segments)?;
    d.set_item("copy_segments", info.copy_segments)?;
    d.set_item("header_length", info.header_len)?;
    d.set_item("crc32c", info.crc32c)?;
    if buf.len() < info.header_len {
        return Err(PyValueError::new_err("frame shorter than its header"));
    }
    d.into_py_any(py)
}
