//! Resource limits (spec/limits.md): safetensors headers whose lengths, shapes and offsets lie
//! give a clear error, and opening never allocates more than a bounded multiple of the file.
//!
//! One test in this binary, so the process-wide allocation counter sees only its own work.

use zt_core::{Error, TensorReader};
use zt_safetensors::{MAX_HEADER_LEN, SafetensorsReader};

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

/// Worst case documented in spec/limits.md: about 1.9 KiB of `TensorInfo` per tensor entry of
/// 45 bytes or more of JSON (~40x).
const MULTIPLE: usize = 64;
const SLACK: usize = 1 << 20;

fn file(n: u64, header: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = n.to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

fn open_and_read(path: &std::path::Path) -> Result<usize, Error> {
    let reader = SafetensorsReader::open(path)?;
    for name in reader.names() {
        reader.dense(name)?;
    }
    Ok(reader.len())
}

#[test]
fn lying_lengths_are_refused_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.safetensors");
    let run = |name: &str, bytes: &[u8]| -> Result<usize, Error> {
        std::fs::write(&path, bytes).unwrap();
        let (result, peak) = zt_testkit::CountingAllocator::measure(|| open_and_read(&path));
        let bound = MULTIPLE * bytes.len() + SLACK;
        let ratio = peak as f64 / bytes.len() as f64;
        println!(
            "{name}: {} bytes, peak {peak} ({ratio:.1}x): {result:?}",
            bytes.len()
        );
        assert!(
            peak <= bound,
            "{name}: allocated {peak} bytes (bound {bound})"
        );
        result
    };
    let refused = |name: &str, bytes: &[u8], expected: fn(&Error) -> bool| {
        let err = run(name, bytes).expect_err(name);
        assert!(expected(err.kind()), "{name}: unexpected error {err}");
    };

    let entry = r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
    for n in [1 << 40, u64::MAX, MAX_HEADER_LEN + 1] {
        refused(
            "header length beyond the limit",
            &file(n, entry.as_bytes(), &[0; 4]),
            |e| matches!(e, Error::LimitExceeded { limit, .. } if *limit == MAX_HEADER_LEN),
        );
    }
    refused(
        "header length past the end",
        &file(MAX_HEADER_LEN, entry.as_bytes(), &[0; 4]),
        |e| matches!(e, Error::Truncated { .. }),
    );

    // A shape of 2^60 elements over four bytes, and one whose byte count overflows.
    type Check = fn(&Error) -> bool;
    let lying: [(&str, &str, Check); 2] = [
        ("U8", "[1152921504606846976]", |e| {
            matches!(e, Error::LengthMismatch { .. })
        }),
        ("F32", "[1152921504606846976]", |e| {
            matches!(e, Error::ShapeOverflow(_))
        }),
    ];
    for (dtype, shape, expected) in lying {
        let header =
            format!(r#"{{"a":{{"dtype":"{dtype}","shape":{shape},"data_offsets":[0,4]}}}}"#);
        let bytes = file(header.len() as u64, header.as_bytes(), &[0; 4]);
        refused("shape of 2^60 elements", &bytes, expected);
    }
    // Offsets claiming 2^60 bytes of data.
    let header = r#"{"a":{"dtype":"U8","shape":[1152921504606846976],"data_offsets":[0,1152921504606846976]}}"#;
    refused(
        "data_offsets of 2^60 bytes",
        &file(header.len() as u64, header.as_bytes(), &[0; 4]),
        |e| matches!(e, Error::OutOfBounds { .. }),
    );

    // A shape of a million dimensions (one JSON digit and a comma each).
    let dims = vec!["1"; 1 << 20].join(",");
    let header = format!(r#"{{"a":{{"dtype":"U8","shape":[{dims}],"data_offsets":[0,1]}}}}"#);
    assert_eq!(
        run(
            "a million dimensions",
            &file(header.len() as u64, header.as_bytes(), &[7])
        )
        .unwrap(),
        1
    );

    // 50,000 zero-size tensors (distinct names), the most bookkeeping per header byte.
    let mut header = String::from("{");
    for i in 0..50_000u32 {
        if i > 0 {
            header.push(',');
        }
        header.push_str(&format!(
            r#""{i}":{{"dtype":"U8","shape":[0],"data_offsets":[0,0]}}"#
        ));
    }
    header.push('}');
    assert_eq!(
        run(
            "50,000 empty tensors",
            &file(header.len() as u64, header.as_bytes(), b"")
        )
        .unwrap(),
        50_000
    );

    // 10 MB of metadata in one string value.
    let header = format!(r#"{{"__metadata__":{{"k":"{}"}}}}"#, "x".repeat(10 << 20));
    assert_eq!(
        run(
            "10 MB of metadata",
            &file(header.len() as u64, header.as_bytes(), b"")
        )
        .unwrap(),
        0
    );
}
