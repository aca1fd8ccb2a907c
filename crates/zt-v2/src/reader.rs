//! [`ZtV2Reader`]: opens, validates up front, hands out parts zero-copy or decoded.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use zt_core::{
    Attributes, ByteRange, DType, Error, Format, LogicalType, MappedFile, TensorBytes, TensorInfo,
    TensorReader,
};

use crate::container::{self, FORMAT};
use crate::manifest::{self, Manifest, Object, Part, ShardEntry};
use crate::{cbor, digest, seekable};

/// Largest decoded size of one compressed part unless [`OpenOptions`] says otherwise (the cap
/// ztensor's own `.zt` reader uses).
pub const DEFAULT_MAX_DECODED_LEN: u64 = 32 << 30;

/// How to open a file.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Check each part's digest (over its decoded bytes) and the content rules of its logical
    /// type (bool bytes are 0 or 1; the unused nibble of an odd-length FP4 tensor is 0) every
    /// time it is read, and each data shard's whole-file digest when the file is opened. The
    /// manifest's own hash is checked at every open regardless.
    pub verify_checksums: bool,
    /// Refuse to decode a compressed part larger than this.
    pub max_decoded_len: u64,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            verify_checksums: false,
            max_decoded_len: DEFAULT_MAX_DECODED_LEN,
        }
    }
}

/// An open zTensor 2.x file (and its data shards, if its manifest lists any).
#[derive(Debug)]
pub struct ZtV2Reader {
    file: MappedFile,
    /// Data shards by name, each mapped and checked at open.
    shards: BTreeMap<String, MappedFile>,
    manifest: Manifest,
    options: OpenOptions,
}

