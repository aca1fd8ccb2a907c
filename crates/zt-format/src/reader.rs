//! The `.zt` reader: one memory map, validated up front, zero-copy for raw components.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use zt_core::{
    Attributes, ByteRange, Component, Encoding, Error, Format, LogicalType, TensorBytes,
    TensorInfo, TensorReader,
};

use crate::base::{BaseIdentity, codec_error, is_delta_frame};
use crate::checksum;
use crate::manifest::{Manifest, parse_legacy_manifest, parse_manifest};
use crate::{
    ALIGNMENT, CODEC_ENCODING, FOOTER_LEN, LEGACY_MAGIC, MAGIC, MAX_MANIFEST_SIZE, REF_ENCODING,
};

/// Largest decoded size of one compressed component unless [`OpenOptions`] says otherwise.
/// Same cap as zTensor 1.2.3 (32 GiB).
pub const DEFAULT_MAX_DECODED_LEN: u64 = 32 << 30;

/// Most footer candidates tried when the last footer is damaged and the reader looks for an
/// earlier complete one (see "Append and recovery" in the spec).
const MAX_RECOVERY_CANDIDATES: usize = 64;

/// How to open a `.zt` file.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Verify each component's digest (over its stored bytes) every time it is read.
    pub verify_checksums: bool,
    /// When the footer at the end of the file is damaged (an append that never finished), fall
    /// back to the last complete footer before it.
    pub recover: bool,
    /// Refuse to decode a compressed component larger than this.
    pub max_decoded_len: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            verify_checksums: false,
            recover: true,
            max_decoded_len: DEFAULT_MAX_DECODED_LEN,
        }
    }
}

/// Which container variant a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `ZTEN1000`: zTensor 1.1 / 1.2 and ztensor.
    V1,
    /// `ZTEN0001`: the 0.1.0 legacy layout (read-only).
    Legacy,
}

/// Where the manifest lies and how much of the file after it belongs to an unfinished append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub manifest: ByteRange,
    /// End of the footer that was used (the file length, unless recovery happened).
    pub end: u64,
}

/// An open `.zt` file.
pub struct ZtReader {
    path: PathBuf,
    /// Kept open for positional reads (`read_component_into` of raw components).
    file: File,
    map: Option<Mmap>,
    variant: Variant,
    layout: Layout,
    manifest: Manifest,
    options: OpenOptions,
    /// The base file of a checkpoint-delta file, once checked against `zt.base`.
    base: Option<Arc<dyn TensorReader>>,
}

impl std::fmt::Debug for ZtReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZtReader")
            .field("path", &self.path)
            .field("variant", &self.variant)
            .field("tensors", &self.manifest.objects.len())
            .finish()
    }
}

impl ZtReader {
    /// Opens and validates a file with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<ZtReader, Error> {
        ZtReader::open_with(path, OpenOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<ZtReader, Error> {
        let path = path.as_ref();
        Self::open_inner(path, options).map_err(|e| e.in_file(path))
    }

    fn open_inner(path: &Path, options: OpenOptions) -> Result<ZtReader, Error> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        let common = parse_common_case(&file, len).transpose()?;
        let map = if len == 0 {
            None
        } else {
            // SAFETY: the map is read-only and private to this reader. Its one hazard is another
            // process truncating the file while it is mapped (SIGBUS); like every mmap-based
            // tensor reader we document that files must not be truncated while open.
            Some(unsafe { Mmap::map(&file)? })
        };
        let (variant, layout, manifest) = match common {
            Some((layout, manifest)) => (Variant::V1, layout, manifest),
            None => parse_container(map.as_deref().unwrap_or(&[]), options.recover)?,
        };
        if map.as_ref().is_some_and(|m| m.len() as u64 != len) {
            return Err(Error::Unsupported(
                "the file changed size while it was being opened".into(),
            ));
        }
        Ok(ZtReader {
            path: path.to_owned(),
            file,
            map,
            variant,
            layout,
            manifest,
            options,
            base: None,
        })
    }

