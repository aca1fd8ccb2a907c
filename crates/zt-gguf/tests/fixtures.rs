//! Every fixture written by the `gguf` Python package reads back as its GGUFReader reads it.

mod common;

use std::path::PathBuf;

use serde_json::{Value as Json, json};
use sha2::{Digest as _, Sha256};
use zt_core::{Error, TensorBytes, TensorReader, Value};
use zt_gguf::GgufReader;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/gguf")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn to_json(v: &Value) -> Json {
    match v {
        Value::Bool(b) => json!(b),
        Value::Integer(i) => match i64::try_from(*i) {
            Ok(i) => json!(i),
            Err(_) => json!(u64::try_from(*i).unwrap()),
        },
        Value::Float(f) => json!(f),
        Value::Text(s) => json!(s),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect()),
        other => panic!("unexpected metadata value {other:?}"),
    }
}

#[test]
fn fixtures_match_the_reference_reader() {
    let expected: Json =
        serde_json::from_slice(&std::fs::read(fixtures().join("expected.json")).unwrap()).unwrap();
    let files = expected["files"].as_object().unwrap();
    assert!(files.len() >= 7);
    for (file, want) in files {
        let path = fixtures().join(file);
        if let Some(message) = want.get("error") {
            let err = GgufReader::open(&path).unwrap_err();
            assert!(matches!(err.kind(), Error::Unsupported(_)), "{file}: {err}");
            assert!(err.to_string().contains(message.as_str().unwrap()), "{err}");
            continue;
        }
        let reader = GgufReader::open(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(reader.format_name(), "gguf");
        assert_eq!(json!(reader.version()), want["version"], "{file}");
        assert_eq!(json!(reader.alignment()), want["alignment"], "{file}");
        assert_eq!(json!(reader.data_offset()), want["data_offset"], "{file}");

        let metadata: serde_json::Map<String, Json> = reader
            .metadata()
            .iter()
            .map(|(k, v)| (k.clone(), to_json(v)))
            .collect();
        assert_eq!(Json::Object(metadata), want["metadata"], "{file}");

        let tensors = want["tensors"].as_array().unwrap();
        let names: Vec<&str> = tensors
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(reader.names(), names, "{file}: names in file order");
        for t in tensors {
            let name = t["name"].as_str().unwrap();
            let info = reader.info(name).unwrap();
            assert_eq!(json!(info.shape.dims()), t["shape"], "{file}/{name}");
            assert_eq!(info.format.name(), t["format"].as_str().unwrap());
            let data = &info.components["data"];
            assert_eq!(data.dtype.name(), t["dtype"].as_str().unwrap(), "{name}");
            assert_eq!(data.logical_type, None);
            assert_eq!(json!(data.location.unwrap().length), t["nbytes"]);
            let attrs = info.attributes.as_ref().unwrap();
            assert_eq!(attrs["ggml_type"].as_str(), t["ggml_type"].as_str());
            assert_eq!(json!(attrs["ggml_type_id"].as_i128()), t["ggml_type_id"]);
            if t["format"] != "dense" {
                assert_eq!(
                    json!(attrs["elems_per_block"].as_i128()),
                    t["elems_per_block"]
                );
                assert_eq!(json!(attrs["block_bytes"].as_i128()), t["block_bytes"]);
                assert!(matches!(reader.dense(name), Err(Error::NotDense { .. })));
            } else {
                assert_eq!(reader.dense(name).unwrap().len() as u64, t["nbytes"]);
            }
            let bytes = reader.component(name, "data").unwrap();
            assert!(
                matches!(bytes, TensorBytes::Borrowed(_)),
                "{name} is zero-copy"
            );
            assert_eq!(hex(&Sha256::digest(&bytes)), t["sha256"].as_str().unwrap());
        }
    }
}

#[test]
fn raw_tensors_are_borrowed_from_the_map() {
    let path = fixtures().join("dense.gguf");
    let reader = GgufReader::open(&path).unwrap();
    let file = std::fs::read(&path).unwrap();
    let info = reader.info("f32.matrix").unwrap();
    let range = info.components["data"].location.unwrap();
    let TensorBytes::Borrowed(bytes) = reader.component("f32.matrix", "data").unwrap() else {
        panic!("expected a borrowed slice");
    };
    // The slice is the file's bytes at the recorded offset, and lies inside the map: the same
    // pointer comes back on every call.
    assert_eq!(
        bytes,
        &file[range.offset as usize..(range.offset + range.length) as usize]
    );
    let again = reader.component("f32.matrix", "data").unwrap();
    assert_eq!(bytes.as_ptr(), again.as_ptr());
    assert_eq!(range.offset % reader.alignment(), 0);
    assert!(matches!(
        reader.component("f32.matrix", "scales").unwrap_err().kind(),
        Error::ComponentNotFound { .. }
    ));
    assert!(matches!(
        reader.info("missing").unwrap_err().kind(),
        Error::TensorNotFound(_)
    ));
}

#[test]
fn large_tokenizer_vocabularies_are_kept_whole() {
    const TOKENS: usize = 150_000;
    let mut value = common::VT_STRING.to_le_bytes().to_vec();
    value.extend_from_slice(&(TOKENS as u64).to_le_bytes());
    for i in 0..TOKENS {
        value.extend_from_slice(&common::string(format!("<tok{i}>").as_bytes()));
    }
    let mut g = common::Gguf::two_tensors();
    g.kvs.push(common::kv(
        "tokenizer.ggml.tokens",
        common::VT_ARRAY,
        &value,
    ));
    let file = common::temp_file(&g.bytes());
    let reader = GgufReader::open(file.path()).unwrap();
    let Value::Array(tokens) = &reader.metadata()["tokenizer.ggml.tokens"] else {
        panic!("tokens are an array");
    };
    assert_eq!(tokens.len(), TOKENS);
    assert_eq!(tokens[149_999].as_str(), Some("<tok149999>"));
    assert_eq!(reader.names(), ["a", "b"]);
}

#[test]
fn empty_arrays_and_non_utf8_strings_are_kept() {
    let mut g = common::Gguf::two_tensors();
    let mut empty = common::VT_U32.to_le_bytes().to_vec();
    empty.extend_from_slice(&0u64.to_le_bytes());
    g.kvs.push(common::kv("empty", common::VT_ARRAY, &empty));
    g.kvs.push(common::kv(
        "latin1",
        common::VT_STRING,
        &common::string(b"caf\xe9"),
    ));
    let file = common::temp_file(&g.bytes());
    let reader = GgufReader::open(file.path()).unwrap();
    assert_eq!(reader.metadata()["empty"], Value::Array(vec![]));
    assert_eq!(
        reader.metadata()["latin1"],
        Value::Bytes(b"caf\xe9".to_vec())
    );
}
