//! Round trips through the writer and the reader: every dtype, format, compression level and
//! checksum; edge cases of shapes and names; append, remove and replace.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use zt_core::{
    Attributes, ChecksumAlgorithm, DType, Digest, Encoding, Error, Format, LogicalType,
    TensorReader, Value,
};
use zt_format::{
    ComponentData, ComponentOptions, OpenOptions, Writer, ZtReader, remove_tensors, replace_tensor,
};

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

/// Deterministic bytes that look like data (not all zeros, so compression is exercised).
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut x = 0x9E37_79B9_u32 ^ u32::from(seed);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            if i % 7 == 0 { 0 } else { (x >> 24) as u8 }
        })
        .collect()
}

/// Levels 19 and 22 allocate a 128 MiB window per frame in streaming mode (as zTensor 1.2.3
/// does), so they run for one dtype only to keep the suite fast.
fn all_options(dtype: DType) -> Vec<ComponentOptions> {
    let mut v = Vec::new();
    let levels: &[Option<i32>] = if dtype == DType::F32 {
        &[
            None,
            Some(1),
            Some(3),
            Some(19),
            Some(22),
            Some(-5),
            Some(0),
        ]
    } else {
        &[None, Some(1), Some(3), Some(-5)]
    };
    for &compression in levels {
        for checksum in [
            ChecksumAlgorithm::None,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Sha256,
        ] {
            let base = match compression {
                None => ComponentOptions::raw(),
                Some(level) => ComponentOptions::zstd(level),
            };
            v.push(base.with_checksum(checksum));
        }
    }
    v
}

#[test]
fn every_dtype_level_and_checksum_round_trips() {
    let dir = tmp();
    let path = dir.path().join("all.zt");
    let mut expected = Vec::new();
    let mut w = Writer::create(&path).unwrap();
    for (i, dtype) in DType::ALL.into_iter().enumerate() {
        for (j, options) in all_options(dtype).into_iter().enumerate() {
            let name = format!("{dtype}/{j}");
            let shape = [3u64, 5];
            let mut bytes = pattern(15 * dtype.size(), (i * 31 + j) as u8);
            if dtype == DType::Bool {
                bytes.iter_mut().for_each(|b| *b &= 1);
            }
            w.add_dense(&name, shape, dtype, &bytes, options).unwrap();
            expected.push((name, dtype, bytes, options));
        }
    }
    w.finish().unwrap();

    for verify in [false, true] {
        let r = ZtReader::open_with(
            &path,
            OpenOptions {
                verify_checksums: verify,
                ..OpenOptions::default()
            },
        )
        .unwrap();
        assert_eq!(r.len(), expected.len());
        for (name, dtype, bytes, options) in &expected {
            let info = r.info(name).unwrap();
            assert_eq!(info.shape.dims(), &[3, 5]);
            let data = &info.components["data"];
            assert_eq!(data.dtype, *dtype);
            assert_eq!(data.location.unwrap().offset % 64, 0);
            let compressed = options.compression != zt_format::Compression::Raw;
            assert_eq!(data.encoding == Encoding::Zstd, compressed, "{name}");
            assert_eq!(
                data.digest.as_ref().and_then(Digest::algorithm),
                match options.checksum {
                    ChecksumAlgorithm::None => None,
                    other => Some(other),
                }
            );
            assert_eq!(&*r.dense(name).unwrap(), &bytes[..], "{name}");
            let mut out = vec![0u8; bytes.len()];
            r.read_component_into(name, "data", &mut out).unwrap();
            assert_eq!(out, *bytes);
        }
        assert_eq!(
            r.verify_all(true).unwrap(),
            expected
                .iter()
                .filter(|e| e.3.checksum != ChecksumAlgorithm::None)
                .count()
        );
    }
}

