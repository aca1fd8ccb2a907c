//! Reads every fixture written by ztensor 2.1.2 (tests/fixtures/zt2/generate.py) and compares it
//! with what 2.1.2's own reader returned (expected.json).

use std::borrow::Cow;
use std::path::PathBuf;

use serde_json::Value as Json;
use sha2::{Digest as _, Sha256};
use zt_core::{DType, Format, TensorReader, Value};
use zt_v2::{OpenOptions, ZtV2Reader};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/zt2")
}

fn expected() -> Json {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn open(file: &str) -> ZtV2Reader {
    let options = OpenOptions {
        verify_checksums: true,
        ..OpenOptions::default()
    };
    ZtV2Reader::open_with(fixtures().join(file), options).unwrap_or_else(|e| panic!("{file}: {e}"))
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The expected.json form of an attribute value (see generate.py).
fn to_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Integer(i) => match (u64::try_from(*i), i64::try_from(*i)) {
            (Ok(u), _) => Json::from(u),
            (_, Ok(i)) => Json::from(i),
            _ => panic!("integer {i} out of JSON range"),
        },
        Value::Float(f) if f.is_nan() => serde_json::json!({"$float": "nan"}),
        Value::Float(f) if f.is_infinite() => {
            serde_json::json!({"$float": if *f > 0.0 { "inf" } else { "-inf" }})
        }
        Value::Float(f) => Json::from(*f),
        Value::Text(s) => Json::from(s.as_str()),
        Value::Bytes(b) => {
            serde_json::json!({"$bytes": b.iter().map(|x| format!("{x:02x}")).collect::<String>()})
        }
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().expect("text key").to_owned(), to_json(v)))
                .collect(),
        ),
        Value::Tag(..) => panic!("no tags in fixtures"),
    }
}

fn check_part(reader: &ZtV2Reader, file: &str, name: &str, role: &str, want: &Json) {
    let info = reader.info(name).unwrap();
    let component = &info.components[role];
    let what = format!("{file}: {name}/{role}");
    assert_eq!(component.dtype.name(), want["dtype"], "{what}: dtype");
    assert_eq!(
        component.logical_type.as_ref().map(|t| t.name().to_owned()),
        want["type"].as_str().map(str::to_owned),
        "{what}: logical type"
    );
    let bytes = reader.component(name, role).unwrap();
    assert_eq!(bytes.len() as u64, want["nbytes"], "{what}: nbytes");
    assert_eq!(component.decoded_len, Some(bytes.len() as u64), "{what}");
    assert_eq!(sha256_hex(&bytes), want["sha256"], "{what}: bytes");
    // Raw parts of the root file are zero-copy slices at their file location.
    if let Some(location) = component.location {
        let Cow::Borrowed(slice) = bytes else {
            panic!("{what}: raw part was copied")
        };
        let map = reader.file_bytes().as_ptr_range();
        assert!(map.contains(&slice.as_ptr()) || slice.is_empty(), "{what}");
        assert_eq!(
            slice.as_ptr() as usize - map.start as usize,
            location.offset as usize,
            "{what}"
        );
        assert_eq!(slice.as_ptr() as usize % 4096, 0, "{what}: 4096-aligned");
    }
}

#[test]
fn every_fixture_matches_ztensor_2_1_2() {
    let expected = expected();
    let files = expected["files"].as_object().unwrap();
    assert_eq!(files.len(), 8);
    for (file, want) in files {
        let reader = open(file);
        assert_eq!(reader.format_name(), "zt2");
        let metadata = Json::Object(
            reader
                .metadata()
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        );
        assert_eq!(metadata, want["metadata"], "{file}: metadata");

        let tensors = want["tensors"].as_object().unwrap();
        let mut names: Vec<&str> = tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(reader.names(), names, "{file}: names in bytewise order");

        for (name, t) in tensors {
            let info = reader.info(name).unwrap();
            let what = format!("{file}: {name}");
            assert_eq!(info.shape.dims(), to_dims(&t["shape"]), "{what}: shape");
            assert_eq!(info.format.name(), t["format"], "{what}: format");
            assert_eq!(reader.layout(name).unwrap(), t["layout"], "{what}");
            let primary = info.primary_component().unwrap().0;
            check_part(&reader, file, name, primary, t);
            if let Some(parts) = t.get("parts").and_then(Json::as_object) {
                assert_eq!(info.components.len(), parts.len(), "{what}: parts");
                for (role, p) in parts {
                    check_part(&reader, file, name, role, p);
                }
            } else {
                assert_eq!(info.components.len(), 1, "{what}: one part");
            }
            if !t["attributes"].is_null() {
                let attributes = info.attributes.as_ref().expect("attributes");
                let got = Json::Object(
                    attributes
                        .iter()
                        .map(|(k, v)| (k.clone(), to_json(v)))
                        .collect(),
                );
                assert_eq!(got, t["attributes"], "{what}: attributes");
            }
            if info.format == Format::Dense {
                assert_eq!(
                    reader.dense(name).unwrap().len() as u64,
                    t["nbytes"],
                    "{what}"
                );
            }
        }
        let (checked, undigested) = reader.verify_all().unwrap();
        assert_eq!(
            [checked, undigested],
            [
                to_dims(&want["verify"])[0] as usize,
                to_dims(&want["verify"])[1] as usize
            ],
            "{file}: verify"
        );
    }
}

