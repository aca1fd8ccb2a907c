//! Reads every model in tests/fixtures/onnx (written by the real `onnx` package) and compares
//! it with what `onnx.numpy_helper.to_array` returned (expected.json).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use zt_core::{Format, TensorReader, Value};
use zt_onnx::OnnxReader;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/onnx")
}

fn expected() -> Json {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn to_json(value: &Value) -> Json {
    match value {
        Value::Integer(i) => json!(*i as i64),
        Value::Text(s) => json!(s),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), to_json(v)))
                .collect(),
        ),
        other => panic!("unexpected metadata value {other:?}"),
    }
}

/// Sub-byte codes unpacked one per byte, LSB first (what `to_array` returns).
fn unpack(packed: &[u8], logical: &str, numel: usize) -> Vec<u8> {
    let bits = match logical {
        "u4" | "i4" | "f4_e2m1" => 4,
        "u2" | "i2" => 2,
        "f6_e2m3" | "f6_e3m2" => 6,
        other => panic!("not a packed type: {other}"),
    };
    (0..numel)
        .map(|i| {
            let bit = i * bits;
            let word =
                packed[bit / 8] as u16 | (*packed.get(bit / 8 + 1).unwrap_or(&0) as u16) << 8;
            ((word >> (bit % 8)) & ((1 << bits) - 1)) as u8
        })
        .collect()
}

fn check_component(
    reader: &OnnxReader,
    name: &str,
    role: &str,
    component: &zt_core::Component,
    want: &Json,
) -> Vec<u8> {
    assert_eq!(component.dtype.name(), want["dtype"], "{name}.{role} dtype");
    assert_eq!(
        component.logical_type.as_ref().map(|t| t.name()),
        want["type"].as_str(),
        "{name}.{role} logical type"
    );
    let bytes = reader.component(name, role).unwrap();
    assert_eq!(
        bytes.len() as u64,
        want["nbytes"].as_u64().unwrap(),
        "{name}.{role} length"
    );
    assert_eq!(component.decoded_len, Some(bytes.len() as u64));
    assert_eq!(sha256(&bytes), want["sha256"], "{name}.{role} bytes");
    bytes.into_owned()
}

