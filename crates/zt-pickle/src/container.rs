//! The two `torch.save` containers: the zip archive (torch >= 1.6) and the legacy stream of
//! pickles followed by raw storages. Both come down to a pickle and a map from storage key to
//! where that storage's bytes lie.

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::sync::Arc;

use zip::CompressionMethod;
use zt_core::{ByteCursor, Error, MappedFile};

use crate::pickle::{Object, Pickle, Val, unpickle_at};
use crate::{Limits, MAX_DEFLATE_RATIO, MAX_INFLATED_LEN};

const FORMAT: &str = "pytorch";

/// `torch.serialization.MAGIC_NUMBER`, the first pickle of a legacy file.
pub const LEGACY_MAGIC: i128 = 0x1950_a86a_20f9_469c_fc6c;
/// `torch.serialization.PROTOCOL_VERSION`, its second pickle.
pub const LEGACY_PROTOCOL_VERSION: i128 = 1001;

/// Which `torch.save` layout a file uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointKind {
    /// A zip archive: `<prefix>/data.pkl`, `<prefix>/data/<key>` records.
    Zip {
        /// The archive's top directory (torch names it after the file).
        prefix: String,
        /// Contents of `<prefix>/version`, if present (`"3"`).
        version: Option<String>,
        /// Byte order of the storages (`byteorder` record; absent means little-endian).
        big_endian: bool,
    },
    /// `_use_new_zipfile_serialization=False`: pickles, then raw little-endian storages.
    Legacy,
}

/// Where the bytes of one storage record lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordSource {
    /// Raw in the file at this absolute offset: zero-copy.
    Mapped { offset: u64 },
    /// A deflated zip entry, inflated on first use.
    Deflated { entry: usize, compressed: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub source: RecordSource,
    /// Bytes the record holds (inflated size for deflated entries).
    pub len: u64,
}

/// The map, shared with the zip reader (which wants to own its input).
#[derive(Debug, Clone)]
pub struct SharedMap(pub Arc<MappedFile>);

impl AsRef<[u8]> for SharedMap {
    fn as_ref(&self) -> &[u8] {
        self.0.bytes()
    }
}

pub type Archive = zip::ZipArchive<Cursor<SharedMap>>;

/// A parsed container: the unpickled object and the storage records by key.
pub struct Opened {
    pub kind: CheckpointKind,
    pub pickle: Pickle,
    pub records: HashMap<String, Record>,
    /// Kept for inflating deflated records later.
    pub archive: Option<Archive>,
}

/// What the first bytes say the file is.
pub fn open(map: &Arc<MappedFile>, limits: &Limits) -> Result<Opened, Error> {
    let bytes = map.bytes();
    if bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06") {
        return open_zip(map, limits);
    }
    if bytes.len() >= 262 && &bytes[257..262] == b"ustar" {
        return Err(Error::Unsupported(
            "the very old tar-based torch.save format (re-save it with a current torch)".into(),
        ));
    }
    // A legacy file starts with the pickled magic number: PROTO 2 + LONG1 (the default), or a
    // protocol 1 LONG.
    if bytes.starts_with(b"\x80") || bytes.starts_with(b"\x8a") || bytes.starts_with(b"L") {
        return open_legacy(bytes, limits);
    }
    Err(Error::BadMagic {
        format: "PyTorch checkpoint",
        expected: b"PK\x03\x04",
        found: bytes[..bytes.len().min(4)].to_vec(),
    })
}

