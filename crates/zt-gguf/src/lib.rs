//! Reader for GGUF (llama.cpp) files, versions 1, 2 and 3, little-endian.
//!
//! # What it reads
//!
//! A GGUF file is a header (`"GGUF"`, version, tensor count, metadata count), metadata
//! key-value pairs, tensor infos (name, dimensions, ggml type, offset) and a data section that
//! starts at the next multiple of `general.alignment` (default 32) after the tensor infos.
//! Version 1 is the same layout with `u32` counts, string and array lengths and dimensions
//! where versions 2 and 3 use `u64`; versions 2 and 3 are byte-identical in little-endian files.
//!
//! - **Metadata**: every key-value pair becomes a file attribute ([`TensorReader::metadata`]):
//!   integers as [`Value::Integer`], `f32`/`f64` as [`Value::Float`], `bool` as [`Value::Bool`],
//!   strings as [`Value::Text`] (or [`Value::Bytes`] when they are not UTF-8: llama.cpp does not
//!   check), arrays (nested ones too) as [`Value::Array`]. Nothing is dropped, tokenizer
//!   vocabularies of 100k+ strings included.
//! - **Tensors**, named in file order: the stored dimensions are innermost-first (ggml's `ne`),
//!   so they are reversed into the row-major shape. Dense types (`f32`, `f16`, `bf16`, `f64`,
//!   `i8`, `i16`, `i32`, `i64`) are [`Format::Dense`] tensors. Every block-quantized type of
//!   ggml ([`GGML_TYPES`]: q4_0 ... q8_k, the i-quants, tq1_0/tq2_0, mxfp4, nvfp4, q1_0) is a
//!   `Format::Other("gguf.<type>")` tensor whose shape is the logical element shape and whose
//!   one component `data` is the raw blocks as `u8`; its attributes give `ggml_type`,
//!   `ggml_type_id`, `elems_per_block` and `block_bytes`. Every tensor also carries `ggml_type`
//!   and `ggml_type_id` attributes.
//!
//! # Zero-copy
//!
//! All tensor bytes lie raw in the file, so [`TensorReader::component`] always returns a
//! borrowed slice of the memory map. Tensor offsets are multiples of the file's alignment
//! (32 by default) from a data section that is itself aligned, so typed views are normally
//! aligned; the slice is still only a byte slice and callers that need typed access must check
//! alignment (a file may set `general.alignment` to 1).
//!
//! # Validation and limits
//!
//! Everything is checked at [`GgufReader::open`], before any allocation sized by the file:
//! counts against the bytes left ([`ByteCursor::count`]), array nesting against
//! [`MAX_ARRAY_DEPTH`], dimensions against [`MAX_DIMS`] and for overflow (the element count must
//! fit ggml's `int64_t`), `general.alignment` (a `u32` power of two no larger than
//! [`MAX_ALIGNMENT`]), each tensor's offset (a multiple of the alignment), its bytes (inside
//! the file), overlaps between tensors, the innermost dimension of quantized tensors (a multiple
//! of the block size), duplicate keys and tensor names, and unknown value or ggml types.
//! Unlike llama.cpp, tensors need not be packed in order: any non-overlapping, aligned layout
//! is accepted. Metadata takes at most `size_of::<Value>()` bytes of memory per byte of file
//! (arrays of `u8` are the worst case).
//!
//! # Refused
//!
//! Big-endian GGUF files (whose metadata and tensor data are all byte-swapped) are refused with
//! [`Error::Unsupported`], as are versions other than 1, 2 and 3 and unknown ggml type ids
//! (the error names the tensor and the id).

mod types;

use std::collections::HashMap;
use std::path::Path;

use zt_core::{
    Attributes, ByteCursor, Component, DType, Error, Format, MappedFile, Shape, TensorBytes,
    TensorInfo, TensorReader, Value,
};

pub use types::{GGML_TYPES, GgmlType};

/// The four bytes every GGUF file starts with.
pub const MAGIC: &[u8; 4] = b"GGUF";

/// Most dimensions a tensor may have (`GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;

/// Deepest nesting of metadata arrays. llama.cpp reads no nested arrays at all; the Python
/// writer can produce them, so a few levels are accepted, but not a depth bomb.
pub const MAX_ARRAY_DEPTH: u32 = 16;

