//! Resource limits (spec/limits.md): GGUF files whose counts lie at every level give a clear
//! error, and the largest legal metadata per byte stays within the documented multiple.
//!
//! One test in this binary, so the process-wide allocation counter sees only its own work.

mod common;

use common::{Gguf, VT_ARRAY, info, kv, temp_file};
use zt_core::{Error, TensorReader};
use zt_gguf::{GgufReader, MAX_ARRAY_DEPTH};

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

/// Worst case documented in spec/limits.md: about 2.7 KiB of `TensorInfo` (its component and
/// attribute maps) per tensor info of 25 bytes or more, i.e. ~110x; metadata costs at most a
/// 32-byte `Value` per one-byte item.
const MULTIPLE: usize = 128;
const SLACK: usize = 1 << 20;

const VT_U8: u32 = 0;

fn open_and_read(bytes: &[u8]) -> Result<usize, Error> {
    let file = temp_file(bytes);
    let reader = GgufReader::open(file.path())?;
    for name in reader.names() {
        reader.component(name, "data")?;
    }
    Ok(reader.len())
}

fn measure(name: &str, bytes: &[u8]) -> Result<usize, Error> {
    let (result, peak) = zt_testkit::CountingAllocator::measure(|| open_and_read(bytes));
    let bound = MULTIPLE * bytes.len() + SLACK;
    assert!(
        peak <= bound,
        "{name}: allocated {peak} bytes (bound {bound})"
    );
    let ratio = peak as f64 / bytes.len() as f64;
    println!(
        "{name}: {} bytes, peak {peak} ({ratio:.1}x): {result:?}",
        bytes.len()
    );
    result
}

#[test]
fn lying_counts_are_refused_within_bounded_memory() {
    // Arrays nested as deep as allowed, each claiming as many items as the bytes left could
    // hold, around an array of u8 claiming every byte: each count passes the "fits in what is
    // left" check on its own, so none may be reserved in full before its items arrive.
    let size = 1 << 20;
    let mut value = Vec::new();
    for level in 0..MAX_ARRAY_DEPTH - 1 {
        let left = (size - 12 * (level as usize + 1)) as u64;
        value.extend(VT_ARRAY.to_le_bytes());
        value.extend((left / 12).to_le_bytes());
    }
    value.extend(VT_U8.to_le_bytes());
    // What is left after this count (and the two tensors' infos and data that follow).
    value.extend(((size - value.len() - 8) as u64).to_le_bytes());
    value.resize(size, 0);
    let mut g = Gguf::two_tensors();
    g.kvs.push(kv("nested", VT_ARRAY, &value));
    let err = measure("nested arrays claiming every byte", &g.bytes()).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            Error::Truncated { .. } | Error::Malformed { .. }
        ),
        "{err}"
    );

    // The same claim at every level of a legal file: one array of a million u8 values.
    let mut ints = VT_U8.to_le_bytes().to_vec();
    ints.extend((1u64 << 20).to_le_bytes());
    ints.resize(ints.len() + (1 << 20), 7);
    let mut g = Gguf::two_tensors();
    g.kvs.push(kv("bytes", VT_ARRAY, &ints));
    assert_eq!(
        measure("a million u8 metadata values", &g.bytes()).unwrap(),
        2
    );

    // A KV count of 2^40 and a tensor count of 2^40 in a small file.
    let g = Gguf::two_tensors();
    for (what, bytes) in [
        ("2^40 key-value pairs", g.bytes_with_counts(2, 1 << 40)),
        ("2^40 tensor infos", g.bytes_with_counts(1 << 40, 1)),
    ] {
        let err = measure(what, &bytes).unwrap_err();
        assert!(
            matches!(err.kind(), Error::Malformed { reason, .. } if reason.contains("cannot fit")),
            "{what}: {err}"
        );
    }

    // Many tiny tensors (empty data, distinct names): the per-tensor bookkeeping stays within
    // the multiple too.
    let mut g = Gguf::default();
    for i in 0..20_000u32 {
        g.infos.push(info(format!("{i}").as_bytes(), &[0], 0, 0));
    }
    assert_eq!(measure("20,000 empty tensors", &g.bytes()).unwrap(), 20_000);
}
