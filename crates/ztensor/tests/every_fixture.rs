//! Every committed fixture of every format: `detect` names its format from its bytes, `open`
//! reads it (or refuses it with an error, never a panic), and `convert` into `.zt` keeps every
//! tensor's name, shape, format, dtypes and bytes.

use std::path::{Path, PathBuf};

use ztensor::{ConvertOptions, FileFormat, TensorReader, ZtReader};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// Fixture directories and the format of the tensor files in them.
fn fixture_files() -> Vec<(PathBuf, FileFormat)> {
    let mut dirs = vec![("zt1", FileFormat::Zt)];
    #[cfg(feature = "safetensors")]
    dirs.push(("safetensors", FileFormat::Safetensors));
    #[cfg(feature = "pickle")]
    dirs.push(("pickle", FileFormat::Pickle));
    #[cfg(feature = "gguf")]
    dirs.push(("gguf", FileFormat::Gguf));
    #[cfg(feature = "npz")]
    dirs.push(("npz", FileFormat::Npz));
    #[cfg(feature = "onnx")]
    dirs.push(("onnx", FileFormat::Onnx));
    #[cfg(feature = "hdf5")]
    dirs.push(("hdf5", FileFormat::Hdf5));
    #[cfg(feature = "zt2")]
    dirs.push(("zt2", FileFormat::ZtV2));
    let mut files = Vec::new();
    for (dir, format) in dirs {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(fixtures().join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| !matches!(p.extension().and_then(|e| e.to_str()), Some("json" | "py")))
            // The external-data file of an ONNX fixture is raw bytes, not a tensor file.
            .filter(|p| !p.ends_with("onnx/weights.bin"))
            .collect();
        entries.sort();
        for path in entries {
            let format = match (format, path.extension().and_then(|e| e.to_str())) {
                (FileFormat::Npz, Some("npy")) => FileFormat::Npy,
                (f, _) => f,
            };
            files.push((path, format));
        }
    }
    files
}

#[test]
fn detect_open_and_convert_every_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let mut opened = 0;
    let mut refused = Vec::new();
    for (path, format) in fixture_files() {
        assert_eq!(
            ztensor::detect(&path).unwrap(),
            format,
            "{}",
            path.display()
        );
        let reader = match ztensor::open(&path) {
            Ok(r) => r,
            Err(e) => {
                // Files that exist to be refused (object arrays, big-endian GGUF, shard parts).
                assert!(
                    e.to_string()
                        .contains(path.file_name().unwrap().to_str().unwrap())
                );
                refused.push(path.file_name().unwrap().to_string_lossy().into_owned());
                continue;
            }
        };
        opened += 1;
        assert_eq!(reader.format_name(), format.name());
        for name in reader.names() {
            let info = reader.info(name).unwrap();
            for role in info.components.keys() {
                reader
                    .component(name, role)
                    .unwrap_or_else(|e| panic!("{}: {name}/{role}: {e}", path.display()));
            }
        }

        let out = dir.path().join("converted.zt");
        let _ = std::fs::remove_file(&out);
        ztensor::convert(&[&path], &out, &ConvertOptions::default())
            .unwrap_or_else(|e| panic!("convert {}: {e}", path.display()));
        let converted = ZtReader::open(&out).unwrap();
        let mut names = reader.names();
        names.sort_unstable();
        assert_eq!(converted.names(), names, "{}", path.display());
        for name in names {
            let (a, b) = (reader.info(name).unwrap(), converted.info(name).unwrap());
            assert_eq!((&a.shape, &a.format), (&b.shape, &b.format), "{name}");
            for (role, ca) in &a.components {
                let cb = &b.components[role];
                assert_eq!((ca.dtype, &ca.logical_type), (cb.dtype, &cb.logical_type));
                assert_eq!(
                    reader.component(name, role).unwrap(),
                    converted.component(name, role).unwrap(),
                    "{}: {name}/{role}",
                    path.display()
                );
            }
        }
    }
    assert!(
        opened >= 40,
        "only {opened} fixtures opened; refused: {refused:?}"
    );
    // The fixtures that exist to be refused, and only those: bare data pickles that are not
    // checkpoints (they test the pickle machine), a big-endian GGUF, NumPy object and structured
    // arrays, and the shard parts of a sharded zTensor 2 file (read through the main file).
    #[cfg(all(feature = "pickle", feature = "gguf", feature = "npz", feature = "zt2"))]
    assert_eq!(
        refused,
        [
            "plain_proto0.pkl",
            "plain_proto1.pkl",
            "plain_proto2.pkl",
            "plain_proto3.pkl",
            "plain_proto4.pkl",
            "plain_proto5.pkl",
            "bigendian.gguf",
            "object.npy",
            "structured.npy",
            "sharded-00002.zt",
            "sharded-s1.zt"
        ]
    );
}