    /// What the file's `zt.base` root attribute says about its base file, if it has one (a
    /// checkpoint-delta file, spec section 8.2). A malformed attribute is an error.
    pub fn base_identity(&self) -> Result<Option<BaseIdentity>, Error> {
        BaseIdentity::from_attributes(self.manifest.attributes.as_ref())
            .map_err(|e| e.in_file(&self.path))
    }

    /// Attaches the base file that this checkpoint-delta file was made against, after checking
    /// that it is that file: same length and same SHA-256 as recorded in `zt.base` (the whole
    /// base file is hashed once, here). Delta and copy components read through it afterwards;
    /// copies are returned zero-copy when the base's component is.
    pub fn with_base(mut self, base: Arc<dyn TensorReader>) -> Result<ZtReader, Error> {
        let identity = self
            .base_identity()?
            .ok_or_else(|| {
                Error::InvalidArgument(
                    "a base was given but this file is not a checkpoint delta (no zt.base)".into(),
                )
            })
            .map_err(|e| e.in_file(&self.path))?;
        identity
            .check_file(base.path())
            .map_err(|e| e.in_file(&self.path))?;
        self.base = Some(base);
        Ok(self)
    }

    /// The attached base file, if any.
    pub fn base(&self) -> Option<&dyn TensorReader> {
        self.base.as_deref()
    }

