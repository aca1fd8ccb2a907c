//! Resource limits (spec/limits.md): `.zt` files whose manifest length, counts or declared sizes
//! lie give a clear error, and opening (and reading) them never allocates more than a bounded
//! multiple of the file. `hostile.rs` holds the wider corpus at a tighter bound; this binary
//! adds the lengths of the limits issue and the cases that cost the most memory per byte.
//!
//! One test in this binary, so the process-wide allocation counter sees only its own work.

use zt_core::TensorReader;
use zt_core::{ByteRange, Component, DType, Encoding, Error, Format, Shape, TensorInfo};
use zt_format::manifest::{Manifest, encode_manifest};
use zt_format::{DEFAULT_MAX_DECODED_LEN, MAX_MANIFEST_SIZE, OpenOptions, ZtReader};

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

const MAGIC: &[u8] = b"ZTEN1000";

/// Worst case documented in spec/limits.md: the manifest is decoded into a CBOR value tree
/// (a 32-byte value per one-byte item, up to twice that while a vector grows), and each tensor
/// costs about 2.2 KiB of `TensorInfo` for 60 manifest bytes or more (~33x measured for both).
const MULTIPLE: usize = 64;
const SLACK: usize = 1 << 20;

fn container(blobs: &[(u64, &[u8])], manifest: &[u8], length: Option<u64>) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (offset, bytes) in blobs {
        out.resize(*offset as usize, 0);
        out.extend_from_slice(bytes);
    }
    out.resize(out.len().next_multiple_of(64), 0);
    out.extend_from_slice(manifest);
    out.extend(length.unwrap_or(manifest.len() as u64).to_le_bytes());
    out.extend_from_slice(MAGIC);
    out
}

fn manifest_of(objects: Vec<(String, TensorInfo)>) -> Vec<u8> {
    let mut m = Manifest::default();
    for (name, mut info) in objects {
        info.name.clone_from(&name);
        m.objects.insert(name, info);
    }
    encode_manifest(&m).unwrap()
}

fn one(shape: &[u64], component: Component) -> Vec<u8> {
    manifest_of(vec![(
        "t".into(),
        TensorInfo {
            name: String::new(),
            shape: Shape::from(shape),
            format: Format::Dense,
            components: [("data".to_owned(), component)].into(),
            attributes: None,
        },
    )])
}

fn encoded(encoding: &str, offset: u64, stored: u64, declared: u64) -> Component {
    Component {
        dtype: DType::U8,
        logical_type: None,
        location: Some(ByteRange {
            offset,
            length: stored,
        }),
        encoding: match encoding {
            "zstd" => Encoding::Zstd,
            other => Encoding::Other(other.to_owned()),
        },
        decoded_len: Some(declared),
        digest: None,
    }
}

/// A ztc1 frame from raw header fields, with a correct header checksum.
fn ztc1(decoded: u64, segments: &[(u8, u64, u64)], payload: &[u8]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut f = b"ZTC1\x01\x00\x00".to_vec();
    varint(&mut f, decoded);
    varint(&mut f, 4096);
    varint(&mut f, segments.len() as u64);
    for &(kind, len, arg) in segments {
        f.push(kind);
        varint(&mut f, len);
        varint(&mut f, arg);
    }
    f.extend(0u32.to_le_bytes());
    let crc = crc_fast::crc32_iscsi(&f);
    f.extend(crc.to_le_bytes());
    f.extend_from_slice(payload);
    f
}

fn open_and_read(path: &std::path::Path) -> Result<usize, Error> {
    let reader = ZtReader::open(path)?;
    for name in reader.names() {
        for role in reader.info(name)?.components.keys() {
            reader.component(name, role)?;
        }
    }
    Ok(reader.len())
}

