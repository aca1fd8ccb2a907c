//! The header: length prefix, JSON, and the tensor table checked against the data section.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use serde::Deserialize;
use serde::de::{self, MapAccess, Visitor};
use zt_core::{ByteCursor, ByteRange, Component, Encoding, Error, Format, Shape, TensorInfo};

use crate::dtype::{data_len, parse_dtype_code, zt_dtype};
use crate::{FORMAT_NAME, MAX_HEADER_LEN, METADATA_KEY};

/// Everything the header says, validated against the file.
#[derive(Debug)]
pub(crate) struct ParsedFile {
    /// `N`, the JSON header length; the data section starts at `8 + N`.
    pub header_len: u64,
    /// `__metadata__`: `None` when the key is absent (or `null`), which is not the same file as
    /// an empty map.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Tensors by name, with absolute file offsets.
    pub tensors: BTreeMap<String, TensorInfo>,
}

/// Parses and validates a whole file image.
pub(crate) fn parse_file(bytes: &[u8]) -> Result<ParsedFile, Error> {
    let mut cursor = ByteCursor::new(bytes, FORMAT_NAME);
    let header_len = cursor.u64("header length")?;
    if header_len > MAX_HEADER_LEN {
        return Err(Error::LimitExceeded {
            what: "safetensors JSON header".into(),
            size: header_len,
            limit: MAX_HEADER_LEN,
        });
    }
    let json = cursor.take(header_len, "JSON header")?;
    let data_start = cursor.position();
    let header = parse_json(json)?;
    let tensors = lay_out(header.tensors, data_start, cursor.remaining())?;
    Ok(ParsedFile {
        header_len,
        metadata: header.metadata,
        tensors,
    })
}

pub(crate) fn parse_json(json: &[u8]) -> Result<Header, Error> {
    let text = std::str::from_utf8(json).map_err(|e| {
        Error::malformed(FORMAT_NAME, format!("JSON header is not valid UTF-8: {e}"))
    })?;
    // `from_str` allows whitespace (the writer's space padding) after the object, nothing else.
    serde_json::from_str(text)
        .map_err(|e| Error::malformed(FORMAT_NAME, format!("invalid JSON header: {e}")))
}

/// One tensor entry as written. Unknown fields are ignored, like the reference reader does.
#[derive(Debug, Deserialize)]
pub(crate) struct Entry {
    dtype: String,
    shape: Vec<u64>,
    pub data_offsets: (u64, u64),
}

/// The header object, in file order. Serde's derived maps would silently keep the last of two
/// equal keys (so does the reference reader); these visitors keep every key so that duplicates
/// are refused instead of resolved by a rule nobody wrote down.
#[derive(Debug)]
pub(crate) struct Header {
    pub metadata: Option<BTreeMap<String, String>>,
    pub tensors: Vec<(String, Entry)>,
}

impl<'de> Deserialize<'de> for Header {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Header, D::Error> {
        deserializer.deserialize_map(HeaderVisitor)
    }
}

struct HeaderVisitor;

impl<'de> Visitor<'de> for HeaderVisitor {
    type Value = Header;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object of tensor entries and an optional __metadata__ object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Header, A::Error> {
        let mut metadata = None;
        let mut seen_metadata = false;
        let mut tensors = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if key == METADATA_KEY {
                if seen_metadata {
                    return Err(de::Error::duplicate_field(METADATA_KEY));
                }
                seen_metadata = true;
                metadata = map.next_value::<Option<UniqueStrings>>()?.map(|m| m.0);
            } else {
                let entry = map
                    .next_value::<Entry>()
                    .map_err(|e| de::Error::custom(format!("tensor '{key}': {e}")))?;
                tensors.push((key, entry));
            }
        }
        Ok(Header { metadata, tensors })
    }
}

/// A string-to-string map that refuses duplicate keys.
struct UniqueStrings(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for UniqueStrings {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<UniqueStrings, D::Error> {
        deserializer.deserialize_map(UniqueStringsVisitor)
    }
}

struct UniqueStringsVisitor;

impl<'de> Visitor<'de> for UniqueStringsVisitor {
    type Value = UniqueStrings;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a __metadata__ object of string values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueStrings, A::Error> {
        let mut out = BTreeMap::new();
        while let Some((key, value)) = map.next_entry::<String, String>()? {
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate __metadata__ key '{key}'"
                )));
            }
            out.insert(key, value);
        }
        Ok(UniqueStrings(out))
    }
}

