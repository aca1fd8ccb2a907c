//! Every checkpoint in tests/fixtures/pickle/ (written by torch.save) reads back as
//! `torch.load(..., weights_only=True)` returns it: names in order, dtypes, shapes, bytes,
//! metadata. The bare pickles (protocols 0-5) unpickle to what Python's pickle returns.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use serde_json::Value as Json;
use sha2::{Digest, Sha256};
use zt_core::{Encoding, TensorReader, Value};
use zt_pickle::pickle::{Object, Pickle, Val, unpickle};
use zt_pickle::{CheckpointKind, PickleReader};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/pickle")
}

fn expected() -> Json {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn every_checkpoint_matches_torch_load() {
    let expected = expected();
    let files = expected["files"].as_object().unwrap();
    assert!(files.len() >= 13);
    for (file, want) in files {
        let path = fixtures().join(file);
        let reader = PickleReader::open(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(reader.format_name(), "pickle");
        let legacy = want["format"] == "legacy";
        assert_eq!(*reader.kind() == CheckpointKind::Legacy, legacy, "{file}");

        let tensors = want["tensors"].as_array().unwrap();
        let want_names: Vec<&str> = tensors
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(reader.names(), want_names, "{file}: names in pickle order");
        for t in tensors {
            let name = t["name"].as_str().unwrap();
            let info = reader.info(name).unwrap();
            let data = info.dense_component().unwrap();
            assert_eq!(data.dtype.name(), t["dtype"], "{file}:{name} dtype");
            assert_eq!(
                data.logical_type.as_ref().map(|l| l.name()),
                t["type"].as_str(),
                "{file}:{name} logical type"
            );
            let shape: Vec<u64> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            assert_eq!(info.shape.dims(), shape, "{file}:{name} shape");
            let bytes = reader
                .dense(name)
                .unwrap_or_else(|e| panic!("{file}:{name}: {e}"));
            assert_eq!(
                bytes.len() as u64,
                t["nbytes"].as_u64().unwrap(),
                "{file}:{name}"
            );
            assert_eq!(
                hex(&Sha256::digest(&bytes)),
                t["sha256"].as_str().unwrap(),
                "{file}:{name} bytes"
            );
            assert_eq!(data.decoded_len, Some(bytes.len() as u64));
            // A location is given exactly when the bytes are the file's, untouched.
            match (&bytes, data.location) {
                (Cow::Borrowed(b), Some(range)) => {
                    let file_bytes = reader.file_bytes();
                    let start = range.offset as usize;
                    assert_eq!(&file_bytes[start..start + range.length as usize], *b);
                }
                (Cow::Borrowed(_), None) => {
                    // Borrowed from an inflated record.
                    assert_eq!(
                        data.encoding,
                        Encoding::Other("deflate".into()),
                        "{file}:{name}"
                    );
                }
                (Cow::Owned(_), location) => assert_eq!(location, None, "{file}:{name}"),
            }
        }
        check_metadata(
            file,
            reader.metadata(),
            want["metadata"].as_object().unwrap(),
        );
    }
}

fn check_metadata(file: &str, got: &zt_core::Attributes, want: &serde_json::Map<String, Json>) {
    let got_keys: Vec<&String> = got.keys().collect();
    let mut want_keys: Vec<&String> = want.keys().collect();
    want_keys.sort();
    assert_eq!(got_keys, want_keys, "{file}: metadata names");
    for (key, value) in want {
        assert!(
            same_value(&got[key], value),
            "{file}: metadata {key}: {:?} vs {value}",
            got[key]
        );
    }
}

fn same_value(got: &Value, want: &Json) -> bool {
    match (got, want) {
        (Value::Bool(a), Json::Bool(b)) => a == b,
        (Value::Text(a), Json::String(b)) => a == b,
        (Value::Float(a), Json::Number(b)) => Some(*a) == b.as_f64(),
        (Value::Integer(a), Json::Number(b)) => match (b.as_i64(), b.as_u64()) {
            (Some(i), _) => *a == i as i128,
            (_, Some(u)) => *a == u as i128,
            // Beyond 64 bits serde_json keeps a float.
            _ => (*a as f64) == b.as_f64().unwrap(),
        },
        (Value::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same_value(x, y))
        }
        _ => false,
    }
}

#[test]
fn raw_tensors_are_zero_copy_slices_of_the_map() {
    let reader = PickleReader::open(fixtures().join("state_dict.pt")).unwrap();
    let map = reader.file_bytes().as_ptr_range();
    for name in reader.names() {
        let bytes = reader.dense(name).unwrap();
        let Cow::Borrowed(slice) = bytes else {
            panic!("{name} was copied");
        };
        assert!(
            map.contains(&slice.as_ptr()),
            "{name} does not point into the map"
        );
        let location = reader
            .info(name)
            .unwrap()
            .dense_component()
            .unwrap()
            .location
            .unwrap();
        // torch pads every record to 64 bytes.
        assert_eq!(location.offset % 64, 0, "{name}");
    }
    match reader.kind() {
        CheckpointKind::Zip {
            prefix,
            version,
            big_endian,
        } => {
            assert_eq!(prefix, "state_dict");
            assert!(version.is_some());
            assert!(!big_endian);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn views_share_their_storage() {
    let reader = PickleReader::open(fixtures().join("views.pt")).unwrap();
    let location = |name: &str| {
        reader
            .info(name)
            .unwrap()
            .dense_component()
            .unwrap()
            .location
    };
    let base = location("base").unwrap();
    let row2 = location("row2").unwrap();
    let tail = location("tail").unwrap();
    // Row 2 of a 4x6 f32 matrix starts 48 bytes in; the flat slice 5..17 20 bytes in.
    assert_eq!(row2.offset, base.offset + 2 * 6 * 4);
    assert_eq!(tail.offset, base.offset + 5 * 4);
    assert_eq!(location("tied_a"), location("tied_b"));
    // Strided and lazily conjugated views are copies.
    for name in [
        "transposed",
        "strided",
        "expanded",
        "permuted",
        "conj",
        "neg_imag",
        "bf16_t",
    ] {
        assert_eq!(location(name), None, "{name}");
        assert!(
            matches!(reader.dense(name).unwrap(), Cow::Owned(_)),
            "{name}"
        );
    }
}

#[test]
fn legacy_storages_are_zero_copy() {
    let reader = PickleReader::open(fixtures().join("legacy.pt")).unwrap();
    let map = reader.file_bytes().as_ptr_range();
    let bytes = reader.dense("model.linear.weight").unwrap();
    let Cow::Borrowed(slice) = bytes else {
        panic!("legacy tensor was copied");
    };
    assert!(map.contains(&slice.as_ptr()));
    assert_eq!(reader.metadata()["epoch"], Value::Integer(7));
}

#[test]
fn big_endian_and_deflated_archives() {
    let be = PickleReader::open(fixtures().join("bigendian.pt")).unwrap();
    assert!(matches!(
        be.kind(),
        CheckpointKind::Zip {
            big_endian: true,
            ..
        }
    ));
    // Single bytes need no swap and stay zero-copy; wider types are swapped copies.
    assert!(matches!(be.dense("u8").unwrap(), Cow::Borrowed(_)));
    assert!(matches!(be.dense("f32").unwrap(), Cow::Owned(_)));
    let deflated = PickleReader::open(fixtures().join("deflated.pt")).unwrap();
    let info = deflated.info("f32").unwrap().dense_component().unwrap();
    assert_eq!(info.encoding, Encoding::Other("deflate".into()));
    assert_eq!(info.location, None);
}

/// A plain value as the JSON that generate.py's `to_json` writes.
fn to_json(pickle: &Pickle, val: Val) -> Json {
    let int = |i: i128| serde_json::json!({ "int": i.to_string() });
    match val {
        Val::None => Json::Null,
        Val::Bool(b) => Json::Bool(b),
        Val::Int(i) => int(i.into()),
        Val::Float(f) => serde_json::json!(f),
        Val::Obj(id) => match pickle.get(id) {
            Object::Str(s) => Json::String(s.clone()),
            Object::Bytes(b) => serde_json::json!({ "bytes": hex(b) }),
            Object::BigInt(Some(i)) => int(*i),
            Object::List(items) => Json::Array(items.iter().map(|&v| to_json(pickle, v)).collect()),
            Object::Tuple(items) => {
                serde_json::json!({ "tuple": items.iter().map(|&v| to_json(pickle, v)).collect::<Vec<_>>() })
            }
            Object::Set(items) => {
                serde_json::json!({ "set": items.iter().map(|&v| to_json(pickle, v)).collect::<Vec<_>>() })
            }
            Object::Dict(entries) => serde_json::json!({
                "dict": entries
                    .iter()
                    .map(|&(k, v)| Json::Array(vec![to_json(pickle, k), to_json(pickle, v)]))
                    .collect::<Vec<_>>()
            }),
            other => panic!("unexpected {other:?}"),
        },
    }
}

#[test]
fn plain_pickles_of_every_protocol() {
    let expected = expected();
    let plain = &expected["plain"];
    let files = plain["files"].as_array().unwrap();
    assert_eq!(files.len(), 6);
    for file in files {
        let file = file.as_str().unwrap();
        let bytes = std::fs::read(fixtures().join(file)).unwrap();
        let pickle = unpickle(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(to_json(&pickle, pickle.root), plain["value"], "{file}");
    }
}
