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
//! libhdf5 parses the file: the reader checks the signature first, turns every libhdf5 failure
//! into a [`zt_core::Error`] (`Malformed`, with libhdf5's message), and libhdf5's own
//! error-stack printing is switched off (hdf5-metno silences it on every thread that calls the
//! library). Every in-place range is checked against the mapped file, shapes and libhdf5's
//! element counts are overflow-checked and must agree, chunk shapes are checked the way libhdf5
//! checks them at creation (libhdf5 1.10 trusts them when reading), and reads through the
//! library are capped by [`OpenOptions::max_read_len`] ([`DEFAULT_MAX_READ_LEN`]) and allocate
//! fallibly. Such a read holds the elements twice at its peak (the buffer libhdf5 fills, then
//! the returned copy).
//!
//! # Untrusted files: libhdf5 runs in child processes
//!
//! **Threat model.** Debian's libhdf5 1.10.8 is not memory-safe on damaged files: a flipped
//! byte in an object header, a heap or a B-tree makes it read or write out of bounds (SIGSEGV,
//! or heap corruption that glibc catches later with SIGABRT) or loop forever (in `H5Dopen2`,
//! `H5Aread`, group iteration). Damaging each of the first 8 KiB of `dtypes.h5` and `nested.h5`
//! (the test fixtures), one byte at a time, crashes libhdf5 on 131 of the 16,112 files and
//! keeps it busy for more than 2 s (mostly for good) on 18 more. HDF5 2.x refuses many such
//! files, but this crate links the system's libhdf5, and zt-hdf5 cannot check those structures
//! before libhdf5 parses them. The project's rule is that bad input gives an error, never a
//! crash or a hang of the caller; so, by default on unix ([`OpenOptions::isolate`]), **this
//! process never runs libhdf5 on the file**:
//!
//! - **Opening** forks a child that opens the file with libhdf5, walks and describes it exactly
//!   as above (and also walks the chunk index of every chunked dataset), replies through a pipe
//!   with what it found or with its error, and leaves with `_exit`. The parent rebuilds the
//!   tensors from the reply, checking it as it checks the file (a child that libhdf5 corrupted
//!   without crashing may send garbage). A child killed by a signal makes the open fail with
//!   `Malformed`: "libhdf5 crashed (SIGSEGV) while parsing; the file is damaged"; a child still
//!   running after [`OpenOptions::timeout`] ([`DEFAULT_TIMEOUT`]) is killed and the open fails
//!   with "libhdf5 hung". The error names the file.
//! - **Each read through libhdf5** (chunked, filtered, compact, big-endian, fill value) forks a
//!   child that opens the file and the dataset (by its path) and reads into an anonymous shared
//!   mapping that the parent made beforehand, of the dataset's size (already checked against
//!   `max_read_len`); the parent copies it into the returned buffer. Its timeout is `timeout`
//!   plus one second per [`ISOLATED_READ_RATE`] bytes (16 MiB). Zero-copy reads never touch
//!   libhdf5 and fork nothing.
//!
//! Checking in a child and then parsing again in this process is not enough: damage that does
//! not crash the child can still corrupt this process, as out-of-bounds accesses land
//! differently in another heap (a sweep of damaged files that did so died of `free(): invalid
//! pointer`).
//!
//! The fork happens while holding hdf5-metno's global lock, so no other thread is inside
//! libhdf5 at that moment and the child's copy of the library is consistent; in the child only
//! the forking thread exists, and it runs libhdf5, allocation (glibc's malloc is usable after
//! `fork`) and the pipe, then `_exit`s: no destructors, no `atexit` handlers, no return into the
//! caller's code. The child dies with its parent (Linux: `PR_SET_PDEATHSIG`) and writes no core
//! file. A process that ignores `SIGCHLD` cannot wait for its children; there, isolated opens
//! fail with an I/O error (use `isolate: false`).
//!
//! **Costs.** A fork per open and per read through libhdf5. Measured on a busy 2-vCPU virtual
//! machine (a bare `fork` + `waitpid` of the test process takes 0.5 ms there; debug build),
//! opening one of the test fixtures took 1.7 to 7.6 ms isolated against 0.1 to 1.5 ms
//! in-process, and a read through libhdf5 of one of their small chunked or compressed datasets
//! 1.8 to 2.5 ms against 0.02 ms. `fork` copies the page tables of the caller's private memory
//! and the child pays a copy-on-write fault for each page it writes, so both grow in a process
//! that holds many GiB. For trusted files, or where `fork` is not wanted, `isolate: false` runs
//! libhdf5 in-process (as on non-unix targets, where isolation is not available).
//!
//! **What isolation is not.** It stops a damaged file from crashing, hanging or corrupting the
//! caller. It is not a sandbox: the child has the caller's privileges, so a file crafted to
//! exploit libhdf5 could act with them (only this file is opened: external links, external
//! storage and virtual datasets are never followed). Files from hostile sources still call for
//! a current libhdf5 (hdf5-metno's `static` feature builds HDF5 2.x) or an OS-level sandbox.
//! Fuzzing this crate would fuzz libhdf5 itself, which is out of scope: there is no fuzz target;
//! the hostile tests cover signatures, garbage, truncation at every length, damaged bytes
//! (including ones that crash or hang libhdf5), data past the end of the file and crafted
//! datasets.
//!
//! libhdf5 is not thread-safe; hdf5-metno serializes every call behind one global re-entrant
//! lock, and its handles are plain ids, so [`Hdf5Reader`] is `Send + Sync` and reads from many
//! threads are safe (in-process they run one at a time inside libhdf5; isolated children run in
//! parallel, only their forks take the lock; zero-copy reads take no lock). Like every
//! mmap-based reader, the file must not be changed while it is open: isolated reads open it
//! again by its path.

mod attrs;
#[cfg(unix)]
mod isolate;
mod reader;
mod types;
#[cfg(unix)]
mod wire;

pub use reader::{Hdf5Reader, OpenOptions};

/// The format name used in error messages.
const FORMAT: &str = "HDF5";

/// Largest dataset read through libhdf5 (decompressed, converted) in one `component` call,
/// unless [`OpenOptions::max_read_len`] says otherwise. Same cap as `.zt`'s decoded components
/// (32 GiB).
pub const DEFAULT_MAX_READ_LEN: u64 = 32 << 30;

/// How long libhdf5 may take on one file, by default, when isolated (see
/// [`OpenOptions::timeout`]).
pub const DEFAULT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Bytes per second an isolated read through libhdf5 is granted on top of
/// [`OpenOptions::timeout`] (16 MiB/s: a 1 GiB dataset gets 64 s more). libhdf5 decompresses
/// gzip at well over 100 MiB/s, so only a stalled read, or a very slow disk, meets it.
pub const ISOLATED_READ_RATE: u64 = 16 << 20;

/// Longest description of a file's objects (tensors, attributes, skipped objects) that an
/// isolated open accepts from its child (1 GiB).
pub const MAX_PROBE_REPLY: usize = 1 << 30;

/// Most links followed in one file (groups, datasets and links together).
pub const MAX_LINKS: usize = 1 << 22;

/// Deepest group nesting walked.
pub const MAX_GROUP_DEPTH: usize = 512;

/// Most elements of one attribute converted (larger ones are listed in `zt.skipped`).
pub const MAX_ATTRIBUTE_ELEMENTS: usize = 1 << 16;