/// Checks the entries against the data section (`section_len` bytes at `data_start`) with the
/// reference reader's rules, and turns them into [`TensorInfo`]s with absolute offsets.
///
/// Rules (the `safetensors` crate's `Metadata::validate` plus the end-of-file check of
/// `read_metadata`): sorted by `data_offsets`, each range begins where the previous one ended
/// (the first at 0) and does not end before it begins; its length is exactly
/// `numel * bits / 8`, computed without overflow and a whole number of bytes; the last range
/// ends at the end of the file. Stricter than the reference: duplicate names are refused.
pub(crate) fn lay_out(
    entries: Vec<(String, Entry)>,
    data_start: u64,
    section_len: u64,
) -> Result<BTreeMap<String, TensorInfo>, Error> {
    let mut names = HashSet::with_capacity(entries.len());
    for (name, _) in &entries {
        if !names.insert(name.as_str()) {
            return Err(Error::DuplicateName(name.clone()));
        }
    }
    drop(names);

    let mut entries = entries;
    // Stable, like the reference's `sort_by_key`: equal ranges (zero-size tensors) keep file order.
    entries.sort_by_key(|(_, entry)| entry.data_offsets);
    let mut tensors = BTreeMap::new();
    let mut expected_begin = 0u64;
    let mut previous: Option<String> = None;
    for (name, entry) in entries {
        let (begin, end) = entry.data_offsets;
        let range = format!("data_offsets [{begin}, {end}]");
        if end < begin {
            return Err(
                Error::malformed(FORMAT_NAME, format!("{range} end before they begin"))
                    .in_tensor(&name),
            );
        }
        if begin > expected_begin {
            return Err(Error::malformed(
                FORMAT_NAME,
                format!(
                    "{range} leave bytes {expected_begin}..{begin} of the data section to no \
                     tensor (tensors must tile it without gaps)"
                ),
            )
            .in_tensor(&name));
        }
        if begin < expected_begin {
            return Err(Error::Overlap {
                first: previous.unwrap_or_default(),
                second: name,
            });
        }
        // Every earlier range ended inside the data section, so `begin <= section_len` and the
        // absolute offset cannot overflow.
        let offset = data_start + begin;
        if end > section_len {
            return Err(Error::OutOfBounds {
                component: "data".into(),
                offset,
                length: end - begin,
                file_len: data_start + section_len,
            }
            .in_tensor(&name));
        }
        let info = tensor_info(&name, entry, offset).map_err(|e| e.in_tensor(&name))?;
        expected_begin = end;
        previous = Some(name.clone());
        tensors.insert(name, info);
    }
    if expected_begin < section_len {
        return Err(Error::malformed(
            FORMAT_NAME,
            format!(
                "the tensors' data_offsets end at {expected_begin} but the data section has \
                 {section_len} bytes: the last {} bytes of the file belong to no tensor",
                section_len - expected_begin
            ),
        ));
    }
    Ok(tensors)
}

/// One entry whose range is known to lie in the data section, at `offset` in the file.
fn tensor_info(name: &str, entry: Entry, offset: u64) -> Result<TensorInfo, Error> {
    let (begin, end) = entry.data_offsets;
    let dtype = parse_dtype_code(&entry.dtype)?;
    let (storage, logical_type) = zt_dtype(dtype)?;
    let shape = Shape::new(entry.shape);
    let expected = data_len(dtype, &shape)?.map_err(|why| Error::malformed(FORMAT_NAME, why))?;
    let length = end - begin;
    if length != expected {
        return Err(Error::LengthMismatch {
            component: "data".into(),
            expected,
            actual: length,
        });
    }
    let component = Component {
        dtype: storage,
        logical_type,
        location: Some(ByteRange { offset, length }),
        encoding: Encoding::Raw,
        decoded_len: Some(length),
        digest: None,
    };
    Ok(TensorInfo {
        name: name.to_owned(),
        shape,
        format: Format::Dense,
        components: BTreeMap::from([("data".to_owned(), component)]),
        attributes: None,
    })
}
