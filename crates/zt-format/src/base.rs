//! Checkpoint deltas: `.zt` files whose tensors are stored relative to a base file (spec 8.2).
//!
//! The base is identified by the SHA-256 and length of the whole file, recorded in the root
//! attribute `zt.base`. Each component of a delta file is one of: a standalone component (raw,
//! zstd or `ztc1`), a `ztc1` XOR-delta frame against the base component of the same tensor name
//! and role, or an empty `zt.ref` copy of that base component. The base may be any format a
//! [`TensorReader`] reads (a safetensors checkpoint, a `.zt` file, ...).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use sha2::{Digest as _, Sha256};
use zt_codec::{CompressOptions, Effort};
use zt_core::{Attributes, ChecksumAlgorithm, Encoding, Error, TensorReader, Value};

use crate::{BASE_ATTRIBUTE, CODEC_ENCODING, REF_ENCODING, Writer};

/// Which base file a delta file was made against: the `zt.base` root attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseIdentity {
    /// SHA-256 of the whole base file.
    pub sha256: [u8; 32],
    /// Length of the base file in bytes.
    pub length: u64,
    /// The base file's name when the delta was made (informative only, never trusted).
    pub name: String,
}

impl BaseIdentity {
    /// Hashes a whole file (streamed; ~1-2 GB/s with SHA extensions).
    pub fn of_file(path: &Path) -> Result<BaseIdentity, Error> {
        let mut file = File::open(path).map_err(|e| Error::from(e).in_file(path))?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 1 << 20];
        let mut length = 0u64;
        loop {
            let n = file
                .read(&mut buffer)
                .map_err(|e| Error::from(e).in_file(path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            length += n as u64;
        }
        Ok(BaseIdentity {
            sha256: hasher.finalize().into(),
            length,
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        })
    }

    /// The `zt.base` value: a map with `digest`, `length`, `name` in that order.
    pub fn to_value(&self) -> Value {
        Value::Map(vec![
            (
                Value::Text("digest".into()),
                Value::Text(format!("sha256:{}", hex(&self.sha256))),
            ),
            (
                Value::Text("length".into()),
                Value::Integer(self.length.into()),
            ),
            (Value::Text("name".into()), Value::Text(self.name.clone())),
        ])
    }

    /// Reads `zt.base` from a file's root attributes; `None` when there is none.
    pub fn from_attributes(attributes: Option<&Attributes>) -> Result<Option<BaseIdentity>, Error> {
        let Some(value) = attributes.and_then(|a| a.get(BASE_ATTRIBUTE)) else {
            return Ok(None);
        };
        let bad = |why: &str| Error::manifest(format!("root attribute '{BASE_ATTRIBUTE}' {why}"));
        let Value::Map(entries) = value else {
            return Err(bad("is not a map"));
        };
        let field = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v)
        };
        let digest = field("digest")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("has no text 'digest'"))?;
        let sha256 = digest
            .strip_prefix("sha256:")
            .and_then(parse_hex32)
            .ok_or_else(|| bad("has a digest that is not sha256:<64 hex digits>"))?;
        let length = field("length")
            .and_then(Value::as_i128)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| bad("has no unsigned 'length'"))?;
        let name = field("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        Ok(Some(BaseIdentity {
            sha256,
            length,
            name,
        }))
    }

    /// Checks that the file at `path` is this base: its length first (cheap), then SHA-256.
    pub fn check_file(&self, path: &Path) -> Result<(), Error> {
        let length = std::fs::metadata(path)
            .map_err(|e| Error::from(e).in_file(path))?
            .len();
        if length != self.length {
            return Err(Error::WrongBase(format!(
                "{} is {length} bytes, the delta was made against '{}' of {} bytes",
                path.display(),
                self.name,
                self.length
            )));
        }
        let actual = BaseIdentity::of_file(path)?;
        if actual.sha256 != self.sha256 {
            return Err(Error::WrongBase(format!(
                "{} has sha256:{}, the delta was made against '{}' with sha256:{}",
                path.display(),
                hex(&actual.sha256),
                self.name,
                hex(&self.sha256)
            )));
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn parse_hex32(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Whether stored `ztc1` bytes are a delta frame (needs the base to decode).
pub(crate) fn is_delta_frame(stored: &[u8]) -> bool {
    zt_codec::frame_info(stored).is_ok_and(|info| info.is_delta)
}

/// A codec error in a `.zt` component: a reference mismatch means the base is wrong.
pub(crate) fn codec_error(role: &str, e: Error) -> Error {
    match e {
        Error::ChecksumMismatch { ref component, .. }
        | Error::LengthMismatch { ref component, .. }
            if component == "delta reference" =>
        {
            Error::WrongBase(format!(
                "component '{role}' does not match what the delta was made against ({e})"
            ))
        }
        e @ Error::LimitExceeded { .. } => e,
        e => Error::Decompress {
            component: role.to_owned(),
            reason: e.to_string(),
        },
    }
}

/// How [`write_delta`] stores each component.
#[derive(Debug, Clone)]
pub struct DeltaOptions {
    /// Codec effort for delta and standalone frames.
    pub effort: Effort,
    /// Checksum of every stored component.
    pub checksum: ChecksumAlgorithm,
    /// Worker threads for the codec; `None` = one per core.
    pub threads: Option<usize>,
    /// Root attributes to add to the target's metadata (and `zt.base`).
    pub attributes: Attributes,
}

impl Default for DeltaOptions {
    fn default() -> Self {
        DeltaOptions {
            effort: Effort::Default,
            checksum: ChecksumAlgorithm::Crc32c,
            threads: None,
            attributes: Attributes::new(),
        }
    }
}

/// What [`write_delta`] did, component by component.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeltaSummary {
    pub tensors: usize,
    /// Components identical to the base's: stored as `zt.ref`, no bytes.
    pub copies: usize,
    /// Components stored as XOR-delta frames.
    pub deltas: usize,
    /// Components stored standalone (new tensors, changed shapes, or a delta that did not pay).
    pub full: usize,
    /// Decoded bytes of the target.
    pub bytes_in: u64,
    /// Size of the written file.
    pub file_size: u64,
}

/// Writes `dest`: every tensor of `target`, stored relative to `base` (whose file is hashed
/// into `zt.base`). Per component: a copy when the bytes equal the base component of the same
/// tensor and role, otherwise the smaller of an XOR-delta frame against it and a standalone
/// codec frame (standalone when the base has no such component or a different size or dtype).
/// The target's metadata is kept as root attributes, next to `zt.base`.
pub fn write_delta(
    base: &dyn TensorReader,
    target: &dyn TensorReader,
    dest: impl AsRef<Path>,
    options: &DeltaOptions,
) -> Result<DeltaSummary, Error> {
    let dest = dest.as_ref();
    let identity = BaseIdentity::of_file(base.path())?;
    let codec = CompressOptions {
        threads: options.threads,
        ..CompressOptions::with_effort(options.effort)
    };
    let mut writer = Writer::create(dest)?;
    let mut attributes = target.metadata().clone();
    attributes.extend(options.attributes.clone());
    attributes.insert(BASE_ATTRIBUTE.to_owned(), identity.to_value());
    writer.set_attributes(Some(attributes));
    let mut summary = DeltaSummary::default();
    for name in target.names_in_file_order() {
        let info = target.info(name)?;
        let base_info = base.info(name).ok();
        let mut tensor = writer.begin_tensor(name, info.shape.clone(), info.format.clone())?;
        for (role, component) in &info.components {
            let bytes = target.component(name, role)?;
            summary.bytes_in += bytes.len() as u64;
            let comparable = base_info
                .and_then(|b| b.components.get(role))
                .filter(|b| b.dtype == component.dtype);
            let reference = match comparable {
                Some(_) => {
                    let reference = base.component(name, role)?;
                    (reference.len() == bytes.len()).then_some(reference)
                }
                None => None,
            };
            let context = |e: Error| e.in_tensor(name).in_file(dest);
            let full = || zt_codec::compress(&bytes, Some(component.dtype), &codec);
            let (encoding, stored) = match reference {
                Some(reference) if reference[..] == bytes[..] => {
                    summary.copies += 1;
                    (REF_ENCODING, Vec::new())
                }
                Some(reference) => {
                    let delta =
                        zt_codec::compress_delta(&bytes, &reference, Some(component.dtype), &codec)
                            .map_err(context)?;
                    let standalone = full().map_err(context)?;
                    if delta.len() < standalone.len() {
                        summary.deltas += 1;
                        (CODEC_ENCODING, delta)
                    } else {
                        summary.full += 1;
                        (CODEC_ENCODING, standalone)
                    }
                }
                None => {
                    summary.full += 1;
                    (CODEC_ENCODING, full().map_err(context)?)
                }
            };
            tensor.write_encoded(
                role,
                component.dtype,
                component.logical_type.clone(),
                Encoding::Other(encoding.to_owned()),
                &stored,
                bytes.len() as u64,
                if encoding == REF_ENCODING {
                    ChecksumAlgorithm::None
                } else {
                    options.checksum
                },
            )?;
        }
        tensor.set_attributes(info.attributes.clone());
        tensor.finish()?;
        summary.tensors += 1;
    }
    summary.file_size = writer.finish()?;
    Ok(summary)
}