/// safetensors -> .zt -> safetensors gives back the reference library's own bytes.
#[cfg(feature = "safetensors")]
#[test]
fn safetensors_round_trip_through_zt_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for name in ["dtypes_torch", "dtypes_numpy", "edge_cases"] {
        let original = fixtures().join(format!("safetensors/{name}.safetensors"));
        let zt = dir.path().join(format!("{name}.zt"));
        let back = dir.path().join(format!("{name}.safetensors"));
        let options = ConvertOptions {
            compression: ztensor::Compression::Zstd(3),
            checksum: ztensor::ChecksumAlgorithm::Crc32c,
            ..ConvertOptions::default()
        };
        ztensor::convert(&[&original], &zt, &options).unwrap();
        ztensor::convert_to_safetensors(&zt, &back).unwrap();
        assert_eq!(
            std::fs::read(&back).unwrap(),
            std::fs::read(&original).unwrap(),
            "{name}"
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
}

/// Many threads share one open reader of every fixture and read every tensor in different
/// orders, while the main thread has read each tensor once: everyone sees the same bytes.
/// Readers are `Send + Sync`; zero-copy views, decoders (zstd, inflate, codec) and libhdf5's
/// global lock are all exercised concurrently.
#[test]
fn many_threads_read_one_file_and_agree() {
    const THREADS: usize = 8;
    for (path, _) in fixture_files() {
        let Ok(reader) = ztensor::open(&path) else {
            continue;
        };
        let names: Vec<&str> = reader.names();
        let expected: Vec<Option<Vec<u8>>> = names
            .iter()
            .map(|n| reader.dense(n).ok().map(|b| b.into_owned()))
            .collect();
        std::thread::scope(|scope| {
            for t in 0..THREADS {
                let (reader, names, expected, path) = (&reader, &names, &expected, &path);
                scope.spawn(move || {
                    for round in 0..4 {
                        for i in 0..names.len() {
                            let k = (i * (2 * t + 1) + round + t) % names.len();
                            let got = reader.dense(names[k]).ok();
                            assert_eq!(
                                got.as_deref(),
                                expected[k].as_deref(),
                                "{}: '{}' in thread {t}",
                                path.display(),
                                names[k]
                            );
                        }
                    }
                });
            }
        });
    }
}

/// One `.zt` file with raw, zstd and codec tensors read by many threads at once.
#[test]
fn many_threads_read_raw_zstd_and_codec_components_of_one_zt_file() {
    use ztensor::{ChecksumAlgorithm, ComponentOptions, DType, Writer, codec::Effort};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.zt");
    let mut w = Writer::create(&path).unwrap();
    let mut expected = Vec::new();
    for i in 0..24u32 {
        let bytes: Vec<u8> = (0..20_000u32)
            .flat_map(|j| {
                ((j.wrapping_mul(2_654_435_761) >> (i % 13)) as u16 & 0x3fff).to_le_bytes()
            })
            .collect();
        let options = match i % 3 {
            0 => ComponentOptions::raw(),
            1 => ComponentOptions::zstd(3),
            _ => ComponentOptions::codec(Effort::Default),
        }
        .with_checksum(ChecksumAlgorithm::Crc32c);
        let name = format!("t{i}");
        w.add_dense(&name, [20_000], DType::BF16, &bytes, options)
            .unwrap();
        expected.push((name, bytes));
    }
    w.finish().unwrap();
    let reader = ZtReader::open(&path).unwrap();
    std::thread::scope(|scope| {
        for t in 0..8 {
            let (reader, expected) = (&reader, &expected);
            scope.spawn(move || {
                for i in 0..expected.len() * 3 {
                    let (name, bytes) = &expected[(i * 7 + t) % expected.len()];
                    assert_eq!(&reader.dense(name).unwrap()[..], &bytes[..], "{name}");
                    let mut out = vec![0u8; bytes.len()];
                    reader.read_component_into(name, "data", &mut out).unwrap();
                    assert_eq!(&out, bytes, "{name}");
                }
            });
        }
    });
}

/// `names_in_file_order` lists every tensor once, and tensors with bytes in place come in
/// increasing offset order (so reading in that order goes through the file front to back).
#[test]
fn file_order_is_a_permutation_sorted_by_offset() {
    for (path, _) in fixture_files() {
        let Ok(reader) = ztensor::open(&path) else {
            continue;
        };
        let mut names = reader.names();
        let order = reader.names_in_file_order();
        let offsets: Vec<u64> = order
            .iter()
            .filter_map(|n| {
                let info = reader.info(n).unwrap();
                info.components
                    .values()
                    .filter_map(|c| c.location.map(|r| r.offset))
                    .min()
            })
            .collect();
        let mut sorted_order = order.clone();
        sorted_order.sort_unstable();
        names.sort_unstable();
        assert_eq!(sorted_order, names, "{}", path.display());
        assert!(
            offsets.windows(2).all(|w| w[0] <= w[1]),
            "{}: {order:?} {offsets:?}",
            path.display()
        );
    }
}
