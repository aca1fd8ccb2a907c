//! Interop with the real `ztensor==1.2.3` Python package.
//!
//! - Files written by 1.2.3 (committed under `tests/fixtures/zt1/`, made by its `generate.py`)
//!   read here with identical metadata and bytes.
//! - 1.2.3's replace/remove/append results are replayed with our operations.
//! - With `ZT_PYTHON` pointing at the test venv's interpreter, the cases of
//!   `tests/interop/zt1_cases.py` are written by our writer and checked by the Python side:
//!   byte-identical to 1.2.3's output, and readable by 1.2.3 with the same values.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value as Json, json};
use sha2::{Digest as _, Sha256};
use zt_core::{Attributes, ChecksumAlgorithm, DType, Format, LogicalType, TensorReader, Value};
use zt_format::manifest::{decode_cbor, from_cbor};
use zt_format::{ComponentOptions, OpenOptions, Variant, Writer, ZtReader};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures/zt1")
}

fn load_json(path: &Path) -> Json {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// Our attribute value in the JSON form `generate.py` records.
fn value_to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::Bool(b) => json!(b),
        Value::Integer(i) => json!(i64::try_from(*i).expect("fixtures use i64 integers")),
        Value::Float(f) if f.is_nan() => json!({"$float": "nan"}),
        Value::Float(f) if f.is_infinite() => {
            json!({"$float": if *f > 0.0 { "inf" } else { "-inf" }})
        }
        Value::Float(f) => json!(f),
        Value::Text(s) => json!(s),
        Value::Bytes(b) => json!({"$bytes": hex(b)}),
        Value::Array(items) => Json::Array(items.iter().map(value_to_json).collect()),
        Value::Map(entries) => Json::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().expect("text keys").to_owned(), value_to_json(v)))
                .collect(),
        ),
        Value::Tag(_, _) => Json::Null,
    }
}

fn attributes_to_json(a: &Option<Attributes>) -> Json {
    match a {
        None => Json::Null,
        Some(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), value_to_json(v)))
                .collect(),
        ),
    }
}

