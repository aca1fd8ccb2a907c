//! The manifest schema: objects, parts, shards, attributes, and the rules of each layout.

use std::collections::BTreeMap;

use zt_core::{
    Attributes, ByteRange, Component, DType, Digest, Encoding, Error, Format, LogicalType, Shape,
    TensorInfo, Value,
};

use crate::digest;
use crate::seekable::MAX_EXPANSION;

/// Most dimensions a shape may have.
pub const MAX_RANK: usize = 64;
/// Longest object or part name, in UTF-8 bytes.
pub const MAX_NAME_LEN: usize = 1024;
/// Longest shard name, in bytes.
pub const MAX_SHARD_NAME_LEN: usize = 64;

/// Layout names of the specification that map onto zt-core formats.
pub const LAYOUT_DENSE: &str = "dense";
pub const LAYOUT_SPARSE_CSR: &str = "zt.sparse_csr/1";
pub const LAYOUT_SPARSE_COO: &str = "zt.sparse_coo/1";

/// A validated manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub objects: BTreeMap<String, Object>,
    pub shards: BTreeMap<String, ShardEntry>,
    pub attributes: Option<Attributes>,
}

/// One object (tensor): its description for callers and where each part's bytes are.
#[derive(Debug, Clone)]
pub struct Object {
    pub info: TensorInfo,
    /// The manifest's layout name, verbatim (`"gguf.q4_k/1"`, `"dense"`).
    pub layout: String,
    pub parts: BTreeMap<String, Part>,
}

/// Where a part's stored bytes are and how they decode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Offset and length in the file that holds it.
    pub blob: ByteRange,
    /// The data shard holding the blob, or `None` for the file with the manifest.
    pub shard: Option<String>,
    /// `None` for raw bytes.
    pub encoding: Option<String>,
    pub decoded_len: u64,
    pub digest: Option<String>,
}

/// A data shard listed in the root manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardEntry {
    pub size: u64,
    pub digest: String,
}

fn schema(msg: impl Into<String>) -> Error {
    Error::manifest(msg)
}

/// Parses the decoded manifest and validates everything that needs no file bytes.
pub fn parse(root: Value) -> Result<Manifest, Error> {
    let mut objects = None;
    let mut shards = BTreeMap::new();
    let mut attributes = None;
    for (key, value) in fields(root, "manifest root")? {
        match key.as_str() {
            "objects" => objects = Some(parse_objects(value)?),
            "shards" => shards = parse_shards(value)?,
            "attributes" => attributes = Some(parse_attributes(value)?),
            _ => {} // Unknown keys are ignored, as the specification says.
        }
    }
    let objects = objects.ok_or_else(|| schema("manifest has no 'objects' map"))?;
    for (name, object) in &objects {
        for (part_name, part) in &object.parts {
            if let Some(shard) = &part.shard
                && !shards.contains_key(shard)
            {
                return Err(schema(format!(
                    "part '{part_name}' refers to shard '{shard}', which the manifest's shard table does not list"
                ))
                .in_tensor(name));
            }
        }
    }
    Ok(Manifest {
        objects,
        shards,
        attributes,
    })
}

/// The entries of a map whose keys are text; other keys cannot be fields of the schema and are
/// ignored like unknown text keys.
fn fields(value: Value, what: &str) -> Result<Vec<(String, Value)>, Error> {
    match value {
        Value::Map(entries) => Ok(entries
            .into_iter()
            .filter_map(|(k, v)| match k {
                Value::Text(k) => Some((k, v)),
                _ => None,
            })
            .collect()),
        other => Err(schema(format!(
            "{what} must be a map, found {}",
            kind(&other)
        ))),
    }
}

/// A map from names to values: every key must be a valid name.
fn named_entries(value: Value, what: &str) -> Result<Vec<(String, Value)>, Error> {
    let Value::Map(entries) = value else {
        return Err(schema(format!("'{what}' must be a map")));
    };
    entries
        .into_iter()
        .map(|(k, v)| match k {
            Value::Text(name) => {
                check_name(&name, what)?;
                Ok((name, v))
            }
            other => Err(schema(format!(
                "'{what}' keys must be text, found {}",
                kind(&other)
            ))),
        })
        .collect()
}

