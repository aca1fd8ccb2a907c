//! Reader for zTensor 2.x `.zt` files (magic `89 5A 54 32 0D 0A 1A 0A`), the container that
//! `pip install ztensor` (2.1.x) writes. Format name: `"zt2"`.
//!
//! # What it reads
//!
//! `[magic][blob heap][manifest][footer 40 B]`. [`ZtV2Reader::open`] maps the file and checks,
//! in the specification's order: size >= 48 bytes, header and footer magic, version 2, manifest
//! length <= 1 GiB, manifest offset >= 4096 and a multiple of 4096, manifest inside the data
//! area, and its XXH3-64 hash (always, whatever the options). The manifest is then decoded as
//! RFC 8949 deterministic CBOR ([`cbor`]: shortest heads, definite lengths, keys in canonical
//! order without duplicates, no tags, shortest floats, the one NaN, depth <= 32, no trailing
//! bytes) and validated against the schema ([`manifest`]): names, shapes (rank <= 64, no
//! overflow), dtypes and logical types, blobs (4096-aligned, never on the header's page, inside
//! the data area, identical or disjoint: tied weights share a blob), `decoded_length` present
//! exactly when `encoding` is, digests well formed, and the size rules of the layouts.
//!
//! # Mapping to zt-core
//!
//! - Names are listed sorted by their UTF-8 bytes (the manifest orders its keys shortest first,
//!   which is not an order users expect).
//! - `dense` -> [`Format::Dense`](zt_core::Format::Dense) with component `data`;
//!   `zt.sparse_csr/1` -> `SparseCsr` (`values`, `indices`, `indptr`; u32 or u64 indices);
//!   `zt.sparse_coo/1` -> `SparseCoo` (`values`, `coords`, `ndim x nnz`); `gguf.<type>/1` ->
//!   `Format::Other("gguf.<type>")` (named like the GGUF reader names the same blocks, with the
//!   object's `elems_per_block` / `block_bytes` attributes); any other layout passes through as
//!   `Format::Other(layout)` with its parts as components.
//! - Logical types: `bool` on `u8` becomes [`DType::Bool`](zt_core::DType::Bool) with no logical
//!   type; FP8 kinds, `f8_e8m0`, `f4_e2m1`, `complex64` / `complex128` become the zt-core
//!   [`LogicalType`](zt_core::LogicalType); unknown names pass through as `LogicalType::Other`.
//! - Root `attributes` -> [`metadata`](zt_core::TensorReader::metadata); object `attributes` ->
//!   tensor attributes (`None` when the object has none).
//! - Digests: `sha256:` parses to `Digest::Sha256`; `xxh3:` is kept as `Digest::Other` (zt-core
//!   has no XXH3 variant yet) and verified by this crate.
//! - `Component::location` is the absolute file range only for raw parts in the root file; for
//!   compressed parts and parts in a data shard it is `None` ([`ZtV2Reader::part_location`] gives
//!   the file and range of any part's stored bytes).
//!
//! # Zero-copy
//!
//! Raw parts are returned as `Cow::Borrowed` slices of the memory map. Blobs are 4096-aligned in
//! the file and the map is page-aligned, so these slices are 4096-aligned in memory too (for
//! parts in data shards as well). Compressed parts are decoded into an owned buffer.
//!
//! # Compression
//!
//! Only `zt.zstd-seekable/1` exists ([`seekable`]): independent zstd frames (<= 16 MiB decoded
//! each, with content checksums) and a seek table, validated against the blob before anything
//! is allocated. Each part is decoded on its own (random access per tensor); each frame decodes
//! into its own slice with an exact size check; `decoded_length` must match the seek table and
//! be plausible for the blob ([`seekable::MAX_EXPANSION`]) and below
//! [`OpenOptions::max_decoded_len`]. A part with another encoding opens but refuses to be read
//! ([`Error::UnsupportedEncoding`](zt_core::Error::UnsupportedEncoding)).
//!
//! # Shards
//!
//! A manifest may list data shards (`"shards": {name: {size, digest}}`) and parts may live in
//! one (`"shard": name`). Shards are resolved as `<stem>-<name>.zt` beside the root file (the
//! specification's default); names are restricted to `[A-Za-z0-9._-]` without a leading dot, so
//! the path never leaves the directory. Each shard is mapped at open and must have the declared
//! size, both magics, version 2, and a footer with no manifest; its blobs are checked like the
//! root's. Its whole-file digest is checked when verification is asked for. zTensor 2.1.2's
//! Python API cannot write shards; its reader reads them, and the fixtures' shards are built by
//! hand and checked against that reader.
//!
//! # Verification
//!
//! With [`OpenOptions::verify_checksums`], every read checks the part's digest (XXH3-64 or
//! SHA-256 over the decoded bytes) and the content rules zTensor 2.1.2 checks on verify (bool
//! bytes 0/1, zero padding nibble of odd FP4 tensors). [`ZtV2Reader::verify_all`] does it for
//! every part regardless of the options.
//!
//! # Refused
//!
//! Files that break any rule above, data shards opened as if they were root files, containers of
//! another version. Limits are `pub const`s: [`MAX_MANIFEST_LEN`], [`cbor::MAX_DEPTH`],
//! [`manifest::MAX_RANK`], [`manifest::MAX_NAME_LEN`], [`manifest::MAX_SHARD_NAME_LEN`],
//! [`seekable::MAX_FRAME_DECODED`], [`seekable::MAX_EXPANSION`], [`DEFAULT_MAX_DECODED_LEN`].
//!
//! # Why a hand-written CBOR walker
//!
//! The deterministic-encoding rules are properties of the bytes (head widths, key byte order,
//! float widths) that `ciborium`'s deserializer normalises away, so [`cbor`] walks the items
//! with `ciborium-ll` (ciborium's own head decoder) and checks each head against the input.

pub mod cbor;
pub mod container;
mod digest;
pub mod manifest;
mod reader;
pub mod seekable;

pub use container::{BLOB_ALIGNMENT, FOOTER_LEN, MAGIC, MAX_MANIFEST_LEN, MIN_FILE_LEN, VERSION};
pub use reader::{DEFAULT_MAX_DECODED_LEN, OpenOptions, ZtV2Reader};