fn open_zip(map: &Arc<MappedFile>, limits: &Limits) -> Result<Opened, Error> {
    let file_len = map.len();
    let zip_err = |e: zip::result::ZipError| Error::malformed(FORMAT, format!("zip archive: {e}"));
    let mut archive =
        zip::ZipArchive::new(Cursor::new(SharedMap(Arc::clone(map)))).map_err(zip_err)?;

    let names: Vec<String> = archive
        .file_names()
        .map(|name| name.map(|n| n.into_owned()))
        .collect::<Result<_, _>>()
        .map_err(zip_err)?;
    let prefix = find_prefix(&names)?;
    if names.iter().any(|n| {
        n == &format!("{prefix}/constants.pkl") || n.starts_with(&format!("{prefix}/code/"))
    }) {
        return Err(Error::Unsupported(
            "a TorchScript archive (torch.jit.save): load it with torch.jit.load and save its \
             state_dict with torch.save"
                .into(),
        ));
    }

    // Every entry of interest, with its data range checked against the file.
    let mut entries: HashMap<String, (usize, Record)> = HashMap::new();
    for index in 0..archive.len() {
        let entry = archive.by_index_raw(index).map_err(zip_err)?;
        let name = entry.name().map_err(zip_err)?.into_owned();
        let Some(rel) = name.strip_prefix(&prefix).and_then(|r| r.strip_prefix('/')) else {
            continue;
        };
        if entry.is_dir() {
            continue;
        }
        if entry.encrypted() {
            return Err(Error::Unsupported(format!("encrypted zip entry '{name}'")));
        }
        let start = entry.data_start().ok_or_else(|| {
            Error::malformed(FORMAT, format!("zip entry '{name}' has no data offset"))
        })?;
        let compressed = entry.compressed_size();
        let size = entry.size();
        let end = start.checked_add(compressed);
        if end.is_none_or(|end| end > file_len) {
            return Err(Error::OutOfBounds {
                component: format!("zip entry '{name}'"),
                offset: start,
                length: compressed,
                file_len,
            });
        }
        let source = match entry.compression() {
            CompressionMethod::Stored => {
                if compressed != size {
                    return Err(Error::malformed(
                        FORMAT,
                        format!(
                            "stored zip entry '{name}' declares {size} bytes but holds {compressed}"
                        ),
                    ));
                }
                RecordSource::Mapped { offset: start }
            }
            CompressionMethod::Deflated => RecordSource::Deflated {
                entry: index,
                compressed,
            },
            other => {
                return Err(Error::Unsupported(format!(
                    "zip entry '{name}' compressed with {other}"
                )));
            }
        };
        entries.insert(rel.to_owned(), (index, Record { source, len: size }));
    }

    let small_text = |archive: &Archive, rel: &str| -> Result<Option<String>, Error> {
        let Some(&(_, record)) = entries.get(rel) else {
            return Ok(None);
        };
        let bytes = read_record(map, archive, record, 64, rel)?;
        Ok(Some(String::from_utf8_lossy(&bytes).trim().to_owned()))
    };
    let big_endian = match small_text(&archive, "byteorder")?.as_deref() {
        None | Some("little") => false,
        Some("big") => true,
        Some(other) => {
            return Err(Error::malformed(
                FORMAT,
                format!(
                    "byteorder record says '{}', expected little or big",
                    other.escape_debug()
                ),
            ));
        }
    };
    let version = match small_text(&archive, "version")? {
        Some(v) => Some(v),
        None => small_text(&archive, ".data/version")?,
    };

    let &(_, pickle_record) = entries
        .get("data.pkl")
        .ok_or_else(|| Error::malformed(FORMAT, format!("zip archive has no {prefix}/data.pkl")))?;
    let pickle_bytes = read_record(
        map,
        &archive,
        pickle_record,
        limits.max_pickle_len,
        "data.pkl",
    )?;
    let (pickle, _) = unpickle_at(&pickle_bytes, 0, limits)?;

    let records = entries
        .into_iter()
        .filter_map(|(rel, (_, record))| {
            rel.strip_prefix("data/")
                .map(|key| (key.to_owned(), record))
        })
        .collect();
    Ok(Opened {
        kind: CheckpointKind::Zip {
            prefix,
            version,
            big_endian,
        },
        pickle,
        records,
        archive: Some(archive),
    })
}

/// torch's reader takes the directory of the archive's records from `<prefix>/data.pkl`; a
/// checkpoint has exactly one.
fn find_prefix(names: &[String]) -> Result<String, Error> {
    let mut prefixes = names.iter().filter_map(|n| {
        n.strip_suffix("/data.pkl")
            .filter(|p| !p.is_empty() && !p.contains('/'))
    });
    match (prefixes.next(), prefixes.next()) {
        (Some(p), None) => Ok(p.to_owned()),
        (None, _) => Err(Error::malformed(
            FORMAT,
            "zip archive has no <dir>/data.pkl record: not a torch.save checkpoint",
        )),
        (Some(a), Some(b)) => Err(Error::malformed(
            FORMAT,
            format!("zip archive has two data.pkl records ('{a}/', '{b}/')"),
        )),
    }
}

/// The bytes of a zip record: borrowed when stored, inflated (with size checks) when deflated.
pub fn read_record<'a>(
    map: &'a MappedFile,
    archive: &Archive,
    record: Record,
    cap: u64,
    what: &str,
) -> Result<std::borrow::Cow<'a, [u8]>, Error> {
    if record.len > cap {
        return Err(Error::LimitExceeded {
            what: format!("zip record '{what}'"),
            size: record.len,
            limit: cap,
        });
    }
    match record.source {
        RecordSource::Mapped { offset } => Ok(map.slice(offset, record.len, what)?.into()),
        RecordSource::Deflated { entry, compressed } => {
            inflate(archive, entry, compressed, record.len, what).map(Into::into)
        }
    }
}

