//! Hostile input: every malformed zTensor 2 file gives a clear error, never a panic or a hang,
//! and opening and reading it never allocates more than a small multiple of its size.
//!
//! This test binary has one test so that the allocation counter below sees only its own work.

use std::path::Path;

use zt_core::{Error, TensorReader, Value};
use zt_v2::{OpenOptions, ZtV2Reader};

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

const MAGIC: &[u8; 8] = b"\x89ZT2\r\n\x1a\n";
const SEEKABLE: &str = "zt.zstd-seekable/1";

// ------------------------------------------------------------------ building files

/// Deterministic CBOR of a value: shortest heads, map keys sorted by their encodings.
fn cbor(value: &Value) -> Vec<u8> {
    fn head(out: &mut Vec<u8>, major: u8, n: u64) {
        let m = major << 5;
        match n {
            0..=23 => out.push(m | n as u8),
            24..=0xff => out.extend([m | 24, n as u8]),
            0x100..=0xffff => {
                out.push(m | 25);
                out.extend((n as u16).to_be_bytes());
            }
            0x1_0000..=0xffff_ffff => {
                out.push(m | 26);
                out.extend((n as u32).to_be_bytes());
            }
            _ => {
                out.push(m | 27);
                out.extend(n.to_be_bytes());
            }
        }
    }
    let mut out = Vec::new();
    match value {
        Value::Null => out.push(0xf6),
        Value::Bool(b) => out.push(if *b { 0xf5 } else { 0xf4 }),
        Value::Integer(i) if *i >= 0 => head(&mut out, 0, *i as u64),
        Value::Integer(i) => head(&mut out, 1, (-1 - *i) as u64),
        Value::Float(f) => {
            out.push(0xfb);
            out.extend(f.to_be_bytes());
        }
        Value::Text(s) => {
            head(&mut out, 3, s.len() as u64);
            out.extend(s.as_bytes());
        }
        Value::Bytes(b) => {
            head(&mut out, 2, b.len() as u64);
            out.extend(b);
        }
        Value::Array(items) => {
            head(&mut out, 4, items.len() as u64);
            for item in items {
                out.extend(cbor(item));
            }
        }
        Value::Map(entries) => {
            let mut encoded: Vec<(Vec<u8>, Vec<u8>)> =
                entries.iter().map(|(k, v)| (cbor(k), cbor(v))).collect();
            encoded.sort();
            head(&mut out, 5, encoded.len() as u64);
            for (k, v) in encoded {
                out.extend(k);
                out.extend(v);
            }
        }
        Value::Tag(..) => unreachable!(),
    }
    out
}

fn t(s: &str) -> Value {
    Value::Text(s.into())
}

fn n(i: u64) -> Value {
    Value::Integer(i.into())
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().map(|(k, v)| (t(k), v)).collect())
}

fn dims(d: &[u64]) -> Value {
    Value::Array(d.iter().map(|&x| n(x)).collect())
}

fn part(dtype: &str, offset: u64, length: u64) -> Vec<(&'static str, Value)> {
    vec![("dtype", t(dtype)), ("blob", dims(&[offset, length]))]
}

fn object(layout: &str, shape: &[u64], parts: Vec<(&str, Vec<(&str, Value)>)>) -> Value {
    map(vec![
        ("shape", dims(shape)),
        ("layout", t(layout)),
        (
            "parts",
            map(parts.into_iter().map(|(k, p)| (k, map(p))).collect()),
        ),
    ])
}

fn dense(dtype: &str, offset: u64, length: u64, shape: &[u64]) -> Value {
    object("dense", shape, vec![("data", part(dtype, offset, length))])
}

fn root(objects: Vec<(&str, Value)>) -> Value {
    map(vec![("objects", map(objects))])
}

