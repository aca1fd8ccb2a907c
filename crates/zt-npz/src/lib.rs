//! Reader for NumPy `.npy` files and `.npz` archives.
//!
//! # What it reads
//!
//! - **`.npy`** (format versions 1.0, 2.0 and 3.0): the magic `\x93NUMPY`, a version, a header
//!   length (`u16` in 1.0, `u32` after) and a Python dict literal `{'descr': '<f4',
//!   'fortran_order': False, 'shape': (2, 3), }`, then the elements. A standalone file holds
//!   one tensor named by the file's stem; [`TensorReader::format_name`] is `"npy"`.
//! - **`.npz`** (`np.savez`, `np.savez_compressed`): a zip archive of `.npy` entries. Tensors
//!   are named by the entry names without their `.npy` suffix, in archive order, nested paths
//!   kept (`"a/b"`); entries not ending in `.npy` and directories are skipped, as they hold no
//!   array. An entry whose array is not a tensor (an object array saved next to the weights,
//!   strings, ...) does not make the archive unreadable: it is left out of the names and listed
//!   with the reason in the file attribute [`SKIPPED_KEY`] (a map from entry name to text).
//!   `format_name` is `"npz"`. Zip parsing is the `zip` crate's; inflation is flate2's.
//!
//! dtypes: `f2 f4 f8 i1 i2 i4 i8 u1 u2 u4 u8 b1` map to the storage dtype of the same kind;
//! `c8` is `f32` + [`Complex64`](zt_core::LogicalType::Complex64), `c16` is `f64` +
//! [`Complex128`](zt_core::LogicalType::Complex128) (the shape stays the logical shape). Byte orders `<`, `>`, `=`, `|` are all read (`=` and
//! `|` as little-endian, as NumPy reads them on every machine ztensor runs on). Each tensor's
//! attributes record the stored `descr` and `fortran_order`.
//!
//! # Zero-copy and conversions
//!
//! The element bytes of a little-endian, C-order array in a `.npy` file or a STORED `.npz`
//! entry are handed out as a borrowed slice of the memory map (their `data` component has a
//! `location`). Such a slice is NOT aligned in general (`np.savez` places data at offsets like
//! 183): callers that need typed access must check alignment or copy. Everything else is
//! converted into an owned buffer, exactly the bytes `np.ascontiguousarray` would hold in
//! little-endian order: big-endian arrays are byte-swapped, Fortran-order arrays transposed
//! into C order (both are copies; a Fortran array with at most one dimension above 1 is
//! already C order and stays zero-copy), and DEFLATE entries (`np.savez_compressed`) are
//! inflated on each read (`encoding` `"deflate"`, no `location`).
//!
//! # Validation and limits
//!
//! Every header is parsed at [`NpzReader::open`] (for deflated entries, by inflating only the
//! header), so the shape, dtype and length of every tensor are known before any read. The
//! header literal is parsed by a small strict parser (see the `header` module: no crate parses
//! NumPy headers safely; NumPy uses `ast.literal_eval`), limited to [`MAX_HEADER_LEN`] bytes
//! and [`MAX_DIMS`] dimensions, with overflow-checked shapes. The element data must lie within
//! the file (or the entry): shorter data is an error, trailing bytes are ignored as NumPy does.
//! A deflated entry must declare an uncompressed size that holds its header and data, and no
//! more than [`MAX_DEFLATE_RATIO`] times its compressed size (DEFLATE cannot do better, so a
//! larger claim is a zip bomb); inflation fills a buffer of exactly the declared data size,
//! fails if the stream yields more or less than declared, and checks the entry's CRC-32.
//! STORED entries are not CRC-checked (that would defeat zero-copy).
//!
//! # Refused
//!
//! Object arrays (`'O'`: pickled Python objects, never unpickled), strings, void and
//! structured dtypes, datetimes and extended-precision floats are refused with
//! [`Error::Unsupported`]; so are encrypted entries and compression methods other than STORED
//! and DEFLATE.

mod convert;
mod header;

use std::collections::HashMap;
use std::io::{Cursor, Read};
use std::path::Path;

