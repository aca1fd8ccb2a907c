//! Reads every file in tests/fixtures/hdf5 (written by the real h5py) and compares it with what
//! h5py read back (expected.json).

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};
use sha2::{Digest, Sha256};
use zt_core::{Encoding, TensorReader, Value};
use zt_hdf5::{Hdf5Reader, OpenOptions};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/hdf5")
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
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Integer(i) => match i64::try_from(*i) {
            Ok(i) => json!(i),
            Err(_) => json!(u64::try_from(*i).unwrap()),
        },
        Value::Float(f) => json!(f),
        Value::Text(s) => json!(s),
        Value::Array(values) => Json::Array(values.iter().map(to_json).collect()),
        other => panic!("unexpected attribute value {other:?}"),
    }
}

fn attributes_json(attributes: Option<&zt_core::Attributes>) -> Json {
    Json::Object(
        attributes
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.as_str() != "zt.skipped")
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect(),
    )
}

fn check_file(file: &str, want: &Json, options: &OpenOptions) {
    let path = fixtures().join(file);
    let reader = Hdf5Reader::open_with(&path, options.clone()).unwrap();
    assert_eq!(reader.format_name(), "hdf5");
    let tensors = want["tensors"].as_object().unwrap();
    let mut names: Vec<&str> = tensors.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(reader.names(), names, "{file}: sorted dataset paths");
    assert_eq!(
        attributes_json(Some(reader.metadata())),
        want["metadata"],
        "{file}: root attributes"
    );
    // Skipped objects (not attributes) are listed with a reason.
    let skipped: Vec<&str> = match reader.metadata().get("zt.skipped") {
        Some(Value::Map(entries)) => entries
            .iter()
            .map(|(k, v)| {
                assert!(!v.as_str().unwrap().is_empty());
                k.as_str().unwrap()
            })
            .filter(|k| !k.contains('@'))
            .collect(),
        None => Vec::new(),
        other => panic!("{other:?}"),
    };
    let want_skipped: Vec<&str> = want["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(skipped, want_skipped, "{file}: skipped objects");

    let map = reader.mapped_bytes().as_ptr_range();
    for (name, t) in tensors {
        let info = reader.info(name).unwrap();
        let shape: Vec<u64> = serde_json::from_value(t["shape"].clone()).unwrap();
        assert_eq!(info.shape.dims(), shape, "{file}: {name} shape");
        let component = &info.components["data"];
        assert_eq!(component.dtype.name(), t["dtype"], "{file}: {name} dtype");
        assert_eq!(
            component.logical_type.as_ref().map(|l| l.name()),
            t["type"].as_str(),
            "{file}: {name} logical type"
        );
        let bytes = reader.dense(name).unwrap();
        assert_eq!(bytes.len() as u64, t["nbytes"].as_u64().unwrap());
        assert_eq!(component.decoded_len, Some(bytes.len() as u64));
        assert_eq!(sha256(&bytes), t["sha256"], "{file}: {name} bytes");
        assert_eq!(
            attributes_json(info.attributes.as_ref()),
            t["attributes"],
            "{file}: {name} attributes"
        );
        let zero_copy = t["zero_copy"].as_bool().unwrap();
        match &bytes {
            Cow::Borrowed(slice) => {
                assert!(zero_copy, "{file}: {name} must be read through libhdf5");
                // Zero-copy: a slice of the map at the location the component gives.
                assert!(
                    map.contains(&slice.as_ptr()),
                    "{file}: {name} lies in the map"
                );
                let location = component.location.unwrap();
                assert_eq!(
                    slice.as_ptr() as usize - map.start as usize,
                    location.offset as usize
                );
                let file_bytes = std::fs::read(&path).unwrap();
                let range = location.offset as usize..(location.offset + location.length) as usize;
                assert_eq!(&file_bytes[range], *slice);
            }
            Cow::Owned(_) => {
                assert!(!zero_copy, "{file}: {name} should be zero-copy");
                assert_eq!(component.location, None);
            }
        }
    }
}

/// Read through libhdf5 in a child process (the default on unix) and in this one: the same
/// tensors, bytes and attributes.
#[test]
fn every_fixture_matches_h5py() {
    let expected = expected();
    let files = expected["files"].as_object().unwrap();
    assert_eq!(files.len(), 6);
    for isolate in [true, false] {
        let options = OpenOptions {
            isolate,
            ..OpenOptions::default()
        };
        for (file, want) in files {
            check_file(file, want, &options);
        }
    }
}

#[test]
fn filters_are_named() {
    let reader = Hdf5Reader::open(fixtures().join("layouts.h5")).unwrap();
    let encoding = |name: &str| {
        reader.info(name).unwrap().components["data"]
            .encoding
            .clone()
    };
    assert_eq!(
        encoding("chunked_gzip_shuffle"),
        Encoding::Other("shuffle+deflate".into())
    );
    assert_eq!(encoding("chunked_lzf"), Encoding::Other("lzf".into()));
    assert_eq!(encoding("chunked_plain"), Encoding::Raw);
    assert_eq!(encoding("big_endian"), Encoding::Raw);
}

#[test]
fn skipped_datasets_say_why() {
    let reader = Hdf5Reader::open(fixtures().join("skipped.h5")).unwrap();
    let Some(Value::Map(skipped)) = reader.metadata().get("zt.skipped") else {
        panic!("no zt.skipped");
    };
    let reason = |path: &str| {
        skipped
            .iter()
            .find(|(k, _)| k.as_str() == Some(path))
            .and_then(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{path} not skipped"))
    };
    assert!(reason("alias").contains("soft link"));
    assert!(reason("elsewhere").contains("external link"));
    assert!(reason("strings").contains("not a numeric"));
    assert!(reason("records").contains("compound"));
    assert!(reason("colors").contains("enum"));
    assert!(reader.info("strings").is_err());
    assert_eq!(reader.names(), ["tensor"]);
}

#[test]
fn reader_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Hdf5Reader>();
}

#[test]
fn reads_from_many_threads() {
    let reader = Hdf5Reader::open(fixtures().join("layouts.h5")).unwrap();
    let expected: Vec<Vec<u8>> = reader
        .names()
        .iter()
        .map(|n| reader.dense(n).unwrap().into_owned())
        .collect();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..20 {
                    for (name, want) in reader.names().iter().zip(&expected) {
                        assert_eq!(&*reader.dense(name).unwrap(), want.as_slice());
                    }
                }
            });
        }
    });
}

#[test]
fn missing_tensor_and_component() {
    let reader = Hdf5Reader::open(fixtures().join("nested.h5")).unwrap();
    assert!(matches!(
        reader.info("encoder"),
        Err(zt_core::Error::TensorNotFound(_))
    ));
    assert!(matches!(
        reader.component("encoder/layer0/bias", "scales"),
        Err(zt_core::Error::ComponentNotFound { .. })
    ));
}