#[test]
fn raw_components_are_zero_copy_views_of_the_map() {
    let dir = tmp();
    let path = dir.path().join("zc.zt");
    let bytes = pattern(4096, 1);
    let mut w = Writer::create(&path).unwrap();
    w.add_dense("w", [1024], DType::F32, &bytes, ComponentOptions::raw())
        .unwrap();
    w.add_dense("z", [1024], DType::F32, &bytes, ComponentOptions::zstd(3))
        .unwrap();
    w.finish().unwrap();
    let r = ZtReader::open(&path).unwrap();
    let map = r.file_bytes().as_ptr_range();
    match r.dense("w").unwrap() {
        Cow::Borrowed(view) => {
            assert!(map.contains(&view.as_ptr()));
            assert_eq!(view.as_ptr() as usize % 64, 0, "64-byte aligned in memory");
        }
        Cow::Owned(_) => panic!("raw component was copied"),
    }
    assert!(matches!(r.dense("z").unwrap(), Cow::Owned(_)));
}

#[test]
fn edge_shapes_and_names() {
    let dir = tmp();
    let path = dir.path().join("edge.zt");
    let names = ["", "émoji 😀", "a/b.c", "nul\0inside", "B", "a"];
    let mut w = Writer::create(&path).unwrap();
    for (i, name) in names.iter().enumerate() {
        w.add_dense(name, [2], DType::U8, &[i as u8, 7], ComponentOptions::raw())
            .unwrap();
    }
    w.add_dense(
        "scalar",
        [],
        DType::F64,
        &1.5f64.to_le_bytes(),
        ComponentOptions::raw(),
    )
    .unwrap();
    w.add_dense("zero", [0, 4], DType::F32, &[], ComponentOptions::raw())
        .unwrap();
    w.add_dense("zero_z", [4, 0], DType::F32, &[], ComponentOptions::zstd(3))
        .unwrap();
    w.add_dense(
        "zero_crc",
        [0],
        DType::I64,
        &[],
        ComponentOptions::raw().with_checksum(ChecksumAlgorithm::Crc32c),
    )
    .unwrap();
    w.finish().unwrap();

    let r = ZtReader::open(&path).unwrap();
    // Listing order: UTF-8 byte order, whatever order they were written in.
    let listed = r.names();
    let mut sorted = listed.clone();
    sorted.sort_unstable();
    assert_eq!(listed, sorted);
    for (i, name) in names.iter().enumerate() {
        assert_eq!(&*r.dense(name).unwrap(), &[i as u8, 7]);
    }
    assert_eq!(&*r.dense("scalar").unwrap(), &1.5f64.to_le_bytes());
    assert!(r.info("scalar").unwrap().shape.dims().is_empty());
    assert!(r.dense("zero").unwrap().is_empty());
    assert!(r.dense("zero_z").unwrap().is_empty());
    assert_eq!(
        r.info("zero_crc").unwrap().components["data"].digest,
        Some(Digest::Crc32c(0))
    );
}

#[test]
fn empty_file_is_48_golden_bytes() {
    let dir = tmp();
    let path = dir.path().join("empty.zt");
    assert_eq!(Writer::create(&path).unwrap().finish().unwrap(), 48);
    let bytes = std::fs::read(&path).unwrap();
    let mut expected = b"ZTEN1000".to_vec();
    expected.extend_from_slice(b"\xa2\x67version\x651.2.0\x67objects\xa0");
    expected.extend_from_slice(&24u64.to_le_bytes());
    expected.extend_from_slice(b"ZTEN1000");
    assert_eq!(bytes, expected);
    let r = ZtReader::open(&path).unwrap();
    assert!(r.is_empty());
}

#[test]
fn single_f32_is_the_199_byte_golden_file() {
    let dir = tmp();
    let path = dir.path().join("single.zt");
    let values: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    let mut w = Writer::create(&path).unwrap();
    w.add_dense("a", [2, 3], DType::F32, &values, ComponentOptions::raw())
        .unwrap();
    assert_eq!(w.finish().unwrap(), 199);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"ZTEN1000");
    assert!(bytes[8..64].iter().all(|&b| b == 0));
    assert_eq!(&bytes[64..88], &values[..]);
    assert_eq!(
        &bytes[bytes.len() - 16..bytes.len() - 8],
        &95u64.to_le_bytes()
    );
}

