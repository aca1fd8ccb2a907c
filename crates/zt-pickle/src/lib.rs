//! Reader for PyTorch checkpoints (`.pt`, `.pth`, `.bin` written by `torch.save`), through a
//! restricted pickle machine that never runs code.
//!
//! # What it reads
//!
//! - **Zip checkpoints** (the default since torch 1.6): a zip archive whose records live under
//!   one directory `<prefix>/`: `data.pkl` (the pickled object), `data/<key>` (one record per
//!   storage), `byteorder` (`little` or `big`; absent means little), `version`, and some records
//!   this reader does not need (`.format_version`, `.storage_alignment`,
//!   `.data/serialization_id`). Read with the `zip` crate; torch stores every record uncompressed
//!   and pads its local header so the data starts on a 64-byte boundary, so a record is a slice
//!   of the memory map. Archives re-zipped with DEFLATE also open: such a record is inflated on
//!   first use (size-checked, see the limits) and kept.
//! - **Legacy checkpoints** (`_use_new_zipfile_serialization=False`): five pickles in a row (the
//!   magic number `0x1950a86a20f9469cfc6c`, protocol version 1001, `sys_info`, the object, the
//!   list of storage keys), then for each key in that list an 8-byte little-endian element count
//!   and the storage's raw little-endian bytes (torch converts on big-endian hosts). Those bytes
//!   are contiguous in the file, so they are zero-copy too. Legacy storage views (a sixth
//!   persistent-id item written by torch < 1.0) are honoured.
//! - The very old tar-based `torch.save` format and TorchScript archives (`torch.jit.save`) are
//!   refused with an error that says so.
//!
//! # The pickle machine
//!
//! No Rust crate reads a torch checkpoint's pickle safely. `serde-pickle` 1.x resolves only a
//! handful of globals (`builtins.set`/`frozenset`/`bytearray`/`list`/`int`, `_codecs.encode`):
//! any other (every `torch._utils._rebuild_tensor*`, every storage class) is an "unresolved
//! global" error or, optionally, `None`; it has no persistent-id support at all (`PERSID` and
//! `BINPERSID` are "unsupported opcode" errors); and it turns class instances (`NEWOBJ`, `INST`)
//! into empty dicts. Its values are trees that clone memoized objects, which a memo bomb turns
//! into exponential memory. So [`pickle`] is written here: it reads protocols 0-5 (every opcode of
//! CPython's `pickle.py` except the out-of-band buffers `NEXT_BUFFER`/`READONLY_BUFFER` and the
//! extension registry `EXT1/2/4`, which are refused) into an arena of plain values.
//!
//! It cannot execute anything, by construction: a global is looked up in a fixed table and
//! becomes a tag; any other name is [`Error::ForbiddenGlobal`] naming it (`os.system`,
//! `posix.system`, `builtins.eval`, `subprocess.Popen`, `numpy.core.multiarray._reconstruct`, a
//! model's own class...). "Calling" a tag applies a fixed rule over values already unpickled:
//!
//! | global | becomes |
//! |---|---|
//! | `torch._utils._rebuild_tensor`, `_rebuild_tensor_v2`, `_rebuild_tensor_v3` | a tensor: storage, offset, size, stride, dtype, conj/neg bits |
//! | `torch._utils._rebuild_parameter(_with_state)`, `torch.nn.parameter.Parameter` | the parameter's tensor |
//! | `torch._tensor._rebuild_from_type_v2` (a tensor with Python attributes) | the tensor, attributes ignored |
//! | `torch.<X>Storage`, `torch.cuda.<X>Storage`, `torch.storage.UntypedStorage` | the storage class in a persistent id |
//! | `torch.<dtype>` (`torch.float8_e4m3fn`, `torch.uint16`, ...) | a dtype |
//! | `collections.OrderedDict`, `collections.Counter` | a dict |
//! | `builtins.set`, `builtins.frozenset` | a set (kept as a list of values: nothing is hashed, so no `__hash__` can run) |
//! | `_codecs.encode(text, "latin1")`, `builtins.bytearray` | bytes (how protocol 2 writes `bytes`) |
//! | `builtins.complex`, `torch.Size`, `torch.device` | a complex number, a tuple, a device name |
//!
//! This is the allow-list of torch's own `weights_only=True` unpickler, less everything that is
//! not plain data or a dense tensor (quantized, sparse, nested and meta tensors and tensor
//! subclasses are refused with [`Error::Unsupported`] naming them). Persistent ids are only
//! `("storage", storage_class, key, location, numel)`. `BUILD` only sets Python attributes,
//! which are ignored, and only on dicts, sets and tensors. Strings are decoded as UTF-8 (invalid
//! sequences, such as Python's lone surrogates, become U+FFFD).
//!
//! # Names, order and metadata
//!
//! Tensors found anywhere in the object (state dicts nested in checkpoint dicts, lists, optimizer
//! state) are listed in pickle order (dict insertion order), named by their path of dict keys and
//! list indices joined by `.` (`model.layers.0.weight`, `optimizer.state.3.exp_avg`); integer keys
//! are written in decimal, a tensor saved alone is named `""`. A tensor reached twice (tied
//! weights) is listed under both names, over the same bytes. Two different tensors with one name
//! are a [`Error::DuplicateName`]. Scalar leaves (int, float, str, bool), sequences of scalars,
//! `torch.dtype` and `torch.device` become file metadata under their dotted name (`epoch`,
//! `optimizer.param_groups.0.lr`); `None`, bytes and anything else are ignored.
//!
//! # Data and zero-copy
//!
//! dtypes come from the storage class or the dtype argument: f64 f32 f16 bf16 i64 i32 i16 i8 u8
//! bool, uint16/32/64, complex64/128 (F32/F64 + Complex logical type), complex32 (F16 + logical
//! `complex32`), FP8 e4m3fn/e5m2/e4m3fnuz/e5m2fnuz/e8m0fnu (U8 + logical type) and
//! `float4_e2m1fn_x2` (U8 + `f4_e2m1`, two values per byte, low nibble first, as torch packs
//! them: the reported shape doubles torch's last dimension).
//!
//! [`TensorReader::component`] returns `Cow::Borrowed` — a slice of the memory map, or of the
//! inflated record for deflated archives — when the tensor covers its storage contiguously in C
//! order, little-endian, with no lazy conj/neg bit; its [`Component::location`] is then the
//! absolute file range. Torch aligns zip records to 64 bytes, but storage offsets, legacy files
//! and re-zipped archives put data at any byte: a borrowed slice is bytes, and typed access must
//! check alignment (or copy). Otherwise the bytes are `Cow::Owned`, with `location: None`:
//! - strided views (a transposed weight saved directly, `t[:, ::2]`, `expand`) are gathered into
//!   C order: one pass over the output, whole rows at a time where the innermost stride is 1,
//!   else in 32x32 tiles (~0.8 GB/s for a transposed f32 matrix here), into an output buffer the
//!   size of the tensor;
//! - big-endian archives are byte-swapped per scalar (each half of a complex);
//! - a saved `t.conj()` or `t.conj().imag` has its sign bits flipped, as `resolve_conj()` /
//!   `resolve_neg()` would.
//!
//! Several tensors may view one storage at different offsets; each view's offset, sizes and
//! strides are checked (overflow-checked, in bytes) against the storage when the file is opened.
//!
//! # Limits
//!
//! Every count, length and offset is checked against the bytes that remain before anything is
//! allocated for it. On top of that, these limits bound work and memory on hostile input (a
//! pickle can reuse memoized values to describe a graph far larger than itself); the machine's
//! memory is at most a few dozen bytes per pickle byte, and what the walk builds from the graph
//! (tensor entries, names, metadata) at most [`MAX_WALK_OUTPUT_PER_BYTE`] bytes per pickle byte
//! plus [`WALK_OUTPUT_SLACK`]. [`Limits`] carries them all;
//! [`PickleReader::open_with_limits`] takes other values. spec/limits.md lists every limit and
//! the test that proves it.