/// Largest `general.alignment` accepted (16 MiB): far above any page or huge-page size a writer
/// aligns to; anything larger is a corrupt file.
pub const MAX_ALIGNMENT: u64 = 16 << 20;

/// Most metadata array items reserved before they are read (see [`Parser::array`]).
const PREALLOC_ITEMS: usize = 4096;

/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;

/// The metadata key that overrides [`DEFAULT_ALIGNMENT`].
pub const ALIGNMENT_KEY: &str = "general.alignment";

const FORMAT: &str = "gguf";

/// Metadata value type ids (`gguf_type` in ggml, `GGUFValueType` in the Python package).
mod value_type {
    pub const U8: u32 = 0;
    pub const I8: u32 = 1;
    pub const U16: u32 = 2;
    pub const I16: u32 = 3;
    pub const U32: u32 = 4;
    pub const I32: u32 = 5;
    pub const F32: u32 = 6;
    pub const BOOL: u32 = 7;
    pub const STRING: u32 = 8;
    pub const ARRAY: u32 = 9;
    pub const U64: u32 = 10;
    pub const I64: u32 = 11;
    pub const F64: u32 = 12;
}

/// An open GGUF file.
#[derive(Debug)]
pub struct GgufReader {
    map: MappedFile,
    header: Header,
    /// Position of each tensor in `header.tensors`.
    index: HashMap<String, usize>,
}

/// Everything parsed from a GGUF header, validated against the file's length.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub version: u32,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    pub metadata: Attributes,
    /// In file order.
    pub tensors: Vec<TensorInfo>,
}

impl GgufReader {
    /// Maps the file and validates its header and every tensor's layout.
    pub fn open(path: impl AsRef<Path>) -> Result<GgufReader, Error> {
        let path = path.as_ref();
        let map = MappedFile::open(path)?;
        let header = parse(map.bytes()).map_err(|e| e.in_file(path))?;
        let index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufReader { map, header, index })
    }

    /// 1, 2 or 3.
    pub fn version(&self) -> u32 {
        self.header.version
    }

    /// The alignment of the data section and of every tensor offset.
    pub fn alignment(&self) -> u64 {
        self.header.alignment
    }

    /// Absolute file offset of the data section.
    pub fn data_offset(&self) -> u64 {
        self.header.data_offset
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn find(&self, name: &str) -> Result<&TensorInfo, Error> {
        self.index
            .get(name)
            .map(|&i| &self.header.tensors[i])
            .ok_or_else(|| Error::TensorNotFound(name.to_owned()))
    }
}

impl TensorReader for GgufReader {
    fn format_name(&self) -> &str {
        FORMAT
    }

    fn path(&self) -> &Path {
        self.map.path()
    }

    fn names(&self) -> Vec<&str> {
        self.header
            .tensors
            .iter()
            .map(|t| t.name.as_str())
            .collect()
    }

    fn info(&self, name: &str) -> Result<&TensorInfo, Error> {
        self.find(name).map_err(|e| e.in_file(self.map.path()))
    }

    fn metadata(&self) -> &Attributes {
        &self.header.metadata
    }

    fn component(&self, name: &str, component: &str) -> Result<TensorBytes<'_>, Error> {
        let info = self.info(name)?;
        let range = info
            .components
            .get(component)
            .and_then(|c| c.location)
            .ok_or_else(|| {
                Error::ComponentNotFound {
                    tensor: name.to_owned(),
                    component: component.to_owned(),
                }
                .in_file(self.map.path())
            })?;
        // Every range was checked against the file in `parse`; this cannot fail.
        let bytes = self
            .map
            .slice(range.offset, range.length, component)
            .map_err(|e| e.in_tensor(name).in_file(self.map.path()))?;
        Ok(TensorBytes::Borrowed(bytes))
    }
}

