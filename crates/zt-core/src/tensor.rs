//! The description of a tensor: format, components, attributes.

use std::collections::BTreeMap;
use std::fmt;

use crate::{DType, Error, LogicalType, Shape};

/// A self-describing value: the attribute language of `.zt` (CBOR's data model).
///
/// Maps keep their entry order, because zTensor 1.2 keeps the order of nested maps when it
/// writes them and byte-compatibility depends on it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// Every CBOR integer fits: the major types cover -2^64 ..= 2^64-1.
    Integer(i128),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    /// A CBOR tag, kept so that rewriting a file does not lose it.
    Tag(u64, Box<Value>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_i128(&self) -> Option<i128> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Integer(i.into())
    }
}

impl From<u64> for Value {
    fn from(i: u64) -> Value {
        Value::Integer(i.into())
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::Float(f)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

/// Named attributes of a file or a tensor, sorted by the UTF-8 bytes of the key.
pub type Attributes = BTreeMap<String, Value>;

/// How a tensor is put together from its components.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Format {
    /// One `data` component, row-major.
    Dense,
    /// `values`, `indices`, `indptr` (compressed sparse rows).
    SparseCsr,
    /// `values`, `coords` (coordinate list, struct-of-arrays).
    SparseCoo,
    /// Group-quantized weights; parameters live in the tensor's attributes.
    QuantizedGroup,
    /// Any other layout name, passed through.
    Other(String),
}

impl Format {
    pub fn name(&self) -> &str {
        match self {
            Format::Dense => "dense",
            Format::SparseCsr => "sparse_csr",
            Format::SparseCoo => "sparse_coo",
            Format::QuantizedGroup => "quantized_group",
            Format::Other(name) => name,
        }
    }

    pub fn from_name(name: &str) -> Format {
        match name {
            "dense" => Format::Dense,
            "sparse_csr" => Format::SparseCsr,
            "sparse_coo" => Format::SparseCoo,
            "quantized_group" => Format::QuantizedGroup,
            other => Format::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How a component's stored bytes turn into its element bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// Stored as the little-endian element bytes.
    Raw,
    /// One or more zstd frames.
    Zstd,
    /// An encoding this build cannot decode (a newer writer's, or a foreign format's).
    Other(String),
}

impl Encoding {
    pub fn name(&self) -> &str {
        match self {
            Encoding::Raw => "raw",
            Encoding::Zstd => "zstd",
            Encoding::Other(name) => name,
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A checksum over a component's stored bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Digest {
    /// CRC-32C (Castagnoli), written `crc32c:0x%08X`.
    Crc32c(u32),
    /// SHA-256, written `sha256:<64 lowercase hex>`.
    Sha256([u8; 32]),
    /// Any other text: an algorithm this build does not know, or a malformed value.
    Other(String),
}

impl Digest {
    /// Parses the manifest form. Unknown or malformed text is kept as [`Digest::Other`] so that
    /// files still open; verification then reports it.
    pub fn parse(text: &str) -> Digest {
        if let Some(hex) = text
            .strip_prefix("crc32c:0x")
            .or_else(|| text.strip_prefix("crc32c:0X"))
        {
            // zTensor 1.2.3 writes 8 digits but parses any u32 in hex; so do we.
            if (1..=8).contains(&hex.len())
                && hex.bytes().all(|b| b.is_ascii_hexdigit())
                && let Ok(v) = u32::from_str_radix(hex, 16)
            {
                return Digest::Crc32c(v);
            }
        } else if let Some(hex) = text.strip_prefix("sha256:")
            && let Some(bytes) = decode_hex::<32>(hex)
        {
            return Digest::Sha256(bytes);
        }
        Digest::Other(text.to_owned())
    }

    pub fn algorithm(&self) -> Option<ChecksumAlgorithm> {
        match self {
            Digest::Crc32c(_) => Some(ChecksumAlgorithm::Crc32c),
            Digest::Sha256(_) => Some(ChecksumAlgorithm::Sha256),
            Digest::Other(text) if text.starts_with("crc32c:") => Some(ChecksumAlgorithm::Crc32c),
            Digest::Other(text) if text.starts_with("sha256:") => Some(ChecksumAlgorithm::Sha256),
            Digest::Other(_) => None,
        }
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Digest::Crc32c(v) => write!(f, "crc32c:0x{v:08X}"),
            Digest::Sha256(bytes) => {
                f.write_str("sha256:")?;
                for b in bytes {
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            Digest::Other(text) => f.write_str(text),
        }
    }
}

fn decode_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    if hex.len() != 2 * N || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Which checksum a writer computes for each component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ChecksumAlgorithm {
    #[default]
    None,
    Crc32c,
    Sha256,
}

impl ChecksumAlgorithm {
    pub fn from_name(name: &str) -> Result<ChecksumAlgorithm, Error> {
        match name {
            "none" => Ok(ChecksumAlgorithm::None),
            "crc32c" => Ok(ChecksumAlgorithm::Crc32c),
            "sha256" => Ok(ChecksumAlgorithm::Sha256),
            other => Err(Error::InvalidArgument(format!(
                "unknown checksum '{other}' (expected none, crc32c or sha256)"
            ))),
        }
    }
}

/// A contiguous byte range of the source file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ByteRange {
    pub offset: u64,
    pub length: u64,
}

impl ByteRange {
    /// The exclusive end, or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.length)
    }
}

/// One typed array that is part of a tensor (`data`, `values`, `indices`, `scales`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct Component {
    pub dtype: DType,
    pub logical_type: Option<LogicalType>,
    /// Where the stored bytes lie in the file, when they lie there contiguously.
    pub location: Option<ByteRange>,
    pub encoding: Encoding,
    /// Bytes after decoding; for raw components it equals the stored length.
    pub decoded_len: Option<u64>,
    pub digest: Option<Digest>,
}

impl Component {
    /// A raw component at `offset..offset+length` of the file.
    pub fn raw(dtype: DType, offset: u64, length: u64) -> Component {
        Component {
            dtype,
            logical_type: None,
            location: Some(ByteRange { offset, length }),
            encoding: Encoding::Raw,
            decoded_len: Some(length),
            digest: None,
        }
    }

    /// Stored bytes in the file (compressed size for encoded components).
    pub fn stored_len(&self) -> Option<u64> {
        self.location.map(|r| r.length)
    }

    /// Decoded bytes that this component needs to hold the elements of `shape`, following its
    /// logical type: complex types take two storage elements each, FP4 packs two per byte.
    /// `None` for logical types whose packing is not known.
    pub fn byte_len_for(&self, shape: &Shape) -> Result<Option<u64>, Error> {
        let numel = shape.numel()?;
        let overflow = || Error::ShapeOverflow(shape.dims().to_vec());
        let size = self.dtype.size() as u64;
        Ok(match &self.logical_type {
            None
            | Some(
                LogicalType::F8E4M3Fn
                | LogicalType::F8E5M2
                | LogicalType::F8E4M3Fnuz
                | LogicalType::F8E5M2Fnuz
                | LogicalType::F8E8M0,
            ) => Some(numel.checked_mul(size).ok_or_else(overflow)?),
            Some(LogicalType::Complex64 | LogicalType::Complex128) => Some(
                numel
                    .checked_mul(2)
                    .and_then(|n| n.checked_mul(size))
                    .ok_or_else(overflow)?,
            ),
            Some(LogicalType::F4E2M1) => Some(numel.div_ceil(2)),
            Some(LogicalType::Other(_)) => None,
        })
    }
}

/// Everything known about one tensor before its bytes are read.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    pub name: String,
    pub shape: Shape,
    pub format: Format,
    /// Components by role, sorted by name.
    pub components: BTreeMap<String, Component>,
    /// `None` and an empty map are different on disk: `None` writes no key at all.
    pub attributes: Option<Attributes>,
}

impl TensorInfo {
    /// The component that carries the tensor's element type: `data` for dense, `values` for
    /// sparse, else the first by name.
    pub fn primary_component(&self) -> Option<(&str, &Component)> {
        let preferred = match self.format {
            Format::Dense => Some("data"),
            Format::SparseCsr | Format::SparseCoo => Some("values"),
            _ => None,
        };
        if let Some(role) = preferred
            && let Some((k, c)) = self.components.get_key_value(role)
        {
            return Some((k.as_str(), c));
        }
        self.components.iter().next().map(|(k, c)| (k.as_str(), c))
    }