/// Object and part names: non-empty UTF-8 of at most 1024 bytes without NUL.
fn check_name(name: &str, what: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > MAX_NAME_LEN || name.contains('\0') {
        return Err(schema(format!(
            "invalid name in '{what}': '{}' (names are 1 to {MAX_NAME_LEN} bytes without NUL)",
            truncate_for_display(name)
        )));
    }
    Ok(())
}

/// Shard names become part of a file name, so they are restricted to `[A-Za-z0-9._-]`, at most
/// 64 bytes, with no leading dot: no separator, no `..`, no hidden file.
pub fn check_shard_name(name: &str) -> Result<(), Error> {
    let valid = !name.is_empty()
        && name.len() <= MAX_SHARD_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !valid {
        return Err(schema(format!(
            "invalid shard name '{}' (1 to {MAX_SHARD_NAME_LEN} of [A-Za-z0-9._-], no leading dot)",
            truncate_for_display(name)
        )));
    }
    Ok(())
}

fn truncate_for_display(name: &str) -> String {
    let cut: String = name.chars().take(64).collect();
    let cut = cut.escape_debug().to_string();
    if name.chars().count() > 64 {
        format!("{cut}...")
    } else {
        cut
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Text(_) => "text",
        Value::Bytes(_) => "bytes",
        Value::Array(_) => "an array",
        Value::Map(_) => "a map",
        Value::Tag(..) => "a tag",
    }
}

fn text(value: Value, field: &str) -> Result<String, Error> {
    match value {
        Value::Text(s) => Ok(s),
        other => Err(schema(format!(
            "'{field}' must be text, found {}",
            kind(&other)
        ))),
    }
}

fn uint(value: &Value, field: &str) -> Result<u64, Error> {
    match value {
        Value::Integer(i) => u64::try_from(*i).map_err(|_| {
            schema(format!(
                "'{field}' must be an unsigned 64-bit integer, found {i}"
            ))
        }),
        other => Err(schema(format!(
            "'{field}' must be an unsigned integer, found {}",
            kind(other)
        ))),
    }
}

/// Attribute maps: text keys, any values.
fn parse_attributes(value: Value) -> Result<Attributes, Error> {
    let Value::Map(entries) = value else {
        return Err(schema("'attributes' must be a map"));
    };
    entries
        .into_iter()
        .map(|(k, v)| match k {
            Value::Text(k) => Ok((k, v)),
            other => Err(schema(format!(
                "attribute keys must be text, found {}",
                kind(&other)
            ))),
        })
        .collect()
}

fn parse_shards(value: Value) -> Result<BTreeMap<String, ShardEntry>, Error> {
    let Value::Map(entries) = value else {
        return Err(schema("'shards' must be a map"));
    };
    let mut shards = BTreeMap::new();
    for (key, entry) in entries {
        let name = text(key, "shard name")?;
        check_shard_name(&name)?;
        let mut size = None;
        let mut digest = None;
        for (field, value) in fields(entry, "shard entry")? {
            match field.as_str() {
                "size" => size = Some(uint(&value, "size")?),
                "digest" => digest = Some(text(value, "digest")?),
                _ => {}
            }
        }
        let in_shard = |e: Error| schema(format!("shard '{name}': {e}"));
        let size = size.ok_or_else(|| in_shard(schema("entry has no 'size'")))?;
        let digest = digest.ok_or_else(|| in_shard(schema("entry has no 'digest'")))?;
        digest::check_syntax(&digest).map_err(|e| in_shard(schema(e)))?;
        shards.insert(name, ShardEntry { size, digest });
    }
    Ok(shards)
}

fn parse_objects(value: Value) -> Result<BTreeMap<String, Object>, Error> {
    let mut objects = BTreeMap::new();
    for (name, value) in named_entries(value, "objects")? {
        let object = parse_object(&name, value).map_err(|e| e.in_tensor(&name))?;
        objects.insert(name, object);
    }
    Ok(objects)
}