use zip::{CompressionMethod, ZipArchive};
use zt_core::{
    Attributes, ByteRange, Component, Encoding, Error, Format, MappedFile, TensorBytes, TensorInfo,
    TensorReader, Value, checked_slice,
};

pub use header::{MAGIC as NPY_MAGIC, MAX_DIMS, MAX_HEADER_LEN, NpyHeader};

/// The file attribute that lists the `.npz` entries that hold no tensor, with the reason.
pub const SKIPPED_KEY: &str = "npz.skipped_entries";

/// The most a DEFLATE stream can expand (about 1032:1 in theory, for long runs of one byte).
pub const MAX_DEFLATE_RATIO: u64 = 1032;

/// The start of every zip archive (a local file header).
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";

/// An empty zip archive is just its end-of-central-directory record.
const EMPTY_ZIP_MAGIC: &[u8] = b"PK\x05\x06";

/// Which of the two containers a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Npy,
    Npz,
}

/// An open `.npy` or `.npz` file.
#[derive(Debug)]
pub struct NpzReader {
    map: MappedFile,
    container: Container,
    tensors: Vec<Tensor>,
    index: HashMap<String, usize>,
    metadata: Attributes,
}

#[derive(Debug)]
struct Tensor {
    info: TensorInfo,
    header: NpyHeader,
    source: Source,
}

/// Where a tensor's stored element bytes come from.
#[derive(Debug, Clone, Copy)]
enum Source {
    /// `header.data_len` bytes at this absolute offset of the file.
    InPlace { offset: u64 },
    /// A DEFLATE stream at `compressed` in the file that inflates to `size` bytes: the `.npy`
    /// header, the elements, maybe trailing bytes.
    Deflated {
        compressed: ByteRange,
        size: u64,
        crc32: u32,
    },
}

impl NpzReader {
    /// Opens a `.npy` file or a `.npz` archive, told apart by their first bytes.
    pub fn open(path: impl AsRef<Path>) -> Result<NpzReader, Error> {
        let path = path.as_ref();
        let map = MappedFile::open(path)?;
        let bytes = map.bytes();
        // Reading one zip and npy header per entry: no readahead around each.
        let scattered = map.scattered_reads();
        let parsed = if bytes.starts_with(header::MAGIC) {
            npy_tensor(bytes, &file_stem(path)).map(|t| {
                let entries = Entries {
                    tensors: vec![t],
                    skipped: Vec::new(),
                };
                (Container::Npy, entries)
            })
        } else if bytes.starts_with(ZIP_MAGIC) || bytes.starts_with(EMPTY_ZIP_MAGIC) {
            npz_tensors(bytes).map(|t| (Container::Npz, t))
        } else {
            Err(Error::BadMagic {
                format: "npy/npz",
                expected: header::MAGIC,
                found: bytes[..bytes.len().min(6)].to_vec(),
            })
        };
        drop(scattered);
        let (container, Entries { tensors, skipped }) = parsed.map_err(|e| e.in_file(path))?;
        let mut metadata = Attributes::new();
        if !skipped.is_empty() {
            metadata.insert(SKIPPED_KEY.to_owned(), Value::Map(skipped));
        }
        let mut index = HashMap::with_capacity(tensors.len());
        for (i, t) in tensors.iter().enumerate() {
            if index.insert(t.info.name.clone(), i).is_some() {
                return Err(Error::DuplicateName(t.info.name.clone()).in_file(path));
            }
        }
        Ok(NpzReader {
            map,
            container,
            tensors,
            index,
            metadata,
        })
    }

    pub fn container(&self) -> Container {
        self.container
    }

    /// The parsed `.npy` header of a tensor.
    pub fn npy_header(&self, name: &str) -> Result<&NpyHeader, Error> {
        self.tensor(name).map(|t| &t.header)
    }

    fn tensor(&self, name: &str) -> Result<&Tensor, Error> {
        self.index
            .get(name)
            .map(|&i| &self.tensors[i])
            .ok_or_else(|| Error::TensorNotFound(name.to_owned()).in_file(self.map.path()))
    }

