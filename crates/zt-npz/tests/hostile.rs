//! Hostile `.npy` and `.npz` input: every malformed file gives a clear error, never a panic or
//! a hang, and reading it never allocates more than a small multiple of its size.
//!
//! This test binary has one test so that the allocation counter sees only its own work.

use std::io::Write;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};
use zt_core::{Error, TensorReader};
use zt_npz::NpzReader;

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

/// A v1 `.npy` image: header literal (padded like NumPy pads it), then `data`.
fn npy(literal: &str, data: &[u8]) -> Vec<u8> {
    let mut text = literal.as_bytes().to_vec();
    while !(10 + text.len() + 1).is_multiple_of(64) {
        text.push(b' ');
    }
    text.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(data);
    out
}

fn f4_vector(n: usize) -> Vec<u8> {
    let data: Vec<u8> = (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect();
    npy(
        &format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({n},), }}"),
        &data,
    )
}

/// A zip archive of the given entries, each STORED or DEFLATED.
fn zip(entries: &[(&str, &[u8], CompressionMethod)]) -> Vec<u8> {
    let mut writer = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, bytes, method) in entries {
        let options = SimpleFileOptions::default().compression_method(*method);
        writer.start_file(*name, options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Byte offset of the first central directory header.
fn central(zip: &[u8]) -> usize {
    zip.windows(4).position(|w| w == b"PK\x01\x02").unwrap()
}

/// Overwrites a little-endian u32 field of the first central directory header (and of the
/// first local header, at `local_field`, when given).
fn patch_u32(
    mut zip: Vec<u8>,
    central_field: usize,
    local_field: Option<usize>,
    value: u32,
) -> Vec<u8> {
    let at = central(&zip) + central_field;
    zip[at..at + 4].copy_from_slice(&value.to_le_bytes());
    if let Some(field) = local_field {
        zip[field..field + 4].copy_from_slice(&value.to_le_bytes());
    }
    zip
}

const CRC: (usize, Option<usize>) = (16, Some(14));
const COMPRESSED_SIZE: (usize, Option<usize>) = (20, Some(18));
const SIZE: (usize, Option<usize>) = (24, Some(22));
const LOCAL_HEADER_OFFSET: (usize, Option<usize>) = (42, None);

fn patched(zip: Vec<u8>, field: (usize, Option<usize>), value: u32) -> Vec<u8> {
    patch_u32(zip, field.0, field.1, value)
}

type Check = Box<dyn Fn(&Error) -> bool>;

fn kind(check: fn(&Error) -> bool) -> Check {
    Box::new(check)
}

fn message(needle: &'static str) -> Check {
    Box::new(move |e| e.to_string().contains(needle))
}

fn cases() -> Vec<(&'static str, &'static str, Vec<u8>, Check)> {
    use CompressionMethod::{Deflated, Stored};
    let valid = f4_vector(8);
    let deflated = zip(&[("a.npy", &valid, Deflated)]);
    let mut with_tail = valid.clone();
    with_tail.extend_from_slice(&[0; 4096]);
    let tail_zip = zip(&[("a.npy", &with_tail, Deflated)]);
    let bomb_header = npy(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776,)}",
        &[],
    );
    let mut garbage_stream = deflated.clone();
    let data_at = 30 + "a.npy".len();
    garbage_stream[data_at..data_at + 8].copy_from_slice(&[0xff; 8]);
    let mut many_entries = zip(&[("a.npy", &valid, Stored)]);
    let eocd = many_entries.len() - 22;
    many_entries[eocd + 8..eocd + 12].copy_from_slice(&[0xff; 4]);
    vec![
        (
            "npy",
            "wrong magic",
            b"\x93NUMPX\x01\x00\x10\x00".to_vec(),
            kind(|e| matches!(e, Error::BadMagic { .. })),
        ),
        (
            "npy",
            "header length past EOF",
            {
                let mut b = valid.clone();
                b[8..10].copy_from_slice(&60000u16.to_le_bytes());
                b
            },
            kind(|e| matches!(e, Error::Truncated { .. })),
        ),
        (
            "npy",
            "v2 header length huge",
            b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{".to_vec(),
            kind(|e| matches!(e, Error::LimitExceeded { .. })),
        ),
        (
            "npy",
            "unclosed dict",
            npy(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)",
                &[0; 8],
            ),
            message("expects '}'"),
        ),
        (
            "npy",
            "nested dict",
            npy(
                "{'descr': {'descr': '<f4'}, 'fortran_order': False, 'shape': ()}",
                &[0; 4],
            ),
            message("quoted string"),
        ),
        (
            "npy",
            "huge number",
            npy(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (123456789012345678901234567890,)}",
                &[],
            ),
            message("larger than 2^64"),
        ),
        (
            "npy",
            "negative dim",
            npy(
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
                &[],
            ),
            message("negative"),
        ),
        (
            "npy",
            "shape overflow",
            npy(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2)}",
                &[],
            ),
            kind(|e| matches!(e, Error::ShapeOverflow(_))),
        ),
        (
            "npy",
            "data shorter than shape",
            {
                let mut b = f4_vector(8);
                b.truncate(b.len() - 1);
                b
            },
            kind(|e| {
                matches!(
                    e,
                    Error::LengthMismatch {
                        expected: 32,
                        actual: 31,
                        ..
                    }
                )
            }),
        ),
        (
            "npy",
            "huge dims in a tiny file",
            bomb_header.clone(),
            kind(|e| matches!(e, Error::LengthMismatch { .. })),
        ),
        (
            "npy",
            "fortran data too short",
            npy(
                "{'descr': '>f8', 'fortran_order': True, 'shape': (3, 4)}",
                &[0; 95],
            ),
            kind(|e| matches!(e, Error::LengthMismatch { .. })),
        ),
        (
            "npy",
            "object array",
            npy(
                "{'descr': '|O', 'fortran_order': False, 'shape': (1,)}",
                &[0x80, 4, b'N', b'.'],
            ),
            message("never unpickled"),
        ),
        (
            "npy",
            "empty file",
            vec![],
            kind(|e| matches!(e, Error::BadMagic { .. })),
        ),
        (
            "npz",
            "declared size beyond DEFLATE's ratio",
            patched(deflated.clone(), SIZE, 1 << 30),
            kind(|e| matches!(e, Error::LimitExceeded { .. })),
        ),
        (
            "npz",
            "header claims more data than the entry",
            zip(&[("a.npy", &bomb_header, Deflated)]),
            kind(|e| matches!(e, Error::LengthMismatch { .. })),
        ),
        (
            "npz",
            "stored header claims more data than the entry",
            zip(&[("a.npy", &bomb_header, Stored)]),
            kind(|e| matches!(e, Error::LengthMismatch { .. })),
        ),
        (
            "npz",
            "stream longer than declared",
            patched(tail_zip, SIZE, valid.len() as u32),
            message("holds more than"),
        ),
        (
            "npz",
            "stream shorter than declared",
            patched(deflated.clone(), SIZE, valid.len() as u32 + 100),
            message("the stream ends after"),
        ),
        (
            "npz",
            "crc mismatch",
            patched(deflated.clone(), CRC, 0x1234_5678),
            kind(|e| matches!(e, Error::ChecksumMismatch { .. })),
        ),
        (
            "npz",
            "garbage deflate stream",
            garbage_stream,
            kind(|e| matches!(e, Error::Decompress { .. })),
        ),
        (
            "npz",
            "stored sizes disagree",
            patched(zip(&[("a.npy", &valid, Stored)]), SIZE, 10),
            message("STORED entry claims"),
        ),
        (
            "npz",
            "stored entry past EOF",
            patched(
                patched(zip(&[("a.npy", &valid, Stored)]), SIZE, 1 << 30),
                COMPRESSED_SIZE,
                1 << 30,
            ),
            kind(|e| matches!(e, Error::OutOfBounds { .. } | Error::Malformed { .. })),
        ),
        (
            "npz",
            "local header offset past EOF",
            patched(
                zip(&[("a.npy", &valid, Stored)]),
                LOCAL_HEADER_OFFSET,
                1 << 30,
            ),
            kind(|e| matches!(e, Error::Malformed { .. } | Error::Io(_))),
        ),
        (
            "npz",
            "huge entry count",
            many_entries,
            kind(|e| matches!(e, Error::Malformed { .. } | Error::Io(_))),
        ),
        (
            "npz",
            "bzip2 entry",
            {
                let mut z = zip(&[("a.npy", &valid, Stored)]);
                let at = central(&z) + 10;
                z[at..at + 2].copy_from_slice(&12u16.to_le_bytes());
                z[8..10].copy_from_slice(&12u16.to_le_bytes());
                z
            },
            kind(|e| matches!(e, Error::Unsupported(_) | Error::Malformed { .. })),
        ),
        (
            "npz",
            "bad entry header",
            zip(&[("a.npy", b"\x93NUMPY\x01\x00\x05\x00{'a'}", Stored)]),
            message("expects ':'"),
        ),
        (
            "npz",
            "duplicate entry names",
            {
                let z = zip(&[("a.npy", &valid, Stored), ("b.npy", &valid, Stored)]);
                // Rename b.npy to a.npy in its local and central headers.
                let text = z
                    .windows(5)
                    .enumerate()
                    .filter(|(_, w)| *w == b"b.npy")
                    .map(|(i, _)| i)
                    .collect::<Vec<_>>();
                let mut z = z;
                for i in text {
                    z[i] = b'a';
                }
                z
            },
            message("several entries of the same name"),
        ),
        (
            "npz",
            "zip magic then garbage",
            b"PK\x03\x04garbage".to_vec(),
            kind(|e| matches!(e, Error::Malformed { .. } | Error::Io(_))),
        ),
    ]
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let run = |ext: &str, name: &str, bytes: &[u8]| -> Result<usize, Error> {
        let path = dir.path().join(format!("hostile.{ext}"));
        std::fs::write(&path, bytes).unwrap();
        let base = zt_testkit::CountingAllocator::current();
        zt_testkit::CountingAllocator::reset_peak();
        let result = NpzReader::open(&path).and_then(|reader| {
            for t in reader.names() {
                reader.component(t, "data")?;
            }
            Ok(reader.len())
        });
        let peak = zt_testkit::CountingAllocator::peak() - base;
        let budget = 16 * bytes.len() + (256 << 10);
        assert!(
            peak <= budget,
            "{name}: reading allocated {peak} bytes (budget {budget})"
        );
        result
    };

    for (ext, name, bytes, check) in cases() {
        let err = run(ext, name, &bytes).expect_err(name);
        assert!(err.path().is_some(), "{name}: error names the file: {err}");
        assert!(check(err.kind()), "{name}: unexpected error {err}");
    }

    // Truncating valid files anywhere fails cleanly (a .npy with all its data is whole).
    let npy_file = f4_vector(8);
    assert_eq!(run("npy", "valid npy", &npy_file).unwrap(), 1);
    for len in 0..npy_file.len() {
        run("npy", "truncated npy", &npy_file[..len]).expect_err("truncated npy");
    }
    for method in [CompressionMethod::Stored, CompressionMethod::Deflated] {
        let archive = zip(&[
            ("a.npy", &npy_file, method),
            ("b/c.npy", &f4_vector(3), method),
        ]);
        assert_eq!(run("npz", "valid npz", &archive).unwrap(), 2);
        for len in 0..archive.len() {
            run("npz", "truncated npz", &archive[..len]).expect_err("truncated npz");
        }
        // Flipping any single byte may be accepted (data bytes) but never panics.
        for at in 0..archive.len() {
            let mut flipped = archive.clone();
            flipped[at] ^= 0x55;
            let _ = run("npz", "flipped npz", &flipped);
        }
    }
}
