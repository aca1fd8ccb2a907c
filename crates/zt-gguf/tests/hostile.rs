//! Hostile GGUF input: every malformed file gives a clear error, never a panic or a hang, and
//! opening it never allocates more than a small multiple of its size.
//!
//! This test binary has one test so that the allocation counter sees only its own work.

mod common;

use common::{Gguf, VT_ARRAY, VT_STRING, VT_U32, VT_U64, info, kv, kv_u32, string};
use zt_core::{Error, TensorReader};
use zt_gguf::GgufReader;

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

/// A hostile file: its name, its bytes, and the check its error must pass.
type Case = (&'static str, Vec<u8>, Box<dyn Fn(&Error) -> bool>);

fn malformed(needle: &'static str) -> Box<dyn Fn(&Error) -> bool> {
    Box::new(move |e| matches!(e, Error::Malformed { reason, .. } if reason.contains(needle)))
}

fn with(edit: impl FnOnce(&mut Gguf)) -> Vec<u8> {
    let mut g = Gguf::two_tensors();
    edit(&mut g);
    g.bytes()
}

/// `depth` arrays of one array each, around a final u32.
fn nested_arrays(depth: usize) -> Vec<u8> {
    let mut value = Vec::new();
    for _ in 0..depth {
        value.extend_from_slice(&VT_ARRAY.to_le_bytes());
        value.extend_from_slice(&1u64.to_le_bytes());
    }
    value.extend_from_slice(&VT_U32.to_le_bytes());
    value.extend_from_slice(&1u64.to_le_bytes());
    value.extend_from_slice(&7u32.to_le_bytes());
    value
}

fn cases() -> Vec<Case> {
    let mut huge_array = VT_U64.to_le_bytes().to_vec();
    huge_array.extend_from_slice(&(u64::MAX / 2).to_le_bytes());
    let mut array_of_unknown = 13u32.to_le_bytes().to_vec();
    array_of_unknown.extend_from_slice(&0u64.to_le_bytes());
    let big_endian = {
        let mut b = Gguf::two_tensors().bytes();
        b[4..8].copy_from_slice(&3u32.to_be_bytes());
        b
    };
    vec![
        (
            "empty file",
            vec![],
            Box::new(|e| matches!(e, Error::BadMagic { .. })),
        ),
        (
            "wrong magic",
            b"GGML\x03\0\0\0".to_vec(),
            Box::new(|e| matches!(e, Error::BadMagic { .. })),
        ),
        (
            "big-endian",
            big_endian,
            Box::new(
                |e| matches!(e, Error::Unsupported(m) if m.contains("big-endian GGUF (version 3)")),
            ),
        ),
        (
            "version 4",
            with(|g| g.version = 4),
            Box::new(|e| matches!(e, Error::Unsupported(m) if m.contains("version 4"))),
        ),
        (
            "huge tensor count",
            Gguf::two_tensors().bytes_with_counts(u64::MAX, 1),
            malformed("tensor info count 18446744073709551615"),
        ),
        (
            "huge kv count",
            Gguf::two_tensors().bytes_with_counts(2, 1 << 60),
            malformed("metadata key-value count"),
        ),
        (
            "string length past EOF",
            with(|g| g.kvs[0] = kv("k", VT_STRING, &(1u64 << 40).to_le_bytes())),
            Box::new(
                |e| matches!(e, Error::Truncated { what, .. } if what.contains("string value") && what.contains("'k'")),
            ),
        ),
        (
            "key length past EOF",
            with(|g| g.kvs[0] = u64::MAX.to_le_bytes().to_vec()),
            Box::new(
                |e| matches!(e, Error::Truncated { what, .. } if what.contains("metadata key")),
            ),
        ),
        (
            "array depth bomb",
            with(|g| g.kvs.push(kv("deep", VT_ARRAY, &nested_arrays(10_000)))),
            malformed("nested deeper than 16"),
        ),
        (
            "array length past EOF",
            with(|g| g.kvs.push(kv("big", VT_ARRAY, &huge_array))),
            malformed("array item count"),
        ),
        (
            "unknown array item type",
            with(|g| g.kvs.push(kv("odd", VT_ARRAY, &array_of_unknown))),
            malformed("unknown metadata value type 13"),
        ),
        (
            "unknown value type",
            with(|g| g.kvs.push(kv("odd", 99, &[0; 8]))),
            malformed("metadata 'odd': unknown metadata value type 99"),
        ),
        (
            "duplicate key",
            with(|g| g.kvs.push(g.kvs[0].clone())),
            malformed("duplicate metadata key 'general.architecture'"),
        ),
        (
            "non-UTF-8 key",
            with(|g| {
                let mut pair = string(b"x\xff");
                pair.extend_from_slice(&VT_U32.to_le_bytes());
                pair.extend_from_slice(&0u32.to_le_bytes());
                g.kvs.push(pair);
            }),
            malformed("metadata key"),
        ),
        (
            "five dimensions",
            with(|g| g.infos[0] = info(b"a", &[1, 1, 1, 1, 6], 0, 0)),
            Box::new(|e| {
                e.tensor() == Some("a")
                    && matches!(e.kind(), Error::Malformed { reason, .. } if reason.contains("5 dimensions"))
            }),
        ),
        (
            "dims product overflow",
            with(|g| g.infos[0] = info(b"a", &[1 << 40, 1 << 40], 0, 0)),
            Box::new(|e| matches!(e.kind(), Error::ShapeOverflow(_))),
        ),
        (
            "element count past int64",
            with(|g| g.infos[0] = info(b"a", &[1 << 63], 24, 0)),
            Box::new(|e| matches!(e.kind(), Error::ShapeOverflow(_))),
        ),
        (
            "byte count overflow",
            with(|g| g.infos[0] = info(b"a", &[1 << 62], 0, 0)),
            Box::new(|e| matches!(e.kind(), Error::ShapeOverflow(_))),
        ),
        (
            "alignment not a power of two",
            with(|g| g.kvs.push(kv_u32("general.alignment", 48))),
            malformed("'general.alignment' is 48"),
        ),
        (
            "alignment zero",
            with(|g| g.kvs.push(kv_u32("general.alignment", 0))),
            malformed("power of two"),
        ),
        (
            "alignment too large",
            with(|g| g.kvs.push(kv_u32("general.alignment", 1 << 30))),
            malformed("no larger than"),
        ),
        (
            "alignment of the wrong type",
            with(|g| {
                g.kvs
                    .push(kv("general.alignment", VT_U64, &32u64.to_le_bytes()))
            }),
            malformed("must be a u32"),
        ),
        (
            "offset past EOF",
            with(|g| g.infos[1] = info(b"b", &[4], 0, 1 << 20)),
            Box::new(|e| e.tensor() == Some("b") && matches!(e.kind(), Error::OutOfBounds { .. })),
        ),
        (
            "offset overflows",
            with(|g| g.infos[1] = info(b"b", &[4], 0, u64::MAX - 31)),
            Box::new(|e| matches!(e.kind(), Error::OutOfBounds { .. })),
        ),
        (
            "tensor bytes past EOF",
            with(|g| g.infos[1] = info(b"b", &[400], 0, 32)),
            Box::new(|e| matches!(e.kind(), Error::OutOfBounds { .. })),
        ),
        (
            "overlapping tensors",
            with(|g| g.infos[1] = info(b"b", &[4], 0, 0)),
            Box::new(
                |e| matches!(e.kind(), Error::Overlap { first, second } if first != second && [first, second].iter().all(|n| *n == "a" || *n == "b")),
            ),
        ),
        (
            "misaligned offset",
            with(|g| g.infos[1] = info(b"b", &[4], 0, 24)),
            Box::new(|e| {
                e.tensor() == Some("b")
                    && matches!(
                        e.kind(),
                        Error::Misaligned {
                            offset: 24,
                            alignment: 32,
                            ..
                        }
                    )
            }),
        ),
        (
            "unknown ggml type",
            with(|g| g.infos[1] = info(b"b", &[4], 99, 32)),
            Box::new(|e| {
                e.tensor() == Some("b")
                    && matches!(e.kind(), Error::Unsupported(m) if m.contains("unknown ggml type id 99"))
            }),
        ),
        (
            "quantized row not a multiple of the block",
            with(|g| g.infos[1] = info(b"b", &[16], 8, 32)),
            malformed("innermost dimension 16 is not a multiple of the q8_0 block size 32"),
        ),
        (
            "duplicate tensor name",
            with(|g| g.infos[1] = info(b"a", &[4], 0, 32)),
            Box::new(|e| matches!(e.kind(), Error::DuplicateName(n) if n == "a")),
        ),
        (
            "non-UTF-8 tensor name",
            with(|g| g.infos[1] = info(b"\xff", &[4], 0, 32)),
            malformed("tensor name"),
        ),
        (
            "dims past EOF",
            {
                let mut b = Gguf::two_tensors().bytes();
                let at = b.len() - 64 - 32 + 8;
                b.truncate(at);
                b
            },
            Box::new(|e| {
                matches!(
                    e,
                    Error::Truncated { .. } | Error::Malformed { .. } | Error::InTensor { .. }
                )
            }),
        ),
    ]
}

#[test]
fn hostile_inputs_fail_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    let mut run = |name: &str, bytes: &[u8]| -> Result<(), Error> {
        let path = dir.path().join("hostile.gguf");
        std::fs::write(&path, bytes).unwrap();
        let base = zt_testkit::CountingAllocator::current();
        zt_testkit::CountingAllocator::reset_peak();
        let result = GgufReader::open(&path).map(|reader| {
            for t in reader.names() {
                reader.component(t, "data").unwrap();
            }
        });
        let peak = zt_testkit::CountingAllocator::peak() - base;
        // Parsed metadata may take a few dozen bytes per byte of file (a Value per u8).
        let budget = 64 * bytes.len() + (64 << 10);
        assert!(
            peak <= budget,
            "{name}: opening allocated {peak} bytes (budget {budget})"
        );
        checked += 1;
        result
    };

    for (name, bytes, check) in cases() {
        let err = run(name, &bytes).expect_err(name);
        assert!(err.path().is_some(), "{name}: error names the file: {err}");
        // Checks see the error without its file wrapper (to ask for the tensor) or bare.
        let in_file = match &err {
            Error::InFile { source, .. } => source.as_ref(),
            e => e,
        };
        assert!(
            check(in_file) || check(err.kind()),
            "{name}: unexpected error {err}"
        );
    }

    // Truncating a valid file anywhere before its last tensor's end fails; past it the file is
    // still whole.
    let valid = Gguf::two_tensors().bytes();
    run("valid", &valid).unwrap();
    let whole = valid.len();
    for len in 0..whole {
        let err = run("truncated", &valid[..len]).expect_err("truncated file");
        let kind = err.kind();
        assert!(
            matches!(
                kind,
                Error::BadMagic { .. }
                    | Error::Truncated { .. }
                    | Error::Malformed { .. }
                    | Error::OutOfBounds { .. }
            ),
            "truncated at {len}: {err}"
        );
    }
    // And deeply nested (but legal) arrays still parse.
    let ok = with(|g| g.kvs.push(kv("nested", VT_ARRAY, &nested_arrays(15))));
    run("nested 16 deep", &ok).unwrap();
    assert!(checked > 60);
}