#[test]
fn sparse_quantized_and_typed_tensors() {
    let dir = tmp();
    let path = dir.path().join("sparse.zt");
    let values: Vec<u8> = [1.0f32, 2.0, 3.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let mut w = Writer::create(&path).unwrap();
    w.add_csr(
        "csr",
        [3, 4],
        DType::F32,
        &values,
        &[0, 3, 1],
        &[0, 2, 2, 3],
        ComponentOptions::zstd(3).with_checksum(ChecksumAlgorithm::Sha256),
    )
    .unwrap();
    w.add_coo(
        "coo",
        [2, 3],
        DType::F32,
        &values,
        &[0, 1, 1, 2, 0, 1],
        ComponentOptions::raw(),
    )
    .unwrap();
    let packed = pattern(32, 3);
    let scales = pattern(8, 4);
    w.add_quantized_group(
        "q",
        [8, 8],
        4,
        32,
        ComponentData::new("", DType::I32, &packed),
        ComponentData::new("", DType::F16, &scales),
        None,
        ComponentOptions::raw(),
    )
    .unwrap();
    w.add_dense_typed(
        "fp8",
        [4],
        DType::U8,
        Some(&LogicalType::F8E4M3Fn),
        &[0x38, 0x40, 0xb8, 0x7f],
        ComponentOptions::raw(),
    )
    .unwrap();
    w.add_dense_typed(
        "cplx",
        [2],
        DType::F32,
        Some(&LogicalType::Complex64),
        &pattern(16, 5),
        ComponentOptions::raw(),
    )
    .unwrap();
    let mut attrs = Attributes::new();
    attrs.insert(
        "nested".into(),
        Value::Map(vec![
            ("z".into(), 1i64.into()),
            ("a".into(), Value::Float(0.1)),
        ]),
    );
    w.add_tensor(
        "custom",
        [2],
        Format::Other("my_layout".into()),
        &[ComponentData::new("blob", DType::U16, &[1, 0, 2, 0])],
        Some(attrs.clone()),
        ComponentOptions::raw(),
    )
    .unwrap();
    w.set_attribute("framework", "pytorch");
    w.set_attribute("step", 1000i64);
    w.finish().unwrap();

    let r = ZtReader::open_with(
        &path,
        OpenOptions {
            verify_checksums: true,
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let csr = r.info("csr").unwrap();
    assert_eq!(csr.format, Format::SparseCsr);
    assert_eq!(csr.components["indices"].dtype, DType::U64);
    assert_eq!(&*r.component("csr", "values").unwrap(), &values[..]);
    let indptr: Vec<u8> = [0u64, 2, 2, 3]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(&*r.component("csr", "indptr").unwrap(), &indptr[..]);
    assert!(matches!(
        r.dense("csr").unwrap_err().kind(),
        Error::NotDense { .. }
    ));
    let coords: Vec<u8> = [0u64, 1, 1, 2, 0, 1]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    assert_eq!(&*r.component("coo", "coords").unwrap(), &coords[..]);
    let q = r.info("q").unwrap();
    assert_eq!(q.format, Format::QuantizedGroup);
    assert_eq!(q.attributes.as_ref().unwrap()["bits"], Value::Integer(4));
    assert_eq!(&*r.component("q", "packed_weight").unwrap(), &packed[..]);
    assert_eq!(
        r.info("fp8").unwrap().components["data"].logical_type,
        Some(LogicalType::F8E4M3Fn)
    );
    assert_eq!(r.dense("cplx").unwrap().len(), 16);
    assert_eq!(r.info("custom").unwrap().attributes, Some(attrs));
    assert_eq!(r.metadata()["framework"], Value::from("pytorch"));
    assert_eq!(r.metadata()["step"], Value::Integer(1000));
}

#[test]
fn writer_rejects_bad_input_with_names() {
    let dir = tmp();
    let path = dir.path().join("bad.zt");
    let mut w = Writer::create(&path).unwrap();
    let e = w
        .add_dense("w", [2, 2], DType::F32, &[0; 12], ComponentOptions::raw())
        .unwrap_err();
    assert!(
        matches!(
            e.kind(),
            Error::LengthMismatch {
                expected: 16,
                actual: 12,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.tensor(), Some("w"));
    w.add_dense("x", [1], DType::U8, &[1], ComponentOptions::raw())
        .unwrap();
    let e = w
        .add_dense("x", [1], DType::U8, &[1], ComponentOptions::raw())
        .unwrap_err();
    assert!(matches!(e.kind(), Error::DuplicateName(n) if n == "x"));
    assert!(
        w.add_csr(
            "c",
            [2, 2],
            DType::F32,
            &[0; 4],
            &[5],
            &[0, 1, 1],
            ComponentOptions::raw()
        )
        .is_err()
    );
    assert!(
        w.add_dense(
            "huge",
            [1 << 40, 1 << 40],
            DType::U8,
            &[],
            ComponentOptions::raw()
        )
        .is_err()
    );
    // The writer is still usable after refused input.
    w.add_dense("y", [1], DType::U8, &[2], ComponentOptions::raw())
        .unwrap();
    w.finish().unwrap();
    let r = ZtReader::open(&path).unwrap();
    assert_eq!(r.names(), vec!["x", "y"]);
}

fn temp_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".ztmp"))
        .collect()
}

#[test]
fn abandoned_writer_leaves_no_file_and_keeps_the_old_one() {
    let dir = tmp();
    let path = dir.path().join("m.zt");
    {
        let mut w = Writer::create(&path).unwrap();
        w.add_dense("a", [1], DType::U8, &[1], ComponentOptions::raw())
            .unwrap();
        // dropped without finish
    }
    assert!(!path.exists());
    assert!(temp_files(dir.path()).is_empty());

    let mut w = Writer::create(&path).unwrap();
    w.add_dense("old", [1], DType::U8, &[1], ComponentOptions::raw())
        .unwrap();
    w.finish().unwrap();
    {
        let mut w = Writer::create(&path).unwrap();
        w.add_dense("new", [1], DType::U8, &[2], ComponentOptions::raw())
            .unwrap();
    }
    assert_eq!(ZtReader::open(&path).unwrap().names(), vec!["old"]);
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn append_adds_tensors_and_keeps_metadata() {
    let dir = tmp();
    let path = dir.path().join("a.zt");
    let mut w = Writer::create(&path).unwrap();
    w.set_attribute("k", "v");
    w.add_dense(
        "a",
        [3],
        DType::U8,
        &[1, 2, 3],
        ComponentOptions::raw().with_checksum(ChecksumAlgorithm::Crc32c),
    )
    .unwrap();
    w.finish().unwrap();

    let mut w = Writer::append(&path).unwrap();
    let e = w
        .add_dense("a", [1], DType::U8, &[0], ComponentOptions::raw())
        .unwrap_err();
    assert!(matches!(e.kind(), Error::DuplicateName(_)));
    w.add_dense(
        "b",
        [2],
        DType::U16,
        &[9, 0, 8, 0],
        ComponentOptions::zstd(3),
    )
    .unwrap();
    w.finish().unwrap();

    let r = ZtReader::open_with(
        &path,
        OpenOptions {
            verify_checksums: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.names(), vec!["a", "b"]);
    assert_eq!(&*r.dense("a").unwrap(), &[1, 2, 3]);
    assert_eq!(&*r.dense("b").unwrap(), &[9, 0, 8, 0]);
    assert_eq!(r.metadata()["k"], Value::from("v"));
    assert_eq!(r.unfinished_tail(), 0);
}

#[test]
fn interrupted_append_keeps_earlier_tensors() {
    let dir = tmp();
    let path = dir.path().join("c.zt");
    let mut w = Writer::create(&path).unwrap();
    w.add_dense("a", [4], DType::U8, &[1, 2, 3, 4], ComponentOptions::raw())
        .unwrap();
    let committed = w.finish().unwrap();

    // Simulate a crash at every byte of an append: the committed file plus any prefix of
    // what the appender would write next.
    let mut w = Writer::append(&path).unwrap();
    w.add_dense(
        "b",
        [300],
        DType::U8,
        &pattern(300, 9),
        ComponentOptions::raw(),
    )
    .unwrap();
    w.finish().unwrap();
    let full = std::fs::read(&path).unwrap();
    for cut in committed as usize..full.len() {
        let partial = dir.path().join("partial.zt");
        std::fs::write(&partial, &full[..cut]).unwrap();
        let r = ZtReader::open(&partial).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
        assert_eq!(r.names(), vec!["a"], "cut at {cut}");
        assert_eq!(&*r.dense("a").unwrap(), &[1, 2, 3, 4]);
        assert_eq!(r.unfinished_tail(), (cut - committed as usize) as u64);
        // Appending again repairs the file.
        if cut % 97 == 0 {
            let mut w = Writer::append(&partial).unwrap();
            w.add_dense("c", [1], DType::U8, &[5], ComponentOptions::raw())
                .unwrap();
            w.finish().unwrap();
            let r = ZtReader::open(&partial).unwrap();
            assert_eq!(r.names(), vec!["a", "c"]);
            assert_eq!(r.unfinished_tail(), 0);
        }
    }
    // An abandoned appender truncates back.
    {
        let mut w = Writer::append(&path).unwrap();
        w.add_dense(
            "d",
            [1000],
            DType::U8,
            &pattern(1000, 1),
            ComponentOptions::raw(),
        )
        .unwrap();
    }
    assert_eq!(std::fs::metadata(&path).unwrap().len(), full.len() as u64);
    assert_eq!(ZtReader::open(&path).unwrap().names(), vec!["a", "b"]);
}

#[test]
fn remove_into_new_file_and_in_place() {
    let dir = tmp();
    let path = dir.path().join("r.zt");
    let mut w = Writer::create(&path).unwrap();
    w.set_attribute("keep", true);
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        w.add_dense(
            name,
            [2],
            DType::U8,
            &[i as u8, 1],
            ComponentOptions::zstd(3).with_checksum(ChecksumAlgorithm::Crc32c),
        )
        .unwrap();
    }
    w.finish().unwrap();

    let out = dir.path().join("out.zt");
    let e = remove_tensors(&path, &out, &["b", "nope"]).unwrap_err();
    assert!(matches!(e.kind(), Error::TensorNotFound(n) if n == "nope"));
    assert!(!out.exists());
    remove_tensors(&path, &out, &["b"]).unwrap();
    let r = ZtReader::open(&out).unwrap();
    assert_eq!(r.names(), vec!["a", "c"]);
    assert_eq!(&*r.dense("c").unwrap(), &[2, 1]);
    assert_eq!(r.metadata()["keep"], Value::Bool(true));
    r.verify_all(true).unwrap();

    // Output == input is safe.
    remove_tensors(&path, &path, &["a"]).unwrap();
    let r = ZtReader::open(&path).unwrap();
    assert_eq!(r.names(), vec!["b", "c"]);
    assert_eq!(&*r.dense("b").unwrap(), &[1, 1]);
    assert!(temp_files(dir.path()).is_empty());
}

#[test]
fn replace_in_place_recomputes_digests() {
    let dir = tmp();
    let path = dir.path().join("p.zt");
    let mut w = Writer::create(&path).unwrap();
    w.add_dense(
        "a",
        [4],
        DType::U8,
        &[1, 2, 3, 4],
        ComponentOptions::raw().with_checksum(ChecksumAlgorithm::Crc32c),
    )
    .unwrap();
    w.add_dense(
        "s",
        [4],
        DType::U8,
        &[1, 2, 3, 4],
        ComponentOptions::raw().with_checksum(ChecksumAlgorithm::Sha256),
    )
    .unwrap();
    w.add_dense(
        "z",
        [4],
        DType::U8,
        &[1, 2, 3, 4],
        ComponentOptions::zstd(3),
    )
    .unwrap();
    w.add_coo("coo", [4], DType::U8, &[1], &[0], ComponentOptions::raw())
        .unwrap();
    let size = w.finish().unwrap();

    replace_tensor(&path, "a", &[9, 9, 9, 9]).unwrap();
    replace_tensor(&path, "s", &[8, 8, 8, 8]).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
    let r = ZtReader::open_with(
        &path,
        OpenOptions {
            verify_checksums: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(&*r.dense("a").unwrap(), &[9, 9, 9, 9]);
    assert_eq!(&*r.dense("s").unwrap(), &[8, 8, 8, 8]);
    assert_eq!(r.verify_all(false).unwrap(), 2);
    drop(r);

    let wrong_len = replace_tensor(&path, "a", &[1, 2, 3]).unwrap_err();
    assert!(matches!(wrong_len.kind(), Error::LengthMismatch { .. }));
    assert!(matches!(
        replace_tensor(&path, "z", &[0; 4]).unwrap_err().kind(),
        Error::Unsupported(_)
    ));
    assert!(matches!(
        replace_tensor(&path, "coo", &[0]).unwrap_err().kind(),
        Error::NotDense { .. }
    ));
    assert!(matches!(
        replace_tensor(&path, "nope", &[0]).unwrap_err().kind(),
        Error::TensorNotFound(_)
    ));
}

#[test]
fn checksum_mismatch_is_reported_with_names() {
    let dir = tmp();
    let path = dir.path().join("k.zt");
    let mut w = Writer::create(&path).unwrap();
    w.add_dense(
        "w",
        [8],
        DType::U8,
        &[7; 8],
        ComponentOptions::raw().with_checksum(ChecksumAlgorithm::Crc32c),
    )
    .unwrap();
    w.add_dense(
        "z",
        [64],
        DType::U8,
        &[7; 64],
        ComponentOptions::zstd(3).with_checksum(ChecksumAlgorithm::Sha256),
    )
    .unwrap();
    w.finish().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[64] ^= 1; // inside w's data
    let z_offset = ZtReader::open(&path).unwrap().info("z").unwrap().components["data"]
        .location
        .unwrap()
        .offset as usize;
    bytes[z_offset + 5] ^= 0x10;
    std::fs::write(&path, &bytes).unwrap();

    // Without verification the raw bytes come back as they are.
    let r = ZtReader::open(&path).unwrap();
    assert_eq!(r.dense("w").unwrap()[0], 6);
    let r = ZtReader::open_with(
        &path,
        OpenOptions {
            verify_checksums: true,
            ..Default::default()
        },
    )
    .unwrap();
    for name in ["w", "z"] {
        let e = r.dense(name).unwrap_err();
        assert!(matches!(e.kind(), Error::ChecksumMismatch { .. }), "{e}");
        assert_eq!(e.tensor(), Some(name));
        assert!(e.to_string().contains("k.zt"), "{e}");
    }
    assert!(r.verify_all(false).is_err());
}

#[test]
fn one_inconsistent_tensor_does_not_hide_the_others() {
    // zTensor 1.2.3's Python `Writer.write` lets a dense tensor's bytes disagree with its
    // shape, and writes complex tensors with their storage shape: such files must still open.
    let dir = tmp();
    let path = dir.path().join("mixed.zt");
    let mut w = Writer::create(&path).unwrap();
    let mut t = w.begin_tensor("bad", [3], Format::Dense).unwrap();
    t.write_component("data", DType::F32, None, &[0; 16], ComponentOptions::raw())
        .unwrap();
    assert!(t.finish().is_err(), "our writer refuses it");
    w.finish().unwrap();

    // Build the same thing through the manifest, as 1.2.3 would write it.
    let mut bytes = b"ZTEN1000".to_vec();
    bytes.resize(64, 0);
    bytes.extend_from_slice(&[0; 16]); // "bad": 4 floats under shape [3]
    bytes.resize(128, 0);
    bytes.extend_from_slice(&[1; 16]); // "cplx": 2 complex64 stored as shape [2, 2] f32
    bytes.resize(192, 0);
    bytes.extend_from_slice(&[2; 4]); // "good"
    let mut m = zt_format::Manifest::default();
    for (name, shape, offset, len, dtype, logical) in [
        ("bad", vec![3u64], 64u64, 16u64, DType::F32, None),
        (
            "cplx",
            vec![2, 2],
            128,
            16,
            DType::F32,
            Some(LogicalType::Complex64),
        ),
        ("good", vec![4], 192, 4, DType::U8, None),
    ] {
        let mut data = zt_core::Component::raw(dtype, offset, len);
        data.logical_type = logical;
        m.objects.insert(
            name.into(),
            zt_core::TensorInfo {
                name: name.into(),
                shape: shape.into(),
                format: Format::Dense,
                components: [("data".to_owned(), data)].into(),
                attributes: None,
            },
        );
    }
    let manifest = zt_format::manifest::encode_manifest(&m).unwrap();
    bytes.extend_from_slice(&manifest);
    bytes.extend_from_slice(&(manifest.len() as u64).to_le_bytes());
    bytes.extend_from_slice(b"ZTEN1000");
    std::fs::write(&path, &bytes).unwrap();

    let r = ZtReader::open(&path).unwrap();
    assert_eq!(&*r.dense("good").unwrap(), &[2; 4]);
    assert_eq!(&*r.dense("cplx").unwrap(), &[1; 16]);
    let e = r.dense("bad").unwrap_err();
    assert!(
        matches!(
            e.kind(),
            Error::LengthMismatch {
                expected: 12,
                actual: 16,
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(e.tensor(), Some("bad"));
}

#[test]
fn a_complete_footer_with_a_bad_manifest_is_an_error_not_a_rollback() {
    let dir = tmp();
    let path = dir.path().join("f.zt");
    let mut w = Writer::create(&path).unwrap();
    w.add_dense("a", [1], DType::U8, &[1], ComponentOptions::raw())
        .unwrap();
    w.finish().unwrap();
    let mut w = Writer::append(&path).unwrap();
    w.add_dense("b", [1], DType::U8, &[2], ComponentOptions::raw())
        .unwrap();
    w.finish().unwrap();
    // Corrupt the last manifest but keep the footer magic: the reader must not silently fall
    // back to the older footer (which would drop "b" and let an appender truncate it away).
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    let size = u64::from_le_bytes(bytes[n - 16..n - 8].try_into().unwrap()) as usize;
    bytes[n - 16 - size] = 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let e = ZtReader::open(&path).unwrap_err();
    assert!(matches!(e.kind(), Error::Manifest(_)), "{e}");
    assert!(Writer::append(&path).is_err());
    assert_eq!(
        std::fs::read(&path).unwrap(),
        bytes,
        "the appender touched nothing"
    );
}

#[test]
fn names_in_file_order_follow_the_data() {
    let dir = tmp();
    let path = dir.path().join("order.zt");
    let mut w = Writer::create(&path).unwrap();
    for name in ["z", "a", "m"] {
        w.add_dense(name, [1], DType::U8, &[1], ComponentOptions::raw())
            .unwrap();
    }
    w.finish().unwrap();
    let r = ZtReader::open(&path).unwrap();
    assert_eq!(r.names(), vec!["a", "m", "z"]);
    assert_eq!(r.names_in_file_order(), vec!["z", "a", "m"]);
}