mod container;
mod flatten;
mod globals;
pub mod pickle;
mod reader;
mod torch;

pub use container::{CheckpointKind, LEGACY_MAGIC, LEGACY_PROTOCOL_VERSION};
pub use flatten::{Flattened, flatten, flatten_with};
pub use globals::Global;
pub use reader::PickleReader;
pub use torch::{ByteSpan, DTYPES, Rebuild, Storage, Tensor, TorchDtype};

/// Largest pickle (`data.pkl`, or one pickle of a legacy file) read. Same as upstream zTensor.
pub const MAX_PICKLE_LEN: u64 = 256 << 20;
/// Most opcodes one pickle may run. Same as upstream zTensor.
pub const MAX_OPCODES: u64 = 50_000_000;
/// Deepest the machine's value stack may grow.
pub const MAX_STACK_LEN: usize = 1 << 22;
/// Most `MARK`s open at once (nesting of containers being built).
pub const MAX_MARK_DEPTH: usize = 10_000;
/// Most memo entries.
pub const MAX_MEMO_LEN: usize = 1 << 22;
/// Most heap objects (strings, containers, tensors...) one pickle may create.
pub const MAX_OBJECTS: usize = 1 << 22;
/// Most values placed in containers, over the whole pickle (a value in two containers counts
/// twice).
pub const MAX_CONTAINER_ITEMS: usize = 1 << 24;
/// Longest `LONG1`/`LONG4` integer, in bytes (values beyond `i128` are kept as "big", unread).
pub const MAX_LONG_BYTES: usize = 1024;
/// Most dimensions of a tensor.
pub const MAX_RANK: usize = 64;
/// Deepest nesting of containers the walk follows.
pub const MAX_NESTING: usize = 256;
/// Most values the walk from the root visits (the graph may share, and repeat, sub-objects). A
/// sequence of scalars is one value (its items are bounded by [`MAX_METADATA_BYTES`]).
pub const MAX_WALK_STEPS: u64 = 1 << 22;
/// Most bytes of names the walk builds in total.
pub const MAX_WALK_BYTES: u64 = 1 << 30;
/// Longest tensor or metadata name, in bytes.
pub const MAX_NAME_LEN: usize = 16 << 10;
/// Most bytes of metadata (names and text values).
pub const MAX_METADATA_BYTES: u64 = 64 << 20;
/// Largest record inflated from a deflated zip entry.
pub const MAX_INFLATED_LEN: u64 = 16 << 30;
/// Largest expansion deflate can produce (1032:1): a record declaring more than this times its
/// compressed size is a zip bomb, refused before anything is inflated.
pub const MAX_DEFLATE_RATIO: u64 = 1032;
/// Most bytes of reader state (tensor entries, names, metadata) one pickle may make the walk
/// build, per byte of pickle, on top of [`WALK_OUTPUT_SLACK`]. The walk's other limits are
/// absolute; this one ties what a pickle costs to its size: a few kilobytes of shared dicts that
/// name one tensor a million times (each name costs ~2 KiB of `TensorInfo`) are refused instead
/// of built. A `torch.save`d state dict takes ~100 pickle bytes per tensor, so even one whose
/// every tensor is saved under two names stays well within it.
pub const MAX_WALK_OUTPUT_PER_BYTE: u64 = 48;
/// What the walk may build whatever the pickle's size (about 4000 tensor names).
pub const WALK_OUTPUT_SLACK: u64 = 8 << 20;
/// Largest C-order copy of a view whose elements overlap (stride 0, as `expand` makes), when it
/// is larger than its storage.
pub const MAX_EXPANDED_LEN: u64 = 1 << 30;

