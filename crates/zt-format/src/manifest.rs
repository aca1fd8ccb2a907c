//! The CBOR manifest: decoding with strict validation, and encoding in exactly the form
//! zTensor 1.2.3 writes (key order, shortest integers and floats, definite lengths).

use std::collections::BTreeMap;

use ciborium::value::{Integer, Value as Cbor};
use zt_core::{
    Attributes, ByteRange, Component, DType, Digest, Encoding, Error, Format, LogicalType, Shape,
    TensorInfo, Value,
};

/// Version string written into new files; 1.2.0 to 1.2.3 all write this.
pub const FORMAT_VERSION: &str = "1.2.0";

/// Version string zTensor 1.2.3 gives legacy `ZTEN0001` files when it converts them.
pub const LEGACY_VERSION: &str = "0.1.0";

/// Deepest nesting of CBOR arrays, maps and tags accepted in a manifest. zTensor manifests are
/// 4 levels deep plus attribute values; 128 leaves plenty for nested attributes while keeping
/// the recursive decoder's stack use small.
pub const MAX_CBOR_DEPTH: usize = 128;

/// The parsed manifest of a `.zt` file.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub version: String,
    /// Root `attributes`: file-level metadata. `None` writes no key.
    pub attributes: Option<Attributes>,
    pub objects: BTreeMap<String, TensorInfo>,
}

