//! The writer against the reference crate's own `serialize` (the code the Python library's
//! `serialize` / `save_file` run) on many generated inputs: every dtype, 0-d and zero-size
//! tensors, names that need escaping, metadata absent / empty / one key (with several keys the
//! reference's order is random; the fixtures cover that case).

use std::collections::{BTreeMap, HashMap};

use safetensors::tensor::TensorView;
use zt_core::TensorReader;
use zt_safetensors::{
    ALL_DTYPES, Dtype, SafetensorsReader, SafetensorsTensor, serialize_safetensors, zt_dtype,
};

const NAMES: [&str; 12] = [
    "a",
    "b",
    "model.layers.0.weight",
    "Zebra",
    "",
    "héllo",
    "名前",
    "🙂",
    "quote\"back\\slash",
    "ctl\n\t\u{1}\u{7f}",
    "z",
    "__metadata",
];

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Case {
    name: String,
    dtype: Dtype,
    shape: Vec<u64>,
    bytes: Vec<u8>,
}

fn random_case(rng: &mut Rng, name: &str) -> Case {
    let dtype = ALL_DTYPES[rng.below(ALL_DTYPES.len() as u64) as usize];
    loop {
        let rank = rng.below(4);
        let shape: Vec<u64> = (0..rank).map(|_| rng.below(6)).collect();
        let numel: u64 = shape.iter().product();
        let bits = numel * dtype.bitsize() as u64;
        if bits.is_multiple_of(8) {
            let bytes = (0..bits / 8).map(|_| rng.next() as u8).collect();
            return Case {
                name: name.to_owned(),
                dtype,
                shape,
                bytes,
            };
        }
    }
}

#[test]
fn same_bytes_as_the_reference_serialize() {
    let mut rng = Rng(0x5EED_1234_ABCD_0001);
    for round in 0..500 {
        let count = rng.below(NAMES.len() as u64 + 1) as usize;
        let mut names = NAMES.to_vec();
        // A random subset of distinct names, in random order.
        for i in (1..names.len()).rev() {
            names.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let cases: Vec<Case> = names[..count]
            .iter()
            .map(|n| random_case(&mut rng, n))
            .collect();
        let metadata: Option<BTreeMap<String, String>> = match rng.below(3) {
            0 => None,
            // The reference writes an unreadable header for empty metadata and no tensors.
            1 if count > 0 => Some(BTreeMap::new()),
            _ => Some(BTreeMap::from([(
                "format".to_owned(),
                format!("pt \"{round}\"\n"),
            )])),
        };

        let tensors: Vec<SafetensorsTensor> = cases
            .iter()
            .map(|c| {
                let (dtype, logical_type) = zt_dtype(c.dtype).unwrap();
                SafetensorsTensor {
                    name: &c.name,
                    dtype,
                    logical_type,
                    shape: &c.shape,
                    bytes: &c.bytes,
                }
            })
            .collect();
        let ours = serialize_safetensors(&tensors, metadata.as_ref()).unwrap();

        let views: Vec<(String, TensorView)> = cases
            .iter()
            .map(|c| {
                let shape = c.shape.iter().map(|&d| d as usize).collect();
                let view = TensorView::new(c.dtype, shape, &c.bytes).unwrap();
                (c.name.clone(), view)
            })
            .collect();
        let reference_metadata: Option<HashMap<String, String>> =
            metadata.clone().map(|m| m.into_iter().collect());
        let reference = safetensors::serialize(views, reference_metadata).unwrap();
        assert!(ours == reference, "round {round}: bytes differ");

        // And it reads back.
        SafetensorsReader::validate_bytes(&ours).unwrap();
    }
}

#[test]
fn written_files_read_back_unchanged() {
    let mut rng = Rng(42);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("round_trip.safetensors");
    let cases: Vec<Case> = NAMES.iter().map(|n| random_case(&mut rng, n)).collect();
    let tensors: Vec<SafetensorsTensor> = cases
        .iter()
        .map(|c| {
            let (dtype, logical_type) = zt_dtype(c.dtype).unwrap();
            SafetensorsTensor {
                name: &c.name,
                dtype,
                logical_type,
                shape: &c.shape,
                bytes: &c.bytes,
            }
        })
        .collect();
    let metadata = BTreeMap::from([
        ("b".to_owned(), "2".to_owned()),
        ("a".to_owned(), "1".to_owned()),
    ]);
    zt_safetensors::write_safetensors(&path, &tensors, Some(&metadata)).unwrap();
    let reader = SafetensorsReader::open(&path).unwrap();
    assert_eq!(reader.header_metadata(), Some(&metadata));
    let mut sorted = tensors.clone();
    sorted.sort_by(|a, b| a.name.cmp(b.name));
    assert_eq!(reader.tensors().unwrap(), sorted);
    for name in reader.names() {
        assert!(reader.dense(name).is_ok());
    }
}