    fn data(&self, tensor: &Tensor) -> Result<TensorBytes<'_>, Error> {
        let header = &tensor.header;
        match tensor.source {
            Source::InPlace { offset } => {
                // Checked against the file at open.
                let stored = self.map.slice(offset, header.data_len, "data")?;
                Ok(if header.is_raw_layout() {
                    TensorBytes::Borrowed(stored)
                } else {
                    TensorBytes::Owned(convert::to_little_endian_c_order(stored, header))
                })
            }
            Source::Deflated {
                compressed,
                size,
                crc32,
            } => {
                let stream = self
                    .map
                    .slice(compressed.offset, compressed.length, "data")?;
                let stored = inflate(stream, header, size, crc32)?;
                Ok(TensorBytes::Owned(if header.is_raw_layout() {
                    stored
                } else {
                    convert::to_little_endian_c_order(&stored, header)
                }))
            }
        }
    }
}

impl TensorReader for NpzReader {
    fn format_name(&self) -> &str {
        match self.container {
            Container::Npy => "npy",
            Container::Npz => "npz",
        }
    }

    fn path(&self) -> &Path {
        self.map.path()
    }

    fn names(&self) -> Vec<&str> {
        self.tensors.iter().map(|t| t.info.name.as_str()).collect()
    }

    fn info(&self, name: &str) -> Result<&TensorInfo, Error> {
        self.tensor(name).map(|t| &t.info)
    }

    fn metadata(&self) -> &Attributes {
        &self.metadata
    }

    fn component(&self, name: &str, component: &str) -> Result<TensorBytes<'_>, Error> {
        let tensor = self.tensor(name)?;
        if component != "data" {
            return Err(Error::ComponentNotFound {
                tensor: name.to_owned(),
                component: component.to_owned(),
            }
            .in_file(self.map.path()));
        }
        self.data(tensor)
            .map_err(|e| e.in_tensor(name).in_file(self.map.path()))
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The one tensor of a standalone `.npy` file.
fn npy_tensor(bytes: &[u8], name: &str) -> Result<Tensor, Error> {
    let header = header::parse(bytes).map_err(|e| e.in_tensor(name))?;
    // The data follows the header; its length was checked by `in_place_tensor`.
    in_place_tensor(name, header, 0, bytes.len() as u64).map_err(|e| e.in_tensor(name))
}

/// A tensor whose `.npy` image (header, then data) starts at `start` and has `available` bytes.
fn in_place_tensor(
    name: &str,
    header: NpyHeader,
    start: u64,
    available: u64,
) -> Result<Tensor, Error> {
    let needed = header
        .data_offset
        .checked_add(header.data_len)
        .ok_or_else(|| Error::ShapeOverflow(header.shape.0.clone()))?;
    if needed > available {
        return Err(Error::LengthMismatch {
            component: "data".into(),
            expected: header.data_len,
            actual: available.saturating_sub(header.data_offset),
        });
    }
    let offset = start + header.data_offset;
    let location = header.is_raw_layout().then_some(ByteRange {
        offset,
        length: header.data_len,
    });
    let info = tensor_info(name, &header, location, Encoding::Raw);
    Ok(Tensor {
        info,
        header,
        source: Source::InPlace { offset },
    })
}

fn tensor_info(
    name: &str,
    header: &NpyHeader,
    location: Option<ByteRange>,
    encoding: Encoding,
) -> TensorInfo {
    let data = Component {
        dtype: header.dtype,
        logical_type: header.logical_type.clone(),
        location,
        encoding,
        decoded_len: Some(header.data_len),
        digest: None,
    };
    let attributes = Attributes::from([
        ("descr".to_owned(), Value::Text(header.descr.clone())),
        (
            "fortran_order".to_owned(),
            Value::Bool(header.fortran_order),
        ),
    ]);
    TensorInfo {
        name: name.to_owned(),
        shape: header.shape.clone(),
        format: Format::Dense,
        components: [("data".to_owned(), data)].into(),
        attributes: Some(attributes),
    }
}

fn zip_error(e: zip::result::ZipError) -> Error {
    match e {
        zip::result::ZipError::Io(e) => Error::Io(e),
        zip::result::ZipError::UnsupportedArchive(what) => {
            Error::Unsupported(format!("zip archive: {what}"))
        }
        other => Error::malformed("npz", format!("bad zip archive: {other}")),
    }
}

/// The tensors of a file, and the entries left out.
struct Entries {
    /// In file / archive order.
    tensors: Vec<Tensor>,
    /// Entry name to reason, for `.npz` entries whose array is no tensor.
    skipped: Vec<(Value, Value)>,
}

/// Every `.npy` entry of a zip archive, in archive order.
fn npz_tensors(bytes: &[u8]) -> Result<Entries, Error> {
    let mut archive = ZipArchive::new(Cursor::new(bytes)).map_err(zip_error)?;
    // Readers disagree on which of two same-named entries counts: refuse the ambiguity.
    if archive.has_duplicate_names() {
        return Err(Error::malformed(
            "npz",
            "the archive holds several entries of the same name",
        ));
    }
    let mut tensors = Vec::new();
    let mut skipped = Vec::new();
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(zip_error)?;
        let entry_name = entry.name().map_err(zip_error)?;
        let Some(name) = entry_name.strip_suffix(".npy") else {
            continue;
        };
        if entry.is_dir() {
            continue;
        }
        let name = name.to_owned();
        let start = entry
            .data_start()
            .ok_or_else(|| Error::malformed("npz", "entry without a local header"))?;
        let entry_info = EntryInfo {
            start,
            compressed_size: entry.compressed_size(),
            size: entry.size(),
            crc32: entry.crc32(),
        };
        // The archive itself must be readable: encryption and other compressions are errors.
        let tensor = match entry.compression() {
            _ if entry.encrypted() => {
                return Err(Error::Unsupported("encrypted zip entries".into()).in_tensor(&name));
            }
            CompressionMethod::Stored => stored_entry(bytes, &name, &entry_info),
            CompressionMethod::Deflated => deflated_entry(bytes, &name, &entry_info),
            other => {
                return Err(Error::Unsupported(format!(
                    "zip compression method {other} (only STORED and DEFLATE are read)"
                ))
                .in_tensor(&name));
            }
        };
        match tensor {
            Ok(tensor) => tensors.push(tensor),
            // A well-formed entry whose array is no tensor (object, string, structured...).
            Err(Error::Unsupported(reason)) => {
                skipped.push((Value::Text(name), Value::Text(reason)));
            }
            Err(e) => return Err(e.in_tensor(&name)),
        }
    }
    Ok(Entries { tensors, skipped })
}