fn check_model(file: &str, want: &Json) {
    let path = fixtures().join(file);
    let reader = OnnxReader::open(&path).unwrap();
    assert_eq!(reader.format_name(), "onnx");
    let order: Vec<&str> = want["order"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(reader.names(), order, "{file}: names in initializer order");

    let metadata: serde_json::Map<String, Json> = reader
        .metadata()
        .iter()
        .map(|(k, v)| (k.clone(), to_json(v)))
        .collect();
    assert_eq!(Json::Object(metadata), want["metadata"], "{file}: metadata");

    let map = reader.model_bytes().as_ptr_range();
    for (name, t) in want["tensors"].as_object().unwrap() {
        let info = reader.info(name).unwrap();
        let shape: Vec<u64> = serde_json::from_value(t["shape"].clone()).unwrap();
        assert_eq!(info.shape.dims(), shape, "{file}: {name} shape");
        if t["format"] == "sparse_coo" {
            assert_eq!(info.format, Format::SparseCoo);
            let values = &info.components["values"];
            let coords = &info.components["coords"];
            let v = check_component(&reader, name, "values", values, &t["components"]["values"]);
            let c = check_component(&reader, name, "coords", coords, &t["components"]["coords"]);
            assert_eq!(
                sha256(&densify(&v, &c, &shape, values.dtype.size())),
                t["dense_sha256"]
            );
            assert!(reader.dense(name).is_err(), "sparse tensors are not dense");
            continue;
        }
        assert_eq!(info.format, Format::Dense);
        let component = &info.components["data"];
        let bytes = reader.dense(name).unwrap();
        check_component(&reader, name, "data", component, t);
        if let Some(unpacked) = t.get("unpacked_sha256") {
            let numel = info.shape.numel().unwrap() as usize;
            let logical = component.logical_type.as_ref().unwrap().name();
            assert_eq!(
                sha256(&unpack(&bytes, logical, numel)),
                *unpacked,
                "{file}: {name} unpacked"
            );
        }
        let attributes = info.attributes.clone().unwrap_or_default();
        assert_eq!(
            attributes.get("doc_string").and_then(Value::as_str),
            t.get("doc_string").and_then(Json::as_str),
            "{file}: {name} doc_string"
        );
        match (t["storage"].as_str().unwrap(), &bytes) {
            ("raw", _) if bytes.is_empty() => {}
            ("raw", Cow::Borrowed(slice)) => {
                // Zero-copy: a slice of the map, at the offset its location gives.
                let location = component.location.expect("raw_data has a location");
                assert!(
                    map.contains(&slice.as_ptr()),
                    "{file}: {name} lies in the map"
                );
                assert_eq!(
                    slice.as_ptr() as usize - map.start as usize,
                    location.offset as usize
                );
                assert_eq!(location.length, slice.len() as u64);
                let file_bytes = std::fs::read(&path).unwrap();
                let range = location.offset as usize..(location.offset + location.length) as usize;
                assert_eq!(&file_bytes[range], *slice);
            }
            ("external", Cow::Borrowed(slice)) => {
                assert_eq!(
                    component.location, None,
                    "external bytes are not in the model file"
                );
                assert!(!map.contains(&slice.as_ptr()));
                let external = attributes
                    .get("external_data")
                    .expect("external_data attribute");
                let Value::Map(entries) = external else {
                    panic!("{external:?}")
                };
                assert!(entries.iter().any(|(k, _)| k.as_str() == Some("location")));
            }
            ("typed", Cow::Owned(_)) => assert_eq!(component.location, None),
            (storage, bytes) => panic!(
                "{file}: {name}: {storage} storage returned {}",
                if matches!(bytes, Cow::Borrowed(_)) {
                    "borrowed"
                } else {
                    "owned"
                }
            ),
        }
    }
}

/// Scatters COO `values` (elements of `size` bytes) into a zeroed dense array.
fn densify(values: &[u8], coords: &[u8], shape: &[u64], size: usize) -> Vec<u8> {
    let numel: u64 = shape.iter().product();
    let nnz = values.len() / size;
    let coords: Vec<u64> = coords
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let mut dense = vec![0u8; numel as usize * size];
    for k in 0..nnz {
        let linear =
            (0..shape.len()).fold(0, |acc, axis| acc * shape[axis] + coords[axis * nnz + k]);
        let at = linear as usize * size;
        dense[at..at + size].copy_from_slice(&values[k * size..(k + 1) * size]);
    }
    dense
}

#[test]
fn every_fixture_matches_onnx() {
    let expected = expected();
    let files = expected["files"].as_object().unwrap();
    assert_eq!(files.len(), 5);
    for (file, want) in files {
        check_model(file, want);
    }
}

#[test]
fn every_data_type_is_covered() {
    let expected = expected();
    for file in ["dtypes_raw.onnx", "dtypes_typed.onnx"] {
        // 27 types: all of TensorProto.DataType but UNDEFINED and STRING.
        assert_eq!(
            expected["files"][file]["tensors"]
                .as_object()
                .unwrap()
                .len(),
            27,
            "{file}"
        );
    }
}

#[test]
fn reader_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<OnnxReader>();
}

#[test]
fn missing_tensor_and_component() {
    let reader = OnnxReader::open(fixtures().join("model.onnx")).unwrap();
    assert!(matches!(
        reader.info("nope"),
        Err(zt_core::Error::TensorNotFound(_))
    ));
    assert!(matches!(
        reader.component("fc1.bias", "scales"),
        Err(zt_core::Error::ComponentNotFound { .. })
    ));
}
