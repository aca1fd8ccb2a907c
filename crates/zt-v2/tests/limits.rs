//! Resource limits (spec/limits.md): a zTensor 2 file whose counts and lengths lie gives a clear
//! error, and opening it never allocates more than a bounded multiple of its size.
//!
//! One test in this binary, so the process-wide allocation counter sees only its own work.

use zt_core::{Error, TensorReader};
use zt_v2::{MAX_MANIFEST_LEN, OpenOptions, ZtV2Reader};

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

const MAGIC: &[u8; 8] = b"\x89ZT2\r\n\x1a\n";

/// Worst case documented in spec/limits.md: a manifest value tree costs at most 32 bytes of
/// `Value` per manifest byte (an array of one-byte integers), doubled by vector growth.
const MULTIPLE: usize = 64;
const SLACK: usize = 1 << 20;

/// Magic, the manifest at 4096, and a footer (the hash is correct unless `length` overrides).
fn container(manifest: &[u8], length: Option<u64>) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.resize(4096, 0);
    out.extend_from_slice(manifest);
    let hash = xxhash_rust::xxh3::xxh3_64(manifest);
    let length = length.unwrap_or(manifest.len() as u64);
    for field in [4096, length, hash] {
        out.extend(u64::to_le_bytes(field));
    }
    out.extend(2u32.to_le_bytes());
    out.extend(0u32.to_le_bytes());
    out.extend(MAGIC);
    out
}

/// A CBOR head with a 4-byte argument (not the shortest form, which is refused later: the
/// allocation happens, or not, before that check).
fn head32(major: u8, n: u32) -> Vec<u8> {
    let mut v = vec![(major << 5) | 26];
    v.extend(n.to_be_bytes());
    v
}

fn open_and_read(path: &std::path::Path) -> Result<(), Error> {
    let reader = ZtV2Reader::open(path)?;
    for name in reader.names() {
        for role in reader.info(name)?.components.keys() {
            reader.component(name, role)?;
        }
    }
    Ok(())
}

#[test]
fn lying_counts_are_refused_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.zt");
    let run = |name: &str, bytes: &[u8], expected: fn(&Error) -> bool| {
        std::fs::write(&path, bytes).unwrap();
        let (result, peak) = zt_testkit::CountingAllocator::measure(|| open_and_read(&path));
        let err = result.expect_err(name);
        assert!(expected(err.kind()), "{name}: unexpected error {err}");
        let bound = MULTIPLE * bytes.len() + SLACK;
        assert!(
            peak <= bound,
            "{name}: allocated {peak} bytes (bound {bound})"
        );
        println!("{name}: {} bytes, peak {peak}: {err}", bytes.len());
    };

    // Manifest length far beyond the 1 GiB limit and the file.
    run(
        "manifest length 2^40",
        &container(b"\xa0", Some(1 << 40)),
        |e| matches!(e, Error::LimitExceeded { limit, .. } if *limit == MAX_MANIFEST_LEN),
    );

    // Every container of a 32-deep nest claims as many items as bytes are left: each level's
    // count passes the "fits in what is left" check, and none is preallocated beyond what
    // arrives, so the total stays bounded by the manifest.
    let mut nest = Vec::new();
    let levels = 31;
    let size = 1 << 20;
    for level in 0..levels {
        let left = size - 5 * (level + 1);
        nest.extend(head32(
            if level % 2 == 0 { 4 } else { 5 },
            (left / 2) as u32,
        ));
    }
    nest.resize(size, 0);
    run(
        "32 nested containers claiming every byte",
        &container(&nest, None),
        |e| matches!(e, Error::Manifest(_)),
    );

    // One array of a million one-byte integers: valid CBOR, the largest Value tree per byte.
    let mut ints = head32(4, 1 << 20);
    ints.resize(ints.len() + (1 << 20), 0);
    run(
        "a million one-byte integers",
        &container(&ints, None),
        |e| matches!(e, Error::Manifest(_)),
    );

    // A byte string and a text string claiming 4 GiB in a tiny manifest.
    for major in [2, 3] {
        let mut claim = head32(major, u32::MAX);
        claim.extend([0; 16]);
        run("string claiming 4 GiB", &container(&claim, None), |e| {
            matches!(e, Error::Manifest(_))
        });
    }

    // The CBOR decoder on its own: the nest is refused, the integers decode (to 32 MiB of
    // values, the documented worst case per byte).
    let (result, peak) = zt_testkit::CountingAllocator::measure(|| zt_v2::cbor::decode(&nest));
    assert!(matches!(result, Err(Error::Manifest(_))));
    assert!(peak <= MULTIPLE * nest.len() + SLACK, "nest: {peak}");
    let (result, peak) = zt_testkit::CountingAllocator::measure(|| zt_v2::cbor::decode(&ints));
    assert!(matches!(result, Ok(zt_core::Value::Array(items)) if items.len() == 1 << 20));
    assert!(peak <= MULTIPLE * ints.len() + SLACK, "ints: {peak}");

    // `OpenOptions::max_decoded_len` refuses a compressed part above it before decoding (the
    // real ztensor 2.1.2 fixture, whose parts are small).
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/zt2/compressed.zt");
    let options = OpenOptions {
        max_decoded_len: 16,
        ..OpenOptions::default()
    };
    let reader = ZtV2Reader::open_with(&fixture, options).unwrap();
    let refused = reader.names().into_iter().find_map(|name| {
        let info = reader.info(name).ok()?;
        info.components
            .keys()
            .find_map(|role| reader.component(name, role).err())
    });
    let err = refused.expect("a part of more than 16 bytes is refused");
    assert!(
        matches!(err.kind(), Error::LimitExceeded { limit: 16, .. }),
        "{err}"
    );
}
