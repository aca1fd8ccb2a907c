//! The `.zt` container, byte-compatible with zTensor 1.2.
//!
//! A `.zt` file is the magic `ZTEN1000`, component blobs at 64-byte aligned offsets, a CBOR
//! manifest, the manifest's length (u64 LE) and the magic again. `spec/zt-format.md` at the top
//! of the workspace is the full description; this crate implements it:
//!
//! - [`ZtReader`]: maps the file, validates header, footer, manifest and every component range
//!   before handing anything out; raw components are zero-copy slices of the map, zstd ones are
//!   decoded with an exact length check; digests are verified on request.
//! - [`Writer`]: streams components to a temporary file and renames it into place on
//!   [`Writer::finish`]; [`Writer::append`] adds tensors after the last footer so an interrupted
//!   append never loses the earlier ones.
//! - [`remove_tensors`] and [`replace_tensor`] for whole-file edits.
//! - Components encoded with the weight codec ([`Compression::Codec`], encoding `ztc1`), decoded
//!   transparently one tensor at a time, and checkpoint deltas ([`write_delta`],
//!   [`ZtReader::with_base`]): tensors stored as copies of, or XOR deltas against, a base file
//!   identified by its SHA-256.
//!
//! Legacy `ZTEN0001` (format 0.1.0) files are read too.

mod base;
mod checksum;
pub mod manifest;
mod ops;
mod reader;
mod writer;

pub use base::{BaseIdentity, DeltaOptions, DeltaSummary, write_delta};
pub use checksum::{compute as compute_digest, verify as verify_digest};
pub use manifest::Manifest;
pub use ops::{copy_object, remove_tensors, repair, replace_tensor};
pub use reader::{DEFAULT_MAX_DECODED_LEN, Layout, OpenOptions, Variant, ZtReader};
pub use writer::{
    ComponentData, ComponentOptions, Compression, TensorWriter, Writer, WriterOptions,
};

/// First and last 8 bytes of every zTensor 1.x file.
pub const MAGIC: &[u8; 8] = b"ZTEN1000";
/// First 8 bytes of a legacy 0.1.0 file.
pub const LEGACY_MAGIC: &[u8; 8] = b"ZTEN0001";
/// Every component starts at a multiple of this.
pub const ALIGNMENT: u64 = 64;
/// The manifest length (u64) and the closing magic.
pub const FOOTER_LEN: u64 = 16;
/// Component encoding of the weight codec (`zt-codec` frames; spec section 8.1).
pub const CODEC_ENCODING: &str = "ztc1";
/// Component encoding of a checkpoint-delta copy: no stored bytes, the data is the base file's
/// component of the same tensor and role (spec section 8.2).
pub const REF_ENCODING: &str = "zt.ref";
/// Root attribute naming the base file of a checkpoint-delta file.
pub const BASE_ATTRIBUTE: &str = "zt.base";

/// Largest manifest a reader accepts (1 GiB, as in zTensor 1.2.3).
pub const MAX_MANIFEST_SIZE: u64 = 1 << 30;