impl Default for Manifest {
    fn default() -> Self {
        Manifest {
            version: FORMAT_VERSION.to_owned(),
            attributes: None,
            objects: BTreeMap::new(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

/// Decodes one CBOR item from the start of `bytes` (trailing bytes are ignored, as in 1.2.3).
pub fn decode_cbor(bytes: &[u8]) -> Result<Cbor, Error> {
    let value: Cbor = ciborium::de::from_reader_with_recursion_limit(bytes, MAX_CBOR_DEPTH)
        .map_err(|e| Error::manifest(format!("CBOR decoding failed: {e}")))?;
    // A self-describe tag (55799) in front of the manifest is allowed.
    Ok(match value {
        Cbor::Tag(55799, inner) => *inner,
        v => v,
    })
}

/// Parses and validates the schema of a `ZTEN1000` manifest.
pub fn parse_manifest(bytes: &[u8]) -> Result<Manifest, Error> {
    let root = decode_cbor(bytes)?;
    let entries = as_map(root, "manifest root")?;
    let mut version = None;
    let mut attributes = None;
    let mut objects = None;
    for (key, value) in entries {
        let key = key_text(key, "manifest root")?;
        match key.as_str() {
            "version" => {
                set_once(&mut version, "version", text(value, "version")?)?;
            }
            "attributes" => {
                set_once(
                    &mut attributes,
                    "attributes",
                    parse_optional_attributes(value, "root")?,
                )?;
            }
            "objects" => {
                set_once(&mut objects, "objects", parse_objects(value)?)?;
            }
            _ => {} // unknown keys are ignored, as every 1.x reader does
        }
    }
    Ok(Manifest {
        version: version.ok_or_else(|| Error::manifest("missing field 'version'"))?,
        attributes: attributes.flatten(),
        objects: objects.ok_or_else(|| Error::manifest("missing field 'objects'"))?,
    })
}

fn parse_objects(value: Cbor) -> Result<BTreeMap<String, TensorInfo>, Error> {
    let mut objects = BTreeMap::new();
    for (key, value) in as_map(value, "objects")? {
        let name = key_text(key, "objects")?;
        let info = parse_object(&name, value).map_err(|e| e.in_tensor(&name))?;
        if objects.insert(name.clone(), info).is_some() {
            return Err(Error::manifest(format!(
                "tensor name '{name}' appears twice in 'objects'"
            )));
        }
    }
    Ok(objects)
}

fn parse_object(name: &str, value: Cbor) -> Result<TensorInfo, Error> {
    let mut shape = None;
    let mut format = None;
    let mut attributes = None;
    let mut components = None;
    for (key, value) in as_map(value, "object")? {
        let key = key_text(key, "object")?;
        match key.as_str() {
            "shape" => set_once(&mut shape, "shape", parse_shape(value)?)?,
            "format" => set_once(&mut format, "format", text(value, "format")?)?,
            "attributes" => set_once(
                &mut attributes,
                "attributes",
                parse_optional_attributes(value, "object")?,
            )?,
            "components" => set_once(&mut components, "components", parse_components(value)?)?,
            _ => {}
        }
    }
    Ok(TensorInfo {
        name: name.to_owned(),
        shape: shape.ok_or_else(|| Error::manifest("missing field 'shape'"))?,
        format: Format::from_name(
            &format.ok_or_else(|| Error::manifest("missing field 'format'"))?,
        ),
        components: components.ok_or_else(|| Error::manifest("missing field 'components'"))?,
        attributes: attributes.flatten(),
    })
}

fn parse_shape(value: Cbor) -> Result<Shape, Error> {
    let Cbor::Array(items) = value else {
        return Err(Error::manifest("'shape' must be an array"));
    };
    let dims = items
        .into_iter()
        .map(|d| match d {
            Cbor::Integer(i) => u64::try_from(i)
                .map_err(|_| Error::manifest("'shape' has a negative or oversized dimension")),
            _ => Err(Error::manifest("'shape' entries must be unsigned integers")),
        })
        .collect::<Result<Vec<u64>, Error>>()?;
    Ok(Shape(dims))
}

fn parse_components(value: Cbor) -> Result<BTreeMap<String, Component>, Error> {
    let mut components = BTreeMap::new();
    for (key, value) in as_map(value, "components")? {
        let role = key_text(key, "components")?;
        let component = parse_component(value).map_err(|e| match e {
            Error::Manifest(msg) => Error::manifest(format!("component '{role}': {msg}")),
            other => other,
        })?;
        if components.insert(role.clone(), component).is_some() {
            return Err(Error::manifest(format!("component '{role}' appears twice")));
        }
    }
    Ok(components)
}

fn parse_component(value: Cbor) -> Result<Component, Error> {
    let mut dtype = None;
    let mut logical_type = None;
    let mut offset = None;
    let mut length = None;
    let mut uncompressed = None;
    let mut encoding = None;
    let mut digest = None;
    for (key, value) in as_map(value, "component")? {
        let key = key_text(key, "component")?;
        match key.as_str() {
            "dtype" => set_once(
                &mut dtype,
                "dtype",
                DType::from_name(&text(value, "dtype")?)?,
            )?,
            "type" => set_once(
                &mut logical_type,
                "type",
                optional(value, |v| Ok(LogicalType::from_name(&text(v, "type")?)))?,
            )?,
            "offset" => set_once(&mut offset, "offset", uint(value, "offset")?)?,
            "length" => set_once(&mut length, "length", uint(value, "length")?)?,
            "uncompressed_length" => set_once(
                &mut uncompressed,
                "uncompressed_length",
                optional(value, |v| uint(v, "uncompressed_length"))?,
            )?,
            "encoding" => set_once(
                &mut encoding,
                "encoding",
                optional(value, |v| {
                    Ok(match text(v, "encoding")?.as_str() {
                        "raw" => Encoding::Raw,
                        "zstd" => Encoding::Zstd,
                        other => Encoding::Other(other.to_owned()),
                    })
                })?,
            )?,
            "digest" => set_once(
                &mut digest,
                "digest",
                optional(value, |v| Ok(Digest::parse(&text(v, "digest")?)))?,
            )?,
            _ => {}
        }
    }
    let offset = offset.ok_or_else(|| Error::manifest("missing field 'offset'"))?;
    let length = length.ok_or_else(|| Error::manifest("missing field 'length'"))?;
    let encoding = encoding.flatten().unwrap_or(Encoding::Raw);
    let decoded_len = match encoding {
        Encoding::Raw => Some(length),
        _ => uncompressed.flatten(),
    };
    Ok(Component {
        dtype: dtype.ok_or_else(|| Error::manifest("missing field 'dtype'"))?,
        logical_type: logical_type.flatten(),
        location: Some(ByteRange { offset, length }),
        encoding,
        decoded_len,
        digest: digest.flatten(),
    })
}

/// Parses a legacy `ZTEN0001` manifest: a CBOR array of per-tensor maps.
///
/// Like zTensor 1.2.3, entries with a non-dense `layout` are dropped and any encoding other than
/// `zstd` means raw.
pub fn parse_legacy_manifest(bytes: &[u8]) -> Result<Manifest, Error> {
    let Cbor::Array(entries) = decode_cbor(bytes)? else {
        return Err(Error::manifest("legacy manifest must be a CBOR array"));
    };
    let mut objects = BTreeMap::new();
    for entry in entries {
        let mut fields: BTreeMap<String, Cbor> = BTreeMap::new();
        for (key, value) in as_map(entry, "legacy tensor entry")? {
            fields.insert(key_text(key, "legacy tensor entry")?, value);
        }
        let mut take = |key: &str| {
            fields
                .remove(key)
                .ok_or_else(|| Error::manifest(format!("legacy entry is missing '{key}'")))
        };
        let name = text(take("name")?, "name")?;
        let offset = uint(take("offset")?, "offset")?;
        let size = uint(take("size")?, "size")?;
        let dtype = DType::from_long_name(&text(take("dtype")?, "dtype")?)?;
        let shape = parse_shape(take("shape")?)?;
        let encoding = match text(take("encoding")?, "encoding")?.as_str() {
            "zstd" => Encoding::Zstd,
            _ => Encoding::Raw,
        };
        let layout = fields
            .remove("layout")
            .map(|v| text(v, "layout"))
            .transpose()?;
        if layout
            .as_deref()
            .is_some_and(|l| !l.is_empty() && l != "dense")
        {
            continue;
        }
        let digest = fields
            .remove("checksum")
            .map(|v| text(v, "checksum"))
            .transpose()?
            .map(|d| Digest::parse(&d));
        let decoded_len = match encoding {
            Encoding::Raw => Some(size),
            _ => None,
        };
        let mut components = BTreeMap::new();
        components.insert(
            "data".to_owned(),
            Component {
                dtype,
                logical_type: None,
                location: Some(ByteRange {
                    offset,
                    length: size,
                }),
                encoding,
                decoded_len,
                digest,
            },
        );
        let info = TensorInfo {
            name: name.clone(),
            shape,
            format: Format::Dense,
            components,
            attributes: None,
        };
        // Later duplicates win, as in 1.2.3's conversion into a map.
        objects.insert(name, info);
    }
    Ok(Manifest {
        version: LEGACY_VERSION.to_owned(),
        attributes: None,
        objects,
    })
}

fn parse_attributes(value: Cbor, owner: &str) -> Result<Attributes, Error> {
    let mut attrs = Attributes::new();
    for (key, value) in as_map(value, "attributes")? {
        let key = match key {
            Cbor::Text(s) => s,
            _ => {
                return Err(Error::manifest(format!(
                    "{owner} attribute keys must be text"
                )));
            }
        };
        attrs.insert(key, from_cbor(value));
    }
    Ok(attrs)
}

fn parse_optional_attributes(value: Cbor, owner: &str) -> Result<Option<Attributes>, Error> {
    optional(value, |v| parse_attributes(v, owner))
}

/// Converts any CBOR value into an attribute value. Total: it cannot fail.
pub fn from_cbor(value: Cbor) -> Value {
    match value {
        Cbor::Null => Value::Null,
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Integer(i) => Value::Integer(i128::from(i)),
        Cbor::Float(f) => Value::Float(f),
        Cbor::Text(s) => Value::Text(s),
        Cbor::Bytes(b) => Value::Bytes(b),
        Cbor::Array(items) => Value::Array(items.into_iter().map(from_cbor).collect()),
        Cbor::Map(entries) => Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (from_cbor(k), from_cbor(v)))
                .collect(),
        ),
        Cbor::Tag(tag @ (2 | 3), inner) => match *inner {
            Cbor::Bytes(b) if b.len() <= 15 => {
                let n = b
                    .iter()
                    .fold(0i128, |acc, &byte| (acc << 8) | i128::from(byte));
                Value::Integer(if tag == 2 { n } else { -1 - n })
            }
            other => Value::Tag(tag, Box::new(from_cbor(other))),
        },
        Cbor::Tag(tag, inner) => Value::Tag(tag, Box::new(from_cbor(*inner))),
        // Undefined and unassigned simple values carry no data we can keep.
        _ => Value::Null,
    }
}

fn as_map(value: Cbor, what: &str) -> Result<Vec<(Cbor, Cbor)>, Error> {
    match value {
        Cbor::Map(entries) => Ok(entries),
        other => Err(Error::manifest(format!(
            "{what} must be a map, found {}",
            cbor_kind(&other)
        ))),
    }
}

fn key_text(key: Cbor, what: &str) -> Result<String, Error> {
    match key {
        Cbor::Text(s) => Ok(s),
        other => Err(Error::manifest(format!(
            "{what} keys must be text, found {}",
            cbor_kind(&other)
        ))),
    }
}

fn text(value: Cbor, field: &str) -> Result<String, Error> {
    match value {
        Cbor::Text(s) => Ok(s),
        other => Err(Error::manifest(format!(
            "'{field}' must be text, found {}",
            cbor_kind(&other)
        ))),
    }
}

fn uint(value: Cbor, field: &str) -> Result<u64, Error> {
    match value {
        Cbor::Integer(i) => u64::try_from(i)
            .map_err(|_| Error::manifest(format!("'{field}' must be an unsigned 64-bit integer"))),
        other => Err(Error::manifest(format!(
            "'{field}' must be an unsigned integer, found {}",
            cbor_kind(&other)
        ))),
    }
}

/// An explicit CBOR null is the same as an absent key (1.2.3 accepts both).
fn optional<T>(
    value: Cbor,
    parse: impl FnOnce(Cbor) -> Result<T, Error>,
) -> Result<Option<T>, Error> {
    match value {
        Cbor::Null => Ok(None),
        v => parse(v).map(Some),
    }
}

fn set_once<T>(slot: &mut Option<T>, field: &str, value: T) -> Result<(), Error> {
    if slot.is_some() {
        return Err(Error::manifest(format!("duplicate field '{field}'")));
    }
    *slot = Some(value);
    Ok(())
}

fn cbor_kind(value: &Cbor) -> &'static str {
    match value {
        Cbor::Integer(_) => "an integer",
        Cbor::Bytes(_) => "bytes",
        Cbor::Float(_) => "a float",
        Cbor::Text(_) => "text",
        Cbor::Bool(_) => "a boolean",
        Cbor::Null => "null",
        Cbor::Tag(..) => "a tag",
        Cbor::Array(_) => "an array",
        Cbor::Map(_) => "a map",
        _ => "a simple value",
    }
}

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/// Encodes the manifest exactly as zTensor 1.2.3 does.
pub fn encode_manifest(manifest: &Manifest) -> Result<Vec<u8>, Error> {
    let mut root = vec![(text_value("version"), Cbor::Text(manifest.version.clone()))];
    if let Some(attrs) = &manifest.attributes {
        root.push((text_value("attributes"), attributes_to_cbor(attrs)?));
    }
    let mut objects = Vec::with_capacity(manifest.objects.len());
    for (name, info) in &manifest.objects {
        objects.push((Cbor::Text(name.clone()), object_to_cbor(info)?));
    }
    root.push((text_value("objects"), Cbor::Map(objects)));
    let mut out = Vec::new();
    ciborium::ser::into_writer(&Cbor::Map(root), &mut out)
        .map_err(|e| Error::manifest(format!("CBOR encoding failed: {e}")))?;
    Ok(out)
}

fn object_to_cbor(info: &TensorInfo) -> Result<Cbor, Error> {
    let shape = info
        .shape
        .dims()
        .iter()
        .map(|&d| Cbor::Integer(d.into()))
        .collect();
    let mut map = vec![
        (text_value("shape"), Cbor::Array(shape)),
        (
            text_value("format"),
            Cbor::Text(info.format.name().to_owned()),
        ),
    ];
    if let Some(attrs) = &info.attributes {
        map.push((text_value("attributes"), attributes_to_cbor(attrs)?));
    }
    let components = info
        .components
        .iter()
        .map(|(role, c)| Ok((Cbor::Text(role.clone()), component_to_cbor(role, c)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    map.push((text_value("components"), Cbor::Map(components)));
    Ok(Cbor::Map(map))
}

fn component_to_cbor(role: &str, c: &Component) -> Result<Cbor, Error> {
    let range = c.location.ok_or_else(|| {
        Error::InvalidArgument(format!("component '{role}' has no location in the file"))
    })?;
    let mut map = vec![(text_value("dtype"), text_value(c.dtype.name()))];
    if let Some(t) = &c.logical_type {
        map.push((text_value("type"), Cbor::Text(t.name().to_owned())));
    }
    map.push((text_value("offset"), Cbor::Integer(range.offset.into())));
    map.push((text_value("length"), Cbor::Integer(range.length.into())));
    match &c.encoding {
        Encoding::Raw => {}
        other => {
            if let Some(n) = c.decoded_len {
                map.push((text_value("uncompressed_length"), Cbor::Integer(n.into())));
            }
            map.push((text_value("encoding"), Cbor::Text(other.name().to_owned())));
        }
    }
    if let Some(d) = &c.digest {
        map.push((text_value("digest"), Cbor::Text(d.to_string())));
    }
    Ok(Cbor::Map(map))
}

fn attributes_to_cbor(attrs: &Attributes) -> Result<Cbor, Error> {
    attrs
        .iter()
        .map(|(k, v)| Ok((Cbor::Text(k.clone()), to_cbor(v)?)))
        .collect::<Result<Vec<_>, Error>>()
        .map(Cbor::Map)
}

fn bignum_bytes(n: u128) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    bytes[first..].to_vec()
}

/// Converts an attribute value to CBOR.
pub fn to_cbor(value: &Value) -> Result<Cbor, Error> {
    Ok(match value {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(*b),
        Value::Integer(i) => match Integer::try_from(*i) {
            Ok(small) => Cbor::Integer(small),
            // Beyond CBOR's 64-bit integers: a bignum (tag 2 positive, tag 3 for -1 - n), as
            // RFC 8949 defines it, so Python's big ints survive.
            Err(_) if *i >= 0 => Cbor::Tag(2, Box::new(Cbor::Bytes(bignum_bytes(*i as u128)))),
            Err(_) => Cbor::Tag(3, Box::new(Cbor::Bytes(bignum_bytes((-1 - *i) as u128)))),
        },
        Value::Float(f) => Cbor::Float(*f),
        Value::Text(s) => Cbor::Text(s.clone()),
        Value::Bytes(b) => Cbor::Bytes(b.clone()),
        Value::Array(items) => Cbor::Array(items.iter().map(to_cbor).collect::<Result<_, _>>()?),
        Value::Map(entries) => Cbor::Map(
            entries
                .iter()
                .map(|(k, v)| Ok((to_cbor(k)?, to_cbor(v)?)))
                .collect::<Result<_, Error>>()?,
        ),
        Value::Tag(tag, inner) => Cbor::Tag(*tag, Box::new(to_cbor(inner)?)),
    })
}

fn text_value(s: &str) -> Cbor {
    Cbor::Text(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn golden_single_f32_manifest() {
        let mut m = Manifest::default();
        let mut components = BTreeMap::new();
        components.insert("data".to_owned(), Component::raw(DType::F32, 64, 24));
        m.objects.insert(
            "a".into(),
            TensorInfo {
                name: "a".into(),
                shape: Shape::from([2, 3]),
                format: Format::Dense,
                components,
                attributes: None,
            },
        );
        let bytes = encode_manifest(&m).unwrap();
        assert_eq!(
            hex(&bytes),
            "a26776657273696f6e65312e322e30676f626a65637473a16161a365736861706582020366666f726d61746564656e73656a636f6d706f6e656e7473a16464617461a365647479706563663332666f66667365741840666c656e6774681818"
        );
        assert_eq!(parse_manifest(&bytes).unwrap(), m);
    }

    #[test]
    fn empty_manifest_is_golden() {
        let bytes = encode_manifest(&Manifest::default()).unwrap();
        assert_eq!(
            hex(&bytes),
            "a26776657273696f6e65312e322e30676f626a65637473a0"
        );
    }

    #[test]
    fn floats_use_the_shortest_exact_width() {
        for (f, expected) in [
            (0.5, "f93800"),
            (1e10, "fa501502f9"),
            (0.1, "fb3fb999999999999a"),
            (-0.0, "f98000"),
            (f64::INFINITY, "f97c00"),
            (f64::NAN, "f97e00"),
            (65504.0, "f97bff"),
        ] {
            let mut out = Vec::new();
            ciborium::ser::into_writer(&to_cbor(&Value::Float(f)).unwrap(), &mut out).unwrap();
            assert_eq!(hex(&out), expected, "{f}");
        }
    }

    #[test]
    fn big_integers_round_trip_as_bignums() {
        for i in [
            1i128 << 70,
            -(1i128 << 70),
            (1 << 64) - 1,
            -(1 << 64),
            i128::from(u64::MAX) + 1,
        ] {
            let cbor = to_cbor(&Value::Integer(i)).unwrap();
            let mut out = Vec::new();
            ciborium::ser::into_writer(&cbor, &mut out).unwrap();
            assert_eq!(
                from_cbor(decode_cbor(&out).unwrap()),
                Value::Integer(i),
                "{i}"
            );
        }
        // 2^64 is the smallest positive bignum: tag 2, 9 bytes.
        let mut out = Vec::new();
        ciborium::ser::into_writer(&to_cbor(&Value::Integer(1 << 64)).unwrap(), &mut out).unwrap();
        assert_eq!(hex(&out), "c249010000000000000000");
    }

    #[test]
    fn rejects_duplicates_and_wrong_types() {
        // {"version": 1, "objects": {}}
        let bad_version = [
            0xa2, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x01, 0x67, b'o', b'b', b'j',
            b'e', b'c', b't', b's', 0xa0,
        ];
        let e = parse_manifest(&bad_version).unwrap_err();
        assert!(e.to_string().contains("'version' must be text"), "{e}");
        let missing = [0xa0];
        assert!(
            parse_manifest(&missing)
                .unwrap_err()
                .to_string()
                .contains("version")
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_overflowing_the_stack() {
        let mut bytes = vec![0x81; 100_000];
        bytes.push(0x00);
        assert!(decode_cbor(&bytes).is_err());
    }
}
