//! Every fixture written by NumPy reads back as `np.load` returns it.

use std::path::PathBuf;

use serde_json::{Value as Json, json};
use sha2::{Digest as _, Sha256};
use zt_core::{Encoding, Error, TensorBytes, TensorReader, Value};
use zt_npz::{NpzReader, SKIPPED_KEY};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/npz")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn fixtures_match_numpy() {
    let expected: Json =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    let files = expected["files"].as_object().unwrap();
    assert!(files.len() >= 15);
    for (file, want) in files {
        let path = fixtures().join(file);
        if let Some(message) = want.get("error") {
            let err = NpzReader::open(&path).unwrap_err();
            assert!(matches!(err.kind(), Error::Unsupported(_)), "{file}: {err}");
            assert!(err.to_string().contains(message.as_str().unwrap()), "{err}");
            continue;
        }
        let reader = NpzReader::open(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(reader.format_name(), want["format"].as_str().unwrap());

        let skipped = want
            .get("skipped")
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        match reader.metadata().get(SKIPPED_KEY) {
            None => assert!(skipped.is_empty(), "{file}"),
            Some(Value::Map(entries)) => {
                assert_eq!(entries.len(), skipped.len());
                for (name, reason) in entries {
                    let needle = skipped[name.as_str().unwrap()].as_str().unwrap();
                    assert!(reason.as_str().unwrap().contains(needle), "{reason:?}");
                }
            }
            Some(other) => panic!("{other:?}"),
        }

        let tensors = want["tensors"].as_array().unwrap();
        let names: Vec<&str> = tensors
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(reader.names(), names, "{file}: names in archive order");
        for t in tensors {
            let name = t["name"].as_str().unwrap();
            let info = reader.info(name).unwrap();
            assert_eq!(json!(info.shape.dims()), t["shape"], "{file}/{name}");
            let data = info.dense_component().unwrap();
            assert_eq!(
                data.dtype.name(),
                t["dtype"].as_str().unwrap(),
                "{file}/{name}"
            );
            assert_eq!(
                json!(data.logical_type.as_ref().map(|l| l.name())),
                t["type"],
                "{file}/{name}"
            );
            assert_eq!(json!(data.decoded_len), t["nbytes"]);
            let zero_copy = t["zero_copy"].as_bool().unwrap();
            assert_eq!(data.location.is_some(), zero_copy, "{file}/{name} location");
            let compressed = file.starts_with("compressed") || file.starts_with("zeros");
            let encoding = if compressed {
                Encoding::Other("deflate".into())
            } else {
                Encoding::Raw
            };
            assert_eq!(data.encoding, encoding);

            let bytes = reader.dense(name).unwrap();
            assert_eq!(
                matches!(bytes, TensorBytes::Borrowed(_)),
                zero_copy,
                "{file}/{name}"
            );
            assert_eq!(
                hex(&Sha256::digest(&bytes)),
                t["sha256"].as_str().unwrap(),
                "{file}/{name}"
            );
        }
    }
}

#[test]
fn stored_entries_are_borrowed_from_the_map() {
    let path = fixtures().join("dtypes.npz");
    let reader = NpzReader::open(&path).unwrap();
    let file = std::fs::read(&path).unwrap();
    for name in ["f4", "c16", "u1"] {
        let range = reader.info(name).unwrap().components["data"]
            .location
            .unwrap();
        let TensorBytes::Borrowed(bytes) = reader.component(name, "data").unwrap() else {
            panic!("{name} should be borrowed");
        };
        // The slice is the file's bytes at the recorded (unaligned) offset, and the same
        // pointer into the map comes back on every call.
        assert_eq!(
            bytes,
            &file[range.offset as usize..(range.offset + range.length) as usize]
        );
        assert_eq!(
            reader.component(name, "data").unwrap().as_ptr(),
            bytes.as_ptr()
        );
    }
    assert!(matches!(
        reader.component("f4", "scales").unwrap_err().kind(),
        Error::ComponentNotFound { .. }
    ));
    assert!(matches!(
        reader.info("nope").unwrap_err().kind(),
        Error::TensorNotFound(_)
    ));
    let header = reader.npy_header("be_f4").unwrap();
    assert!(header.big_endian && !header.is_raw_layout());
}
