//! The weight codec as a `.zt` component encoding (`ztc1`) and checkpoint-delta files.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use zt_codec::Effort;
use zt_core::{ChecksumAlgorithm, DType, Encoding, Error, Format, TensorReader};
use zt_format::{
    BaseIdentity, ComponentOptions, DeltaOptions, Writer, ZtReader, remove_tensors, write_delta,
};

/// Deterministic pseudo-random bytes (xorshift), so tests need no rand crate.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// bf16-like weights: small exponents spread around 2^-4, random mantissas.
fn weights_bf16(count: usize, seed: u64) -> Vec<u8> {
    let r = noise(count * 2, seed);
    r.chunks(2)
        .flat_map(|p| {
            let exponent = 118 + (p[0] % 6) as u16;
            let sign = (p[1] as u16 & 1) << 15;
            let bits = sign | (exponent << 7) | (p[1] as u16 >> 1);
            bits.to_le_bytes()
        })
        .collect()
}

fn codec_file(
    dir: &Path,
    tensors: &[(&str, DType, Vec<u8>)],
    options: ComponentOptions,
) -> PathBuf {
    let path = dir.join("codec.zt");
    let mut w = Writer::create(&path).unwrap();
    for (name, dtype, bytes) in tensors {
        let n = bytes.len() as u64 / dtype.size() as u64;
        w.add_dense(name, [n], *dtype, bytes, options).unwrap();
    }
    w.finish().unwrap();
    path
}

#[test]
fn codec_components_round_trip_for_every_effort() {
    let dir = tempfile::tempdir().unwrap();
    let tensors = vec![
        ("bf16", DType::BF16, weights_bf16(100_003, 1)),
        ("f32", DType::F32, noise(4 * 10_001, 2)),
        ("i8", DType::I8, vec![3u8; 4097]),
        ("u8_tail", DType::U8, noise(13, 3)),
        ("empty", DType::F16, Vec::new()),
    ];
    for effort in [Effort::Fast, Effort::Default, Effort::Max] {
        let options = ComponentOptions::codec(effort).with_checksum(ChecksumAlgorithm::Crc32c);
        let path = codec_file(dir.path(), &tensors, options);
        let r = ZtReader::open(&path).unwrap();
        for (name, _, bytes) in &tensors {
            let info = r.info(name).unwrap();
            let data = &info.components["data"];
            assert_eq!(data.encoding, Encoding::Other("ztc1".into()), "{name}");
            assert_eq!(data.decoded_len, Some(bytes.len() as u64));
            assert_eq!(&r.dense(name).unwrap()[..], &bytes[..], "{name} {effort:?}");
            let mut out = vec![0u8; bytes.len()];
            r.read_component_into(name, "data", &mut out).unwrap();
            assert_eq!(out, *bytes, "{name} {effort:?}");
        }
        assert_eq!(r.verify_all(true).unwrap(), tensors.len());
        // The bf16 weights compress (exponents carry ~2.6 of their 8 bits).
        let stored = r.stored_bytes("bf16", "data").unwrap().len();
        assert!(stored < tensors[0].2.len() * 85 / 100, "{stored}");
    }
}

#[test]
fn a_damaged_codec_component_is_an_error_naming_the_tensor() {
    let dir = tempfile::tempdir().unwrap();
    let tensors = vec![("w", DType::BF16, weights_bf16(50_000, 7))];
    // Without a .zt digest the frame's own crc32c still catches the damage.
    for checksum in [ChecksumAlgorithm::None, ChecksumAlgorithm::Crc32c] {
        let path = codec_file(
            dir.path(),
            &tensors,
            ComponentOptions::codec(Effort::Default).with_checksum(checksum),
        );
        let range = ZtReader::open(&path).unwrap().info("w").unwrap().components["data"]
            .location
            .unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[(range.offset + range.length / 2) as usize] ^= 0x10;
        std::fs::write(&path, &bytes).unwrap();
        let r = ZtReader::open(&path).unwrap();
        let e = r.dense("w").unwrap_err();
        assert_eq!(e.tensor(), Some("w"), "{e}");
        assert!(
            matches!(
                e.kind(),
                Error::ChecksumMismatch { .. } | Error::Decompress { .. }
            ),
            "{e}"
        );
        let mut out = vec![0u8; tensors[0].2.len()];
        assert!(r.read_component_into("w", "data", &mut out).is_err());
    }
}