fn parse_object(name: &str, value: Value) -> Result<Object, Error> {
    let mut shape = None;
    let mut layout = None;
    let mut parts = None;
    let mut attributes = None;
    for (field, value) in fields(value, "object")? {
        match field.as_str() {
            "shape" => shape = Some(parse_shape(value)?),
            "layout" => layout = Some(text(value, "layout")?),
            "parts" => parts = Some(value),
            "attributes" => attributes = Some(parse_attributes(value)?),
            _ => {}
        }
    }
    let (Some(shape), Some(layout), Some(parts)) = (shape, layout, parts) else {
        return Err(schema("object needs 'shape', 'layout' and 'parts'"));
    };
    let mut components = BTreeMap::new();
    let mut stored = BTreeMap::new();
    for (part_name, value) in named_entries(parts, "parts")? {
        let (component, part) = parse_part(value).map_err(|e| in_part(e, &part_name))?;
        components.insert(part_name.clone(), component);
        stored.insert(part_name, part);
    }
    if components.is_empty() {
        return Err(schema("object has no parts"));
    }
    let info = TensorInfo {
        name: name.to_owned(),
        format: format_of(&layout),
        shape,
        components,
        attributes,
    };
    check_layout(&info, &layout)?;
    Ok(Object {
        info,
        layout,
        parts: stored,
    })
}

/// Names the part in a schema error (other errors name what they are about already).
fn in_part(error: Error, part: &str) -> Error {
    match error {
        Error::Manifest(msg) => schema(format!("part '{part}': {msg}")),
        other => other,
    }
}

fn parse_shape(value: Value) -> Result<Shape, Error> {
    let Value::Array(dims) = value else {
        return Err(schema(format!(
            "'shape' must be an array, found {}",
            kind(&value)
        )));
    };
    if dims.len() > MAX_RANK {
        return Err(schema(format!(
            "rank {} exceeds the limit of {MAX_RANK}",
            dims.len()
        )));
    }
    let shape = Shape(
        dims.iter()
            .map(|d| uint(d, "shape"))
            .collect::<Result<_, _>>()?,
    );
    shape.numel()?;
    Ok(shape)
}

/// The zt-core format of a layout name. `gguf.<type>/1` is named like the GGUF reader names the
/// same blocks (`gguf.q4_k`); unknown layouts pass through under their own name.
pub fn format_of(layout: &str) -> Format {
    match layout {
        LAYOUT_DENSE => Format::Dense,
        LAYOUT_SPARSE_CSR => Format::SparseCsr,
        LAYOUT_SPARSE_COO => Format::SparseCoo,
        other => match other
            .strip_prefix("gguf.")
            .and_then(|rest| rest.strip_suffix("/1"))
        {
            Some(ty) if !ty.is_empty() => Format::Other(format!("gguf.{ty}")),
            _ => Format::Other(other.to_owned()),
        },
    }
}