/// Magic, blobs at their offsets, the manifest at the next 4096 boundary, and the footer.
fn container(blobs: &[(u64, &[u8])], manifest: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for (offset, bytes) in blobs {
        out.resize(*offset as usize, 0);
        out.extend_from_slice(bytes);
    }
    let offset = out.len().div_ceil(4096).max(1) * 4096;
    out.resize(offset, 0);
    out.extend_from_slice(manifest);
    let hash = xxhash_rust::xxh3::xxh3_64(manifest);
    for field in [offset as u64, manifest.len() as u64, hash] {
        out.extend(field.to_le_bytes());
    }
    out.extend(2u32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(MAGIC);
    out
}

/// A file with one 16-byte u8 tensor at 4096.
fn small_file(manifest: &Value) -> Vec<u8> {
    container(&[(4096, &[7u8; 16])], &cbor(manifest))
}

fn valid_manifest() -> Value {
    root(vec![("t", dense("u8", 4096, 16, &[16]))])
}

/// Replaces the footer field at `at` bytes from the footer's start.
fn with_footer_u64(mut file: Vec<u8>, at: usize, value: u64) -> Vec<u8> {
    let start = file.len() - 40 + at;
    file[start..start + 8].copy_from_slice(&value.to_le_bytes());
    file
}

/// Rewrites the manifest bytes in place (same length) and fixes the hash, so the file reaches
/// the CBOR checks.
fn with_manifest_patch(manifest: &Value, patch: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = cbor(manifest);
    patch(&mut bytes);
    container(&[(4096, &[7u8; 16])], &bytes)
}

fn replace(bytes: &mut Vec<u8>, from: &[u8], to: &[u8]) {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    bytes.splice(at..at + from.len(), to.iter().copied());
}

// ------------------------------------------------------------------ seekable blobs

struct Frame {
    stored: Vec<u8>,
    decoded: u32,
}

fn frame(data: &[u8], checksum: bool) -> Frame {
    let mut encoder = zstd::bulk::Compressor::new(3).unwrap();
    encoder
        .set_parameter(zstd::zstd_safe::CParameter::ChecksumFlag(checksum))
        .unwrap();
    Frame {
        stored: encoder.compress(data).unwrap(),
        decoded: data.len() as u32,
    }
}

/// A seekable stream from frames, with entries as given (so they can lie).
fn seekable(frames: &[Frame], entries: &[(u32, u32)], descriptor: u8) -> Vec<u8> {
    let mut out: Vec<u8> = frames.iter().flat_map(|f| f.stored.clone()).collect();
    let entry_len = if descriptor & 0x80 != 0 { 12 } else { 8 };
    out.extend(0x184D_2A5Eu32.to_le_bytes());
    out.extend(((entries.len() * entry_len + 9) as u32).to_le_bytes());
    for (c, d) in entries {
        out.extend(c.to_le_bytes());
        out.extend(d.to_le_bytes());
        if entry_len == 12 {
            out.extend(0u32.to_le_bytes());
        }
    }
    out.extend((entries.len() as u32).to_le_bytes());
    out.push(descriptor);
    out.extend(0x8F92_EAB1u32.to_le_bytes());
    out
}

fn honest(frames: &[Frame]) -> Vec<u8> {
    let entries: Vec<_> = frames
        .iter()
        .map(|f| (f.stored.len() as u32, f.decoded))
        .collect();
    seekable(frames, &entries, 0)
}

/// A file with one compressed u8 tensor holding `blob`, declaring `decoded` bytes.
fn compressed_file(blob: &[u8], decoded: u64) -> Vec<u8> {
    let mut data = part("u8", 4096, blob.len() as u64);
    data.push(("encoding", t(SEEKABLE)));
    data.push(("decoded_length", n(decoded)));
    let manifest = root(vec![(
        "t",
        object("dense", &[decoded], vec![("data", data)]),
    )]);
    container(&[(4096, blob)], &cbor(&manifest))
}

// ------------------------------------------------------------------ running cases

/// A hostile file: its name, its bytes, and which error it must produce.
type Case = (&'static str, Vec<u8>, fn(&Error) -> bool);

fn msg(e: &Error, text: &str) -> bool {
    e.to_string().contains(text)
}

/// Opens with verification on and reads every part; returns the first error.
fn open_and_read(path: &Path) -> Result<(), Error> {
    let options = OpenOptions {
        verify_checksums: true,
        ..OpenOptions::default()
    };
    let reader = ZtV2Reader::open_with(path, options)?;
    for name in reader.names() {
        let info = reader.info(name)?;
        for role in info.components.keys() {
            reader.component(name, role)?;
        }
    }
    Ok(())
}

fn footer_cases() -> Vec<Case> {
    let valid = small_file(&valid_manifest());
    let manifest_at = (valid.len() - 40 - cbor(&valid_manifest()).len()) as u64;
    let mut wrong_magic = valid.clone();
    wrong_magic[1] = b'X';
    let mut wrong_footer_magic = valid.clone();
    let end = wrong_footer_magic.len();
    wrong_footer_magic[end - 1] = 0;
    let mut version3 = valid.clone();
    let v = version3.len() - 16;
    version3[v..v + 4].copy_from_slice(&3u32.to_le_bytes());
    let data_shard = with_footer_u64(
        with_footer_u64(with_footer_u64(valid.clone(), 0, 0), 8, 0),
        16,
        0,
    );
    vec![
        ("empty file", vec![], |e| {
            matches!(e.kind(), Error::Truncated { needed: 48, .. })
        }),
        ("47 bytes", valid[..47].to_vec(), |e| {
            matches!(e.kind(), Error::Truncated { .. })
        }),
        ("wrong header magic", wrong_magic, |e| {
            matches!(e.kind(), Error::BadMagic { .. })
        }),
        ("wrong footer magic", wrong_footer_magic, |e| {
            msg(e, "footer magic missing")
        }),
        ("version 3", version3, |e| msg(e, "container version 3")),
        (
            "manifest offset not 4096-aligned",
            with_footer_u64(valid.clone(), 0, manifest_at + 1),
            |e| {
                matches!(
                    e.kind(),
                    Error::Misaligned {
                        alignment: 4096,
                        ..
                    }
                )
            },
        ),
        (
            "manifest offset on the header page",
            with_footer_u64(valid.clone(), 0, 0),
            |e| msg(e, "header's page"),
        ),
        (
            "manifest offset past EOF",
            with_footer_u64(valid.clone(), 0, 1 << 40),
            |e| matches!(e.kind(), Error::OutOfBounds { .. }),
        ),
        (
            "manifest offset at u64::MAX rounded to 4096",
            with_footer_u64(valid.clone(), 0, !4095u64),
            |e| matches!(e.kind(), Error::OutOfBounds { .. }),
        ),
        (
            "manifest length over 1 GiB",
            with_footer_u64(valid.clone(), 8, (1 << 30) + 1),
            |e| matches!(e.kind(), Error::LimitExceeded { .. }),
        ),
        (
            "manifest length into the footer",
            with_footer_u64(valid.clone(), 8, 200),
            |e| matches!(e.kind(), Error::OutOfBounds { .. }),
        ),
        (
            "manifest hash mismatch",
            with_footer_u64(valid.clone(), 16, 0x1234),
            |e| matches!(e.kind(), Error::ChecksumMismatch { component, .. } if component == "manifest"),
        ),
        ("data shard opened as root", data_shard, |e| {
            msg(e, "data shard")
        }),
    ]
}

fn cbor_cases() -> Vec<Case> {
    let m = valid_manifest();
    let deep = {
        let mut v = n(1);
        for _ in 0..40 {
            v = Value::Array(vec![v]);
        }
        map(vec![
            ("objects", map(vec![])),
            ("attributes", map(vec![("a", v)])),
        ])
    };
    let mut trailing = cbor(&m);
    trailing.push(0);
    let attrs = |v: Value| {
        map(vec![
            ("objects", map(vec![("t", dense("u8", 4096, 16, &[16]))])),
            ("attributes", map(vec![("x", v)])),
        ])
    };
    vec![
        (
            "duplicate keys",
            with_manifest_patch(&m, |b| replace(b, b"\x65shape", b"\x65parts")),
            |e| msg(e, "duplicate map key"),
        ),
        (
            "keys out of order",
            with_manifest_patch(&m, |b| replace(b, b"\x65shape", b"\x65aaaaa")),
            |e| msg(e, "out of canonical order"),
        ),
        (
            "indefinite-length map",
            with_manifest_patch(&m, |b| {
                b[0] = 0xbf;
                b.push(0xff);
            }),
            |e| msg(e, "indefinite length"),
        ),
        (
            "non-shortest head",
            with_manifest_patch(&m, |b| replace(b, b"\x81\x10", b"\x81\x18\x10")),
            |e| msg(e, "non-shortest head"),
        ),
        ("depth bomb", small_file(&deep), |e| {
            msg(e, "nesting deeper than 32")
        }),
        (
            "trailing bytes",
            container(&[(4096, &[7; 16])], &trailing),
            |e| msg(e, "trailing bytes"),
        ),
        (
            "tag",
            with_manifest_patch(&attrs(n(5)), |b| replace(b, b"\x61x\x05", b"\x61x\xc1\x05")),
            |e| msg(e, "tags are not permitted"),
        ),
        (
            "non-canonical NaN",
            with_manifest_patch(&attrs(n(5)), |b| {
                replace(b, b"\x61x\x05", b"\x61x\xfa\x7f\xc0\x00\x00")
            }),
            |e| msg(e, "non-canonical NaN"),
        ),
        (
            "float not shortest",
            small_file(&attrs(Value::Float(1.5))),
            |e| msg(e, "not at its shortest width"),
        ),
        (
            "undefined",
            with_manifest_patch(&attrs(n(5)), |b| replace(b, b"\x61x\x05", b"\x61x\xf7")),
            |e| msg(e, "unsupported simple value"),
        ),
        (
            "invalid UTF-8 name",
            with_manifest_patch(&m, |b| replace(b, b"\x61t", b"\x61\xff")),
            |e| msg(e, "not valid UTF-8"),
        ),
        (
            "text longer than the manifest",
            with_manifest_patch(&m, |b| replace(b, b"\x61t", b"\x7a\xff\xff")),
            |e| msg(e, "runs past the end"),
        ),
        (
            "array count bomb",
            with_manifest_patch(&m, |b| {
                replace(b, b"\x81\x10", b"\x9b\xff\xff\xff\xff\xff\xff\xff\xff")
            }),
            |e| msg(e, "cannot fit"),
        ),
        ("root not a map", small_file(&n(1)), |e| {
            msg(e, "must be a map")
        }),
        ("no objects", small_file(&map(vec![])), |e| {
            msg(e, "no 'objects' map")
        }),
    ]
}

fn schema_cases() -> Vec<Case> {
    let one = |o: Value| small_file(&root(vec![("t", o)]));
    let with = |extra: Vec<(&'static str, Value)>| {
        let mut p = part("u8", 4096, 16);
        p.extend(extra);
        one(object("dense", &[16], vec![("data", p)]))
    };
    let csr = |shape: &[u64], idx: &str, ptr: &str, lens: [u64; 3]| {
        small_file(&root(vec![(
            "m",
            object(
                "zt.sparse_csr/1",
                shape,
                vec![
                    ("values", part("f32", 4096, lens[0])),
                    ("indices", part(idx, 4096, lens[1])),
                    ("indptr", part(ptr, 4096, lens[2])),
                ],
            ),
        )]))
    };
    let long_name = "x".repeat(1025);
    vec![
        ("rank 65", one(dense("u8", 4096, 16, &[1; 65])), |e| {
            msg(e, "rank 65 exceeds")
        }),
        (
            "shape overflow",
            one(dense("u8", 4096, 16, &[1 << 32, 1 << 32, 2])),
            |e| matches!(e.kind(), Error::ShapeOverflow(_)),
        ),
        (
            "negative dimension",
            small_file(&root(vec![(
                "t",
                map(vec![
                    ("shape", Value::Array(vec![Value::Integer(-16)])),
                    ("layout", t("dense")),
                    ("parts", map(vec![("data", map(part("u8", 4096, 16)))])),
                ]),
            )])),
            |e| msg(e, "unsigned 64-bit"),
        ),
        (
            "unknown dtype",
            one(dense("u7", 4096, 16, &[16])),
            |e| matches!(e.kind(), Error::UnknownDType(d) if d == "u7"),
        ),
        ("bool dtype", one(dense("bool", 4096, 16, &[16])), |e| {
            matches!(e.kind(), Error::UnknownDType(_))
        }),
        (
            "f8 on f32",
            one(object(
                "dense",
                &[4],
                vec![("data", {
                    let mut p = part("f32", 4096, 16);
                    p.push(("type", t("f8_e4m3fn")));
                    p
                })],
            )),
            |e| msg(e, "requires dtype u8"),
        ),
        (
            "dense size mismatch",
            one(dense("u8", 4096, 16, &[15])),
            |e| {
                matches!(
                    e.kind(),
                    Error::LengthMismatch {
                        expected: 15,
                        actual: 16,
                        ..
                    }
                )
            },
        ),
        (
            "dense with two parts",
            one(object(
                "dense",
                &[16],
                vec![("data", part("u8", 4096, 16)), ("x", part("u8", 4096, 16))],
            )),
            |e| msg(e, "requires exactly the parts"),
        ),
        ("no parts", one(object("dense", &[16], vec![])), |e| {
            msg(e, "no parts")
        }),
        (
            "decoded_length without encoding",
            with(vec![("decoded_length", n(16))]),
            |e| msg(e, "required if and only if"),
        ),
        (
            "uppercase digest",
            with(vec![("digest", t("xxh3:ABCDEF0123456789"))]),
            |e| msg(e, "lowercase-hex"),
        ),
        (
            "blob with 3 numbers",
            one(object(
                "dense",
                &[16],
                vec![(
                    "data",
                    vec![("dtype", t("u8")), ("blob", dims(&[4096, 16, 0]))],
                )],
            )),
            |e| msg(e, "array of 2"),
        ),
        (
            "empty name",
            small_file(&root(vec![("", dense("u8", 4096, 16, &[16]))])),
            |e| msg(e, "invalid name"),
        ),
        (
            "NUL in name",
            small_file(&root(vec![("a\0b", dense("u8", 4096, 16, &[16]))])),
            |e| msg(e, "invalid name"),
        ),
        (
            "name of 1025 bytes",
            small_file(&root(vec![(
                Box::leak(long_name.into_boxed_str()),
                dense("u8", 4096, 16, &[16]),
            )])),
            |e| msg(e, "invalid name"),
        ),
        (
            "csr index dtype i32",
            csr(&[3, 4], "i32", "i32", [12, 12, 16]),
            |e| msg(e, "plain u32 or u64"),
        ),
        (
            "csr rank 3",
            csr(&[3, 4, 1], "u32", "u32", [12, 12, 16]),
            |e| msg(e, "rank-2"),
        ),
        (
            "csr indptr length",
            csr(&[3, 4], "u32", "u32", [12, 12, 12]),
            |e| matches!(e.kind(), Error::LengthMismatch { component, .. } if component == "indptr"),
        ),
        (
            "csr values vs nnz",
            csr(&[3, 4], "u32", "u32", [12, 8, 16]),
            |e| matches!(e.kind(), Error::LengthMismatch { component, .. } if component == "values"),
        ),
        (
            "csr mixed index dtypes",
            csr(&[3, 4], "u32", "u64", [12, 12, 32]),
            |e| msg(e, "dtype of 'indices'"),
        ),
        (
            "coo coords not whole",
            small_file(&root(vec![(
                "m",
                object(
                    "zt.sparse_coo/1",
                    &[3, 4],
                    vec![
                        ("values", part("f32", 4096, 12)),
                        ("coords", part("u64", 4096, 40)),
                    ],
                ),
            )])),
            |e| msg(e, "'coords' holds 40 bytes"),
        ),
        (
            "implausible decoded_length (zstd bomb by declaration)",
            with(vec![
                ("encoding", t(SEEKABLE)),
                ("decoded_length", n(1 << 40)),
            ]),
            |e| msg(e, "implausible"),
        ),
        (
            "part in an unlisted shard",
            with(vec![("shard", t("s1"))]),
            |e| msg(e, "does not list"),
        ),
        (
            "shard name with a slash",
            with(vec![("shard", t("../x"))]),
            |e| msg(e, "invalid shard name"),
        ),
        (
            "shard table entry with a path",
            small_file(&map(vec![
                ("objects", map(vec![])),
                (
                    "shards",
                    map(vec![(
                        "../../etc/passwd",
                        map(vec![("size", n(48)), ("digest", t("xxh3:00"))]),
                    )]),
                ),
            ])),
            |e| msg(e, "invalid shard name"),
        ),
        (
            "listed shard file missing",
            small_file(&map(vec![
                ("objects", map(vec![])),
                (
                    "shards",
                    map(vec![(
                        "missing",
                        map(vec![("size", n(48)), ("digest", t("xxh3:00"))]),
                    )]),
                ),
            ])),
            |e| matches!(e.kind(), Error::Io(_)),
        ),
        (
            "attributes not a map",
            small_file(&map(vec![("objects", map(vec![])), ("attributes", n(1))])),
            |e| msg(e, "'attributes' must be a map"),
        ),
    ]
}

fn blob_cases() -> Vec<Case> {
    let one = |o: Value| small_file(&root(vec![("t", o)]));
    let two = |a: Value, b: Value| {
        container(
            &[(4096, &[1u8; 8192])],
            &cbor(&root(vec![("a", a), ("b", b)])),
        )
    };
    vec![
        (
            "blob not 4096-aligned",
            one(dense("u8", 4100, 12, &[12])),
            |e| matches!(e.kind(), Error::Misaligned { offset: 4100, .. }),
        ),
        ("blob at offset 0", one(dense("u8", 0, 0, &[0])), |e| {
            msg(e, "header's page")
        }),
        ("blob past EOF", one(dense("u8", 1 << 20, 16, &[16])), |e| {
            matches!(e.kind(), Error::OutOfBounds { .. })
        }),
        (
            "blob end overflows u64",
            one(dense("u8", 4096, u64::MAX, &[u64::MAX])),
            |e| matches!(e.kind(), Error::OutOfBounds { .. }),
        ),
        (
            "partially overlapping blobs",
            two(
                dense("u8", 4096, 4097, &[4097]),
                dense("u8", 8192, 10, &[10]),
            ),
            |e| matches!(e.kind(), Error::Overlap { .. }),
        ),
        (
            "same start, different lengths",
            two(dense("u8", 4096, 100, &[100]), dense("u8", 4096, 50, &[50])),
            |e| matches!(e.kind(), Error::Overlap { .. }),
        ),
        (
            "blob overlapping the manifest",
            one(dense("u8", 8192, 8, &[8])),
            |e| matches!(e.kind(), Error::Overlap { first, second } if first == "manifest" || second == "manifest"),
        ),
    ]
}

fn seekable_cases() -> Vec<Case> {
    let a = frame(&[5u8; 1000], true);
    let b = frame(&[6u8; 1000], true);
    let c = frame(&[7u8; 300], true);
    let good = honest(&[frame(&[5u8; 1000], true), frame(&[7u8; 300], true)]);
    let (al, bl, cl) = (
        a.stored.len() as u32,
        b.stored.len() as u32,
        c.stored.len() as u32,
    );
    let no_checksum = frame(&[5u8; 100], false);
    let two_in_one = {
        let mut joined = a.stored.clone();
        joined.extend(&c.stored);
        Frame {
            stored: joined,
            decoded: 1300,
        }
    };
    let bomb = frame(&vec![0u8; 16 << 20], true);
    let bomb_len = bomb.stored.len() as u32;
    vec![
        (
            "frame sizes past the blob",
            compressed_file(
                &seekable(
                    &[a, frame(&[7u8; 300], true)],
                    &[(al + 50, 1000), (cl, 300)],
                    0,
                ),
                1300,
            ),
            |e| msg(e, "frame sizes do not cover the stream"),
        ),
        (
            "frame sizes short of the table",
            compressed_file(
                &seekable(
                    &[frame(&[5u8; 1000], true), frame(&[7u8; 300], true)],
                    &[(al - 1, 1000), (cl, 300)],
                    0,
                ),
                1300,
            ),
            |e| msg(e, "do not cover"),
        ),
        (
            "decoded sizes summing wrong",
            compressed_file(&good, 1301),
            |e| msg(e, "seek table totals 1300 bytes"),
        ),
        (
            "frame over 16 MiB",
            compressed_file(
                &seekable(&[frame(&[5u8; 1000], true)], &[(al, (16 << 20) + 1)], 0),
                (16 << 20) + 1,
            ),
            |e| msg(e, "exceeds 16 MiB") || msg(e, "implausible"),
        ),
        (
            "non-final frames of different sizes",
            compressed_file(
                &seekable(
                    &[frame(&[5u8; 1000], true), frame(&[7u8; 300], true), b],
                    &[(al, 1000), (cl, 300), (bl, 1000)],
                    0,
                ),
                2300,
            ),
            |e| msg(e, "equal-sized"),
        ),
        (
            "frame decodes to more than its entry (zstd bomb)",
            compressed_file(&seekable(&[bomb], &[(bomb_len, 1000)], 0), 1000),
            |e| matches!(e.kind(), Error::Decompress { .. }),
        ),
        (
            "frame decodes to less than its entry",
            compressed_file(
                &seekable(&[frame(&[5u8; 1000], true)], &[(al, 1001)], 0),
                1001,
            ),
            |e| matches!(e.kind(), Error::Decompress { .. }),
        ),
        (
            "frame without content checksum",
            {
                let len = no_checksum.stored.len() as u32;
                compressed_file(&seekable(&[no_checksum], &[(len, 100)], 0), 100)
            },
            |e| msg(e, "no content checksum"),
        ),
        (
            "two frames behind one entry",
            {
                let len = two_in_one.stored.len() as u32;
                compressed_file(&seekable(&[two_in_one], &[(len, 1300)], 0), 1300)
            },
            |e| msg(e, "but its seek table entry says"),
        ),
        (
            "reserved descriptor bits",
            compressed_file(
                &seekable(&[frame(&[5u8; 1000], true)], &[(al, 1000)], 0x04),
                1000,
            ),
            |e| msg(e, "reserved seek table descriptor bits"),
        ),
        (
            "missing seekable magic",
            {
                let mut blob = good.clone();
                let end = blob.len();
                blob[end - 1] ^= 0xff;
                compressed_file(&blob, 1300)
            },
            |e| msg(e, "missing seekable footer magic"),
        ),
        (
            "skippable frame size wrong",
            {
                let mut blob = good.clone();
                let at = blob.len() - 9 - 16 - 4;
                blob[at] ^= 1;
                compressed_file(&blob, 1300)
            },
            |e| msg(e, "malformed seek table skippable frame"),
        ),
        (
            "frame count larger than the blob",
            {
                let mut blob = good.clone();
                let at = blob.len() - 9;
                blob[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
                compressed_file(&blob, 1300)
            },
            |e| msg(e, "larger than the"),
        ),
        (
            "blob too short for a seek table",
            compressed_file(&[0u8; 10], 0),
            |e| msg(e, "too short for a seek table"),
        ),
        (
            "garbage frame",
            compressed_file(
                &seekable(
                    &[Frame {
                        stored: vec![0x28, 0xb5, 0x2f, 0xfd, 0x04, 0, 0, 0],
                        decoded: 10,
                    }],
                    &[(8, 10)],
                    0,
                ),
                10,
            ),
            |e| matches!(e.kind(), Error::Decompress { .. }),
        ),
        (
            "unknown encoding",
            {
                let mut p = part("u8", 4096, 16);
                p.push(("encoding", t("gzip")));
                p.push(("decoded_length", n(16)));
                small_file(&root(vec![(
                    "t",
                    object("dense", &[16], vec![("data", p)]),
                )]))
            },
            |e| matches!(e.kind(), Error::UnsupportedEncoding(x) if x == "gzip"),
        ),
    ]
}

fn verification_cases() -> Vec<Case> {
    let with = |extra: Vec<(&'static str, Value)>, bytes: [u8; 16]| {
        let mut p = part("u8", 4096, 16);
        p.extend(extra);
        container(
            &[(4096, &bytes)],
            &cbor(&root(vec![(
                "t",
                object("dense", &[16], vec![("data", p)]),
            )])),
        )
    };
    vec![
        (
            "xxh3 digest mismatch",
            with(vec![("digest", t("xxh3:0000000000000000"))], [7; 16]),
            |e| matches!(e.kind(), Error::ChecksumMismatch { .. }),
        ),
        (
            "sha256 digest mismatch",
            with(
                vec![("digest", t(&format!("sha256:{}", "0".repeat(64))))],
                [7; 16],
            ),
            |e| matches!(e.kind(), Error::ChecksumMismatch { .. }),
        ),
        (
            "unknown digest algorithm",
            with(vec![("digest", t("md5:00"))], [7; 16]),
            |e| matches!(e.kind(), Error::BadDigest { .. }),
        ),
        (
            "bool byte 2",
            with(vec![("type", t("bool"))], [2; 16]),
            |e| msg(e, "bool bytes must be 0x00 or 0x01"),
        ),
    ]
}

fn check_case(dir: &Path, name: &str, bytes: &[u8], expected: fn(&Error) -> bool) {
    let path = dir.join("case.zt");
    std::fs::write(&path, bytes).unwrap();
    let peak_before = {
        zt_testkit::CountingAllocator::reset_peak();
        zt_testkit::CountingAllocator::peak()
    };
    let result = open_and_read(&path);
    let grew = zt_testkit::CountingAllocator::peak() - peak_before;
    let error = result.expect_err(name);
    assert!(expected(&error), "{name}: unexpected error: {error}");
    assert_eq!(error.path(), Some(path.as_path()), "{name}: {error}");
    assert!(
        grew <= 4 * bytes.len() + (1 << 20),
        "{name}: allocated {grew} bytes for a {}-byte file",
        bytes.len()
    );
}

#[test]
fn hostile_files_are_refused_cleanly() {
    let dir = tempfile::tempdir().unwrap();

    // The builders make valid files unless told otherwise.
    let valid = small_file(&valid_manifest());
    let path = dir.path().join("valid.zt");
    std::fs::write(&path, &valid).unwrap();
    open_and_read(&path).unwrap();
    let good = honest(&[frame(&[5u8; 1000], true), frame(&[7u8; 300], true)]);
    std::fs::write(&path, compressed_file(&good, 1300)).unwrap();
    open_and_read(&path).unwrap();

    let cases: Vec<Case> = [
        footer_cases(),
        cbor_cases(),
        schema_cases(),
        blob_cases(),
        seekable_cases(),
        verification_cases(),
    ]
    .into_iter()
    .flatten()
    .collect();
    for (name, bytes, expected) in &cases {
        check_case(dir.path(), name, bytes, *expected);
    }

    // Every truncation of a valid file (plain and compressed) is refused.
    for file in [valid, compressed_file(&good, 1300)] {
        for len in 0..file.len() {
            check_case(dir.path(), "truncated", &file[..len], |e| {
                matches!(
                    e.kind(),
                    Error::Truncated { .. } | Error::Malformed { .. } | Error::BadMagic { .. }
                )
            });
        }
    }

    shards(dir.path());
}

/// Shard files are checked: size, magic, a footer without manifest, blob bounds.
fn shards(dir: &Path) {
    let shard = {
        let mut out = MAGIC.to_vec();
        out.resize(4096, 0);
        out.extend([9u8; 16]);
        out.extend([0u8; 24]);
        out.extend(2u32.to_le_bytes());
        out.extend(0u32.to_le_bytes());
        out.extend(MAGIC);
        out
    };
    let root_with = |size: u64, blob: (u64, u64)| {
        let mut p = part("u8", blob.0, blob.1);
        p.push(("shard", t("s1")));
        let manifest = map(vec![
            (
                "objects",
                map(vec![("t", object("dense", &[blob.1], vec![("data", p)]))]),
            ),
            (
                "shards",
                map(vec![(
                    "s1",
                    map(vec![
                        ("size", n(size)),
                        (
                            "digest",
                            t(&format!("xxh3:{:016x}", xxhash_rust::xxh3::xxh3_64(&shard))),
                        ),
                    ]),
                )]),
            ),
        ]);
        container(&[], &cbor(&manifest))
    };
    let root = dir.join("m.zt");
    let shard_path = dir.join("m-s1.zt");
    std::fs::write(&shard_path, &shard).unwrap();
    std::fs::write(&root, root_with(shard.len() as u64, (4096, 16))).unwrap();
    open_and_read(&root).unwrap();
    let reader = ZtV2Reader::open(&root).unwrap();
    assert_eq!(&reader.component("t", "data").unwrap()[..], &[9u8; 16]);

    let refused = |bytes: Vec<u8>, shard_bytes: &[u8], want: &str| {
        std::fs::write(&root, bytes).unwrap();
        std::fs::write(&shard_path, shard_bytes).unwrap();
        let e = open_and_read(&root).expect_err(want);
        assert!(e.to_string().contains(want), "{want}: {e}");
    };
    refused(
        root_with(shard.len() as u64 + 1, (4096, 16)),
        &shard,
        "the manifest expects",
    );
    refused(
        root_with(shard.len() as u64, (8192, 16)),
        &shard,
        "outside the data area",
    );
    let mut tampered = shard.clone();
    tampered[4096] = 0;
    refused(
        root_with(shard.len() as u64, (4096, 16)),
        &tampered,
        "checksum mismatch",
    );
    // A shard that is a root file (has a manifest) is not a data shard.
    let not_a_shard = small_file(&valid_manifest());
    let root_bytes = root_with(not_a_shard.len() as u64, (4096, 16));
    refused(root_bytes, &not_a_shard, "data shard's footer");
}