#[test]
fn codec_tensors_survive_append_and_remove() {
    let dir = tempfile::tempdir().unwrap();
    let a = weights_bf16(10_000, 11);
    let b = noise(8000, 12);
    let path = codec_file(
        dir.path(),
        &[("a", DType::BF16, a.clone())],
        ComponentOptions::codec(Effort::Fast),
    );
    let mut w = Writer::append(&path).unwrap();
    w.add_dense(
        "b",
        [2000],
        DType::F32,
        &b,
        ComponentOptions::codec(Effort::Default),
    )
    .unwrap();
    w.finish().unwrap();
    let out = dir.path().join("removed.zt");
    remove_tensors(&path, &out, &["b"]).unwrap();
    let r = ZtReader::open(&path).unwrap();
    assert_eq!(&r.dense("a").unwrap()[..], &a[..]);
    assert_eq!(&r.dense("b").unwrap()[..], &b[..]);
    let r = ZtReader::open(&out).unwrap();
    assert_eq!(r.names(), vec!["a"]);
    assert_eq!(&r.dense("a").unwrap()[..], &a[..]);
}

#[test]
fn a_frame_larger_than_its_declared_length_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = vec![0u8; 1 << 20];
    let frame = zt_codec::compress(&data, Some(DType::U8), &Default::default()).unwrap();
    let path = dir.path().join("lying.zt");
    let mut w = Writer::create(&path).unwrap();
    let mut t = w.begin_tensor("w", [1024u64], Format::Dense).unwrap();
    // Declares 1 KiB; the frame holds 1 MiB (a small frame can expand enormously).
    t.write_encoded(
        "data",
        DType::U8,
        None,
        Encoding::Other("ztc1".into()),
        &frame,
        1024,
        ChecksumAlgorithm::None,
    )
    .unwrap();
    t.finish().unwrap();
    w.finish().unwrap();
    let r = ZtReader::open(&path).unwrap();
    let e = r.dense("w").unwrap_err();
    assert!(
        matches!(e.kind(), Error::LimitExceeded { .. }),
        "{e} / {:?}",
        e.kind()
    );
    let mut out = vec![0u8; 1024];
    assert!(r.read_component_into("w", "data", &mut out).is_err());
}

#[test]
fn ztensor_1_2_3_refuses_a_codec_file_cleanly() {
    let Some(py) = std::env::var_os("ZT_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "ZT_PYTHON must be set in CI"
        );
        eprintln!("skipped: set ZT_PYTHON to the test venv's python (tests/run.sh does)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = codec_file(
        dir.path(),
        &[("w", DType::BF16, weights_bf16(1000, 5))],
        ComponentOptions::codec(Effort::Default),
    );
    let script = "import sys, ztensor\n\
        try:\n\
        \x20   r = ztensor.Reader(sys.argv[1])\n\
        \x20   r.read_numpy('w')\n\
        except Exception as e:\n\
        \x20   print('refused:', e)\n\
        \x20   sys.exit(0)\n\
        sys.exit('ztensor 1.2.3 read a ztc1 file')\n";
    let out = Command::new(py)
        .args(["-c", script])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("ztc1"), "{stdout}");
}

/// A base checkpoint and a fine-tuned one: `same` unchanged, `tuned` with ~5% of its weights
/// changed, `replaced` completely different, `resized` of another length, `added` new.
struct Checkpoints {
    _dir: tempfile::TempDir,
    base: PathBuf,
    target: PathBuf,
    delta: PathBuf,
}

fn checkpoints() -> Checkpoints {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.zt");
    let target = dir.path().join("target.zt");
    let same = weights_bf16(40_000, 21);
    let tuned_base = weights_bf16(200_000, 22);
    let mut tuned = tuned_base.clone();
    for (i, b) in tuned.iter_mut().enumerate().step_by(40) {
        *b ^= (i % 7) as u8 + 1;
    }
    let mut w = Writer::create(&base).unwrap();
    w.set_attribute("step", 1000u64);
    let raw = ComponentOptions::raw();
    w.add_dense("same", [40_000], DType::BF16, &same, raw)
        .unwrap();
    w.add_dense("tuned", [200_000], DType::BF16, &tuned_base, raw)
        .unwrap();
    w.add_dense(
        "replaced",
        [10_000],
        DType::BF16,
        &weights_bf16(10_000, 23),
        raw,
    )
    .unwrap();
    w.add_dense("resized", [100], DType::F32, &noise(400, 24), raw)
        .unwrap();
    w.finish().unwrap();
    let mut w = Writer::create(&target).unwrap();
    w.set_attribute("step", 2000u64);
    w.add_dense("same", [40_000], DType::BF16, &same, raw)
        .unwrap();
    w.add_dense("tuned", [200_000], DType::BF16, &tuned, raw)
        .unwrap();
    w.add_dense(
        "replaced",
        [10_000],
        DType::BF16,
        &weights_bf16(10_000, 25),
        raw,
    )
    .unwrap();
    w.add_dense("resized", [200], DType::F32, &noise(800, 26), raw)
        .unwrap();
    w.add_dense("added", [64], DType::I32, &noise(256, 27), raw)
        .unwrap();
    w.finish().unwrap();
    let delta = dir.path().join("delta.zt");
    Checkpoints {
        _dir: dir,
        base,
        target,
        delta,
    }
}