impl ZtV2Reader {
    /// Opens and validates a file with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<ZtV2Reader, Error> {
        ZtV2Reader::open_with(path, OpenOptions::default())
    }

    pub fn open_with(path: impl AsRef<Path>, options: OpenOptions) -> Result<ZtV2Reader, Error> {
        let path = path.as_ref();
        Self::open_inner(path, options).map_err(|e| e.in_file(path))
    }

    fn open_inner(path: &Path, options: OpenOptions) -> Result<ZtV2Reader, Error> {
        let file = MappedFile::open(path)?;
        let bytes = file.bytes();
        let footer = container::parse_footer(bytes)?;
        let manifest_bytes = container::manifest_bytes(bytes, &footer)?;
        let manifest = manifest::parse(cbor::decode(manifest_bytes)?)?;
        check_blobs(
            &manifest,
            None,
            container::data_end(bytes),
            Some(footer.manifest),
        )?;
        let mut shards = BTreeMap::new();
        for (name, entry) in &manifest.shards {
            let shard_path = shard_path(path, name);
            let check = || -> Result<MappedFile, Error> {
                let shard = open_shard(&shard_path, name, entry)?;
                if options.verify_checksums {
                    digest::verify(&format!("shard '{name}'"), &entry.digest, shard.bytes())?;
                }
                check_blobs(
                    &manifest,
                    Some(name),
                    container::data_end(shard.bytes()),
                    None,
                )?;
                Ok(shard)
            };
            // Name both files: the root that lists the shard, then the shard.
            let shard = check().map_err(|e| Error::InFile {
                path: path.to_owned(),
                source: Box::new(e.in_file(&shard_path)),
            })?;
            shards.insert(name.clone(), shard);
        }
        Ok(ZtV2Reader {
            file,
            shards,
            manifest,
            options,
        })
    }

    pub fn options(&self) -> &OpenOptions {
        &self.options
    }

    /// The manifest's layout name of a tensor, verbatim (`"gguf.q4_k/1"`, `"zt.sparse_csr/1"`).
    pub fn layout(&self, name: &str) -> Result<&str, Error> {
        Ok(&self.object(name)?.layout)
    }

    /// The whole mapped root file (raw parts of the root file are slices of it).
    pub fn file_bytes(&self) -> &[u8] {
        self.file.bytes()
    }

    /// The files this reader reads from: the root file, then its data shards by name.
    pub fn files(&self) -> Vec<&Path> {
        std::iter::once(self.file.path())
            .chain(self.shards.values().map(MappedFile::path))
            .collect()
    }

    /// The file and byte range holding a part's stored bytes (compressed ones for an encoded
    /// part), for callers doing their own I/O. Unlike [`zt_core::Component::location`], this also
    /// answers for parts that live in a data shard.
    pub fn part_location(&self, name: &str, part: &str) -> Result<(&Path, ByteRange), Error> {
        let (_, stored) = self.lookup(name, part)?;
        Ok((self.holder(stored).path(), stored.blob))
    }

    /// The stored bytes of a part, exactly as in the file.
    pub fn stored_bytes(&self, name: &str, part: &str) -> Result<&[u8], Error> {
        let (_, stored) = self.lookup(name, part)?;
        Ok(self.stored_slice(stored))
    }

    /// Reads every part of every tensor with verification on (digests, logical-type content
    /// rules, and each data shard's digest), whatever the open options say. Returns how many
    /// parts had a digest that was checked and how many had none, like zTensor 2.1.2's `verify`.
    pub fn verify_all(&self) -> Result<(usize, usize), Error> {
        if !self.options.verify_checksums {
            for (name, shard) in &self.shards {
                let entry = &self.manifest.shards[name];
                digest::verify(&format!("shard '{name}'"), &entry.digest, shard.bytes())
                    .map_err(|e| e.in_file(self.file.path()))?;
            }
        }
        let (mut checked, mut undigested) = (0, 0);
        for (name, object) in &self.manifest.objects {
            for (role, part) in &object.parts {
                self.read(name, role, true)?;
                if part.digest.is_some() {
                    checked += 1;
                } else {
                    undigested += 1;
                }
            }
        }
        Ok((checked, undigested))
    }

    fn object(&self, name: &str) -> Result<&Object, Error> {
        self.manifest
            .objects
            .get(name)
            .ok_or_else(|| Error::TensorNotFound(name.to_owned()).in_file(self.file.path()))
    }

    fn lookup(&self, name: &str, role: &str) -> Result<(&Object, &Part), Error> {
        let object = self.object(name)?;
        let part = object.parts.get(role).ok_or_else(|| {
            Error::ComponentNotFound {
                tensor: name.to_owned(),
                component: role.to_owned(),
            }
            .in_file(self.file.path())
        })?;
        Ok((object, part))
    }

    /// The file a part's blob lies in.
    fn holder(&self, part: &Part) -> &MappedFile {
        match &part.shard {
            // Every shard a part names is in the table and was opened (checked at open).
            Some(shard) => &self.shards[shard],
            None => &self.file,
        }
    }

    fn stored_slice(&self, part: &Part) -> &[u8] {
        let ByteRange { offset, length } = part.blob;
        // Placement was checked against this file when the reader was opened.
        &self.holder(part).bytes()[offset as usize..(offset + length) as usize]
    }

    fn read(&self, name: &str, role: &str, verify: bool) -> Result<TensorBytes<'_>, Error> {
        let (object, part) = self.lookup(name, role)?;
        self.read_part(object, role, part, verify)
            .map_err(|e| e.in_tensor(name).in_file(self.file.path()))
    }

    fn read_part(
        &self,
        object: &Object,
        role: &str,
        part: &Part,
        verify: bool,
    ) -> Result<TensorBytes<'_>, Error> {
        let stored = self.stored_slice(part);
        let bytes = match part.encoding.as_deref() {
            None => Cow::Borrowed(stored),
            Some(seekable::ENCODING) => Cow::Owned(self.decode_seekable(role, part, stored)?),
            Some(other) => return Err(Error::UnsupportedEncoding(other.to_owned())),
        };
        if verify {
            if let Some(expected) = &part.digest {
                digest::verify(role, expected, &bytes)?;
            }
            check_content(&object.info, role, &bytes)?;
        }
        Ok(bytes)
    }

    fn decode_seekable(&self, role: &str, part: &Part, stored: &[u8]) -> Result<Vec<u8>, Error> {
        let decompress = |reason: String| Error::Decompress {
            component: role.to_owned(),
            reason,
        };
        if part.decoded_len > self.options.max_decoded_len {
            return Err(Error::LimitExceeded {
                what: format!("decoded part '{role}'"),
                size: part.decoded_len,
                limit: self.options.max_decoded_len,
            });
        }
        let table = seekable::parse_seek_table(stored).map_err(decompress)?;
        if table.decoded_len != part.decoded_len {
            return Err(decompress(format!(
                "seek table totals {} bytes, the manifest's decoded_length is {}",
                table.decoded_len, part.decoded_len
            )));
        }
        seekable::decode(stored, &table).map_err(decompress)
    }
}