    /// Parses an in-memory image of a file (the fuzz target and tests use this).
    pub fn validate_bytes(bytes: &[u8]) -> Result<Manifest, Error> {
        parse_container(bytes, true).map(|(_, _, m)| m)
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Bytes after the footer in use that belong to an append that never finished.
    pub fn unfinished_tail(&self) -> u64 {
        self.file_bytes().len() as u64 - self.layout.end
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn options(&self) -> &OpenOptions {
        &self.options
    }

    /// The whole mapped file.
    pub fn file_bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// The stored bytes of a component, exactly as in the file (compressed if encoded).
    pub fn stored_bytes(&self, name: &str, role: &str) -> Result<&[u8], Error> {
        let (_, component) = self.lookup(name, role)?;
        Ok(self.stored_slice(component))
    }

    fn stored_slice(&self, component: &Component) -> &[u8] {
        // Ranges were validated against the file in `parse_container`.
        let range = component
            .location
            .expect("validated .zt components have a location");
        &self.file_bytes()[range.offset as usize..(range.offset + range.length) as usize]
    }

    fn lookup(&self, name: &str, role: &str) -> Result<(&TensorInfo, &Component), Error> {
        let info = self
            .manifest
            .objects
            .get(name)
            .ok_or_else(|| Error::TensorNotFound(name.to_owned()))?;
        let component = info
            .components
            .get(role)
            .ok_or_else(|| Error::ComponentNotFound {
                tensor: name.to_owned(),
                component: role.to_owned(),
            })?;
        Ok((info, component))
    }

    /// Checks the digest of one component against its stored bytes. Components without a digest
    /// pass; a digest of an unknown algorithm passes; a malformed one fails.
    pub fn verify_component(&self, name: &str, role: &str) -> Result<bool, Error> {
        let (_, component) = self.lookup(name, role).map_err(|e| e.in_file(&self.path))?;
        checksum::verify(
            role,
            component.digest.as_ref(),
            self.stored_slice(component),
        )
        .map_err(|e| e.in_tensor(name).in_file(&self.path))
    }

    /// Verifies every digest, and that every compressed component decodes to its declared size.
    /// Returns how many components carried a digest that was checked.
    pub fn verify_all(&self, decode: bool) -> Result<usize, Error> {
        let mut checked = 0;
        for (name, info) in &self.manifest.objects {
            for role in info.components.keys() {
                if self.verify_component(name, role)? {
                    checked += 1;
                }
                if decode {
                    self.component(name, role)?;
                }
            }
        }
        Ok(checked)
    }

    /// Decodes a component into `out`, which must have exactly the decoded length.
    pub fn read_component_into(&self, name: &str, role: &str, out: &mut [u8]) -> Result<(), Error> {
        self.read_into_inner(name, role, out)
            .map_err(|e| e.in_tensor(name).in_file(&self.path))
    }

    fn read_into_inner(&self, name: &str, role: &str, out: &mut [u8]) -> Result<(), Error> {
        let (info, component) = self.lookup(name, role)?;
        let want = out.len() as u64;
        if component.decoded_len.is_some_and(|d| d != want) {
            return Err(length_mismatch(
                role,
                component.decoded_len.unwrap_or(0),
                want,
            ));
        }
        check_decoded_len(info, role, component, want)?;
        if component.encoding == Encoding::Raw {
            // A positional read into the caller's buffer: on a cold file this streams at disk
            // speed, where copying out of the map would fault page by page.
            let range = component.location.expect("validated");
            self.file.read_exact_at(out, range.offset)?;
            if self.options.verify_checksums {
                checksum::verify(role, component.digest.as_ref(), out)?;
            }
            return Ok(());
        }
        let stored = self.checked_stored(role, component)?;
        match &component.encoding {
            Encoding::Raw => unreachable!("handled above"),
            Encoding::Zstd => decode_zstd_into(role, stored, out),
            Encoding::Other(enc) if enc == CODEC_ENCODING => {
                let opts = zt_codec::DecompressOptions {
                    max_decoded_len: want,
                    ..Default::default()
                };
                let result = if is_delta_frame(stored) {
                    let reference = self.base_component(name, role)?;
                    zt_codec::decompress_delta_into_with(stored, &reference, out, &opts)
                } else {
                    zt_codec::decompress_into_with(stored, out, &opts)
                };
                result.map_err(|e| codec_error(role, e))
            }
            Encoding::Other(enc) if enc == REF_ENCODING => {
                let reference = self.base_component(name, role)?;
                if reference.len() != out.len() {
                    return Err(length_mismatch(role, want, reference.len() as u64));
                }
                out.copy_from_slice(&reference);
                Ok(())
            }
            Encoding::Other(name) => Err(Error::UnsupportedEncoding(name.clone())),
        }
    }

    /// The base file's component that a delta or copy component of `name` refers to: the
    /// same tensor name and role.
    fn base_component(&self, name: &str, role: &str) -> Result<TensorBytes<'_>, Error> {
        let Some(base) = &self.base else {
            let identity = self.base_identity()?;
            let named = identity.map_or_else(|| "not named by zt.base".to_owned(), |b| b.name);
            return Err(Error::BaseRequired(named));
        };
        base.component(name, role)
            .map_err(|e| Error::WrongBase(format!("{}: {e}", base.path().display())))
    }

    /// The stored bytes, with their digest checked when the caller asked for verification or
    /// when the component is compressed (decoding costs far more than hashing, and zTensor 1.2.3
    /// always checks compressed components).
    fn checked_stored(&self, role: &str, component: &Component) -> Result<&[u8], Error> {
        let stored = self.stored_slice(component);
        if self.options.verify_checksums || component.encoding != Encoding::Raw {
            checksum::verify(role, component.digest.as_ref(), stored)?;
        }
        Ok(stored)
    }

    fn component_inner(&self, name: &str, role: &str) -> Result<TensorBytes<'_>, Error> {
        let (info, component) = self.lookup(name, role)?;
        let stored = self.checked_stored(role, component)?;
        let bytes = match &component.encoding {
            Encoding::Raw => Cow::Borrowed(stored),
            Encoding::Zstd => {
                // Decode no further than the manifest declares (or, failing that, the shape
                // implies): a bomb stops at the declared size.
                let declared = match component.decoded_len {
                    Some(n) => Some(n),
                    None => dense_len(info, role, component)?,
                };
                let limit = declared.unwrap_or(self.options.max_decoded_len);
                if limit > self.options.max_decoded_len {
                    return Err(Error::LimitExceeded {
                        what: format!("decoded component '{role}'"),
                        size: limit,
                        limit: self.options.max_decoded_len,
                    });
                }
                let decoded = decode_zstd(role, stored, limit)?;
                if let Some(n) = component.decoded_len.filter(|&n| n != decoded.len() as u64) {
                    return Err(Error::Decompress {
                        component: role.to_owned(),
                        reason: format!(
                            "decoded {} bytes but the manifest declares {n}",
                            decoded.len()
                        ),
                    });
                }
                Cow::Owned(decoded)
            }
            Encoding::Other(enc) if enc == CODEC_ENCODING || enc == REF_ENCODING => {
                // Spec 8.1: `uncompressed_length` is required, and bounds what is decoded.
                let declared = component.decoded_len.ok_or_else(|| Error::Decompress {
                    component: role.to_owned(),
                    reason: format!("a '{enc}' component needs uncompressed_length"),
                })?;
                if declared > self.options.max_decoded_len {
                    return Err(Error::LimitExceeded {
                        what: format!("decoded component '{role}'"),
                        size: declared,
                        limit: self.options.max_decoded_len,
                    });
                }
                if enc == REF_ENCODING {
                    let reference = self.base_component(name, role)?;
                    if reference.len() as u64 != declared {
                        return Err(Error::WrongBase(format!(
                            "its component '{role}' of '{name}' holds {} bytes, the copy {declared}",
                            reference.len()
                        )));
                    }
                    reference
                } else {
                    let opts = zt_codec::DecompressOptions {
                        max_decoded_len: declared,
                        ..Default::default()
                    };
                    let decoded = if is_delta_frame(stored) {
                        let reference = self.base_component(name, role)?;
                        zt_codec::decompress_delta_with(stored, &reference, &opts)
                    } else {
                        zt_codec::decompress_with(stored, &opts)
                    }
                    .map_err(|e| codec_error(role, e))?;
                    if decoded.len() as u64 != declared {
                        return Err(length_mismatch(role, declared, decoded.len() as u64));
                    }
                    Cow::Owned(decoded)
                }
            }
            Encoding::Other(enc) => return Err(Error::UnsupportedEncoding(enc.clone())),
        };
        check_decoded_len(info, role, component, bytes.len() as u64)?;
        Ok(bytes)
    }
}

