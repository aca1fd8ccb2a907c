//! Hostile input: every malformed model gives a clear error, never a panic or a hang, opening
//! it never allocates more than a small multiple of its size, and external data never leads
//! outside the model's directory.
//!
//! This test binary has one test so that the allocation counter below sees only its own work.

use std::path::Path;

use prost::Message;
use zt_core::{Error, TensorReader};
use zt_onnx::OnnxReader;
use zt_onnx::proto::tensor_proto::{DataLocation, DataType, Segment};
use zt_onnx::proto::{
    GraphProto, ModelProto, NodeProto, SparseTensorProto, StringStringEntryProto, TensorProto,
};

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

type Check = fn(&Error) -> bool;

fn tensor(name: &str, data_type: DataType, dims: &[i64]) -> TensorProto {
    TensorProto {
        name: Some(name.into()),
        data_type: Some(data_type as i32),
        dims: dims.to_vec(),
        ..Default::default()
    }
}

fn raw(name: &str, data_type: DataType, dims: &[i64], bytes: &[u8]) -> TensorProto {
    TensorProto {
        raw_data: Some(bytes.to_vec().into()),
        ..tensor(name, data_type, dims)
    }
}

fn external(entries: &[(&str, &str)], dims: &[i64]) -> TensorProto {
    TensorProto {
        data_location: Some(DataLocation::External as i32),
        external_data: entries
            .iter()
            .map(|(k, v)| StringStringEntryProto {
                key: Some((*k).into()),
                value: Some((*v).into()),
            })
            .collect(),
        ..tensor("ext", DataType::Float, dims)
    }
}

