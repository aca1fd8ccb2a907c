//! Reader for HDF5 files through libhdf5.
//!
//! [`Hdf5Reader`] opens an HDF5 file with the reference C library (via the `hdf5-metno` crate,
//! linked against the system's libhdf5: Debian's `libhdf5-dev`), walks every group and presents
//! every numeric dataset as a dense tensor named by its path without the leading `/`
//! (`encoder/layer0/weight`). HDF5 has no order of its own that readers agree on, so names are
//! sorted by their UTF-8 bytes.
//!
//! # What is read
//!
//! - Groups are walked depth-first in name order; each object is listed once, under the first
//!   path that reaches it (as h5py's `visititems`), so hard-link cycles end. Soft links,
//!   external links, datasets with external raw storage and virtual datasets are not followed
//!   (the last three would make libhdf5 open files that this one names).
//! - Element types: int8..int64, uint8..uint64, float16/32/64, h5py's boolean (an enum
//!   `{FALSE: 0, TRUE: 1}` over a 1-byte integer) as `bool`, and h5py's complex (a compound
//!   `{r, i}` of two f32 or f64) as `f32`/`f64` with logical type `complex64`/`complex128`, in
//!   either byte order. Other datasets (strings, other compounds and enums, variable-length
//!   data, references, arrays, null dataspaces) are not tensors: each is listed with the reason
//!   in the file metadata under `zt.skipped` (a map of path to reason), never dropped silently.
//! - Root group attributes become the file [`metadata`](zt_core::TensorReader::metadata);
//!   dataset attributes become the tensor's attributes. Numbers, booleans and strings (scalars
//!   or arrays, flattened) are converted; h5py's `Empty` becomes `Null`; other attribute types
//!   are listed in `zt.skipped` as `"<path>@<attribute>"`. Attributes of other groups are not
//!   read.
//!
//! # Zero-copy
//!
//! The reader maps the file itself ([`zt_core::MappedFile`]). A dataset that is contiguous,
//! unfiltered, allocated and stored exactly as its little-endian in-memory type (on a
//! little-endian host) has an absolute file offset (`H5Dget_offset`, user block included): its
//! component `location` is that range, checked against the file, and
//! [`component`](zt_core::TensorReader::component) returns a borrowed slice of the map. HDF5
//! places raw data at any offset, so the slice may be unaligned: typed access must check
//! alignment (or copy). Every other dataset (chunked, compressed with gzip, shuffle or LZF,
//! compact, big-endian, never written so only a fill value exists) is read whole through libhdf5
//! when asked for, converted to little-endian and returned owned; its `location` is `None` and
//! its `encoding` names the filter pipeline (`Encoding::Other("shuffle+deflate")`) when there is
//! one.
//!
//! # Safety and limits
//!
//! libhdf5 parses the file, so its robustness is libhdf5's: the reader checks the signature
//! first, turns every libhdf5 failure into a [`zt_core::Error`] (`Malformed`, with libhdf5's
//! message), and libhdf5's own error-stack printing is switched off (hdf5-metno silences it on
//! every thread that calls the library). Every in-place range is checked against the mapped
//! file, shapes and libhdf5's element counts are overflow-checked and must agree, chunk shapes
//! are checked the way libhdf5 checks them at creation (libhdf5 1.10 trusts them when reading),
//! and reads through the library are capped by [`OpenOptions::max_read_len`]
//! ([`DEFAULT_MAX_READ_LEN`]) and allocate fallibly. Such a read holds the elements twice at its
//! peak (libhdf5's native buffer, then the little-endian copy).
//!
//! **Untrusted files.** Debian's libhdf5 1.10.8 is not memory-safe on every damaged file: a
//! flipped byte in some object-header messages (e.g. the enum datatype of a boolean dataset)
//! makes `H5Dopen2` read out of bounds, which zt-hdf5 cannot prevent because libhdf5 parses the
//! headers. HDF5 2.x refuses those files. Open HDF5 files from untrusted sources only with a
//! current libhdf5 (hdf5-metno's `static` feature builds HDF5 2.x) or in a separate process.
//! Fuzzing this crate would fuzz libhdf5 itself, which is out of scope: there is no fuzz target
//! for it; the hostile tests cover signatures, garbage, truncation at every length, damaged
//! headers, data past the end of the file and crafted datasets.
//!
//! libhdf5 is not thread-safe; hdf5-metno serializes every call behind one global re-entrant
//! lock, and its handles are plain ids, so [`Hdf5Reader`] is `Send + Sync` and reads from many
//! threads are safe (but run one at a time inside libhdf5; zero-copy reads do not take the
//! lock). Like every mmap-based reader, the file must not be changed while it is open.

mod attrs;
mod reader;
mod types;

pub use reader::{Hdf5Reader, OpenOptions};

/// The format name used in error messages.
const FORMAT: &str = "HDF5";

/// Largest dataset read through libhdf5 (decompressed, converted) in one `component` call,
/// unless [`OpenOptions::max_read_len`] says otherwise. Same cap as `.zt`'s decoded components
/// (32 GiB).
pub const DEFAULT_MAX_READ_LEN: u64 = 32 << 30;

/// Most links followed in one file (groups, datasets and links together).
pub const MAX_LINKS: usize = 1 << 22;

/// Deepest group nesting walked.
pub const MAX_GROUP_DEPTH: usize = 512;

/// Most elements of one attribute converted (larger ones are listed in `zt.skipped`).
pub const MAX_ATTRIBUTE_ELEMENTS: usize = 1 << 16;
