//! The native half of the `ztensor` Python package (`ztensor._native`), built by maturin.
//!
//! It wraps only the `ztensor` facade crate and keeps the Python side thin: readers hand out
//! [`buffer::Buffer`]s (zero-copy windows into the file, or decoded bytes) that the Python
//! modules `ztensor.numpy` / `ztensor.torch` turn into arrays; writers take any contiguous
//! Python buffer. Every call that reads, decodes or writes releases the GIL. Errors become the
//! exception classes of `ztensor._errors` (see [`errors`]), carrying the file and tensor.
//!
//! Build and test: `maturin develop -m crates/ztensor-py/Cargo.toml` into a venv, then
//! `python -m pytest crates/ztensor-py/tests` (tests/run.sh does both).

mod buffer;
mod codec;
mod errors;
mod reader;
mod values;
mod writer;

use pyo3::prelude::*;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<buffer::Buffer>()?;
    m.add_class::<reader::PyReader>()?;
    m.add_class::<writer::PyWriter>()?;
    m.add_function(wrap_pyfunction!(writer::remove_tensors, m)?)?;
    m.add_function(wrap_pyfunction!(writer::replace_tensor, m)?)?;
    m.add_function(wrap_pyfunction!(writer::convert, m)?)?;
    m.add_function(wrap_pyfunction!(writer::convert_to_safetensors, m)?)?;
    m.add_function(wrap_pyfunction!(writer::delta_create, m)?)?;
    m.add_function(wrap_pyfunction!(writer::delta_apply, m)?)?;
    m.add_function(wrap_pyfunction!(codec::codec_compress, m)?)?;
    m.add_function(wrap_pyfunction!(codec::codec_compress_delta, m)?)?;
    m.add_function(wrap_pyfunction!(codec::codec_decompress, m)?)?;
    m.add_function(wrap_pyfunction!(codec::codec_decompress_delta, m)?)?;
    m.add_function(wrap_pyfunction!(codec::codec_frame_info, m)?)?;
    Ok(())
}
