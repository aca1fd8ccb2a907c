//! The codec and checkpoint deltas through the facade: safetensors -> `.zt` (codec) ->
//! safetensors gives the original bytes; deltas between safetensors checkpoints.

use std::path::{Path, PathBuf};

use ztensor::codec::Effort;
use ztensor::delta::{self, DeltaOptions};
use ztensor::safetensors::{SafetensorsTensor, write_safetensors};
use ztensor::{ChecksumAlgorithm, Compression, ConvertOptions, DType, Encoding, Error};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/safetensors");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .collect();
    files.sort();
    assert!(files.len() >= 8);
    files
}

#[test]
fn safetensors_to_zt_and_back_is_byte_identical_for_every_fixture() {
    let dir = tempfile::tempdir().unwrap();
    for compression in [
        Compression::Codec(Effort::Default),
        Compression::Codec(Effort::Max),
        Compression::Zstd(3),
        Compression::Raw,
    ] {
        for source in fixtures() {
            let zt = dir.path().join("m.zt");
            let back = dir.path().join("back.safetensors");
            let options = ConvertOptions {
                compression,
                checksum: ChecksumAlgorithm::Crc32c,
                restorable: true,
                ..Default::default()
            };
            ztensor::convert(&[&source], &zt, &options).unwrap();
            if compression == Compression::Codec(Effort::Default) {
                let reader = ztensor::open(&zt).unwrap();
                for name in reader.names() {
                    let enc = &reader.info(name).unwrap().components["data"].encoding;
                    assert_eq!(enc, &Encoding::Other("ztc1".into()));
                }
            }
            ztensor::convert_to_safetensors(&zt, &back).unwrap();
            assert!(
                std::fs::read(&back).unwrap() == std::fs::read(&source).unwrap(),
                "{} through {compression:?} is not byte-identical",
                source.display()
            );
        }
    }
}

#[test]
fn an_edited_restorable_file_falls_back_to_the_canonical_layout() {
    let dir = tempfile::tempdir().unwrap();
    let source = fixtures()
        .into_iter()
        .find(|p| p.ends_with("dtypes_torch.safetensors"))
        .unwrap();
    let zt = dir.path().join("m.zt");
    let options = ConvertOptions {
        restorable: true,
        ..Default::default()
    };
    ztensor::convert(&[&source], &zt, &options).unwrap();
    let first = ztensor::open(&zt).unwrap().names()[0].to_owned();
    let edited = dir.path().join("edited.zt");
    ztensor::remove_tensors(&zt, &edited, &[first.as_str()]).unwrap();
    let back = dir.path().join("back.safetensors");
    ztensor::convert_to_safetensors(&edited, &back).unwrap();
    let reader = ztensor::open(&back).unwrap();
    assert!(!reader.contains(&first));
    assert_eq!(reader.len(), ztensor::open(&source).unwrap().len() - 1);
    assert!(!reader.metadata().contains_key("zt.safetensors_header"));
}

/// bf16 weights with realistic exponents.
fn weights(count: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..count)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let bits = ((x & 1) << 15) as u16
                | ((118 + (x >> 8) % 6) << 7) as u16
                | (x >> 20) as u16 & 0x7f;
            bits.to_le_bytes()
        })
        .collect()
}

fn write_checkpoint(path: &Path, tensors: &[(&str, Vec<u8>)]) {
    let shapes: Vec<[u64; 1]> = tensors.iter().map(|(_, b)| [b.len() as u64 / 2]).collect();
    let list: Vec<SafetensorsTensor<'_>> = tensors
        .iter()
        .zip(&shapes)
        .map(|((name, bytes), shape)| SafetensorsTensor::new(name, DType::BF16, shape, bytes))
        .collect();
    let metadata = [("format".to_owned(), "pt".to_owned())].into();
    write_safetensors(path, &list, Some(&metadata)).unwrap();
}

#[test]
fn a_safetensors_checkpoint_delta_applies_back_to_the_identical_file() {
    let dir = tempfile::tempdir().unwrap();
    let (base, tuned, out) = (
        dir.path().join("base.safetensors"),
        dir.path().join("tuned.safetensors"),
        dir.path().join("delta.zt"),
    );
    let frozen = weights(100_000, 1);
    let trained = weights(300_000, 2);
    let mut fine_tuned = trained.clone();
    for i in (0..fine_tuned.len()).step_by(41) {
        fine_tuned[i] ^= 0x3;
    }
    write_checkpoint(&base, &[("embed", frozen.clone()), ("layer", trained)]);
    write_checkpoint(
        &tuned,
        &[
            ("embed", frozen),
            ("layer", fine_tuned),
            ("head", weights(5000, 3)),
        ],
    );
    let summary = delta::create(&base, &tuned, &out, &DeltaOptions::default()).unwrap();
    assert_eq!((summary.copies, summary.deltas, summary.full), (1, 1, 1));
    let tuned_size = std::fs::metadata(&tuned).unwrap().len();
    assert!(
        summary.file_size * 3 < tuned_size,
        "{summary:?} vs {tuned_size}"
    );

    let restored = dir.path().join("restored.safetensors");
    delta::apply(&base, &out, &restored, &ConvertOptions::default()).unwrap();
    assert!(std::fs::read(&restored).unwrap() == std::fs::read(&tuned).unwrap());

    let standalone = dir.path().join("standalone.zt");
    delta::apply(&base, &out, &standalone, &ConvertOptions::default()).unwrap();
    let (a, b) = (
        ztensor::open(&standalone).unwrap(),
        ztensor::open(&tuned).unwrap(),
    );
    assert!(!a.metadata().contains_key("zt.base"));
    for name in b.names() {
        assert_eq!(a.dense(name).unwrap(), b.dense(name).unwrap(), "{name}");
    }

    let e = delta::open(&out, &tuned).unwrap_err();
    assert!(matches!(e.kind(), Error::WrongBase(_)), "{e}");
    let e = ztensor::open(&out).unwrap().dense("layer").unwrap_err();
    assert!(matches!(e.kind(), Error::BaseRequired(_)), "{e}");
}