impl TensorReader for ZtReader {
    fn format_name(&self) -> &str {
        "zt"
    }

    fn path(&self) -> &Path {
        &self.path
    }

    fn names(&self) -> Vec<&str> {
        self.manifest.objects.keys().map(String::as_str).collect()
    }

    fn names_in_file_order(&self) -> Vec<&str> {
        let mut names: Vec<(u64, &str)> = self
            .manifest
            .objects
            .iter()
            .map(|(name, info)| {
                let first = info
                    .components
                    .values()
                    .filter_map(|c| c.location.map(|r| r.offset))
                    .min()
                    .unwrap_or(0);
                (first, name.as_str())
            })
            .collect();
        // Stable: tensors at the same offset (zero-length ones) keep name order.
        names.sort_by_key(|&(offset, _)| offset);
        names.into_iter().map(|(_, name)| name).collect()
    }

    fn info(&self, name: &str) -> Result<&TensorInfo, Error> {
        self.manifest
            .objects
            .get(name)
            .ok_or_else(|| Error::TensorNotFound(name.to_owned()).in_file(&self.path))
    }

    fn metadata(&self) -> &Attributes {
        static EMPTY: Attributes = Attributes::new();
        self.manifest.attributes.as_ref().unwrap_or(&EMPTY)
    }

    fn component(&self, name: &str, role: &str) -> Result<TensorBytes<'_>, Error> {
        self.component_inner(name, role)
            .map_err(|e| e.in_tensor(name).in_file(&self.path))
    }

    /// `component` already checks the length of dense data (including the storage-shaped
    /// complex layout zTensor 1.2 writes), so only the format needs checking here.
    fn dense(&self, name: &str) -> Result<TensorBytes<'_>, Error> {
        self.info(name)?
            .dense_component()
            .map_err(|e| e.in_file(&self.path))?;
        self.component(name, "data")
    }

    fn len(&self) -> usize {
        self.manifest.objects.len()
    }

    fn contains(&self, name: &str) -> bool {
        self.manifest.objects.contains_key(name)
    }
}