/// The bounds the pickle machine and the walk work within. [`Limits::default`] is the documented
/// constants above; tests and embedders can tighten (or, at their own risk, loosen) them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_pickle_len: u64,
    pub max_opcodes: u64,
    pub max_stack_len: usize,
    pub max_mark_depth: usize,
    pub max_memo_len: usize,
    pub max_objects: usize,
    pub max_container_items: usize,
    pub max_long_bytes: usize,
    pub max_nesting: usize,
    pub max_walk_steps: u64,
    pub max_walk_bytes: u64,
    pub max_name_len: usize,
    pub max_metadata_bytes: u64,
    pub max_expanded_len: u64,
    /// See [`MAX_WALK_OUTPUT_PER_BYTE`].
    pub max_walk_output_per_byte: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_pickle_len: MAX_PICKLE_LEN,
            max_opcodes: MAX_OPCODES,
            max_stack_len: MAX_STACK_LEN,
            max_mark_depth: MAX_MARK_DEPTH,
            max_memo_len: MAX_MEMO_LEN,
            max_objects: MAX_OBJECTS,
            max_container_items: MAX_CONTAINER_ITEMS,
            max_long_bytes: MAX_LONG_BYTES,
            max_nesting: MAX_NESTING,
            max_walk_steps: MAX_WALK_STEPS,
            max_walk_bytes: MAX_WALK_BYTES,
            max_name_len: MAX_NAME_LEN,
            max_metadata_bytes: MAX_METADATA_BYTES,
            max_expanded_len: MAX_EXPANDED_LEN,
            max_walk_output_per_byte: MAX_WALK_OUTPUT_PER_BYTE,
        }
    }
}

#[doc(no_inline)]
pub use zt_core::{Component, Error, TensorReader};