/// Sizes and place of one zip entry, from the central directory.
struct EntryInfo {
    /// Absolute offset of the entry's (compressed) data.
    start: u64,
    compressed_size: u64,
    size: u64,
    crc32: u32,
}

fn stored_entry(bytes: &[u8], name: &str, entry: &EntryInfo) -> Result<Tensor, Error> {
    if entry.compressed_size != entry.size {
        return Err(Error::malformed(
            "npz",
            format!(
                "STORED entry claims {} bytes stored but {} bytes of content",
                entry.compressed_size, entry.size
            ),
        ));
    }
    let image = checked_slice(bytes, entry.start, entry.size, "zip entry")?;
    let header = header::parse(image)?;
    in_place_tensor(name, header, entry.start, entry.size)
}

fn deflated_entry(bytes: &[u8], name: &str, entry: &EntryInfo) -> Result<Tensor, Error> {
    let compressed = ByteRange {
        offset: entry.start,
        length: entry.compressed_size,
    };
    let stream = checked_slice(bytes, compressed.offset, compressed.length, "zip entry")?;
    let header = inflate_header(stream)?;
    let needed = header
        .data_offset
        .checked_add(header.data_len)
        .ok_or_else(|| Error::ShapeOverflow(header.shape.0.clone()))?;
    if needed > entry.size {
        return Err(Error::LengthMismatch {
            component: "data".into(),
            expected: header.data_len,
            actual: entry.size.saturating_sub(header.data_offset),
        });
    }
    // A small allowance covers the fixed overhead of tiny streams.
    let most = entry
        .compressed_size
        .saturating_mul(MAX_DEFLATE_RATIO)
        .saturating_add(1024);
    if entry.size > most {
        return Err(Error::LimitExceeded {
            what: format!(
                "zip entry declaring {} bytes from {} compressed (more than DEFLATE's {MAX_DEFLATE_RATIO}:1)",
                entry.size, entry.compressed_size
            ),
            size: entry.size,
            limit: most,
        });
    }
    let info = tensor_info(name, &header, None, Encoding::Other("deflate".into()));
    Ok(Tensor {
        info,
        header,
        source: Source::Deflated {
            compressed,
            size: entry.size,
            crc32: entry.crc32,
        },
    })
}