fn length_mismatch(role: &str, expected: u64, actual: u64) -> Error {
    Error::LengthMismatch {
        component: role.to_owned(),
        expected,
        actual,
    }
}

/// Bytes a dense tensor's `data` component decodes to, from shape, dtype and logical type;
/// `None` for other components and for logical types whose packing is unknown.
pub(crate) fn dense_len(
    info: &TensorInfo,
    role: &str,
    component: &Component,
) -> Result<Option<u64>, Error> {
    if info.format != Format::Dense || role != "data" {
        return Ok(None);
    }
    component.byte_len_for(&info.shape)
}

/// Checks a component's decoded length against what its tensor needs. Checked per tensor when
/// it is read (not when the file is opened), so one inconsistent tensor does not make the rest
/// of a file unreadable.
pub(crate) fn check_decoded_len(
    info: &TensorInfo,
    role: &str,
    component: &Component,
    actual: u64,
) -> Result<(), Error> {
    let unit = component.dtype.size() as u64;
    match dense_len(info, role, component)? {
        Some(expected) if expected == actual => Ok(()),
        // zTensor 1.2's Python writer stores complex tensors with their storage shape ([n, 2]
        // floats for n complex numbers) and the logical type on top: accept that layout too.
        Some(_)
            if matches!(
                component.logical_type,
                Some(LogicalType::Complex64 | LogicalType::Complex128)
            ) && info.shape.byte_len(component.dtype).ok() == Some(actual) =>
        {
            Ok(())
        }
        Some(expected) => Err(length_mismatch(role, expected, actual)),
        None if !actual.is_multiple_of(unit) && component.logical_type.is_none() => {
            Err(Error::LengthMismatch {
                component: role.to_owned(),
                expected: actual - actual % unit,
                actual,
            })
        }
        None => Ok(()),
    }
}

/// Decodes zstd frames, growing the output only as data actually arrives, and failing as soon
/// as it would pass `limit`: a small frame that claims or expands to a huge size costs nothing.
fn decode_zstd(role: &str, stored: &[u8], limit: u64) -> Result<Vec<u8>, Error> {
    let fail = |reason: String| Error::Decompress {
        component: role.to_owned(),
        reason,
    };
    // Most weights compress less than 8x; start there and let the vector grow past it.
    let initial = limit.min((stored.len() as u64).saturating_mul(8).saturating_add(4096));
    let mut out = Vec::with_capacity(initial as usize);
    let decoder =
        zstd::stream::read::Decoder::with_buffer(stored).map_err(|e| fail(e.to_string()))?;
    decoder
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| fail(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(fail(format!("output exceeds the declared {limit} bytes")));
    }
    Ok(out)
}

fn decode_zstd_into(role: &str, stored: &[u8], out: &mut [u8]) -> Result<(), Error> {
    let fail = |reason: String| Error::Decompress {
        component: role.to_owned(),
        reason,
    };
    let mut decoder =
        zstd::stream::read::Decoder::with_buffer(stored).map_err(|e| fail(e.to_string()))?;
    decoder.read_exact(out).map_err(|e| {
        fail(if e.kind() == std::io::ErrorKind::UnexpectedEof {
            format!("frame ends before the declared {} bytes", out.len())
        } else {
            e.to_string()
        })
    })?;
    let mut extra = [0u8; 1];
    match decoder.read(&mut extra) {
        Ok(0) => Ok(()),
        Ok(_) => Err(fail(format!(
            "output exceeds the declared {} bytes",
            out.len()
        ))),
        Err(e) => Err(fail(e.to_string())),
    }
}