#[test]
fn lying_lengths_are_refused_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.zt");
    let run = |name: &str, bytes: &[u8]| -> Result<usize, Error> {
        std::fs::write(&path, bytes).unwrap();
        let (result, peak) = zt_testkit::CountingAllocator::measure(|| open_and_read(&path));
        let bound = MULTIPLE * bytes.len() + SLACK;
        let ratio = peak as f64 / bytes.len() as f64;
        println!(
            "{name}: {} bytes, peak {peak} ({ratio:.1}x): {result:?}",
            bytes.len()
        );
        assert!(
            peak <= bound,
            "{name}: allocated {peak} bytes (bound {bound})"
        );
        result
    };
    let refused = |name: &str, bytes: &[u8], expected: fn(&Error) -> bool| {
        let err = run(name, bytes).expect_err(name);
        assert!(expected(err.kind()), "{name}: unexpected error {err}");
    };

    // Manifest lengths of 2^40 and just over the limit, in a small file.
    let empty = manifest_of(vec![]);
    for n in [1 << 40, MAX_MANIFEST_SIZE + 1] {
        refused(
            "manifest length over 1 GiB",
            &container(&[], &empty, Some(n)),
            |e| matches!(e, Error::LimitExceeded { limit, .. } if *limit == MAX_MANIFEST_SIZE),
        );
    }

    // A raw tensor of 2^60 elements over four bytes.
    let four = [1u8, 2, 3, 4];
    refused(
        "2^60 elements over 4 bytes",
        &container(
            &[(64, &four)],
            &one(&[1 << 60], Component::raw(DType::U8, 64, 4)),
            None,
        ),
        |e| matches!(e, Error::LengthMismatch { .. }),
    );

    // Compressed components declaring 2^60 and 2^47 bytes: over the decoded-size cap, refused
    // before any decoding.
    let frame = zstd::encode_all(&four[..], 3).unwrap();
    let n = frame.len() as u64;
    for declared in [1 << 60, 1 << 47] {
        refused(
            "zstd declaring more than the cap",
            &container(
                &[(64, &frame)],
                &one(&[declared], encoded("zstd", 64, n, declared)),
                None,
            ),
            |e| matches!(e, Error::LimitExceeded { limit, .. } if *limit == DEFAULT_MAX_DECODED_LEN),
        );
    }
    // Within the cap (16 GiB) but a four-byte frame: output grows only as data arrives.
    refused(
        "zstd declaring 16 GiB from a 13-byte frame",
        &container(
            &[(64, &frame)],
            &one(&[16 << 30], encoded("zstd", 64, n, 16 << 30)),
            None,
        ),
        |e| matches!(e, Error::Decompress { .. }),
    );

    // A ztc1 frame declaring 2^47 decoded bytes (a one-byte chunk and a copy of it).
    let bomb = ztc1(1 << 47, &[(0, 1, 2), (1, (1 << 47) - 1, 1)], &[0, 7]);
    let b = bomb.len() as u64;
    refused(
        "ztc1 frame and manifest declaring 2^47 bytes",
        &container(
            &[(64, &bomb)],
            &one(&[1 << 47], encoded("ztc1", 64, b, 1 << 47)),
            None,
        ),
        |e| matches!(e, Error::LimitExceeded { .. }),
    );
    refused(
        "ztc1 frame declaring 2^47 bytes, manifest 4",
        &container(&[(64, &bomb)], &one(&[4], encoded("ztc1", 64, b, 4)), None),
        |e| matches!(e, Error::LimitExceeded { .. }),
    );
    // A frame whose segments do not add up to what it declares.
    let short = ztc1(1 << 47, &[(0, 1, 2)], &[0, 7]);
    refused(
        "ztc1 segments short of 2^47 bytes",
        &container(
            &[(64, &short)],
            &one(&[1 << 30], encoded("ztc1", 64, short.len() as u64, 1 << 30)),
            None,
        ),
        |e| matches!(e, Error::Malformed { .. } | Error::Decompress { .. }),
    );

    // The manifest as the largest value tree per byte: a CBOR array of a million zeros.
    let mut zeros = vec![0x9a];
    zeros.extend((1u32 << 20).to_be_bytes());
    zeros.resize(zeros.len() + (1 << 20), 0);
    refused(
        "manifest of a million CBOR zeros",
        &container(&[], &zeros, None),
        |e| matches!(e, Error::Manifest(_)),
    );
    // Nested arrays, each claiming as many items as the manifest has bytes.
    let mut nest = Vec::new();
    for _ in 0..100 {
        nest.push(0x9a);
        nest.extend((1u32 << 20).to_be_bytes());
    }
    nest.resize(1 << 20, 0);
    refused(
        "nested arrays claiming a million items each",
        &container(&[], &nest, None),
        |e| matches!(e, Error::Manifest(_)),
    );

    // 20,000 empty tensors: the most bookkeeping per manifest byte.
    let objects = (0..20_000)
        .map(|i| {
            let info = TensorInfo {
                name: String::new(),
                shape: Shape::from(&[0u64][..]),
                format: Format::Dense,
                components: [("data".to_owned(), Component::raw(DType::U8, 0, 0))].into(),
                attributes: None,
            };
            (format!("{i}"), info)
        })
        .collect();
    let many = container(&[], &manifest_of(objects), None);
    assert_eq!(run("20,000 empty tensors", &many).unwrap(), 20_000);

    // `OpenOptions::max_decoded_len` refuses a compressed component above it before decoding
    // (the real zTensor 1.2.3 fixture, every tensor zstd-compressed).
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/zt1/dtypes_zstd.zt");
    let options = OpenOptions {
        max_decoded_len: 2,
        ..OpenOptions::default()
    };
    let reader = ZtReader::open_with(&fixture, options).unwrap();
    let refused = reader
        .names()
        .into_iter()
        .find_map(|name| reader.component(name, "data").err());
    let err = refused.expect("a component of more than 2 bytes is refused");
    assert!(
        matches!(err.kind(), Error::LimitExceeded { limit: 2, .. }),
        "{err}"
    );
}