/// Inflates one deflated entry, refusing sizes deflate cannot produce and output that does not
/// match the declared size; memory grows with the output actually produced, never with a claim.
pub fn inflate(
    archive: &Archive,
    entry: usize,
    compressed: u64,
    declared: u64,
    what: &str,
) -> Result<Vec<u8>, Error> {
    let fail = |reason: String| Error::Decompress {
        component: what.to_owned(),
        reason,
    };
    if declared > MAX_INFLATED_LEN {
        return Err(Error::LimitExceeded {
            what: format!("inflated zip record '{what}'"),
            size: declared,
            limit: MAX_INFLATED_LEN,
        });
    }
    if declared
        > compressed
            .saturating_mul(MAX_DEFLATE_RATIO)
            .saturating_add(64)
    {
        return Err(fail(format!(
            "declares {declared} bytes from {compressed} compressed, more than deflate can \
             produce (zip bomb?)"
        )));
    }
    let mut archive = archive.clone();
    let reader = archive.by_index(entry).map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::with_capacity(declared.min(compressed.saturating_mul(4) + 4096) as usize);
    reader
        .take(declared.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| fail(e.to_string()))?;
    if out.len() as u64 != declared {
        return Err(fail(format!(
            "inflates to {}{} bytes but declares {declared}",
            out.len(),
            if out.len() as u64 > declared { "+" } else { "" }
        )));
    }
    Ok(out)
}

fn open_legacy(bytes: &[u8], limits: &Limits) -> Result<Opened, Error> {
    let header = |what: &str, e: Error| match e {
        e @ (Error::ForbiddenGlobal { .. } | Error::LimitExceeded { .. }) => e,
        e => Error::malformed(FORMAT, format!("legacy torch.save {what}: {e}")),
    };
    let (magic, pos) = unpickle_at(bytes, 0, limits).map_err(|e| header("magic number", e))?;
    if int_value(&magic) != Some(LEGACY_MAGIC) {
        return Err(Error::malformed(
            FORMAT,
            "starts with a pickle that is not torch's magic number: not a torch.save file",
        ));
    }
    let (version, pos) =
        unpickle_at(bytes, pos, limits).map_err(|e| header("protocol version", e))?;
    if int_value(&version) != Some(LEGACY_PROTOCOL_VERSION) {
        return Err(Error::malformed(
            FORMAT,
            format!(
                "legacy protocol version {:?}, expected 1001",
                int_value(&version)
            ),
        ));
    }
    let (_sys_info, pos) = unpickle_at(bytes, pos, limits).map_err(|e| header("sys_info", e))?;
    let (pickle, pos) = unpickle_at(bytes, pos, limits)?;
    let (keys, pos) = unpickle_at(bytes, pos, limits).map_err(|e| header("storage key list", e))?;
    let keys = string_list(&keys).ok_or_else(|| {
        Error::malformed(FORMAT, "legacy storage key list is not a list of strings")
    })?;

    // Each storage: its element count (int64 LE) and that many elements, in key-list order. The
    // element size is the dtype of the first persistent id naming the key, as torch uses.
    let element_sizes = storage_element_sizes(&pickle);
    let mut cursor = ByteCursor::new(bytes, FORMAT);
    cursor.seek(pos as u64)?;
    let mut records = HashMap::with_capacity(keys.len().min(bytes.len()));
    for key in keys {
        let Some(&(es, declared)) = element_sizes.get(key.as_str()) else {
            return Err(Error::malformed(
                FORMAT,
                format!("legacy storage '{key}' is listed but no tensor uses it"),
            ));
        };
        let count = cursor.u64("storage element count")?;
        let len = count
            .checked_mul(es)
            .filter(|&len| len <= cursor.remaining())
            .ok_or_else(|| Error::Truncated {
                what: format!("legacy storage '{key}' ({count} elements of {es} bytes)"),
                needed: count.saturating_mul(es),
                available: cursor.remaining(),
            })?;
        if len != declared {
            return Err(Error::malformed(
                FORMAT,
                format!(
                    "legacy storage '{key}' holds {len} bytes but its tensors declare {declared}"
                ),
            ));
        }
        let offset = cursor.position();
        cursor.take(len, "storage")?;
        if records
            .insert(
                key.clone(),
                Record {
                    source: RecordSource::Mapped { offset },
                    len,
                },
            )
            .is_some()
        {
            return Err(Error::malformed(
                FORMAT,
                format!("legacy storage '{key}' is listed twice"),
            ));
        }
    }
    Ok(Opened {
        kind: CheckpointKind::Legacy,
        pickle,
        records,
        archive: None,
    })
}

fn int_value(pickle: &Pickle) -> Option<i128> {
    match pickle.root {
        Val::Int(i) => Some(i.into()),
        v => match pickle.object(v) {
            Some(Object::BigInt(i)) => *i,
            _ => None,
        },
    }
}

fn string_list(pickle: &Pickle) -> Option<Vec<String>> {
    match pickle.object(pickle.root)? {
        Object::List(items) => items
            .iter()
            .map(|&v| match pickle.object(v) {
                Some(Object::Str(s)) => Some(s.clone()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// For each storage key: the element size and the byte length of the first persistent id that
/// names it.
fn storage_element_sizes(pickle: &Pickle) -> HashMap<&str, (u64, u64)> {
    let mut sizes = HashMap::new();
    for object in &pickle.objects {
        let storage = match object {
            Object::Storage(s) => s,
            Object::Tensor(t) => &t.storage,
            _ => continue,
        };
        if let Ok(len) = storage.record_len() {
            sizes
                .entry(storage.key.as_str())
                .or_insert((storage.dtype.element_size, len));
        }
    }
    sizes
}
