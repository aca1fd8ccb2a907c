//! Every fixture in tests/fixtures/safetensors/ (written by the reference library, see its
//! generate.py) read back and compared with what the reference reader reported, then written
//! back and compared byte for byte with what the reference writer produces.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use zt_core::{DType, Error, Format, LogicalType, TensorReader, Value};
use zt_safetensors::{
    SafetensorsReader, SafetensorsTensor, safetensors_dtype_name, serialize_safetensors,
    write_safetensors,
};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/safetensors")
}

fn expected() -> serde_json::Map<String, Json> {
    let text = std::fs::read_to_string(fixture_dir().join("expected.json")).unwrap();
    match serde_json::from_str(&text).unwrap() {
        Json::Object(files) => files,
        other => panic!("expected.json is not an object: {other}"),
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn open(file: &str) -> SafetensorsReader {
    SafetensorsReader::open(fixture_dir().join(file)).unwrap()
}

#[test]
fn every_fixture_file_is_described() {
    let mut on_disk: Vec<String> = std::fs::read_dir(fixture_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".safetensors"))
        .collect();
    on_disk.sort();
    let described: Vec<String> = expected().keys().cloned().collect();
    assert_eq!(on_disk, described);
}

#[test]
fn every_fixture_reads_as_the_reference_reads_it() {
    for (file, exp) in expected() {
        let reader = open(&file);
        assert_eq!(reader.format_name(), "safetensors");
        assert_eq!(reader.data_start(), exp["data_start"].as_u64().unwrap());
        let names: Vec<&str> = exp["names"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        assert_eq!(reader.names(), names, "{file}");
        assert_eq!(reader.len(), names.len());

        match &exp["metadata"] {
            Json::Null => {
                assert_eq!(reader.header_metadata(), None, "{file}");
                assert!(reader.metadata().is_empty());
            }
            Json::Object(meta) => {
                let want: BTreeMap<String, String> = meta
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                    .collect();
                assert_eq!(reader.header_metadata(), Some(&want), "{file}");
                let attrs: BTreeMap<String, Value> = want
                    .iter()
                    .map(|(k, v)| (k.clone(), Value::Text(v.clone())))
                    .collect();
                assert_eq!(reader.metadata(), &attrs);
            }
            other => panic!("{file}: metadata {other}"),
        }

        for (name, t) in exp["tensors"].as_object().unwrap() {
            let context = format!("{file}: {name}");
            let info = reader.info(name).unwrap();
            assert_eq!(info.format, Format::Dense, "{context}");
            assert_eq!(info.attributes, None);
            let shape: Vec<u64> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            assert_eq!(info.shape.dims(), shape.as_slice(), "{context}");
            let data = info.dense_component().unwrap();
            assert_eq!(data.dtype.name(), t["dtype"].as_str().unwrap(), "{context}");
            assert_eq!(
                data.logical_type.as_ref().map(LogicalType::name),
                t["type"].as_str(),
                "{context}"
            );
            assert_eq!(
                safetensors_dtype_name(data.dtype, data.logical_type.as_ref()).unwrap(),
                t["safetensors_dtype"].as_str().unwrap(),
                "{context}"
            );
            let nbytes = t["nbytes"].as_u64().unwrap();
            let begin = t["data_offsets"][0].as_u64().unwrap();
            let location = data.location.unwrap();
            assert_eq!(location.offset, reader.data_start() + begin, "{context}");
            assert_eq!(location.length, nbytes, "{context}");
            assert_eq!(data.decoded_len, Some(nbytes));

            let bytes = reader.component(name, "data").unwrap();
            assert_eq!(bytes.len() as u64, nbytes, "{context}");
            assert_eq!(
                sha256_hex(&bytes),
                t["sha256"].as_str().unwrap(),
                "{context}"
            );
            // `dense` checks the length against the shape where zt-core knows the packing.
            assert_eq!(reader.dense(name).unwrap(), bytes, "{context}");
        }
    }
}

#[test]
fn the_reference_crate_reads_the_same_bytes() {
    for file in expected().keys() {
        let reader = open(file);
        let reference = safetensors::SafeTensors::deserialize(reader.file_bytes()).unwrap();
        let mut names = reference.names();
        names.sort();
        assert_eq!(names, reader.names(), "{file}");
        for name in reader.names() {
            let view = reference.tensor(name).unwrap();
            assert_eq!(
                view.data(),
                &*reader.component(name, "data").unwrap(),
                "{file}: {name}"
            );
            let shape: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
            assert_eq!(reader.info(name).unwrap().shape.dims(), shape.as_slice());
        }
    }
}

#[test]
fn writing_back_gives_the_reference_writers_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for (file, exp) in expected() {
        let reader = open(&file);
        let tensors = reader.tensors().unwrap();
        let out = dir.path().join(&file);
        let written = write_safetensors(&out, &tensors, reader.header_metadata()).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(written, bytes.len() as u64);
        assert_eq!(
            bytes.len() as u64,
            exp["serialize_len"].as_u64().unwrap(),
            "{file}"
        );
        assert_eq!(
            sha256_hex(&bytes),
            exp["serialize_sha256"].as_str().unwrap(),
            "{file}"
        );
        assert_eq!(
            serialize_safetensors(&tensors, reader.header_metadata()).unwrap(),
            bytes
        );
        // Files the reference wrote itself come back identical, byte for byte.
        if exp["source"].as_str().unwrap().starts_with("safetensors.") {
            assert!(
                bytes == reader.file_bytes(),
                "{file} differs from the reference"
            );
        }
    }
    // Only the written files are left: no temporary file survives a successful write.
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        expected().len()
    );
}