fn parse_part(value: Value) -> Result<(Component, Part), Error> {
    let mut dtype = None;
    let mut logical = None;
    let mut blob = None;
    let mut shard = None;
    let mut encoding = None;
    let mut decoded_length = None;
    let mut digest = None;
    for (field, value) in fields(value, "part")? {
        match field.as_str() {
            "dtype" => dtype = Some(text(value, "dtype")?),
            "type" => logical = Some(text(value, "type")?),
            "blob" => blob = Some(parse_blob(value)?),
            "shard" => shard = Some(text(value, "shard")?),
            "encoding" => encoding = Some(text(value, "encoding")?),
            "decoded_length" => decoded_length = Some(uint(&value, "decoded_length")?),
            "digest" => digest = Some(text(value, "digest")?),
            _ => {}
        }
    }
    let (Some(dtype), Some(blob)) = (dtype, blob) else {
        return Err(schema("part needs 'dtype' and 'blob'"));
    };
    // zTensor 2 has no bool dtype: bool is a logical type on u8.
    let storage = match dtype.as_str() {
        "bool" => return Err(Error::UnknownDType(dtype)),
        name => DType::from_name(name)?,
    };
    let (dtype, logical_type) = match logical.as_deref() {
        None => (storage, None),
        Some("bool") => {
            require_storage("bool", storage, DType::U8)?;
            (DType::Bool, None)
        }
        Some(name) => {
            let logical = LogicalType::from_name(name);
            if let Some(required) = logical.storage_dtype() {
                require_storage(name, storage, required)?;
            }
            (storage, Some(logical))
        }
    };
    if let Some(shard) = &shard {
        check_shard_name(shard)?;
    }
    let decoded_len = match (&encoding, decoded_length) {
        (None, None) => blob.length,
        (Some(_), Some(n)) => {
            // No encoding this reader knows turns a blob into more than this.
            if n > blob.length.saturating_mul(MAX_EXPANSION) {
                return Err(schema(format!(
                    "decoded_length {n} is implausible for a {}-byte blob",
                    blob.length
                )));
            }
            n
        }
        _ => {
            return Err(schema(
                "'decoded_length' is required if and only if 'encoding' is present",
            ));
        }
    };
    if let Some(digest) = &digest {
        digest::check_syntax(digest).map_err(schema)?;
    }
    let component = Component {
        dtype,
        logical_type,
        // Only raw bytes in this file are element bytes at a file offset; see the crate docs.
        location: (encoding.is_none() && shard.is_none()).then_some(blob),
        encoding: encoding.clone().map_or(Encoding::Raw, Encoding::Other),
        decoded_len: Some(decoded_len),
        digest: digest.as_deref().map(Digest::parse),
    };
    let part = Part {
        blob,
        shard,
        encoding,
        decoded_len,
        digest,
    };
    Ok((component, part))
}

fn require_storage(logical: &str, found: DType, required: DType) -> Result<(), Error> {
    if found != required {
        return Err(schema(format!(
            "type '{logical}' requires dtype {required}, found {found}"
        )));
    }
    Ok(())
}

fn parse_blob(value: Value) -> Result<ByteRange, Error> {
    match value {
        Value::Array(pair) if pair.len() == 2 => Ok(ByteRange {
            offset: uint(&pair[0], "blob offset")?,
            length: uint(&pair[1], "blob length")?,
        }),
        _ => Err(schema("'blob' must be an array of 2 unsigned integers")),
    }
}

/// The part rules of the layouts the specification defines, checked on sizes alone (what
/// zTensor 2.1.2 checks when it opens a file; the index values are not read).
fn check_layout(info: &TensorInfo, layout: &str) -> Result<(), Error> {
    match layout {
        LAYOUT_DENSE => {
            let data = only_parts(info, layout, &["data"])?;
            if let Some(expected) = data[0].byte_len_for(&info.shape)? {
                check_len("data", data[0], expected)?;
            }
            Ok(())
        }
        LAYOUT_SPARSE_CSR => check_csr(info),
        LAYOUT_SPARSE_COO => check_coo(info),
        _ => Ok(()),
    }
}

/// The components named `names`, which must be all the object has.
fn only_parts<'a>(
    info: &'a TensorInfo,
    layout: &str,
    names: &[&str],
) -> Result<Vec<&'a Component>, Error> {
    let found = names
        .iter()
        .map(|n| info.components.get(*n))
        .collect::<Option<Vec<_>>>();
    match found {
        Some(found) if info.components.len() == names.len() => Ok(found),
        _ => Err(schema(format!(
            "layout '{layout}' requires exactly the parts {names:?}, found {:?}",
            info.components.keys().collect::<Vec<_>>()
        ))),
    }
}

fn decoded(component: &Component) -> u64 {
    component.decoded_len.unwrap_or(0)
}

fn check_len(role: &str, component: &Component, expected: u64) -> Result<(), Error> {
    let actual = decoded(component);
    if actual != expected {
        return Err(Error::LengthMismatch {
            component: role.to_owned(),
            expected,
            actual,
        });
    }
    Ok(())
}