fn model_with(graph: GraphProto) -> Vec<u8> {
    ModelProto {
        ir_version: Some(10),
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

fn model(initializers: Vec<TensorProto>) -> Vec<u8> {
    model_with(GraphProto {
        initializer: initializers,
        ..Default::default()
    })
}

/// A model whose only initializer is given as already-encoded `TensorProto` bytes.
fn model_raw_tensor(tensor: &[u8]) -> Vec<u8> {
    let mut graph = vec![0x2a];
    varint(&mut graph, tensor.len() as u64);
    graph.extend_from_slice(tensor);
    let mut out = vec![0x08, 10, 0x3a];
    varint(&mut out, graph.len() as u64);
    out.extend_from_slice(&graph);
    out
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn open_and_read_all(path: &Path) -> Result<(), Error> {
    let reader = OnnxReader::open(path)?;
    for name in reader.names() {
        let info = reader.info(name)?;
        for role in info.components.keys() {
            reader.component(name, role)?;
        }
        if info.format == zt_core::Format::Dense {
            reader.dense(name)?;
        }
    }
    Ok(())
}

fn malformed(e: &Error) -> bool {
    matches!(e, Error::Malformed { format: "ONNX", .. })
}

/// Not protobuf at all: a field that makes no sense, or one that runs past the end.
fn garbage(e: &Error) -> bool {
    malformed(e) || matches!(e, Error::Truncated { .. })
}

fn malformed_with(e: &Error, text: &str) -> bool {
    malformed(e) && e.to_string().contains(text)
}

fn cases() -> Vec<(&'static str, Vec<u8>, Check)> {
    let f32x4 = [0u8; 16];
    let mut cases: Vec<(&'static str, Vec<u8>, Check)> = vec![
        ("empty file", Vec::new(), |e| {
            malformed_with(e, "ir_version")
        }),
        ("text", b"hello, world: not a model\n".to_vec(), garbage),
        ("zt magic", b"ZTEN1000\0\0\0\0\0\0\0\0".to_vec(), garbage),
        (
            "hdf5 signature",
            b"\x89HDF\r\n\x1a\n\0\0\0\0".to_vec(),
            garbage,
        ),
        (
            "no ir_version",
            GraphProto::default().encode_to_vec(),
            malformed,
        ),
        ("graph encoded as varint", vec![0x08, 10, 0x38, 1], |e| {
            malformed_with(e, "graph is encoded as a varint")
        }),
        (
            "graph length past EOF",
            vec![0x08, 10, 0x3a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0],
            |e| matches!(e, Error::Truncated { .. }),
        ),
        (
            "initializer length past EOF",
            vec![0x08, 10, 0x3a, 4, 0x2a, 0xf0, 0xff, 0x7f],
            |e| matches!(e, Error::Truncated { .. }),
        ),
        (
            "varint too long",
            vec![
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            |e| malformed_with(e, "varint"),
        ),
        (
            "raw_data length past EOF",
            {
                // data_type FLOAT, dims [4], raw_data claiming 1000 bytes with 16 present.
                let mut t = vec![0x08, 4, 0x10, 1, 0x4a];
                varint(&mut t, 1000);
                t.extend_from_slice(&f32x4);
                model_raw_tensor(&t)
            },
            |e| {
                matches!(
                    e,
                    Error::Truncated {
                        needed: 1000,
                        available: 16,
                        ..
                    }
                )
            },
        ),
        (
            "raw_data shorter than shape",
            model(vec![raw("t", DataType::Float, &[5], &f32x4)]),
            |e| {
                matches!(
                    e,
                    Error::LengthMismatch {
                        expected: 20,
                        actual: 16,
                        ..
                    }
                )
            },
        ),
        (
            "raw_data longer than shape",
            model(vec![raw("t", DataType::Float, &[3], &f32x4)]),
            |e| {
                matches!(
                    e,
                    Error::LengthMismatch {
                        expected: 12,
                        actual: 16,
                        ..
                    }
                )
            },
        ),
        (
            "packed raw_data of the wrong length",
            model(vec![raw("t", DataType::Int4, &[5], &[0; 2])]),
            |e| {
                matches!(
                    e,
                    Error::LengthMismatch {
                        expected: 3,
                        actual: 2,
                        ..
                    }
                )
            },
        ),
        (
            "typed field shorter than shape",
            model(vec![TensorProto {
                float_data: vec![1.0, 2.0],
                ..tensor("t", DataType::Float, &[3])
            }]),
            |e| {
                matches!(
                    e,
                    Error::LengthMismatch {
                        expected: 12,
                        actual: 8,
                        ..
                    }
                )
            },
        ),
        (
            "typed field of another type",
            model(vec![TensorProto {
                int64_data: vec![1, 2, 3],
                ..tensor("t", DataType::Float, &[3])
            }]),
            |e| matches!(e, Error::LengthMismatch { .. }),
        ),
        (
            "no data at all",
            model(vec![tensor("t", DataType::Double, &[2])]),
            |e| {
                matches!(
                    e,
                    Error::LengthMismatch {
                        expected: 16,
                        actual: 0,
                        ..
                    }
                )
            },
        ),
        (
            "dims overflow",
            model(vec![raw("t", DataType::Float, &[1 << 40, 1 << 40], &f32x4)]),
            |e| matches!(e, Error::ShapeOverflow(_)),
        ),
        (
            "byte count overflow",
            model(vec![raw("t", DataType::Complex128, &[1 << 61], &f32x4)]),
            |e| matches!(e, Error::ShapeOverflow(_)),
        ),
        (
            "negative dimension",
            model(vec![raw("t", DataType::Float, &[-4], &f32x4)]),
            |e| malformed_with(e, "negative dimension"),
        ),
        (
            "too many dimensions",
            model(vec![raw("t", DataType::Float, &[1; 65], &f32x4)]),
            |e| matches!(e, Error::Unsupported(m) if m.contains("= 64")),
        ),
        (
            "STRING tensor",
            model(vec![TensorProto {
                string_data: vec![b"hello".to_vec()],
                ..tensor("t", DataType::String, &[1])
            }]),
            |e| matches!(e, Error::Unsupported(m) if m.contains("STRING")),
        ),
        (
            "STRING data type without data",
            model(vec![tensor("t", DataType::String, &[0])]),
            |e| matches!(e, Error::Unsupported(m) if m.contains("STRING")),
        ),
        (
            "UNDEFINED data type",
            model(vec![raw("t", DataType::Undefined, &[1], &[0])]),
            |e| malformed_with(e, "UNDEFINED"),
        ),
        (
            "unknown data type",
            model(vec![TensorProto {
                data_type: Some(99),
                ..raw("t", DataType::Float, &[1], &[0; 4])
            }]),
            |e| matches!(e, Error::Unsupported(m) if m.contains("99")),
        ),
        (
            "segmented tensor",
            model(vec![TensorProto {
                segment: Some(Segment {
                    begin: Some(0),
                    end: Some(1),
                }),
                ..raw("t", DataType::Float, &[1], &[0; 4])
            }]),
            |e| matches!(e, Error::Unsupported(m) if m.contains("segment")),
        ),
        (
            "unknown data_location",
            model(vec![TensorProto {
                data_location: Some(7),
                ..raw("t", DataType::Float, &[1], &[0; 4])
            }]),
            |e| malformed_with(e, "data_location 7"),
        ),
        (
            "duplicate names",
            model(vec![
                raw("w", DataType::Float, &[1], &[0; 4]),
                raw("w", DataType::Float, &[1], &[0; 4]),
            ]),
            |e| matches!(e, Error::DuplicateName(n) if n == "w"),
        ),
        (
            "invalid UTF-8 name",
            {
                // dims [1], UINT8, name of bytes ff fe, raw_data [7].
                model_raw_tensor(&[0x08, 1, 0x10, 2, 0x42, 2, 0xff, 0xfe, 0x4a, 1, 7])
            },
            |e| malformed_with(e, "invalid string"),
        ),
        (
            "deep nesting inside a tensor",
            {
                // An unknown field of 10,000 nested groups: prost stops at its recursion limit.
                let mut t = raw("t", DataType::Float, &[1], &[0; 4]).encode_to_vec();
                t.extend(std::iter::repeat_n(0xa3u8, 10_000).flat_map(|b| [b, 0x06]));
                t.extend(std::iter::repeat_n(0xa4u8, 10_000).flat_map(|b| [b, 0x06]));
                model_raw_tensor(&t)
            },
            |e| malformed_with(e, "recursion"),
        ),
        (
            "sparse index out of range",
            model_with(GraphProto {
                sparse_initializer: vec![SparseTensorProto {
                    values: Some(raw("s", DataType::Float, &[1], &[0; 4])),
                    indices: Some(raw("i", DataType::Int64, &[1], &12i64.to_le_bytes())),
                    dims: vec![3, 4],
                }],
                ..Default::default()
            }),
            |e| malformed_with(e, "out of range"),
        ),
        (
            "sparse negative coordinate",
            model_with(GraphProto {
                sparse_initializer: vec![SparseTensorProto {
                    values: Some(raw("s", DataType::Float, &[1], &[0; 4])),
                    indices: Some(TensorProto {
                        int64_data: vec![0, -1],
                        ..tensor("i", DataType::Int64, &[1, 2])
                    }),
                    dims: vec![3, 4],
                }],
                ..Default::default()
            }),
            |e| malformed_with(e, "out of range"),
        ),
        (
            "sparse indices of the wrong shape",
            model_with(GraphProto {
                sparse_initializer: vec![SparseTensorProto {
                    values: Some(raw("s", DataType::Float, &[2], &[0; 8])),
                    indices: Some(raw("i", DataType::Int64, &[3], &[0; 24])),
                    dims: vec![3, 4],
                }],
                ..Default::default()
            }),
            |e| malformed_with(e, "do not fit"),
        ),
        (
            "sparse indices not INT64",
            model_with(GraphProto {
                sparse_initializer: vec![SparseTensorProto {
                    values: Some(raw("s", DataType::Float, &[1], &[0; 4])),
                    indices: Some(raw("i", DataType::Int32, &[1], &[0; 4])),
                    dims: vec![3, 4],
                }],
                ..Default::default()
            }),
            |e| malformed_with(e, "INT64"),
        ),
        (
            "sparse without values",
            model_with(GraphProto {
                sparse_initializer: vec![SparseTensorProto {
                    dims: vec![3],
                    ..Default::default()
                }],
                ..Default::default()
            }),
            |e| malformed_with(e, "without values"),
        ),
        // External data: the model lives in `model/`, next to `weights.bin` (64 bytes), a
        // directory `sub/`, and a symlink `escape` to `../secret.bin`.
        (
            "external: parent directory",
            model(vec![external(&[("location", "../secret.bin")], &[4])]),
            |e| malformed_with(e, "contains '..'"),
        ),
        (
            "external: ../../etc/passwd",
            model(vec![external(&[("location", "../../etc/passwd")], &[4])]),
            |e| malformed_with(e, "contains '..'"),
        ),
        (
            "external: .. in the middle",
            model(vec![external(
                &[("location", "sub/../../secret.bin")],
                &[4],
            )]),
            |e| malformed_with(e, "contains '..'"),
        ),
        (
            "external: absolute path",
            model(vec![external(&[("location", "/etc/passwd")], &[4])]),
            |e| malformed_with(e, "is absolute"),
        ),
        (
            "external: symlink out of the directory",
            model(vec![external(&[("location", "escape")], &[4])]),
            |e| malformed_with(e, "leads outside"),
        ),
        (
            "external: a directory",
            model(vec![external(&[("location", "sub")], &[4])]),
            |e| malformed_with(e, "not a regular file"),
        ),
        (
            "external: missing file",
            model(vec![external(&[("location", "nope.bin")], &[4])]),
            |e| malformed_with(e, "does not exist"),
        ),
        (
            "external: empty location",
            model(vec![external(&[("location", "")], &[4])]),
            |e| malformed_with(e, "not a file name"),
        ),
        (
            "external: no location",
            model(vec![external(&[("offset", "0")], &[4])]),
            |e| malformed_with(e, "no external_data location"),
        ),
        (
            "external: offset past EOF",
            model(vec![external(
                &[
                    ("location", "weights.bin"),
                    ("offset", "100"),
                    ("length", "16"),
                ],
                &[4],
            )]),
            |e| {
                matches!(
                    e,
                    Error::OutOfBounds {
                        offset: 100,
                        length: 16,
                        file_len: 64,
                        ..
                    }
                )
            },
        ),
        (
            "external: offset past EOF, no length",
            model(vec![external(
                &[("location", "weights.bin"), ("offset", "100")],
                &[4],
            )]),
            |e| {
                matches!(
                    e,
                    Error::OutOfBounds {
                        offset: 100,
                        file_len: 64,
                        ..
                    }
                )
            },
        ),
        (
            "external: length past EOF",
            model(vec![external(
                &[
                    ("location", "weights.bin"),
                    ("offset", "56"),
                    ("length", "16"),
                ],
                &[4],
            )]),
            |e| {
                matches!(
                    e,
                    Error::OutOfBounds {
                        offset: 56,
                        length: 16,
                        ..
                    }
                )
            },
        ),
        (
            "external: offset + length overflows",
            model(vec![external(
                &[
                    ("location", "weights.bin"),
                    ("offset", "18446744073709551615"),
                    ("length", "16"),
                ],
                &[4],
            )]),
            |e| matches!(e, Error::OutOfBounds { .. }),
        ),
        (
            "external: length differs from shape",
            model(vec![external(
                &[("location", "weights.bin"), ("length", "12")],
                &[4],
            )]),
            |e| {
                matches!(
                    e,
                    Error::LengthMismatch {
                        expected: 16,
                        actual: 12,
                        ..
                    }
                )
            },
        ),
        (
            "external: rest of file differs from shape",
            model(vec![external(&[("location", "weights.bin")], &[4])]),
            |e| {
                matches!(
                    e,
                    Error::LengthMismatch {
                        expected: 16,
                        actual: 64,
                        ..
                    }
                )
            },
        ),
        (
            "external: offset not a number",
            model(vec![external(
                &[("location", "weights.bin"), ("offset", "-1")],
                &[4],
            )]),
            |e| malformed_with(e, "not a byte count"),
        ),
        (
            "external: too many entries",
            model(vec![external(&[("k", "v"); 65], &[4])]),
            |e| matches!(e, Error::Unsupported(m) if m.contains("= 64")),
        ),
    ];
    // A graph of a million empty nodes (2 bytes each), which the outer walk skips without
    // decoding, then a second graph whose initializer is cut short.
    let nodes = GraphProto {
        node: vec![NodeProto::default()],
        ..Default::default()
    }
    .encode_to_vec()
    .repeat(1 << 20);
    let mut m = vec![0x08, 10, 0x3a];
    varint(&mut m, nodes.len() as u64);
    m.extend(nodes);
    m.extend([0x3a, 0x02, 0x2a, 0x08]);
    cases.push(("a million nodes, then a truncated graph", m, |e| {
        matches!(e, Error::Truncated { .. })
    }));
    cases
}

#[test]
fn hostile_models_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("model");
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::write(root.path().join("secret.bin"), [0x5a; 16]).unwrap();
    std::fs::write(dir.join("weights.bin"), (0..64u8).collect::<Vec<_>>()).unwrap();
    std::os::unix::fs::symlink("../secret.bin", dir.join("escape")).unwrap();
    let path = dir.join("case.onnx");

    // Controls: the same setup reads valid external data (also through a subdirectory).
    std::fs::write(dir.join("sub/w.bin"), [1u8; 16]).unwrap();
    for location in ["weights.bin", "./sub/w.bin"] {
        let offset = if location == "weights.bin" { "48" } else { "0" };
        std::fs::write(
            &path,
            model(vec![external(
                &[("location", location), ("offset", offset), ("length", "16")],
                &[4],
            )]),
        )
        .unwrap();
        let reader = OnnxReader::open(&path).unwrap();
        let data = reader.dense("ext").unwrap();
        assert!(matches!(data, std::borrow::Cow::Borrowed(_)));
        assert_eq!(data.len(), 16);
    }

    for (name, bytes, expected) in cases() {
        std::fs::write(&path, &bytes).unwrap();
        zt_testkit::CountingAllocator::reset_peak();
        let before = zt_testkit::CountingAllocator::current();
        let err = open_and_read_all(&path).expect_err(&format!("case '{name}' must be rejected"));
        let grew = zt_testkit::CountingAllocator::peak() - before;
        assert!(
            expected(err.kind()),
            "case '{name}': unexpected error {err}"
        );
        assert_eq!(
            err.path(),
            Some(path.as_path()),
            "case '{name}': the error names the file"
        );
        // Bounded memory: a few times the file, plus fixed overhead.
        let bound = 4 * bytes.len() + (1 << 20);
        assert!(
            grew <= bound,
            "case '{name}' allocated {grew} bytes (bound {bound})"
        );
        println!("{name}: {err}");
    }

    // Truncation at every length. With the graph first and ir_version last, every proper prefix
    // is either cut inside a field or lacks ir_version: all must fail cleanly.
    let mut graph = GraphProto {
        initializer: vec![
            raw("a", DataType::Float, &[2, 2], &[1; 16]),
            TensorProto {
                int64_data: vec![1, -2, 300],
                ..tensor("b", DataType::Int64, &[3])
            },
        ],
        ..Default::default()
    }
    .encode_to_vec();
    let mut whole = vec![0x3a];
    varint(&mut whole, graph.len() as u64);
    whole.append(&mut graph);
    whole.extend([0x08, 10]);
    std::fs::write(&path, &whole).unwrap();
    open_and_read_all(&path).unwrap();
    for len in 0..whole.len() {
        std::fs::write(&path, &whole[..len]).unwrap();
        assert!(
            open_and_read_all(&path).is_err(),
            "prefix of {len} bytes must be rejected"
        );
    }

    // The real fixtures, truncated at every length and with every byte flipped: no panics.
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx");
    for fixture in ["dtypes_raw.onnx", "model.onnx", "edge.onnx"] {
        let bytes = std::fs::read(fixtures.join(fixture)).unwrap();
        for len in 0..bytes.len() {
            std::fs::write(&path, &bytes[..len]).unwrap();
            let _ = open_and_read_all(&path);
        }
        for i in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[i] ^= 0xff;
            std::fs::write(&path, &flipped).unwrap();
            let _ = open_and_read_all(&path);
        }
    }
}
