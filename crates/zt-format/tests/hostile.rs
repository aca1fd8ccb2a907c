//! Hostile input: every malformed file gives a clear error, never a panic or a hang, and opening
//! it never allocates more than a small multiple of its size.
//!
//! This test binary has one test so that the allocation counter below sees only its own work.

use zt_core::{
    ByteRange, Component, DType, Encoding, Error, Format, Shape, TensorInfo, TensorReader,
};
use zt_format::manifest::{Manifest, encode_manifest};
use zt_format::{OpenOptions, ZtReader};

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

const MAGIC: &[u8] = b"ZTEN1000";

/// A hostile file: its name, its bytes, and which error it must produce.
type Case = (&'static str, Vec<u8>, fn(&Error) -> bool);

/// Assembles header, blobs at the given offsets, manifest bytes and footer.
fn container(blobs: &[(u64, &[u8])], manifest: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (offset, bytes) in blobs {
        out.resize(*offset as usize, 0);
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(manifest);
    out.extend_from_slice(&(manifest.len() as u64).to_le_bytes());
    out.extend_from_slice(MAGIC);
    out
}

fn object(shape: &[u64], components: &[(&str, Component)]) -> TensorInfo {
    TensorInfo {
        name: String::new(),
        shape: Shape::from(shape),
        format: Format::Dense,
        components: components
            .iter()
            .map(|(r, c)| (r.to_string(), c.clone()))
            .collect(),
        attributes: None,
    }
}

fn manifest_of(objects: Vec<(&str, TensorInfo)>) -> Vec<u8> {
    let mut m = Manifest::default();
    for (name, mut info) in objects {
        info.name = name.to_owned();
        m.objects.insert(name.to_owned(), info);
    }
    encode_manifest(&m).unwrap()
}

fn zstd_component(offset: u64, stored: u64, declared: Option<u64>) -> Component {
    Component {
        dtype: DType::U8,
        logical_type: None,
        location: Some(ByteRange {
            offset,
            length: stored,
        }),
        encoding: Encoding::Zstd,
        decoded_len: declared,
        digest: None,
    }
}

/// Opens the file and reads every component of every tensor; returns the first error.
fn open_and_read_all(bytes: &[u8], dir: &std::path::Path, name: &str) -> Result<(), Error> {
    ZtReader::validate_bytes(bytes)?;
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let r = ZtReader::open_with(
        &path,
        OpenOptions {
            verify_checksums: true,
            ..OpenOptions::default()
        },
    )?;
    for tensor in r.names() {
        let info = r.info(tensor)?;
        for role in info.components.keys() {
            r.component(tensor, role)?;
        }
    }
    Ok(())
}

#[test]
fn hostile_corpus_gives_clear_errors_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let good_data = [1u8, 2, 3, 4];
    let good = container(
        &[(64, &good_data)],
        &manifest_of(vec![(
            "t",
            object(&[4], &[("data", Component::raw(DType::U8, 64, 4))]),
        )]),
    );
    open_and_read_all(&good, dir.path(), "good.zt").expect("the control file is valid");

    let bomb_frame = zstd::encode_all(std::io::repeat(0).take_bytes(64 << 20), 1).unwrap();
    let bomb_len = bomb_frame.len() as u64;
    let short_frame = zstd::encode_all(&[7u8; 8][..], 3).unwrap();
    let mut deep = vec![0x81u8; 100_000];
    deep.push(0);

    let mut cases: Vec<Case> = vec![
        ("empty", vec![], |e| matches!(e, Error::Truncated { .. })),
        ("short", b"ZTEN".to_vec(), |e| {
            matches!(e, Error::Truncated { .. })
        }),
        ("header only", MAGIC.to_vec(), |e| {
            matches!(e, Error::Truncated { .. })
        }),
        (
            "wrong magic",
            {
                let mut b = good.clone();
                b[..8].copy_from_slice(b"PK\x03\x04abcd");
                b
            },
            |e| matches!(e, Error::BadMagic { .. }),
        ),
        ("truncated", good[..good.len() - 3].to_vec(), |e| {
            matches!(e, Error::BadMagic { .. })
        }),
        (
            "manifest size beyond file",
            {
                let mut b = good.clone();
                let at = b.len() - 16;
                b[at..at + 8].copy_from_slice(&(1u64 << 29).to_le_bytes());
                b
            },
            |e| matches!(e, Error::Truncated { .. }),
        ),
        (
            "manifest size over 1 GiB",
            {
                let mut b = good.clone();
                let at = b.len() - 16;
                b[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
                b
            },
            |e| matches!(e, Error::LimitExceeded { .. }),
        ),
        ("not CBOR", container(&[], &[0xff, 0xff, 0xff]), |e| {
            matches!(e, Error::Manifest(_))
        }),
        ("CBOR nested 100k deep", container(&[], &deep), |e| {
            matches!(e, Error::Manifest(_))
        }),
        (
            "CBOR string longer than manifest",
            container(&[], &[0x7b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            |e| matches!(e, Error::Manifest(_)),
        ),
        (
            "CBOR array of 2^63 items",
            container(&[], &[0x9b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            |e| matches!(e, Error::Manifest(_)),
        ),
        (
            "offset past EOF",
            container(
                &[(64, &good_data)],
                &manifest_of(vec![(
                    "t",
                    object(&[4], &[("data", Component::raw(DType::U8, 1 << 40, 4))]),
                )]),
            ),
            |e| matches!(e, Error::OutOfBounds { .. }),
        ),
        (
            "length past EOF",
            container(
                &[(64, &good_data)],
                &manifest_of(vec![(
                    "t",
                    object(
                        &[1 << 20],
                        &[("data", Component::raw(DType::U8, 64, 1 << 20))],
                    ),
                )]),
            ),
            |e| matches!(e, Error::OutOfBounds { .. }),
        ),
        (
            "offset + length overflows",
            container(
                &[(64, &good_data)],
                &manifest_of(vec![(
                    "t",
                    object(
                        &[4],
                        &[("data", Component::raw(DType::U8, u64::MAX - 63, 4))],
                    ),
                )]),
            ),
            |e| matches!(e, Error::OutOfBounds { .. }),
        ),
        (
            "data inside the manifest",
            container(
                &[(64, &good_data)],
                &manifest_of(vec![(
                    "t",
                    object(&[64], &[("data", Component::raw(DType::U8, 64, 64))]),
                )]),
            ),
            |e| matches!(e, Error::OutOfBounds { .. }),
        ),
        (
            "data over the header",
            container(
                &[(64, &good_data)],
                &manifest_of(vec![(
                    "t",
                    object(&[4], &[("data", Component::raw(DType::U8, 0, 4))]),
                )]),
            ),
            |e| matches!(e, Error::OutOfBounds { .. }),
        ),
        (
            "misaligned",
            container(
                &[(72, &good_data)],
                &manifest_of(vec![(
                    "t",
                    object(&[4], &[("data", Component::raw(DType::U8, 72, 4))]),
                )]),
            ),
            |e| matches!(e, Error::Misaligned { .. }),
        ),
        (
            "overlapping",
            container(
                &[(64, &[0; 128])],
                &manifest_of(vec![
                    (
                        "a",
                        object(&[128], &[("data", Component::raw(DType::U8, 64, 128))]),
                    ),
                    (
                        "b",
                        object(&[64], &[("data", Component::raw(DType::U8, 128, 64))]),
                    ),
                ]),
            ),
            |e| matches!(e, Error::Overlap { .. }),
        ),
        (
            "shape/length mismatch",
            container(
                &[(64, &good_data)],
                &manifest_of(vec![(
                    "t",
                    object(&[3], &[("data", Component::raw(DType::U8, 64, 4))]),
                )]),
            ),
            |e| matches!(e, Error::LengthMismatch { .. }),
        ),
        (
            "1 PB shape",
            container(
                &[(64, &good_data)],
                &manifest_of(vec![(
                    "t",
                    object(&[1 << 50], &[("data", Component::raw(DType::U8, 64, 4))]),
                )]),
            ),
            |e| matches!(e, Error::LengthMismatch { .. }),
        ),
        (
            "shape overflows u64",
            container(
                &[(64, &good_data)],
                &manifest_of(vec![(
                    "t",
                    object(
                        &[1 << 40, 1 << 40],
                        &[("data", Component::raw(DType::U8, 64, 4))],
                    ),
                )]),
            ),
            |e| matches!(e, Error::ShapeOverflow(_)),
        ),
        (
            "zstd bomb, small shape",
            container(
                &[(64, &bomb_frame)],
                &manifest_of(vec![(
                    "t",
                    object(&[64], &[("data", zstd_component(64, bomb_len, Some(64)))]),
                )]),
            ),
            |e| matches!(e, Error::Decompress { .. }),
        ),
        (
            "zstd bomb, no declared size",
            container(
                &[(64, &bomb_frame)],
                &manifest_of(vec![(
                    "t",
                    TensorInfo {
                        format: Format::Other("blob".into()),
                        ..object(
                            &[1],
                            &[("payload", zstd_component(64, bomb_len, Some(100)))],
                        )
                    },
                )]),
            ),
            |e| matches!(e, Error::Decompress { .. }),
        ),
        (
            "zstd bomb, declared 1 PB",
            container(
                &[(64, &bomb_frame)],
                &manifest_of(vec![(
                    "t",
                    object(
                        &[1 << 50],
                        &[("data", zstd_component(64, bomb_len, Some(1 << 50)))],
                    ),
                )]),
            ),
            |e| matches!(e, Error::LimitExceeded { .. }),
        ),
        (
            "zstd frame shorter than declared",
            container(
                &[(64, &short_frame)],
                &manifest_of(vec![(
                    "t",
                    object(
                        &[16],
                        &[(
                            "data",
                            zstd_component(64, short_frame.len() as u64, Some(16)),
                        )],
                    ),
                )]),
            ),
            |e| matches!(e, Error::Decompress { .. }),
        ),
        (
            "zstd garbage",
            container(
                &[(64, &[0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff])],
                &manifest_of(vec![(
                    "t",
                    object(&[16], &[("data", zstd_component(64, 8, Some(16)))]),
                )]),
            ),
            |e| matches!(e, Error::Decompress { .. }),
        ),
        (
            "uncompressed_length disagrees with shape",
            container(
                &[(64, &short_frame)],
                &manifest_of(vec![(
                    "t",
                    object(
                        &[16],
                        &[(
                            "data",
                            zstd_component(64, short_frame.len() as u64, Some(8)),
                        )],
                    ),
                )]),
            ),
            |e| matches!(e, Error::LengthMismatch { .. }),
        ),
    ];
    // Manifest-level schema violations.
    let schema = |m: &str| container(&[], &hex(m));
    cases.push(("unknown dtype", schema("a2 6776657273696f6e 65312e322e30 676f626a65637473 a1 6174 a3 657368617065 80 66666f726d6174 6564656e7365 6a636f6d706f6e656e7473 a1 6464617461 a3 656474797065 6466313238 666f6666736574 00 666c656e677468 00"), |e| matches!(e, Error::UnknownDType(_))));
    cases.push(("negative dimension", schema("a2 6776657273696f6e 65312e322e30 676f626a65637473 a1 6174 a3 657368617065 81 20 66666f726d6174 6564656e7365 6a636f6d706f6e656e7473 a0"), |e| matches!(e, Error::Manifest(_))));
    cases.push((
        "missing objects",
        schema("a1 6776657273696f6e 65312e322e30"),
        |e| matches!(e, Error::Manifest(_)),
    ));
    cases.push(("root not a map", schema("80"), |e| {
        matches!(e, Error::Manifest(_))
    }));

    for (name, bytes, expected) in &cases {
        let peak_before = {
            zt_testkit::CountingAllocator::reset_peak();
            zt_testkit::CountingAllocator::current()
        };
        let err = open_and_read_all(bytes, dir.path(), "case.zt")
            .expect_err(&format!("case '{name}' must be rejected"));
        let grew = zt_testkit::CountingAllocator::peak() - peak_before;
        assert!(
            expected(err.kind()),
            "case '{name}': unexpected error {err:?}"
        );
        // Every message names what was wrong; file-level ones name the file.
        assert!(!err.to_string().is_empty());
        // Bounded memory: a few times the file, plus fixed overhead (decoder state, scratch).
        let bound = 4 * bytes.len() + (4 << 20);
        assert!(
            grew <= bound,
            "case '{name}' allocated {grew} bytes (bound {bound})"
        );
        println!("{name}: {err}");
    }
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

trait TakeBytes: std::io::Read + Sized {
    fn take_bytes(self, n: u64) -> std::io::Take<Self> {
        self.take(n)
    }
}
impl<R: std::io::Read> TakeBytes for R {}