/// Index parts are plain `u32` or `u64`.
fn index_width(role: &str, component: &Component) -> Result<u64, Error> {
    match (component.dtype, &component.logical_type) {
        (DType::U32 | DType::U64, None) => Ok(component.dtype.size() as u64),
        _ => Err(schema(format!("'{role}' must be plain u32 or u64"))),
    }
}

fn overflow(info: &TensorInfo) -> Error {
    Error::ShapeOverflow(info.shape.dims().to_vec())
}

/// Values of `nnz` elements must have the bytes their dtype and logical type imply.
fn check_values(values: &Component, nnz: u64) -> Result<(), Error> {
    if let Some(expected) = values.byte_len_for(&Shape(vec![nnz]))? {
        check_len("values", values, expected)?;
    }
    Ok(())
}

fn check_csr(info: &TensorInfo) -> Result<(), Error> {
    let parts = only_parts(info, LAYOUT_SPARSE_CSR, &["values", "indices", "indptr"])?;
    let (values, indices, indptr) = (parts[0], parts[1], parts[2]);
    let [rows, _cols] = info.shape.dims() else {
        return Err(schema(format!(
            "{LAYOUT_SPARSE_CSR} requires a rank-2 shape, found {}",
            info.shape
        )));
    };
    let width = index_width("indices", indices)?;
    if indptr.dtype != indices.dtype || indptr.logical_type.is_some() {
        return Err(schema("'indptr' must have the dtype of 'indices'"));
    }
    let indptr_len = rows
        .checked_add(1)
        .and_then(|n| n.checked_mul(width))
        .ok_or_else(|| overflow(info))?;
    check_len("indptr", indptr, indptr_len)?;
    if !decoded(indices).is_multiple_of(width) {
        return Err(schema(format!(
            "'indices' holds {} bytes, not a whole number of {width}-byte indices",
            decoded(indices)
        )));
    }
    check_values(values, decoded(indices) / width)
}

/// `zt.sparse_coo/1`: `coords` is `ndim x nnz` indices, `values` has `nnz` elements. zTensor
/// 2.1.2 does not check this layout; this reader does, so that a `SparseCoo` tensor it hands out
/// is always consistent.
fn check_coo(info: &TensorInfo) -> Result<(), Error> {
    let parts = only_parts(info, LAYOUT_SPARSE_COO, &["values", "coords"])?;
    let (values, coords) = (parts[0], parts[1]);
    let rank = info.shape.rank() as u64;
    if rank == 0 {
        return Err(schema(format!(
            "{LAYOUT_SPARSE_COO} requires rank 1 or more"
        )));
    }
    let row = rank * index_width("coords", coords)?;
    if !decoded(coords).is_multiple_of(row) {
        return Err(schema(format!(
            "'coords' holds {} bytes, not {rank} rows of whole indices",
            decoded(coords)
        )));
    }
    check_values(values, decoded(coords) / row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_names() {
        assert_eq!(format_of("dense"), Format::Dense);
        assert_eq!(format_of("zt.sparse_csr/1"), Format::SparseCsr);
        assert_eq!(format_of("gguf.q4_k/1"), Format::Other("gguf.q4_k".into()));
        assert_eq!(
            format_of("gguf.q4_k/2"),
            Format::Other("gguf.q4_k/2".into())
        );
        assert_eq!(format_of("gguf./1"), Format::Other("gguf./1".into()));
        assert_eq!(
            format_of("zt.quant_group/1"),
            Format::Other("zt.quant_group/1".into())
        );
    }

    #[test]
    fn shard_names() {
        for ok in ["s1", "model-00001", "a.b_c-d", &"x".repeat(64)] {
            check_shard_name(ok).unwrap();
        }
        for bad in [
            "",
            ".hidden",
            "..",
            "a/b",
            "a\\b",
            "é",
            &"x".repeat(65),
            "a b",
        ] {
            assert!(check_shard_name(bad).is_err(), "{bad:?}");
        }
    }
}