/// Finds and validates header, footer, manifest and every component range.
fn parse_container(bytes: &[u8], recover: bool) -> Result<(Variant, Layout, Manifest), Error> {
    let len = bytes.len() as u64;
    if len < 8 {
        return Err(Error::Truncated {
            what: "the 8-byte magic".into(),
            needed: 8,
            available: len,
        });
    }
    let head = &bytes[..8];
    if head == LEGACY_MAGIC {
        let (layout, manifest) = parse_legacy(bytes)?;
        return Ok((Variant::Legacy, layout, manifest));
    }
    if head != MAGIC {
        return Err(Error::BadMagic {
            format: "zTensor",
            expected: MAGIC,
            found: head.to_vec(),
        });
    }
    // Recovery is for a torn append only: the footer magic is written last, so a file whose
    // last 8 bytes are the magic finished writing, and any error in it is reported as is.
    let torn = len < 8 + FOOTER_LEN || &bytes[bytes.len() - 8..] != MAGIC;
    match parse_footer_at(bytes, len) {
        Ok(found) => Ok((Variant::V1, found.0, found.1)),
        Err(first_error) if recover && torn => match recover_footer(bytes, len) {
            Some((layout, manifest)) => Ok((Variant::V1, layout, manifest)),
            None => Err(first_error),
        },
        Err(e) => Err(e),
    }
}

/// Reads `len` bytes at `offset` of the file being opened: a slice of the map, or a positional
/// read that does not touch the map.
type ReadAt<'a, 'b> = dyn Fn(u64, u64) -> Result<Cow<'a, [u8]>, Error> + 'b;

fn slice_reader<'a>(bytes: &'a [u8]) -> impl Fn(u64, u64) -> Result<Cow<'a, [u8]>, Error> + 'a {
    move |offset, len| {
        Ok(Cow::Borrowed(
            &bytes[offset as usize..(offset + len) as usize],
        ))
    }
}

/// Parses the footer that ends at `end` and everything it points to.
fn parse_footer_at(bytes: &[u8], end: u64) -> Result<(Layout, Manifest), Error> {
    parse_footer_with(&slice_reader(bytes), end)
}

fn parse_footer_with(read_at: &ReadAt<'_, '_>, end: u64) -> Result<(Layout, Manifest), Error> {
    // header + size + footer magic
    let min = 8 + FOOTER_LEN;
    if end < min {
        return Err(Error::Truncated {
            what: "header and footer".into(),
            needed: min,
            available: end,
        });
    }
    let footer = read_at(end - FOOTER_LEN, FOOTER_LEN)?;
    let footer_magic = &footer[8..];
    if footer_magic != MAGIC {
        return Err(Error::BadMagic {
            format: "zTensor (footer; the file may be truncated)",
            expected: MAGIC,
            found: footer_magic.to_vec(),
        });
    }
    let size = u64::from_le_bytes(footer[..8].try_into().expect("8 bytes"));
    if size > MAX_MANIFEST_SIZE {
        return Err(Error::LimitExceeded {
            what: "manifest".into(),
            size,
            limit: MAX_MANIFEST_SIZE,
        });
    }
    let room = end - min;
    if size > room {
        return Err(Error::Truncated {
            what: "the manifest".into(),
            needed: size,
            available: room,
        });
    }
    let start = end - FOOTER_LEN - size;
    let manifest = parse_manifest(&read_at(start, size)?)?;
    validate_components(&manifest, start, true)?;
    Ok((
        Layout {
            manifest: ByteRange {
                offset: start,
                length: size,
            },
            end,
        },
        manifest,
    ))
}

/// The common case, read with positional reads before the file is mapped: a current-format file
/// whose last 8 bytes are the magic. Touching the map instead would make the kernel read ahead
/// megabytes around the first and last pages of a cold file just to find the manifest.
/// `None` means "not the common case": the caller parses through the map (legacy files, torn
/// appends, files too short to hold a footer).
fn parse_common_case(file: &File, len: u64) -> Option<Result<(Layout, Manifest), Error>> {
    if len < 8 + FOOTER_LEN {
        return None;
    }
    let mut head = [0u8; 8];
    let mut tail = [0u8; 8];
    file.read_exact_at(&mut head, 0).ok()?;
    file.read_exact_at(&mut tail, len - 8).ok()?;
    if &head != MAGIC || &tail != MAGIC {
        return None;
    }
    let read_at = |offset: u64, n: u64| -> Result<Cow<'static, [u8]>, Error> {
        let mut buf = vec![0u8; n as usize];
        file.read_exact_at(&mut buf, offset)?;
        Ok(Cow::Owned(buf))
    };
    Some(parse_footer_with(&read_at, len))
}