#[test]
fn a_checkpoint_delta_restores_the_target_with_its_base() {
    let c = checkpoints();
    let base = ZtReader::open(&c.base).unwrap();
    let target = ZtReader::open(&c.target).unwrap();
    let summary = write_delta(&base, &target, &c.delta, &DeltaOptions::default()).unwrap();
    assert_eq!(summary.tensors, 5);
    assert_eq!(summary.copies, 1, "{summary:?}");
    assert_eq!(summary.deltas, 1, "{summary:?}");
    assert_eq!(summary.full, 3, "{summary:?}");
    let target_size = std::fs::metadata(&c.target).unwrap().len();
    assert!(summary.file_size * 4 < target_size, "{summary:?}");

    let delta = ZtReader::open(&c.delta)
        .unwrap()
        .with_base(Arc::new(ZtReader::open(&c.base).unwrap()))
        .unwrap();
    assert_eq!(
        delta.base_identity().unwrap().unwrap(),
        BaseIdentity::of_file(&c.base).unwrap()
    );
    assert_eq!(delta.metadata()["step"], target.metadata()["step"]);
    for name in target.names() {
        let expected = target.dense(name).unwrap();
        assert_eq!(&delta.dense(name).unwrap()[..], &expected[..], "{name}");
        let mut out = vec![0u8; expected.len()];
        delta.read_component_into(name, "data", &mut out).unwrap();
        assert_eq!(out, &expected[..], "{name}");
        assert_eq!(
            delta.info(name).unwrap().shape,
            target.info(name).unwrap().shape
        );
    }
    // A copy of a raw base component is a view of the base's map.
    assert!(matches!(delta.dense("same").unwrap(), Cow::Borrowed(_)));
    let data = &delta.info("same").unwrap().components["data"];
    assert_eq!(data.encoding, Encoding::Other("zt.ref".into()));
    assert_eq!(data.location.unwrap().length, 0);
}

#[test]
fn a_delta_without_its_base_or_with_the_wrong_one_is_an_error() {
    let c = checkpoints();
    let base = ZtReader::open(&c.base).unwrap();
    let target = ZtReader::open(&c.target).unwrap();
    write_delta(&base, &target, &c.delta, &DeltaOptions::default()).unwrap();

    // Without a base: standalone tensors read, delta and copy tensors name what is missing.
    let alone = ZtReader::open(&c.delta).unwrap();
    assert_eq!(
        &alone.dense("added").unwrap()[..],
        &target.dense("added").unwrap()[..]
    );
    for name in ["same", "tuned"] {
        let e = alone.dense(name).unwrap_err();
        assert!(
            matches!(e.kind(), Error::BaseRequired(b) if b == "base.zt"),
            "{e}"
        );
        assert_eq!(e.tensor(), Some(name));
    }

    // The target is not the base; a file of the base's length with other bytes is not either.
    let wrong = ZtReader::open(&c.delta)
        .unwrap()
        .with_base(Arc::new(ZtReader::open(&c.target).unwrap()));
    assert!(matches!(wrong.unwrap_err().kind(), Error::WrongBase(_)));
    let mut forged = std::fs::read(&c.base).unwrap();
    let n = forged.len();
    forged[n / 2] ^= 1;
    let forged_path = c.base.with_file_name("forged.zt");
    std::fs::write(&forged_path, &forged).unwrap();
    let e = ZtReader::open(&c.delta)
        .unwrap()
        .with_base(Arc::new(ZtReader::open(&forged_path).unwrap()))
        .unwrap_err();
    assert!(
        matches!(e.kind(), Error::WrongBase(m) if m.contains("sha256")),
        "{e}"
    );
}

#[test]
fn ztensor_1_2_3_ignores_nothing_it_cannot_read_in_a_delta_file() {
    // A delta file uses `zt.ref` and delta frames: 1.2.3 must refuse it whole.
    let Some(py) = std::env::var_os("ZT_PYTHON") else {
        eprintln!("skipped: set ZT_PYTHON to the test venv's python (tests/run.sh does)");
        return;
    };
    let c = checkpoints();
    let base = ZtReader::open(&c.base).unwrap();
    let target = ZtReader::open(&c.target).unwrap();
    write_delta(&base, &target, &c.delta, &DeltaOptions::default()).unwrap();
    let script = "import sys, ztensor\n\
        try:\n\
        \x20   ztensor.Reader(sys.argv[1]).read_numpy('same')\n\
        except Exception as e:\n\
        \x20   print('refused:', e); sys.exit(0)\n\
        sys.exit('read')\n";
    let out = Command::new(py)
        .args(["-c", script])
        .arg(&c.delta)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Refused at open, for the encoding it does not know.
    assert!(stdout.contains("unknown variant"), "{stdout}");
}