fn to_dims(json: &Json) -> Vec<u64> {
    json.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap())
        .collect()
}

#[test]
fn logical_types_map_to_zt_core() {
    let reader = open("dtypes.zt");
    let bool_data = reader.info("bool").unwrap().dense_component().unwrap();
    assert_eq!(
        (bool_data.dtype, &bool_data.logical_type),
        (DType::Bool, &None)
    );
    let c = reader.info("complex64").unwrap();
    assert_eq!(c.dense_byte_len().unwrap(), Some(24));
    let f4 = reader.info("f4_e2m1").unwrap();
    assert_eq!(f4.dense_byte_len().unwrap(), Some(3));
    let digest = reader
        .info("f32")
        .unwrap()
        .dense_component()
        .unwrap()
        .digest
        .as_ref()
        .unwrap()
        .to_string();
    assert!(
        digest.starts_with("xxh3:") && digest.len() == 21,
        "{digest}"
    );
}

#[test]
fn gguf_layout_keeps_its_block_geometry() {
    let reader = open("gguf.zt");
    let info = reader.info("blk.0.attn_q.weight").unwrap();
    assert_eq!(info.format, Format::Other("gguf.q4_k".into()));
    let attributes = info.attributes.as_ref().unwrap();
    assert_eq!(attributes["elems_per_block"], Value::Integer(256));
    assert_eq!(attributes["block_bytes"], Value::Integer(144));
    assert!(matches!(
        reader.dense("blk.0.attn_q.weight"),
        Err(e) if matches!(e.kind(), zt_core::Error::NotDense { .. })
    ));
}

#[test]
fn tied_weights_share_one_blob() {
    let reader = open("tied.zt");
    let location = |name: &str| {
        reader
            .info(name)
            .unwrap()
            .dense_component()
            .unwrap()
            .location
            .unwrap()
    };
    assert_eq!(location("embed_tokens"), location("lm_head"));
    assert_eq!(location("embed_tokens"), location("flat_view"));
    assert_ne!(location("embed_tokens"), location("unique"));
}

#[test]
fn compressed_parts_decode_and_report_no_location() {
    let reader = open("compressed.zt");
    let big = reader.info("big").unwrap().dense_component().unwrap();
    assert_eq!(big.location, None);
    assert_eq!(
        big.encoding,
        zt_core::Encoding::Other("zt.zstd-seekable/1".into())
    );
    let (path, range) = reader.part_location("big", "data").unwrap();
    assert_eq!(path, fixtures().join("compressed.zt"));
    assert!(range.length < 1_200_000 / 10, "compressed well");
    let bytes = reader.component("big", "data").unwrap();
    assert!(matches!(bytes, Cow::Owned(_)));
    assert_eq!(bytes.len(), 1_200_000);
}

#[test]
fn shards_are_read_from_beside_the_root() {
    let reader = open("sharded.zt");
    assert_eq!(reader.files().len(), 3);
    let (path, _) = reader.part_location("w1", "data").unwrap();
    assert_eq!(path, fixtures().join("sharded-s1.zt"));
    let w1 = reader.component("w1", "data").unwrap();
    assert!(matches!(w1, Cow::Borrowed(_)), "shard parts are zero-copy");
    assert_eq!(w1.as_ptr() as usize % 4096, 0);
    assert_eq!(reader.component("w1_tied", "data").unwrap(), w1);
    assert_eq!(
        reader
            .info("w1")
            .unwrap()
            .dense_component()
            .unwrap()
            .location,
        None
    );
}