/// Looks backwards for the last complete footer when the one at the end is damaged.
fn recover_footer(bytes: &[u8], len: u64) -> Option<(Layout, Manifest)> {
    let mut search_end = (len as usize).saturating_sub(1);
    for _ in 0..MAX_RECOVERY_CANDIDATES {
        let pos = find_last(&bytes[..search_end], MAGIC)?;
        let end = pos as u64 + 8;
        if pos >= 8
            && let Ok(found) = parse_footer_at(bytes, end)
        {
            return Some(found);
        }
        search_end = pos + 7;
        if pos == 0 {
            return None;
        }
    }
    None
}

fn find_last(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::rfind(haystack, needle)
}

fn parse_legacy(bytes: &[u8]) -> Result<(Layout, Manifest), Error> {
    let len = bytes.len() as u64;
    if len < 16 {
        return Err(Error::Truncated {
            what: "legacy header and manifest size".into(),
            needed: 16,
            available: len,
        });
    }
    let size = u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().expect("8 bytes"));
    if size > MAX_MANIFEST_SIZE {
        return Err(Error::LimitExceeded {
            what: "manifest".into(),
            size,
            limit: MAX_MANIFEST_SIZE,
        });
    }
    let room = len - 16;
    if size > room {
        return Err(Error::Truncated {
            what: "the legacy manifest".into(),
            needed: size,
            available: room,
        });
    }
    let start = len - 8 - size;
    let manifest = parse_legacy_manifest(&bytes[start as usize..(len - 8) as usize])?;
    validate_components(&manifest, start, true)?;
    Ok((
        Layout {
            manifest: ByteRange {
                offset: start,
                length: size,
            },
            end: len,
        },
        manifest,
    ))
}

/// Checks the structure of every component against the data area `[8, data_end)`: alignment,
/// bounds, overlap; and that every shape has a countable number of elements.
pub(crate) fn validate_components(
    manifest: &Manifest,
    data_end: u64,
    check_alignment: bool,
) -> Result<(), Error> {
    let mut ranges: Vec<(u64, u64, &str, &str)> = Vec::new();
    for (name, info) in &manifest.objects {
        let in_tensor = |e: Error| e.in_tensor(name);
        info.shape.numel().map_err(in_tensor)?;
        for (role, c) in &info.components {
            let range = c.location.expect("parsed components have a location");
            let end = range.end().ok_or_else(|| {
                in_tensor(Error::OutOfBounds {
                    component: role.clone(),
                    offset: range.offset,
                    length: range.length,
                    file_len: data_end,
                })
            })?;
            if check_alignment && range.offset % ALIGNMENT != 0 {
                return Err(in_tensor(Error::Misaligned {
                    component: role.clone(),
                    offset: range.offset,
                    alignment: ALIGNMENT,
                }));
            }
            let starts_in_header = range.length > 0 && range.offset < 8;
            if end > data_end || starts_in_header {
                return Err(in_tensor(Error::OutOfBounds {
                    component: role.clone(),
                    offset: range.offset,
                    length: range.length,
                    file_len: data_end,
                }));
            }
            if range.length > 0 {
                ranges.push((range.offset, end, name, role));
            }
        }
    }
    ranges.sort_unstable_by_key(|r| (r.0, r.1));
    for pair in ranges.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.0 < a.1 {
            return Err(Error::Overlap {
                first: format!("{}/{}", a.2, a.3),
                second: format!("{}/{}", b.2, b.3),
            });
        }
    }
    Ok(())
}
