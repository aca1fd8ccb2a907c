//! Bytes shared with Python without copying, in both directions.
//!
//! [`Buffer`] hands Rust-owned bytes to Python through the buffer protocol: either a heap
//! allocation it owns (decoded or copied data) or a window into a reader's memory map, in
//! which case it keeps the reader alive. NumPy (`np.frombuffer`) and torch (`torch.frombuffer`)
//! wrap it without a copy, and the array's `base` keeps the `Buffer` alive.
//!
//! [`InputBuffer`] is the other way: a contiguous Python buffer (NumPy array, bytes,
//! memoryview) read, or written, by Rust in place while the GIL is released.

use std::any::Any;
use std::ffi::{c_char, c_int, c_void};
use std::ptr;
use std::sync::Arc;

use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;

/// Bytes the Python side may see as a buffer.
#[pyclass(frozen, module = "ztensor._native")]
pub struct Buffer {
    ptr: *mut u8,
    len: usize,
    writable: bool,
    keep: Keep,
}

// SAFETY: `ptr..ptr+len` is either owned by this value (a leaked `Box<[u8]>`, freed in `Drop`)
// or lies in a memory map kept alive by `keep`; Rust never reads or writes it through this
// value after construction, so sharing it between threads adds no data race on the Rust side
// (what Python threads do with a writable buffer is up to them, as for any bytearray).
unsafe impl Send for Buffer {}
// SAFETY: as above.
unsafe impl Sync for Buffer {}

enum Keep {
    /// The bytes are a `Box<[u8]>` leaked into `ptr`/`len`, freed on drop.
    Heap,
    /// The bytes lie in memory owned by this object (a reader and its maps).
    Owner(#[allow(dead_code)] Arc<dyn Any + Send + Sync>),
}

impl Buffer {
    /// Takes ownership of `bytes` (no copy).
    pub fn from_vec(bytes: Vec<u8>) -> Buffer {
        let boxed: Box<[u8]> = bytes.into_boxed_slice();
        let len = boxed.len();
        let ptr = Box::into_raw(boxed).cast::<u8>();
        Buffer {
            ptr,
            len,
            writable: true,
            keep: Keep::Heap,
        }
    }

    /// A window into memory that `owner` keeps valid for as long as it lives.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay valid (and, when `writable`, writable without affecting any
    /// memory Rust reads) for as long as `owner` is alive.
    pub unsafe fn borrowed(
        ptr: *const u8,
        len: usize,
        writable: bool,
        owner: Arc<dyn Any + Send + Sync>,
    ) -> Buffer {
        Buffer {
            ptr: ptr.cast_mut(),
            len,
            writable,
            keep: Keep::Owner(owner),
        }
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        if let Keep::Heap = self.keep {
            // SAFETY: `ptr`/`len` came from `Box::into_raw` of a `Box<[u8]>` of this length in
            // `from_vec`, and are freed only here.
            drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(self.ptr, self.len)) });
        }
    }
}

#[pymethods]
impl Buffer {
    fn __len__(&self) -> usize {
        self.len
    }

    /// Address of the first byte (for alignment checks and tests).
    #[getter]
    fn address(&self) -> usize {
        self.ptr as usize
    }

    /// Whether Python may write to the bytes (heap copies, and copy-on-write file maps).
    #[getter]
    fn writable(&self) -> bool {
        self.writable
    }

    /// Whether the bytes lie in a reader's memory map rather than in a buffer of their own.
    #[getter]
    fn mapped(&self) -> bool {
        matches!(self.keep, Keep::Owner(_))
    }

    /// # Safety
    /// Called by CPython with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        if view.is_null() {
            return Err(PyBufferError::new_err("null view"));
        }
        let this = slf.get();
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE && !this.writable {
            return Err(PyBufferError::new_err("this buffer is read-only"));
        }
        let (ptr, len, writable) = (this.ptr, this.len, this.writable);
        // SAFETY: `view` is non-null and CPython hands us a `Py_buffer` to fill. The format is
        // a static string and `shape`/`strides` point into the view itself, so nothing needs
        // freeing in `__releasebuffer__`; `obj` holds a reference to `slf`, which keeps the
        // bytes alive until the view is released.
        unsafe {
            (*view).obj = slf.into_any().into_ptr();
            (*view).buf = ptr.cast::<c_void>();
            (*view).len = len as isize;
            (*view).readonly = c_int::from(!writable);
            (*view).itemsize = 1;
            (*view).format = if flags & ffi::PyBUF_FORMAT == ffi::PyBUF_FORMAT {
                c"B".as_ptr().cast_mut()
            } else {
                ptr::null_mut::<c_char>()
            };
            (*view).ndim = 1;
            (*view).shape = if flags & ffi::PyBUF_ND == ffi::PyBUF_ND {
                &mut (*view).len
            } else {
                ptr::null_mut()
            };
            (*view).strides = if flags & ffi::PyBUF_STRIDES == ffi::PyBUF_STRIDES {
                &mut (*view).itemsize
            } else {
                ptr::null_mut()
            };
            (*view).suboffsets = ptr::null_mut();
            (*view).internal = ptr::null_mut();
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "<ztensor._native.Buffer {} bytes, {}{}>",
            self.len,
            if self.writable {
                "writable"
            } else {
                "read-only"
            },
            if self.mapped() { ", mapped" } else { "" }
        )
    }
}

/// A byte range that may cross into `Python::detach` (raw pointers are not `Send`).
#[derive(Clone, Copy)]
pub struct RawBytes {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: only a pointer and a length; whoever creates it keeps the memory alive (and the
// Python buffer exported) for as long as it is used. See `InputBuffer`.
unsafe impl Send for RawBytes {}
// SAFETY: as above.
unsafe impl Sync for RawBytes {}

impl RawBytes {
    /// # Safety
    /// The memory must be valid for reads for the lifetime the caller picks, and not be
    /// written through any other path meanwhile.
    pub unsafe fn as_slice<'a>(self) -> &'a [u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: per this function's contract.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// # Safety
    /// The memory must be valid for writes for the lifetime the caller picks, and not be
    /// accessed through any other path meanwhile.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn as_mut_slice<'a>(self) -> &'a mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: per this function's contract.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

/// A C-contiguous Python buffer, exported (and so pinned: it cannot be resized or freed) for as
/// long as this value lives.
pub struct InputBuffer {
    buffer: PyUntypedBuffer,
}

impl InputBuffer {
    /// Exports `obj`'s buffer; `writable` also requires that Python lets us write to it.
    pub fn get(obj: &Bound<'_, PyAny>, what: &str, writable: bool) -> PyResult<InputBuffer> {
        let buffer = PyUntypedBuffer::get(obj).map_err(|e| {
            PyValueError::new_err(format!(
                "{what} must support the buffer protocol (a NumPy array, bytes, memoryview): {e}"
            ))
        })?;
        if !buffer.is_c_contiguous() {
            return Err(PyValueError::new_err(format!(
                "{what} must be C-contiguous"
            )));
        }
        if writable && buffer.readonly() {
            return Err(PyValueError::new_err(format!("{what} is read-only")));
        }
        Ok(InputBuffer { buffer })
    }

    /// The exported bytes. Valid while `self` lives.
    pub fn raw(&self) -> RawBytes {
        RawBytes {
            ptr: self.buffer.buf_ptr().cast::<u8>(),
            len: self.buffer.len_bytes(),
        }
    }

    pub fn len(&self) -> usize {
        self.buffer.len_bytes()
    }
}