/// `<stem>-<name>.zt` beside the root file: how zTensor 2 resolves a shard by default. Shard
/// names were validated (no separators, no leading dot), so this never leaves the directory.
fn shard_path(root: &Path, shard: &str) -> PathBuf {
    let mut file_name = root.file_stem().map(OsString::from).unwrap_or_default();
    file_name.push(format!("-{shard}.zt"));
    root.with_file_name(file_name)
}

/// Maps a data shard and checks it is the file the manifest describes: its size, magics,
/// version, and a footer without a manifest.
fn open_shard(path: &Path, name: &str, entry: &ShardEntry) -> Result<MappedFile, Error> {
    let shard = MappedFile::open(path)?;
    if shard.len() != entry.size {
        return Err(Error::malformed(
            FORMAT,
            format!(
                "shard '{name}' is {} bytes, the manifest expects {}",
                shard.len(),
                entry.size
            ),
        )
        .in_file(path));
    }
    let footer = container::parse_footer(shard.bytes()).map_err(|e| e.in_file(path))?;
    if !footer.is_data_shard() {
        return Err(Error::malformed(
            FORMAT,
            format!(
                "shard '{name}' has a manifest: a data shard's footer zeroes the manifest offset, length and hash"
            ),
        )
        .in_file(path));
    }
    Ok(shard)
}

/// Placement of every blob in one file (the root file when `shard` is `None`), and the rule that
/// blobs there, the manifest included, are identical or disjoint.
fn check_blobs(
    manifest: &Manifest,
    shard: Option<&str>,
    data_end: u64,
    manifest_blob: Option<ByteRange>,
) -> Result<(), Error> {
    let mut ranges: Vec<(ByteRange, String)> = manifest_blob
        .map(|r| (r, "manifest".to_owned()))
        .into_iter()
        .collect();
    for (name, object) in &manifest.objects {
        for (role, part) in &object.parts {
            if part.shard.as_deref() != shard {
                continue;
            }
            container::check_blob_placement(part.blob, data_end, role)
                .map_err(|e| e.in_tensor(name))?;
            ranges.push((part.blob, format!("{name}/{role}")));
        }
    }
    container::check_overlaps(ranges).map_err(|e| match shard {
        Some(shard) => Error::malformed(FORMAT, format!("in shard '{shard}': {e}")),
        None => e,
    })
}

/// The content rules of logical types, which sizes alone cannot show: a bool byte is 0 or 1, and
/// the unused high nibble at the end of an odd-length FP4 tensor is 0.
fn check_content(info: &TensorInfo, role: &str, bytes: &[u8]) -> Result<(), Error> {
    let Some(component) = info.components.get(role) else {
        return Ok(());
    };
    if component.dtype == DType::Bool
        && let Some(at) = bytes.iter().position(|&b| b > 1)
    {
        return Err(Error::malformed(
            FORMAT,
            format!(
                "bool part '{role}' holds byte 0x{:02x} at {at} (bool bytes must be 0x00 or 0x01)",
                bytes[at]
            ),
        ));
    }
    if component.logical_type == Some(LogicalType::F4E2M1)
        && info.format == Format::Dense
        && info.shape.numel()? % 2 == 1
        && bytes.last().is_some_and(|&b| b >> 4 != 0)
    {
        return Err(Error::malformed(
            FORMAT,
            format!("f4_e2m1 part '{role}' has an odd element count but a non-zero final nibble"),
        ));
    }
    Ok(())
}

impl TensorReader for ZtV2Reader {
    fn format_name(&self) -> &str {
        "zt2"
    }

    fn path(&self) -> &Path {
        self.file.path()
    }

    fn names(&self) -> Vec<&str> {
        self.manifest.objects.keys().map(String::as_str).collect()
    }

    fn info(&self, name: &str) -> Result<&TensorInfo, Error> {
        Ok(&self.object(name)?.info)
    }

    fn metadata(&self) -> &Attributes {
        static EMPTY: Attributes = Attributes::new();
        self.manifest.attributes.as_ref().unwrap_or(&EMPTY)
    }

    fn component(&self, name: &str, component: &str) -> Result<TensorBytes<'_>, Error> {
        self.read(name, component, self.options.verify_checksums)
    }

    fn len(&self) -> usize {
        self.manifest.objects.len()
    }

    fn contains(&self, name: &str) -> bool {
        self.manifest.objects.contains_key(name)
    }
}