    /// The `data` component of a dense tensor, or an error that says why there is none.
    pub fn dense_component(&self) -> Result<&Component, Error> {
        if self.format != Format::Dense {
            return Err(Error::NotDense {
                tensor: self.name.clone(),
                format: self.format.name().to_owned(),
            });
        }
        self.components
            .get("data")
            .ok_or_else(|| Error::ComponentNotFound {
                tensor: self.name.clone(),
                component: "data".into(),
            })
    }

    /// Bytes of the dense element data implied by the shape, the `data` dtype and its logical
    /// type; `None` when the logical type's packing is unknown.
    pub fn dense_byte_len(&self) -> Result<Option<u64>, Error> {
        let data = self.dense_component()?;
        data.byte_len_for(&self.shape)
            .map_err(|e| e.in_tensor(&self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_text_forms() {
        let crc = Digest::parse("crc32c:0xE3069283");
        assert_eq!(crc, Digest::Crc32c(0xE306_9283));
        assert_eq!(crc.to_string(), "crc32c:0xE3069283");
        assert_eq!(Digest::parse("crc32c:0Xe3069283"), crc);
        let sha = "sha256:".to_owned() + &"ab".repeat(32);
        assert_eq!(Digest::parse(&sha), Digest::Sha256([0xab; 32]));
        assert_eq!(
            Digest::parse(&sha.to_uppercase().replace("SHA", "sha")).to_string(),
            sha
        );
        assert!(matches!(Digest::parse("md5:abc"), Digest::Other(_)));
        let bad = Digest::parse("crc32c:0xZZ");
        assert!(matches!(bad, Digest::Other(_)));
        assert_eq!(bad.algorithm(), Some(ChecksumAlgorithm::Crc32c));
    }

    #[test]
    fn primary_component_prefers_role() {
        let mut t = TensorInfo {
            name: "w".into(),
            shape: Shape::from([4, 4]),
            format: Format::SparseCsr,
            components: BTreeMap::new(),
            attributes: None,
        };
        t.components
            .insert("indices".into(), Component::raw(DType::U64, 64, 8));
        t.components
            .insert("values".into(), Component::raw(DType::F32, 128, 4));
        assert_eq!(t.primary_component().unwrap().0, "values");
        assert!(matches!(t.dense_component(), Err(Error::NotDense { .. })));
    }
}