/// Parses and validates a whole GGUF image (the file's bytes).
pub fn parse(bytes: &[u8]) -> Result<Header, Error> {
    let mut cursor = ByteCursor::new(bytes, FORMAT);
    let magic = cursor.take(4, "magic").map_err(|_| bad_magic(bytes))?;
    if magic != MAGIC {
        return Err(bad_magic(bytes));
    }
    let version = cursor.u32("version")?;
    // A big-endian file stores small versions as 0x0N000000 when read little-endian.
    if version != 0 && version & 0xFFFF == 0 {
        return Err(Error::Unsupported(format!(
            "big-endian GGUF (version {}); only little-endian files are read",
            version.swap_bytes()
        )));
    }
    if !(1..=3).contains(&version) {
        return Err(Error::Unsupported(format!(
            "GGUF version {version} (this reader knows versions 1, 2 and 3)"
        )));
    }
    let mut parser = Parser {
        cursor,
        wide: version >= 2,
    };
    let tensor_count = parser.length("tensor count")?;
    let kv_count = parser.length("metadata count")?;
    let (metadata, alignment) = parser.metadata(kv_count)?;
    let raw_tensors = parser.tensor_infos(tensor_count)?;
    let data_offset = parser
        .cursor
        .position()
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| Error::malformed(FORMAT, "data section offset overflows"))?;
    let tensors = raw_tensors
        .into_iter()
        .map(|raw| {
            let name = raw.name;
            raw.into_info(alignment, data_offset, bytes.len() as u64)
                .map_err(|e| e.in_tensor(name))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    check_unique_and_disjoint(&tensors)?;
    Ok(Header {
        version,
        alignment,
        data_offset,
        metadata,
        tensors,
    })
}

fn bad_magic(bytes: &[u8]) -> Error {
    Error::BadMagic {
        format: "GGUF",
        expected: MAGIC,
        found: bytes[..bytes.len().min(4)].to_vec(),
    }
}

/// A bounds-checked reader of GGUF's primitive encodings.
struct Parser<'a> {
    cursor: ByteCursor<'a>,
    /// Versions 2 and 3 store counts, lengths and dimensions as `u64`; version 1 as `u32`.
    wide: bool,
}

/// A tensor info as stored, before it is checked against the data section.
struct RawTensor<'a> {
    name: &'a str,
    /// Innermost first, as ggml's `ne`.
    dims: Vec<u64>,
    type_id: u32,
    /// Relative to the data section.
    offset: u64,
}

impl<'a> Parser<'a> {
    fn length_bytes(&self) -> u64 {
        if self.wide { 8 } else { 4 }
    }

    fn length(&mut self, what: &str) -> Result<u64, Error> {
        if self.wide {
            self.cursor.u64(what)
        } else {
            self.cursor.u32(what).map(u64::from)
        }
    }