fn inflate_error(e: std::io::Error) -> Error {
    Error::Decompress {
        component: "data".into(),
        reason: e.to_string(),
    }
}

/// Inflates just enough of an entry to parse its `.npy` header.
fn inflate_header(stream: &[u8]) -> Result<NpyHeader, Error> {
    let mut decoder = flate2::read::DeflateDecoder::new(stream);
    let mut prefix = Vec::with_capacity(header::PREAMBLE_LEN);
    (&mut decoder)
        .take(header::PREAMBLE_LEN as u64)
        .read_to_end(&mut prefix)
        .map_err(inflate_error)?;
    // At most MAX_HEADER_LEN + PREAMBLE_LEN bytes: `data_offset` checks the limit.
    let data_offset = header::data_offset(&prefix)?;
    let mut image = prefix;
    let rest = data_offset.saturating_sub(image.len() as u64);
    decoder
        .take(rest)
        .read_to_end(&mut image)
        .map_err(inflate_error)?;
    header::parse(&image)
}

/// Inflates a whole entry and returns its element bytes, checking the stream against the
/// entry's declared `size` and `crc32`. Allocates exactly `header.data_len` bytes for them.
fn inflate(stream: &[u8], header: &NpyHeader, size: u64, crc32: u32) -> Result<Vec<u8>, Error> {
    let mut inflater = Inflater {
        decoder: flate2::read::DeflateDecoder::new(stream),
        crc: flate2::Crc::new(),
        read: 0,
        size,
    };
    inflater.skip(header.data_offset)?;
    let mut data = vec![0u8; header.data_len as usize];
    inflater.fill(&mut data)?;
    // Trailing bytes within the declared size are read only for the CRC.
    inflater.skip(size - header.data_offset - header.data_len)?;
    if inflater
        .decoder
        .read(&mut [0u8; 1])
        .map_err(inflate_error)?
        != 0
    {
        return Err(Error::Decompress {
            component: "data".into(),
            reason: format!("the stream holds more than the {size} bytes the entry declares"),
        });
    }
    let actual = inflater.crc.sum();
    if actual != crc32 {
        return Err(Error::ChecksumMismatch {
            component: "data".into(),
            expected: format!("crc32:0x{crc32:08X}"),
            actual: format!("crc32:0x{actual:08X}"),
        });
    }
    Ok(data)
}

/// A DEFLATE stream being read to its declared end, with a running CRC-32.
struct Inflater<'a> {
    decoder: flate2::read::DeflateDecoder<&'a [u8]>,
    crc: flate2::Crc,
    read: u64,
    size: u64,
}

impl Inflater<'_> {
    fn fill(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        let mut filled = 0;
        while filled < buf.len() {
            let got = self
                .decoder
                .read(&mut buf[filled..])
                .map_err(inflate_error)?;
            if got == 0 {
                return Err(Error::Decompress {
                    component: "data".into(),
                    reason: format!(
                        "the stream ends after {} of the {} bytes the entry declares",
                        self.read, self.size
                    ),
                });
            }
            self.crc.update(&buf[filled..filled + got]);
            filled += got;
            self.read += got as u64;
        }
        Ok(())
    }

    fn skip(&mut self, mut n: u64) -> Result<(), Error> {
        let mut buf = [0u8; 8192];
        while n > 0 {
            let chunk = n.min(buf.len() as u64) as usize;
            self.fill(&mut buf[..chunk])?;
            n -= chunk as u64;
        }
        Ok(())
    }
}