#[test]
fn tensor_bytes_are_borrowed_from_the_map() {
    for (file, name) in [
        ("dtypes_torch.safetensors", "f32"),
        // An f32 tensor at an odd file offset: still a view, callers see the alignment.
        ("unaligned_handmade.safetensors", "b_f32"),
    ] {
        let reader = open(file);
        let bytes = reader.component(name, "data").unwrap();
        let Cow::Borrowed(slice) = bytes else {
            panic!("{file}: {name} was copied");
        };
        let map = reader.file_bytes().as_ptr_range();
        assert!(map.contains(&slice.as_ptr()));
        assert!(slice.as_ptr_range().end <= map.end);
        let offset = reader.info(name).unwrap().components["data"]
            .location
            .unwrap()
            .offset;
        assert_eq!(
            slice.as_ptr() as usize - map.start as usize,
            offset as usize
        );
    }
    let reader = open("unaligned_handmade.safetensors");
    let offset = reader.info("b_f32").unwrap().components["data"]
        .location
        .unwrap()
        .offset;
    assert_eq!(offset % 2, 1, "the fixture must exercise an odd offset");
}

#[test]
fn packed_and_complex_types_keep_logical_shapes() {
    let reader = open("dtypes_torch.safetensors");
    let f4 = reader.info("f4_e2m1").unwrap();
    assert_eq!(f4.shape.dims(), &[3, 8]);
    assert_eq!(f4.dense_byte_len().unwrap(), Some(12));
    let c = reader.info("complex64").unwrap();
    assert_eq!(c.components["data"].dtype, DType::F32);
    assert_eq!(c.dense_byte_len().unwrap(), Some(48));
    let reader = open("f6_handmade.safetensors");
    let f6 = reader.info("f6_e3m2").unwrap();
    assert_eq!(
        f6.components["data"].logical_type,
        Some(LogicalType::Other("f6_e3m2".into()))
    );
    assert_eq!(reader.dense("f6_e3m2").unwrap().len(), 6);
}

#[test]
fn lookups_of_missing_things_fail_clearly() {
    let reader = open("edge_cases.safetensors");
    let err = reader.info("nope").unwrap_err();
    assert!(matches!(err.kind(), Error::TensorNotFound(n) if n == "nope"));
    assert!(err.path().is_some());
    let err = reader.component("odd_u8", "scales").unwrap_err();
    assert!(matches!(err.kind(), Error::ComponentNotFound { .. }));
    // The empty name is a valid tensor name.
    assert_eq!(reader.component("", "data").unwrap().len(), 2);
    assert!(matches!(
        reader.component("scalar_f32", "data").unwrap(),
        Cow::Borrowed(b) if b == 1.5f32.to_le_bytes()
    ));
}

#[test]
fn writing_replaces_atomically_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let old = [1u8, 2, 3];
    write_safetensors(
        &path,
        &[SafetensorsTensor::new("t", DType::U8, &[3], &old)],
        None,
    )
    .unwrap();
    let before = SafetensorsReader::open(&path).unwrap();

    let new = [9u8; 4];
    let metadata = BTreeMap::from([("format".to_owned(), "pt".to_owned())]);
    write_safetensors(
        &path,
        &[SafetensorsTensor::new("t", DType::U8, &[4], &new)],
        Some(&metadata),
    )
    .unwrap();
    // The old map still sees the old file: the new one was renamed over it, not rewritten.
    assert_eq!(&*before.component("t", "data").unwrap(), &old);
    let after = SafetensorsReader::open(&path).unwrap();
    assert_eq!(&*after.component("t", "data").unwrap(), &new);
    assert_eq!(after.metadata()["format"], Value::Text("pt".into()));

    // A rename that fails (the destination is a non-empty directory) leaves nothing behind.
    let blocker = dir.path().join("blocked");
    std::fs::create_dir(&blocker).unwrap();
    std::fs::write(blocker.join("keep"), b"x").unwrap();
    let err = write_safetensors(&blocker, &[], None).unwrap_err();
    assert!(matches!(err.kind(), Error::Io(_)), "{err}");
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(left, ["blocked", "model.safetensors"]);
}

#[test]
fn quantized_tensors_have_no_safetensors_form() {
    let reader = open("edge_cases.safetensors");
    let mut info = reader.info("odd_u8").unwrap().clone();
    info.format = Format::QuantizedGroup;
    let err = SafetensorsTensor::from_dense(&info, &[]).unwrap_err();
    assert!(matches!(err, Error::NotDense { .. }), "{err}");
}