    fn string(&mut self, what: &str) -> Result<&'a [u8], Error> {
        let len = self.length(what)?;
        self.cursor.take(len, what)
    }

    fn utf8(&mut self, what: &str) -> Result<&'a str, Error> {
        let bytes = self.string(what)?;
        std::str::from_utf8(bytes).map_err(|_| {
            Error::malformed(
                FORMAT,
                format!("{what} \"{}\" is not UTF-8", bytes.escape_ascii()),
            )
        })
    }

    /// The key-value pairs, and the data alignment they set.
    fn metadata(&mut self, count: u64) -> Result<(Attributes, u64), Error> {
        // Smallest pair: an empty key, a type, and a one-byte value.
        let min_pair = self.length_bytes() + 4 + 1;
        let count = self.cursor.count(count, min_pair, "metadata key-value")?;
        let mut metadata = Attributes::new();
        let mut alignment = DEFAULT_ALIGNMENT;
        for _ in 0..count {
            let key = self.utf8("metadata key")?;
            let value_type = self.cursor.u32("metadata value type")?;
            let value = self.value(value_type, 0).map_err(|e| in_key(e, key))?;
            if key == ALIGNMENT_KEY {
                alignment = checked_alignment(value_type, &value)?;
            }
            if metadata.insert(key.to_owned(), value).is_some() {
                return Err(Error::malformed(
                    FORMAT,
                    format!("duplicate metadata key '{key}'"),
                ));
            }
        }
        Ok((metadata, alignment))
    }

    /// Bytes the smallest value of this type takes, or an error for unknown types.
    fn min_value_bytes(&self, value_type: u32) -> Result<u64, Error> {
        use value_type::*;
        Ok(match value_type {
            U8 | I8 | BOOL => 1,
            U16 | I16 => 2,
            U32 | I32 | F32 => 4,
            U64 | I64 | F64 => 8,
            STRING => self.length_bytes(),
            ARRAY => 4 + self.length_bytes(),
            other => {
                return Err(Error::malformed(
                    FORMAT,
                    format!("unknown metadata value type {other}"),
                ));
            }
        })
    }

    fn value(&mut self, value_type: u32, depth: u32) -> Result<Value, Error> {
        use value_type::*;
        let c = &mut self.cursor;
        Ok(match value_type {
            U8 => Value::Integer(c.u8("u8 value")?.into()),
            I8 => Value::Integer(i8::from_le_bytes(c.array("i8 value")?).into()),
            U16 => Value::Integer(c.u16("u16 value")?.into()),
            I16 => Value::Integer(i16::from_le_bytes(c.array("i16 value")?).into()),
            U32 => Value::Integer(c.u32("u32 value")?.into()),
            I32 => Value::Integer(c.i32("i32 value")?.into()),
            U64 => Value::Integer(c.u64("u64 value")?.into()),
            I64 => Value::Integer(c.i64("i64 value")?.into()),
            F32 => Value::Float(c.f32("f32 value")?.into()),
            F64 => Value::Float(c.f64("f64 value")?),
            // Any non-zero byte is true, as for numpy's bool_ view the Python reader uses.
            BOOL => Value::Bool(c.u8("bool value")? != 0),
            STRING => {
                let bytes = self.string("string value")?;
                match std::str::from_utf8(bytes) {
                    Ok(text) => Value::Text(text.to_owned()),
                    Err(_) => Value::Bytes(bytes.to_vec()),
                }
            }
            ARRAY => self.array(depth + 1)?,
            other => {
                return Err(Error::malformed(
                    FORMAT,
                    format!("unknown metadata value type {other}"),
                ));
            }
        })
    }

    fn array(&mut self, depth: u32) -> Result<Value, Error> {
        if depth > MAX_ARRAY_DEPTH {
            return Err(Error::malformed(
                FORMAT,
                format!("metadata arrays nested deeper than {MAX_ARRAY_DEPTH} levels"),
            ));
        }
        let item_type = self.cursor.u32("array item type")?;
        let min_item = self.min_value_bytes(item_type)?;
        let len = self.length("array length")?;
        let len = self.cursor.count(len, min_item, "array item")?;
        // The count fits in the bytes left, but so may the counts of all the arrays it is
        // nested in: reserving each in full would cost (depth x 32) bytes per file byte before
        // any item is read. Past a small head start, the vector grows as items arrive.
        let mut items = Vec::with_capacity(len.min(PREALLOC_ITEMS));
        for _ in 0..len {
            items.push(self.value(item_type, depth)?);
        }
        Ok(Value::Array(items))
    }

    fn tensor_infos(&mut self, count: u64) -> Result<Vec<RawTensor<'a>>, Error> {
        // Smallest info: empty name, n_dims, type, offset.
        let min_info = self.length_bytes() + 4 + 4 + 8;
        let count = self.cursor.count(count, min_info, "tensor info")?;
        let mut tensors = Vec::with_capacity(count);
        for _ in 0..count {
            let name = self.utf8("tensor name")?;
            let n_dims = self.cursor.u32("dimension count")?;
            if n_dims > MAX_DIMS {
                return Err(Error::malformed(
                    FORMAT,
                    format!("{n_dims} dimensions (GGUF allows at most {MAX_DIMS})"),
                )
                .in_tensor(name));
            }
            let dims = (0..n_dims)
                .map(|_| self.length("dimension"))
                .collect::<Result<Vec<_>, Error>>()
                .map_err(|e| e.in_tensor(name))?;
            let type_id = self
                .cursor
                .u32("ggml type")
                .map_err(|e| e.in_tensor(name))?;
            let offset = self
                .cursor
                .u64("tensor offset")
                .map_err(|e| e.in_tensor(name))?;
            tensors.push(RawTensor {
                name,
                dims,
                type_id,
                offset,
            });
        }
        Ok(tensors)
    }
}

fn in_key(e: Error, key: &str) -> Error {
    match e {
        Error::Malformed { format, reason } => Error::Malformed {
            format,
            reason: format!("metadata '{key}': {reason}"),
        },
        Error::Truncated {
            what,
            needed,
            available,
        } => Error::Truncated {
            what: format!("{what} (metadata '{key}')"),
            needed,
            available,
        },
        other => other,
    }
}

