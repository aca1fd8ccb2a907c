//! The `zt` binary run as a user runs it: on the committed fixtures of every format and on
//! temporary files, checking output, exit status and the files it leaves behind.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value as Json;
use ztensor::{ChecksumAlgorithm, ComponentOptions, DType, TensorReader, Writer, ZtReader};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn fixture(rel: &str) -> PathBuf {
    fixtures().join(rel)
}

/// Runs `zt` with `args`; stdout and stderr are pipes, so no progress bar is drawn.
fn zt<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_zt"))
        .args(args)
        .output()
        .expect("zt runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: Output) -> String {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Asserts the exit status and that the error is one `zt: error: ...` line containing `needle`.
#[track_caller]
fn fails(o: Output, code: i32, needle: &str) -> String {
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(code),
        "stdout: {}\nstderr: {err}",
        stdout(&o)
    );
    assert!(err.contains(needle), "expected '{needle}' in: {err}");
    err
}

fn json(o: Output) -> Json {
    let text = ok(o);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// One readable file of each format the default build reads.
const ONE_OF_EACH: [&str; 9] = [
    "zt1/checksums.zt",
    "zt1/legacy_v01.zt",
    "safetensors/dtypes_torch.safetensors",
    "pickle/checkpoint.pt",
    "gguf/quantized.gguf",
    "npz/dtypes.npz",
    "npz/v3.npy",
    "onnx/model.onnx",
    "zt2/sparse.zt",
];

fn write_zt(path: &Path, tensors: &[(&str, &[u8])], options: ComponentOptions) {
    let mut w = Writer::create(path).unwrap();
    for (name, bytes) in tensors {
        w.add_dense(name, [bytes.len() as u64], DType::U8, bytes, options)
            .unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn info_lists_every_format() {
    for rel in ONE_OF_EACH {
        let path = fixture(rel);
        let text = ok(zt(["info", p(&path)]));
        let reader = ztensor::open(&path).unwrap();
        let first = text.lines().next().unwrap();
        assert!(
            first.contains(&format!("{} tensor", reader.len())),
            "{rel}: {first}"
        );
        for name in reader.names() {
            if !name.is_empty() {
                assert!(text.contains(name), "{rel}: {name} missing from\n{text}");
            }
        }
        // `ls` is the same command.
        assert_eq!(ok(zt(["ls", p(&path)])), text);
    }
    let text = ok(zt(["info", p(&fixture("zt1/legacy_v01.zt"))]));
    assert!(text.contains("legacy ZTEN0001"), "{text}");
    let text = ok(zt(["info", p(&fixture("gguf/quantized.gguf"))]));
    assert!(text.contains("gguf.q4_k"), "{text}");
    assert!(text.contains("general.architecture = \"ztest\""), "{text}");
}

#[test]
fn info_json_has_the_documented_shape() {
    let doc = json(zt([
        "info",
        "--json",
        p(&fixture("zt1/checksums.zt")),
        p(&fixture("zt2/edge.zt")),
    ]));
    let files = doc["files"].as_array().unwrap();
    assert_eq!(files.len(), 2);
    let file = &files[0];
    for key in [
        "path",
        "format",
        "legacy",
        "file_size",
        "unfinished_tail",
        "tensor_count",
        "stored_bytes",
        "decoded_bytes",
        "metadata",
        "tensors",
    ] {
        assert!(file.get(key).is_some(), "missing {key} in {file}");
    }
    assert_eq!(file["format"], "zt");
    assert_eq!(file["legacy"], false);
    assert_eq!(
        file["file_size"],
        std::fs::metadata(fixture("zt1/checksums.zt"))
            .unwrap()
            .len()
    );
    assert_eq!(file["tensor_count"], 6);
    let tensors = file["tensors"].as_array().unwrap();
    let names: Vec<&str> = tensors
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "tensors are sorted by name");

    // The values the reference library wrote (tests/fixtures/zt1/expected.json).
    let t = tensors.iter().find(|t| t["name"] == "crc_zstd").unwrap();
    assert_eq!(t["format"], "dense");
    assert_eq!(t["shape"], serde_json::json!([400]));
    assert_eq!(t["dtypes"], serde_json::json!(["u16"]));
    assert_eq!(t["encodings"], serde_json::json!(["zstd"]));
    assert_eq!(t["stored_bytes"], 463);
    assert_eq!(t["decoded_bytes"], 800);
    assert!((t["ratio"].as_f64().unwrap() - 800.0 / 463.0).abs() < 1e-9);
    assert_eq!(t["attributes"], Json::Null);
    let data = &t["components"]["data"];
    assert_eq!(data["dtype"], "u16");
    assert_eq!(data["logical_type"], Json::Null);
    assert_eq!(data["encoding"], "zstd");
    assert_eq!(data["offset"], 192);
    assert_eq!(data["stored_bytes"], 463);
    assert_eq!(data["decoded_bytes"], 800);
    assert_eq!(data["digest"], "crc32c:0xA9F48AED");

    // Metadata values JSON cannot hold are tagged.
    let edge = &files[1];
    assert_eq!(edge["format"], "zt2");
    assert_eq!(
        edge["metadata"]["nan"],
        serde_json::json!({"$float": "nan"})
    );
    assert_eq!(edge["metadata"]["max_u64"], serde_json::json!(u64::MAX));
    assert_eq!(edge["metadata"]["unicode"], "héllo ☃");

    // A logical type shows in the dtype.
    let doc = json(zt([
        "info",
        "--json",
        p(&fixture("safetensors/dtypes_torch.safetensors")),
    ]));
    let tensors = doc["files"][0]["tensors"].as_array().unwrap();
    let c64 = tensors.iter().find(|t| t["name"] == "complex64").unwrap();
    assert_eq!(c64["dtypes"], serde_json::json!(["f32:complex64"]));
    assert_eq!(c64["components"]["data"]["logical_type"], "complex64");
    assert_eq!(doc["files"][0]["metadata"]["format"], "pt");
}

#[test]
fn bad_inputs_give_one_clear_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.zt");
    std::fs::write(&garbage, b"this is not a tensor file at all").unwrap();
    let missing = dir.path().join("missing.safetensors");

    let err = fails(zt(["info", p(&garbage)]), 1, "garbage.zt");
    assert!(err.starts_with("zt: error: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    fails(zt(["info", p(&missing)]), 1, "missing.safetensors");
    fails(zt(["verify", p(&garbage)]), 1, "garbage.zt");
    fails(
        zt(["convert", p(&missing), "-o", p(&dir.path().join("o.zt"))]),
        1,
        "No such file",
    );
    assert!(!dir.path().join("o.zt").exists());

    // One bad file among good ones: the good ones are still listed.
    let o = zt(["info", p(&garbage), p(&fixture("zt1/single_f32.zt"))]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&o).contains("single_f32.zt: zt, 1 tensor"),
        "{}",
        stdout(&o)
    );

    // A fixture that is refused on purpose: the tensor is named.
    fails(
        zt(["verify", p(&fixture("npz/object.npy"))]),
        1,
        "tensor 'object'",
    );
}

#[test]
fn usage_errors_exit_2() {
    let o = zt(["frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = zt(["info"]);
    assert_eq!(o.status.code(), Some(2));
    let o = zt(["convert", "a.zt"]); // no -o
    assert_eq!(o.status.code(), Some(2));
    let o = zt([
        "compress", "a.zt", "-o", "b.zt", "--zstd", "3", "--codec", "max",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = zt(["compress", "a.zt", "-o", "b.zt", "--zstd", "99"]);
    assert_eq!(o.status.code(), Some(2));
    let o = zt(["diff", "only-one.zt"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(ok(zt(["--help"])).contains("Exit status"));
}

#[test]
fn convert_every_format_to_zt_and_back_compares_equal() {
    let dir = tempfile::tempdir().unwrap();
    for rel in ONE_OF_EACH {
        let src = fixture(rel);
        for (i, storage) in [
            vec![],
            vec!["--zstd", "3", "--checksum", "crc32c"],
            vec!["--codec", "fast", "--checksum", "sha256"],
        ]
        .into_iter()
        .enumerate()
        {
            let out = dir.path().join(format!("{i}.zt"));
            let mut args = vec!["convert", p(&src), "-o", p(&out), "--force"];
            args.extend(storage);
            let text = ok(zt(&args));
            assert!(text.contains("written"), "{text}");
            ok(zt(["diff", p(&src), p(&out)]));
            ok(zt(["verify", "--deep", p(&out)]));
        }
    }
    let r = ZtReader::open(dir.path().join("1.zt")).unwrap();
    let info = r.info(r.names()[0]).unwrap();
    let data = info.components.values().next().unwrap();
    assert_eq!(data.encoding, ztensor::Encoding::Zstd);
    assert!(
        data.digest
            .as_ref()
            .unwrap()
            .to_string()
            .starts_with("crc32c:")
    );
}

#[test]
fn outputs_are_never_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.zt");
    std::fs::write(&out, b"precious").unwrap();
    let src = fixture("zt1/dtypes.zt");
    for args in [
        vec!["convert", p(&src), "-o", p(&out)],
        vec!["compress", p(&src), "-o", p(&out)],
        vec!["decompress", p(&src), "-o", p(&out)],
        vec!["merge", p(&src), "-o", p(&out)],
        vec!["migrate", p(&src), "-o", p(&out)],
        vec!["remove", p(&src), "f32", "-o", p(&out)],
    ] {
        fails(zt(&args), 1, "already exists; pass --force");
        assert_eq!(std::fs::read(&out).unwrap(), b"precious", "{args:?}");
    }
    let st = dir.path().join("out.safetensors");
    std::fs::write(&st, b"precious").unwrap();
    fails(
        zt(["convert", p(&fixture("zt1/single_f32.zt")), "-o", p(&st)]),
        1,
        "already exists",
    );
    assert_eq!(std::fs::read(&st).unwrap(), b"precious");

    ok(zt(["convert", p(&src), "-o", p(&out), "--force"]));
    ok(zt(["diff", p(&src), p(&out)]));
    // Nothing but the output is left in the directory (no temporary files).
    let entries: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
}

#[test]
fn compress_and_decompress_restore_safetensors_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["dtypes_torch", "edge_cases", "padded_header_handmade"] {
        let src = fixture(&format!("safetensors/{name}.safetensors"));
        for codec in [None, Some("max")] {
            let zt_path = dir.path().join(format!("{name}.zt"));
            let mut args = vec!["compress", p(&src), "-o", p(&zt_path), "--force"];
            args.extend(codec.map(|c| ["--codec", c]).into_iter().flatten());
            ok(zt(&args));
            let r = ZtReader::open(&zt_path).unwrap();
            let encodings = r
                .names()
                .iter()
                .map(|n| r.info(n).unwrap().components["data"].encoding.to_string())
                .collect::<std::collections::BTreeSet<_>>();
            let want = if codec.is_some() { "ztc1" } else { "zstd" };
            assert!(encodings.iter().all(|e| e == want), "{name}: {encodings:?}");

            let back = dir.path().join(format!("{name}.safetensors"));
            ok(zt(["decompress", p(&zt_path), "-o", p(&back), "--force"]));
            assert_eq!(
                std::fs::read(&back).unwrap(),
                std::fs::read(&src).unwrap(),
                "{name}"
            );

            let raw = dir.path().join(format!("{name}-raw.zt"));
            ok(zt(["decompress", p(&zt_path), "-o", p(&raw), "--force"]));
            let r = ZtReader::open(&raw).unwrap();
            for n in r.names() {
                assert_eq!(
                    r.info(n).unwrap().components["data"].encoding,
                    ztensor::Encoding::Raw
                );
            }
            ok(zt(["diff", p(&src), p(&raw)]));
        }
    }
    // safetensors output takes one input and no .zt storage options.
    let out = dir.path().join("x.safetensors");
    let one = fixture("zt1/single_f32.zt");
    fails(
        zt(["convert", p(&one), p(&one), "-o", p(&out)]),
        1,
        "one input",
    );
    fails(
        zt(["convert", p(&one), "-o", p(&out), "--zstd", "3"]),
        1,
        "apply to .zt output",
    );
    // A tensor safetensors cannot hold is refused by name.
    fails(
        zt(["convert", p(&fixture("zt1/sparse.zt")), "-o", p(&out)]),
        1,
        "coo",
    );
    assert!(!out.exists());
}

#[test]
fn verify_checks_digests_and_names_the_bad_tensor() {
    for rel in ONE_OF_EACH {
        let text = ok(zt(["verify", "--deep", p(&fixture(rel))]));
        assert!(text.starts_with("OK "), "{rel}: {text}");
    }
    let text = ok(zt(["verify", p(&fixture("zt1/checksums.zt"))]));
    assert!(text.contains("6 digests checked"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.zt");
    let options = ComponentOptions::raw().with_checksum(ChecksumAlgorithm::Crc32c);
    write_zt(&path, &[("a", b"aaaa"), ("b", b"bbbb")], options);
    ok(zt(["verify", p(&path)]));
    let offset = ZtReader::open(&path).unwrap().info("b").unwrap().components["data"]
        .location
        .unwrap()
        .offset;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(b"X", offset).unwrap();
    let o = zt(["verify", p(&path), p(&fixture("zt1/single_f32.zt"))]);
    let err = fails(o, 1, "tensor 'b'");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(!err.contains("tensor 'a'"), "{err}");

    // A zstd component whose bytes are damaged: only --deep decodes it (no digest here).
    let z = dir.path().join("z.zt");
    write_zt(&z, &[("z", &[7u8; 4096])], ComponentOptions::zstd(3));
    let location = ZtReader::open(&z).unwrap().info("z").unwrap().components["data"]
        .location
        .unwrap();
    let file = std::fs::OpenOptions::new().write(true).open(&z).unwrap();
    file.write_all_at(&[0xFF; 4], location.offset + location.length - 4)
        .unwrap();
    ok(zt(["verify", p(&z)]));
    fails(zt(["verify", "--deep", p(&z)]), 1, "tensor 'z'");
}

#[test]
fn diff_reports_differences_and_exits_like_cmp() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.zt");
    let b = dir.path().join("b.zt");
    let raw = ComponentOptions::raw();
    write_zt(
        &a,
        &[("same", b"1234"), ("changed", b"abcd"), ("gone", b"x")],
        raw,
    );
    let mut w = Writer::create(&b).unwrap();
    w.set_attribute("note", "only in b");
    w.add_dense("same", [4], DType::U8, b"1234", ComponentOptions::zstd(3))
        .unwrap();
    w.add_dense("changed", [4], DType::U8, b"abcX", raw)
        .unwrap();
    w.add_dense("new", [1], DType::U8, b"y", raw).unwrap();
    w.add_dense("gone2", [2], DType::U16, b"zzzz", raw).unwrap();
    w.finish().unwrap();

    let o = zt(["diff", p(&a), p(&b)]);
    assert_eq!(o.status.code(), Some(1));
    let text = stdout(&o);
    assert!(text.contains("changed: bytes"), "{text}");
    assert!(text.contains("1 equal, 1 different"), "{text}");

    let o = zt(["diff", "--json", p(&a), p(&b)]);
    assert_eq!(o.status.code(), Some(1));
    let doc: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["a"], p(&a));
    assert_eq!(doc["b"], p(&b));
    assert_eq!(doc["equal"], false);
    assert_eq!(doc["only_in_a"], serde_json::json!(["gone"]));
    assert_eq!(doc["only_in_b"], serde_json::json!(["gone2", "new"]));
    assert_eq!(
        doc["different"],
        serde_json::json!([{"name": "changed", "differences": ["bytes"]}])
    );
    assert_eq!(doc["equal_tensors"], serde_json::json!(["same"]));
    assert_eq!(
        doc["metadata"],
        serde_json::json!({"only_in_a": [], "only_in_b": ["note"], "different": []})
    );

    // Shape and dtype differences are named, and bytes are not compared then.
    let c = dir.path().join("c.zt");
    let mut w = Writer::create(&c).unwrap();
    w.add_dense("changed", [2], DType::U16, b"abcd", raw)
        .unwrap();
    w.finish().unwrap();
    let o = zt(["diff", "--json", p(&a), p(&c)]);
    let doc: Json = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        doc["different"][0]["differences"],
        serde_json::json!(["shape", "dtype"])
    );

    // Equal files, metadata ignored on request.
    ok(zt(["diff", p(&a), p(&a)]));
    let d = dir.path().join("d.zt");
    let mut w = Writer::create(&d).unwrap();
    w.set_attribute("k", 1i64);
    for (n, bytes) in [
        ("same", b"1234" as &[u8]),
        ("changed", b"abcd"),
        ("gone", b"x"),
    ] {
        w.add_dense(n, [bytes.len() as u64], DType::U8, bytes, raw)
            .unwrap();
    }
    w.finish().unwrap();
    assert_eq!(zt(["diff", p(&a), p(&d)]).status.code(), Some(1));
    let doc = json(zt(["diff", "--json", "--ignore-metadata", p(&a), p(&d)]));
    assert_eq!(doc["equal"], true);

    // Trouble is 2, as with cmp.
    fails(
        zt(["diff", p(&a), p(&dir.path().join("nope.zt"))]),
        2,
        "nope.zt",
    );
}

#[test]
fn merge_refuses_duplicates_unless_renaming() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a.zt");
    let b = dir.path().join("b.zt");
    write_zt(&a, &[("w", b"aa"), ("x", b"xx")], ComponentOptions::raw());
    write_zt(&b, &[("w", b"bb"), ("y", b"yy")], ComponentOptions::raw());
    let st = fixture("safetensors/unaligned_handmade.safetensors");
    let out = dir.path().join("m.zt");
    fails(
        zt(["merge", p(&a), p(&b), "-o", p(&out)]),
        1,
        "tensor 'w' is in both",
    );
    assert!(!out.exists());

    let o = zt([
        "merge",
        p(&a),
        p(&b),
        p(&st),
        "-o",
        p(&out),
        "--rename-duplicates",
        "--zstd",
        "5",
    ]);
    let err = stderr(&o);
    ok(o);
    assert!(err.contains("'w' is written as 'w#2'"), "{err}");
    let r = ZtReader::open(&out).unwrap();
    assert_eq!(r.len(), 8);
    assert_eq!(&*r.dense("w").unwrap(), b"aa");
    assert_eq!(&*r.dense("w#2").unwrap(), b"bb");
    assert_eq!(&*r.dense("y").unwrap(), b"yy");
    let st_reader = ztensor::open(&st).unwrap();
    assert_eq!(r.dense("b_f32").unwrap(), st_reader.dense("b_f32").unwrap());
}

#[test]
fn append_adds_tensors_and_refuses_duplicates_without_touching_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f.zt");
    std::fs::copy(fixture("zt1/append_base.zt"), &file).unwrap();
    let src = fixture("npz/dtypes.npz");
    let text = ok(zt([
        "append",
        p(&file),
        "--from",
        p(&src),
        p(&fixture("gguf/dense.gguf")),
        "--checksum",
        "sha256",
    ]));
    assert!(text.contains("added"), "{text}");
    let npz = ztensor::open(&src).unwrap();
    let r = ZtReader::open(&file).unwrap();
    assert_eq!(r.len(), 3 + npz.len() + 12);
    for name in npz.names() {
        assert_eq!(r.dense(name).unwrap(), npz.dense(name).unwrap(), "{name}");
    }
    assert!(r.info("a").is_ok());
    ok(zt(["verify", "--deep", p(&file)]));
    drop(r);

    let before = std::fs::read(&file).unwrap();
    fails(zt(["append", p(&file), "--from", p(&src)]), 1, "already in");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    // Only a .zt file can be appended to.
    let npz = dir.path().join("copy.npz");
    std::fs::copy(&src, &npz).unwrap();
    fails(zt(["append", p(&npz), "--from", p(&src)]), 1, "copy.npz");
}

#[test]
fn remove_in_place_and_into_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = fixture("zt1/remove_src.zt");
    let out = dir.path().join("removed.zt");
    ok(zt(["remove", p(&src), "drop1", "drop2", "-o", p(&out)]));
    // The same tensors as zTensor 1.2.3's own remove gave.
    ok(zt(["diff", p(&out), p(&fixture("zt1/removed.zt"))]));

    let file = dir.path().join("f.zt");
    std::fs::copy(&src, &file).unwrap();
    let text = ok(zt(["rm", p(&file), "drop1"]));
    assert!(text.contains("1 tensor removed, 5 left"), "{text}");
    assert!(!ZtReader::open(&file).unwrap().contains("drop1"));

    let before = std::fs::read(&file).unwrap();
    fails(
        zt(["rm", p(&file), "drop2", "nosuch"]),
        1,
        "tensor 'nosuch' not found",
    );
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let entries = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(entries, 2, "no temporary file is left behind");
}

#[test]
fn migrate_legacy_and_zt2_to_current() {
    let dir = tempfile::tempdir().unwrap();
    for rel in [
        "zt1/legacy_v01.zt",
        "zt1/legacy_empty.zt",
        "zt2/dtypes.zt",
        "zt1/sparse.zt",
    ] {
        let out = dir.path().join("m.zt");
        let text = ok(zt(["migrate", p(&fixture(rel)), "-o", p(&out), "--force"]));
        assert!(text.contains(" from "), "{text}");
        assert_eq!(&std::fs::read(&out).unwrap()[..8], b"ZTEN1000", "{rel}");
        ok(zt(["diff", p(&fixture(rel)), p(&out)]));
        ok(zt(["verify", "--deep", p(&out)]));
    }
    let text = ok(zt([
        "migrate",
        p(&fixture("zt1/legacy_v01.zt")),
        "-o",
        p(&dir.path().join("l.zt")),
    ]));
    assert!(text.contains("legacy ZTEN0001"), "{text}");
    fails(
        zt([
            "migrate",
            p(&fixture("safetensors/dtypes_torch.safetensors")),
            "-o",
            p(&dir.path().join("x.zt")),
        ]),
        1,
        "convert it instead",
    );
}

#[test]
fn delta_create_and_apply_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.zt");
    let new = dir.path().join("new.zt");
    let big: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
    let mut changed = big.clone();
    changed[1000] ^= 1;
    write_zt(&base, &[("w", &big), ("v", &big)], ComponentOptions::raw());
    write_zt(
        &new,
        &[("w", &big), ("v", &changed), ("extra", b"abc")],
        ComponentOptions::raw(),
    );
    let delta = dir.path().join("d.zt");
    let text = ok(zt(["delta", "create", p(&base), p(&new), "-o", p(&delta)]));
    assert!(text.contains("1 unchanged"), "{text}");
    assert!(std::fs::metadata(&delta).unwrap().len() < 16 << 10);

    ok(zt(["verify", p(&delta)]));
    let err = fails(zt(["verify", "--deep", p(&delta)]), 1, "base");
    assert!(err.contains("--base"), "{err}");
    ok(zt(["verify", "--deep", "--base", p(&base), p(&delta)]));
    fails(
        zt(["verify", "--base", p(&new), p(&delta)]),
        1,
        "wrong base",
    );

    let out = dir.path().join("applied.zt");
    ok(zt(["delta", "apply", p(&base), p(&delta), "-o", p(&out)]));
    ok(zt(["diff", p(&new), p(&out)]));
    fails(
        zt(["delta", "apply", p(&base), p(&delta), "-o", p(&out)]),
        1,
        "already exists",
    );
    fails(
        zt([
            "delta",
            "apply",
            p(&new),
            p(&delta),
            "-o",
            p(&dir.path().join("x.zt")),
        ]),
        1,
        "wrong base",
    );
}

#[test]
fn demo_runs_the_main_job() {
    let dir = tempfile::tempdir().unwrap();
    let text = ok(zt(["demo", "--size", "1", "--dir", p(dir.path())]));
    assert!(text.contains("OK: all 12 tensors byte-identical"), "{text}");
    assert!(text.contains("is rejected"), "{text}");
    let raw = dir.path().join("sample.zt");
    let zstd = dir.path().join("sample-zstd.zt");
    assert!(raw.exists() && zstd.exists());
    assert!(!dir.path().join("sample-corrupted.zt").exists());
    ok(zt(["diff", p(&raw), p(&zstd)]));
    fails(
        zt(["demo", "--size", "0", "--dir", p(dir.path())]),
        1,
        "--size",
    );
}

#[test]
fn an_interrupted_append_is_reported_but_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.zt");
    std::fs::copy(fixture("zt1/single_f32.zt"), &path).unwrap();
    // What a crash in the middle of an append leaves: bytes after the last complete footer.
    let len = std::fs::metadata(&path).unwrap().len();
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all_at(&[0xAB; 100], len).unwrap();

    let text = ok(zt(["info", p(&path)]));
    assert!(text.contains("append that never finished"), "{text}");
    let doc = json(zt(["info", "--json", p(&path)]));
    assert_eq!(doc["files"][0]["unfinished_tail"], 100);
    let o = zt(["verify", p(&path)]);
    assert!(stderr(&o).contains("zt: warning:"), "{}", stderr(&o));
    ok(o);
    // The next append starts from the committed footer.
    ok(zt([
        "append",
        p(&path),
        "--from",
        p(&fixture("npz/v3.npy")),
    ]));
    let doc = json(zt(["info", "--json", p(&path)]));
    assert_eq!(doc["files"][0]["unfinished_tail"], 0);
    assert_eq!(doc["files"][0]["tensor_count"], 2);
}

#[test]
fn exact_sizes_on_request() {
    let path = fixture("zt1/checksums.zt");
    let text = ok(zt(["info", "--bytes", p(&path)]));
    assert!(text.contains("463 B"), "{text}");
    assert!(text.contains("800 B"), "{text}");
}
