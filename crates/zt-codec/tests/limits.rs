//! Resource limits (spec/limits.md): ztc1 frames whose declared lengths and counts lie give a
//! clear error before the output is allocated, and parsing a frame costs a bounded multiple of
//! its size. The decoded output itself is bounded by the frame's declared length, which
//! `DecompressOptions::max_decoded_len` caps: a valid frame may expand enormously (a block
//! repeated by a copy segment), so that cap, not the frame's size, bounds what decoding costs.
//! `hostile.rs` holds the corruption corpus (truncations, bit flips, crafted headers).
//!
//! One test in this binary, so the process-wide allocation counter sees only its own work.

use zt_codec::{DecompressOptions, MAX_CHUNK_SIZE, MAX_DECODED_LEN, decompress_with, frame_info};
use zt_core::Error;

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

/// A segment table entry is at least 3 bytes and costs a 40-byte `Segment` (plus the decoder's
/// per-segment bookkeeping): ~14 bytes per frame byte.
const MULTIPLE: usize = 32;
const SLACK: usize = 1 << 20;

/// A frame from raw header fields, with a correct header checksum (and a data checksum of 0).
fn craft(decoded: u64, segments: &[(u8, u64, u64)], payload: &[u8]) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut f = b"ZTC1\x01\x00\x00".to_vec();
    varint(&mut f, decoded);
    varint(&mut f, 4096);
    varint(&mut f, segments.len() as u64);
    for &(kind, len, arg) in segments {
        f.push(kind);
        varint(&mut f, len);
        varint(&mut f, arg);
    }
    f.extend(0u32.to_le_bytes());
    let crc = crc_fast::crc32_iscsi(&f);
    f.extend(crc.to_le_bytes());
    f.extend_from_slice(payload);
    f
}

fn limited(max_decoded_len: u64) -> DecompressOptions {
    DecompressOptions {
        max_decoded_len,
        ..Default::default()
    }
}

#[test]
fn lying_frames_are_refused_before_allocating() {
    let check =
        |name: &str, frame: &[u8], opts: &DecompressOptions, expected: fn(&Error) -> bool| {
            let (result, peak) =
                zt_testkit::CountingAllocator::measure(|| decompress_with(frame, opts));
            let err = result.expect_err(name);
            assert!(expected(&err), "{name}: unexpected error {err}");
            let bound = MULTIPLE * frame.len() + SLACK;
            println!("{name}: {} bytes, peak {peak}: {err}", frame.len());
            assert!(
                peak <= bound,
                "{name}: allocated {peak} bytes (bound {bound})"
            );
        };
    let limit = |e: &Error| matches!(e, Error::LimitExceeded { .. });
    let malformed = |e: &Error| matches!(e, Error::Malformed { .. });

    // 2^47 decoded bytes from a one-byte chunk and one copy: structurally valid, so only the
    // caller's limit refuses it, before the output exists.
    let bomb = craft(1 << 47, &[(0, 1, 2), (1, (1 << 47) - 1, 1)], &[0, 7]);
    let (info, peak) = zt_testkit::CountingAllocator::measure(|| frame_info(&bomb));
    assert_eq!(info.unwrap().decoded_len, 1 << 47);
    assert!(peak <= SLACK);
    check(
        "2^47 bytes by a copy, limit 1 GiB",
        &bomb,
        &limited(1 << 30),
        limit,
    );
    // The same length with segments that do not cover it, and beyond the format's limit.
    let defaults = DecompressOptions::default();
    check(
        "2^47 declared, 1 byte covered",
        &craft(1 << 47, &[(0, 1, 2)], &[0, 7]),
        &defaults,
        malformed,
    );
    check(
        "2^49 declared",
        &craft(1 << 49, &[(0, 1, 2)], &[0, 7]),
        &defaults,
        |e| matches!(e, Error::LimitExceeded { limit, .. } if *limit == MAX_DECODED_LEN),
    );
    // A chunk of 2^40 bytes (chunks are at most 64 MiB).
    check(
        "chunk of 2^40 bytes",
        &craft(1 << 40, &[(0, 1 << 40, 1)], &[0]),
        &defaults,
        malformed,
    );
    // A segment count of 2^40 in a tiny frame.
    let mut count = craft(0, &[], &[]);
    count.splice(10..11, [0x80, 0x80, 0x80, 0x80, 0x80, 0x20]);
    let n = count.len() - 4;
    let crc = crc_fast::crc32_iscsi(&count[..n]);
    count[n..].copy_from_slice(&crc.to_le_bytes());
    check("2^40 segments", &count, &defaults, malformed);

    // The most segments per byte: 300,000 one-byte copies (3 bytes each) after a stored byte.
    // Parsing and decoding them stays within the multiple; the checksum then fails.
    let mut segments = vec![(0u8, 1u64, 2u64)];
    segments.extend(std::iter::repeat_n((1, 1, 1), 300_000));
    let many = craft(300_001, &segments, &[0, 7]);
    check("300,000 copy segments", &many, &defaults, |e| {
        matches!(e, Error::ChecksumMismatch { .. })
    });

    // Coded chunks whose payloads lie: the output of the declared length (here 4 x 64 MiB) is
    // allocated, zeroed and untouched, once the table checks out, then the first chunk fails.
    // That allocation is what `max_decoded_len` bounds.
    let chunk = MAX_CHUNK_SIZE as u64;
    let lying = craft(4 * chunk, &[(0, chunk, 1); 4], &[9; 4]);
    let (result, peak) =
        zt_testkit::CountingAllocator::measure(|| decompress_with(&lying, &limited(4 * chunk)));
    assert!(matches!(result, Err(Error::Malformed { .. })), "{result:?}");
    assert!(peak as u64 <= 4 * chunk + SLACK as u64, "{peak}");
    let (result, peak) =
        zt_testkit::CountingAllocator::measure(|| decompress_with(&lying, &limited(chunk)));
    assert!(
        matches!(result, Err(Error::LimitExceeded { .. })),
        "{result:?}"
    );
    assert!(peak <= SLACK, "{peak}");
}
