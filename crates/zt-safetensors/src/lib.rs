//! Reader and writer for [safetensors](https://github.com/huggingface/safetensors) files.
//!
//! # Format
//!
//! An 8-byte little-endian length `N`, a JSON header of `N` bytes (UTF-8, one object, padded
//! with whitespace), then the data section from offset `8 + N` to the end of the file. The
//! header maps each tensor name to `{"dtype", "shape", "data_offsets": [begin, end)}` (offsets
//! relative to the data section) and may hold `"__metadata__"`, a string-to-string map.
//! Element bytes are raw little-endian, row-major.
//!
//! # Reading ([`SafetensorsReader`])
//!
//! - The file is memory-mapped once ([`zt_core::MappedFile`]) and the whole header is
//!   validated at [`open`](SafetensorsReader::open); afterwards nothing can fail but a lookup.
//! - Names are sorted by UTF-8 bytes: what `safe_open(...).keys()` returns.
//! - Every tensor is [`zt_core::Format::Dense`] with one raw `data` component whose `location`
//!   is the absolute byte range in the file. [`component`](zt_core::TensorReader::component)
//!   returns `Cow::Borrowed` slices of the map: zero-copy, always. Alignment is whatever the
//!   writer chose: the reference writer pads the header so the data section starts at a
//!   multiple of 8 and puts larger dtypes first, so its tensors sit at multiples of their
//!   element size; other writers may put a tensor at any byte (the fixtures include an `f32`
//!   tensor at an odd offset). Callers that want typed slices must check alignment (or copy):
//!   they get bytes.
//! - `__metadata__` becomes the file attributes, every value a [`zt_core::Value::Text`];
//!   [`header_metadata`](SafetensorsReader::header_metadata) tells an absent `__metadata__`
//!   from an empty one.
//!
//! Dtypes ([`zt_dtype`]): `BOOL`, `U8`..`U64`, `I8`..`I64`, `F16`, `BF16`, `F32`, `F64` map to
//! the same storage dtype; the FP8 kinds `F8_E4M3`, `F8_E5M2`, `F8_E4M3FNUZ`, `F8_E5M2FNUZ`,
//! `F8_E8M0` to `u8` + `f8_e4m3fn` / `f8_e5m2` / `f8_e4m3fnuz` / `f8_e5m2fnuz` / `f8_e8m0`;
//! `F4` to `u8` + `f4_e2m1` (two per byte, low nibble first); `F6_E2M3` / `F6_E3M2` to `u8` +
//! `LogicalType::Other("f6_e2m3" / "f6_e3m2")` (6 bits per element, packed; the element count
//! must make a whole number of bytes); `C64` to `f32` + `complex64`. Shapes are always the
//! logical element counts, as in the header.
//!
//! # Validation
//!
//! At least as strict as the `safetensors` crate (0.8, which the Python library is built on),
//! and refusing everything it refuses:
//!
//! - `N` at most [`MAX_HEADER_LEN`] (the reference's 100,000,000 bytes, just under 100 MiB) and
//!   no longer than the file;
//! - the header is UTF-8 and exactly one JSON object (serde_json limits recursion to 128
//!   levels and skips ignored values without recursing, so hostile nesting is an error, not a
//!   stack overflow), `__metadata__` a map of
//!   strings (or `null`), every other value an object with `dtype` (one of the codes above,
//!   case-sensitive), `shape` (unsigned integers) and `data_offsets` (two unsigned integers);
//!   unknown fields in a tensor entry are ignored, like the reference does;
//! - sorted by `data_offsets`, the ranges tile the data section exactly: the first begins at 0,
//!   each begins where the previous ended, none ends before it begins, the last ends at the
//!   end of the file (no gaps, overlaps or trailing bytes);
//! - each range's length is `numel * bits / 8`, computed with overflow checks (a
//!   `[2^40, 2^40]` shape is an error), and a whole number of bytes (F4 and F6 shapes);
//! - stricter than the reference: duplicate tensor names and duplicate `__metadata__` keys are
//!   refused (serde's maps, which the reference uses, keep the last one silently), and a
//!   `dtype` must be a JSON string (serde's enum support also takes `{"F32": null}`).
//!
//! Errors are [`zt_core::Error`]s wrapped with the file and, where one is to blame, the tensor.
//!
//! ## Why the header is not parsed by `safetensors::SafeTensors::read_metadata`
//!
//! The crate supports every dtype above and *is* used: its `Dtype` is the dtype vocabulary
//! (names, bit widths, and the order the writer sorts by) and its `TensorInfo` is what the
//! writer serializes, so both follow the reference by construction. Its `read_metadata` is not
//! the parser because it resolves duplicate names silently (last one wins) and reports offset,
//! shape and overflow errors without saying which tensor is wrong. The header is therefore
//! read with serde_json into order-preserving visitors (see `header.rs`) and checked by the
//! same rules as the crate's `Metadata::validate`. The `safetensors` fuzz target and the
//! hostile tests check the claim: whatever this crate accepts, `read_metadata` accepts too.
//!
//! # Writing ([`write_safetensors`], [`serialize_safetensors`])
//!
//! Byte-identical to the reference `save_file` / `serialize` for the same tensors and metadata:
//! tensors sorted by dtype (largest alignment first, the crate's order) then by name and packed
//! back to back; compact JSON with `__metadata__` first and the entries in data order, each as
//! `{"dtype","shape","data_offsets"}`; the header padded with spaces to a multiple of 8. Two
//! things the reference leaves to chance are fixed here:
//!
//! - it writes `__metadata__` keys in Rust `HashMap` order, which changes from call to call;
//!   this crate writes them sorted (one of the reference's possible outputs);
//! - for an empty `__metadata__` and no tensors it writes the unreadable
//!   `{},"__metadata__":{}}`; this crate writes `{"__metadata__":{}}`.
//!
//! The file is written under a hidden temporary name in the same directory, `fsync`ed (unless
//! [`WriteOptions::sync`] is off) and renamed over the destination: no half-written file ever
//! appears under the final name, and the temporary file is removed on error. Unlike the
//! reference (which writes mode 0600 files through `tempfile`), the file gets the usual
//! permissions from the umask. [`safetensors_dtype`] / [`safetensors_dtype_name`] map a
//! zt-core dtype and logical type to the code, refusing what safetensors cannot store
//! (complex128, unknown logical types, a logical type on the wrong storage dtype); quantized
//! and sparse tensors are refused by [`SafetensorsTensor::from_dense`].

mod dtype;
mod header;
mod reader;
mod writer;

pub use dtype::{
    ALL_DTYPES, F6_E2M3, F6_E3M2, dtype_code, parse_dtype_code, safetensors_dtype,
    safetensors_dtype_name, zt_dtype,
};
pub use reader::SafetensorsReader;
/// The `safetensors` crate's dtype enum, which [`safetensors_dtype`] returns.
pub use safetensors::Dtype;
pub use writer::{
    SafetensorsTensor, WriteOptions, serialize_safetensors, write_safetensors,
    write_safetensors_with, write_safetensors_with_header,
};

/// The short format name [`zt_core::TensorReader::format_name`] returns.
pub const FORMAT_NAME: &str = "safetensors";

/// Largest JSON header read or written: the reference crate's `MAX_HEADER_SIZE`
/// (100,000,000 bytes). Headers of real models are well under 1 MiB.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// The header key that holds the file's string-to-string metadata.
pub const METADATA_KEY: &str = "__metadata__";