/// Compares numbers by value so that 1.0 (JSON from Python) equals 1.0 (ours) whatever the
/// JSON library made of them.
fn json_eq(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        (Json::Array(x), Json::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Json::Object(x), Json::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[test]
fn reads_every_file_written_by_ztensor_1_2_3() {
    let expected = load_json(&fixtures().join("expected.json"));
    let files = expected["files"].as_object().unwrap();
    assert!(files.len() >= 20, "fixture set looks incomplete");
    for (file, spec) in files {
        let path = fixtures().join(file);
        let reader = ZtReader::open_with(
            &path,
            OpenOptions {
                verify_checksums: true,
                ..OpenOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(
            reader.variant() == Variant::Legacy,
            spec["legacy"].as_bool().unwrap(),
            "{file}"
        );
        let tensors = spec["tensors"].as_object().unwrap();
        let mut names: Vec<&str> = tensors.keys().map(String::as_str).collect();
        names.sort_unstable();
        assert_eq!(reader.names(), names, "{file}: tensor names");
        for (name, t) in tensors {
            let ctx = format!("{file}: {name:?}");
            let info = reader.info(name).unwrap();
            let shape: Vec<u64> = t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap())
                .collect();
            assert_eq!(info.shape.dims(), &shape[..], "{ctx}");
            assert_eq!(info.format.name(), t["format"].as_str().unwrap(), "{ctx}");
            assert!(
                json_eq(&attributes_to_json(&info.attributes), &t["attributes"]),
                "{ctx}: attributes {:?} vs {}",
                info.attributes,
                t["attributes"]
            );
            let comps = t["components"].as_object().unwrap();
            assert_eq!(info.components.len(), comps.len(), "{ctx}");
            for (role, c) in comps {
                let ours = &info.components[role];
                let ctx = format!("{ctx}/{role}");
                assert_eq!(ours.dtype.name(), c["dtype"].as_str().unwrap(), "{ctx}");
                assert_eq!(
                    ours.logical_type.as_ref().map(LogicalType::name),
                    c["type"].as_str(),
                    "{ctx}"
                );
                let range = ours.location.unwrap();
                assert_eq!(range.offset, c["offset"].as_u64().unwrap(), "{ctx}");
                assert_eq!(range.length, c["length"].as_u64().unwrap(), "{ctx}");
                assert_eq!(
                    ours.encoding.name(),
                    c["encoding"].as_str().unwrap(),
                    "{ctx}"
                );
                assert_eq!(
                    ours.digest.as_ref().map(|d| d.to_string().to_lowercase()),
                    c["digest"].as_str().map(str::to_lowercase),
                    "{ctx}"
                );
                let bytes = reader.component(name, role).unwrap();
                assert_eq!(
                    bytes.len() as u64,
                    c["decoded_len"].as_u64().unwrap(),
                    "{ctx}"
                );
                assert_eq!(
                    hex(&Sha256::digest(&bytes)),
                    c["decoded_sha256"].as_str().unwrap(),
                    "{ctx}: decoded bytes differ"
                );
            }
            if info.format == Format::Dense {
                reader.dense(name).unwrap_or_else(|e| panic!("{ctx}: {e}"));
            }
        }
    }
}

#[test]
fn replace_remove_and_append_agree_with_ztensor_1_2_3() {
    let ops = load_json(&fixtures().join("operations.json"));
    let dir = tempfile::tempdir().unwrap();

    // replace_tensor: the same bytes as 1.2.3's result.
    let replace = &ops["replace"];
    let path = dir.path().join("replaced.zt");
    std::fs::copy(fixtures().join(replace["input"].as_str().unwrap()), &path).unwrap();
    for r in replace["replacements"].as_array().unwrap() {
        zt_format::replace_tensor(
            &path,
            r["name"].as_str().unwrap(),
            &unhex(r["data_hex"].as_str().unwrap()),
        )
        .unwrap();
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(fixtures().join(replace["result"].as_str().unwrap())).unwrap(),
        "replace_tensor result differs from 1.2.3's"
    );

    // remove_tensors and append: the same tensors and values as 1.2.3's result. (Our remove
    // keeps each component's stored bytes instead of re-encoding at level 3, and our append
    // keeps the old footer, so the bytes may differ by design.)
    let remove = &ops["remove"];
    let out = dir.path().join("removed.zt");
    let names: Vec<&str> = remove["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    zt_format::remove_tensors(
        fixtures().join(remove["input"].as_str().unwrap()),
        &out,
        &names,
    )
    .unwrap();
    assert_same_content(&out, &fixtures().join(remove["result"].as_str().unwrap()));

    let append = &ops["append"];
    let path = dir.path().join("appended.zt");
    std::fs::copy(fixtures().join(append["base"].as_str().unwrap()), &path).unwrap();
    let mut w = Writer::append(&path).unwrap();
    for t in append["writes"].as_array().unwrap() {
        write_case_tensor(&mut w, t);
    }
    w.finish().unwrap();
    assert_same_content(&path, &fixtures().join(append["result"].as_str().unwrap()));
}

fn assert_same_content(ours: &Path, theirs: &Path) {
    let a = ZtReader::open(ours).unwrap();
    let b = ZtReader::open(theirs).unwrap();
    assert_eq!(a.names(), b.names());
    assert_eq!(a.metadata(), b.metadata());
    for name in a.names() {
        let (ia, ib) = (a.info(name).unwrap(), b.info(name).unwrap());
        assert_eq!(ia.shape, ib.shape, "{name}");
        assert_eq!(ia.format, ib.format, "{name}");
        assert_eq!(ia.attributes, ib.attributes, "{name}");
        assert_eq!(
            ia.components.keys().collect::<Vec<_>>(),
            ib.components.keys().collect::<Vec<_>>()
        );
        for (role, ca) in &ia.components {
            let cb = &ib.components[role];
            assert_eq!(
                (ca.dtype, &ca.logical_type),
                (cb.dtype, &cb.logical_type),
                "{name}/{role}"
            );
            assert_eq!(
                a.component(name, role).unwrap(),
                b.component(name, role).unwrap(),
                "{name}/{role}"
            );
        }
    }
}

/// Writes one tensor entry of the case spec with the same calls 1.2.3 makes.
fn write_case_tensor(w: &mut Writer, t: &Json) {
    let name = t["name"].as_str().unwrap();
    let shape: Vec<u64> = t["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_u64().unwrap())
        .collect();
    let level = t["compress"].as_i64().unwrap();
    let options = if level > 0 {
        ComponentOptions::zstd(level as i32)
    } else {
        ComponentOptions::raw()
    }
    .with_checksum(ChecksumAlgorithm::from_name(t["checksum"].as_str().unwrap()).unwrap());
    let attributes = t["attributes_cbor_hex"].as_str().map(|h| {
        match from_cbor(decode_cbor(&unhex(h)).unwrap()) {
            Value::Map(entries) => entries
                .into_iter()
                .map(|(k, v)| (k.as_str().unwrap().to_owned(), v))
                .collect::<Attributes>(),
            other => panic!("attributes must be a map, got {other:?}"),
        }
    });
    let mut tensor = w
        .begin_tensor(
            name,
            shape,
            Format::from_name(t["format"].as_str().unwrap()),
        )
        .unwrap();
    let comps = &t["components"];
    for role in t["component_order"].as_array().unwrap() {
        let role = role.as_str().unwrap();
        let c = &comps[role];
        tensor
            .write_component(
                role,
                DType::from_name(c["dtype"].as_str().unwrap()).unwrap(),
                c["type"].as_str().map(LogicalType::from_name),
                &unhex(c["hex"].as_str().unwrap()),
                options,
            )
            .unwrap_or_else(|e| panic!("{name}/{role}: {e}"));
    }
    tensor.set_attributes(attributes);
    tensor.finish().unwrap_or_else(|e| panic!("{name}: {e}"));
}

fn python() -> Option<PathBuf> {
    match std::env::var_os("ZT_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!("ZT_PYTHON must point at the test venv's python in CI (see tests/run.sh)")
        }
        None => None,
    }
}

fn run_python(py: &Path, args: &[&Path]) {
    let status = Command::new(py)
        .arg(repo_root().join("tests/interop/zt1_cases.py"))
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", py.display()));
    assert!(status.success(), "zt1_cases.py {args:?} failed");
}

#[test]
fn files_we_write_are_byte_identical_to_ztensor_1_2_3_and_read_there() {
    let Some(py) = python() else {
        eprintln!("skipped: set ZT_PYTHON to the test venv's python (tests/run.sh does)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.json");
    let (ours, reference) = (dir.path().join("ours"), dir.path().join("ref"));
    std::fs::create_dir_all(&ours).unwrap();
    run_python(&py, &[Path::new("spec"), &spec_path]);
    let spec = load_json(&spec_path);
    let mut written = BTreeMap::new();
    for case in spec.as_array().unwrap() {
        let file = case["file"].as_str().unwrap();
        let mut w = Writer::create(ours.join(file)).unwrap();
        for t in case["tensors"].as_array().unwrap() {
            write_case_tensor(&mut w, t);
        }
        written.insert(file.to_owned(), w.finish().unwrap());
    }
    assert!(written.len() >= 10);
    run_python(
        &py,
        &[
            Path::new("write-ref"),
            &reference,
            Path::new("--spec"),
            &spec_path,
        ],
    );
    run_python(
        &py,
        &[
            Path::new("check"),
            &ours,
            &reference,
            Path::new("--spec"),
            &spec_path,
        ],
    );
}