/// `general.alignment` must be a `u32` power of two (as llama.cpp requires), and sane.
fn checked_alignment(value_type: u32, value: &Value) -> Result<u64, Error> {
    let alignment = match (value_type, value) {
        (value_type::U32, Value::Integer(a)) => *a as u64,
        _ => {
            return Err(Error::malformed(
                FORMAT,
                format!("'{ALIGNMENT_KEY}' must be a u32, found value type {value_type}"),
            ));
        }
    };
    if !alignment.is_power_of_two() || alignment > MAX_ALIGNMENT {
        return Err(Error::malformed(
            FORMAT,
            format!(
                "'{ALIGNMENT_KEY}' is {alignment}: it must be a power of two no larger than {MAX_ALIGNMENT}"
            ),
        ));
    }
    Ok(alignment)
}

impl RawTensor<'_> {
    fn into_info(
        self,
        alignment: u64,
        data_offset: u64,
        file_len: u64,
    ) -> Result<TensorInfo, Error> {
        let ty = GgmlType::from_id(self.type_id).ok_or_else(|| {
            Error::Unsupported(format!(
                "unknown ggml type id {} (known: {})",
                self.type_id,
                GGML_TYPES
                    .iter()
                    .map(|t| t.id.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        let shape = Shape::new(self.dims.iter().rev().copied().collect::<Vec<_>>());
        let numel = shape.numel()?;
        // ggml counts elements in int64_t.
        if numel > i64::MAX as u64 {
            return Err(Error::ShapeOverflow(shape.0));
        }
        // A 0-d tensor has ggml's default innermost dimension of 1.
        let innermost = self.dims.first().copied().unwrap_or(1);
        if !innermost.is_multiple_of(ty.elems_per_block) {
            return Err(Error::malformed(
                FORMAT,
                format!(
                    "innermost dimension {innermost} is not a multiple of the {} block size {}",
                    ty.name, ty.elems_per_block
                ),
            ));
        }
        let length = (numel / ty.elems_per_block)
            .checked_mul(ty.block_bytes)
            .ok_or_else(|| Error::ShapeOverflow(shape.0.clone()))?;
        if !self.offset.is_multiple_of(alignment) {
            return Err(Error::Misaligned {
                component: "data".into(),
                offset: self.offset,
                alignment,
            });
        }
        let offset = data_offset
            .checked_add(self.offset)
            .filter(|o| o.checked_add(length).is_some_and(|end| end <= file_len))
            .ok_or_else(|| Error::OutOfBounds {
                component: "data".into(),
                offset: data_offset.saturating_add(self.offset),
                length,
                file_len,
            })?;

        let mut attributes = Attributes::new();
        attributes.insert("ggml_type".into(), ty.name.into());
        attributes.insert("ggml_type_id".into(), u64::from(ty.id).into());
        let (format, dtype) = match ty.dense {
            Some(dtype) => (Format::Dense, dtype),
            None => {
                attributes.insert("elems_per_block".into(), ty.elems_per_block.into());
                attributes.insert("block_bytes".into(), ty.block_bytes.into());
                (Format::Other(format!("gguf.{}", ty.name)), DType::U8)
            }
        };
        Ok(TensorInfo {
            name: self.name.to_owned(),
            shape,
            format,
            components: [("data".to_owned(), Component::raw(dtype, offset, length))].into(),
            attributes: Some(attributes),
        })
    }
}

/// Tensor names must be unique and their bytes must not overlap.
fn check_unique_and_disjoint(tensors: &[TensorInfo]) -> Result<(), Error> {
    let mut seen = std::collections::HashSet::with_capacity(tensors.len());
    for t in tensors {
        if !seen.insert(t.name.as_str()) {
            return Err(Error::DuplicateName(t.name.clone()));
        }
    }
    let mut ranges: Vec<(u64, u64, &str)> = tensors
        .iter()
        .filter_map(|t| {
            let r = t.components["data"].location?;
            (r.length > 0).then(|| (r.offset, r.offset + r.length, t.name.as_str()))
        })
        .collect();
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let ((_, end, first), (start, _, second)) = (pair[0], pair[1]);
        if end > start {
            return Err(Error::Overlap {
                first: first.to_owned(),
                second: second.to_owned(),
            });
        }
    }
    Ok(())
}
