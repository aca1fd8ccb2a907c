//! Corrupted, truncated and hand-crafted frames: always an error (or, for a flip that changes
//! nothing decoded, the original bytes), never a panic or a huge allocation.

use zt_codec::{
    CompressOptions, DecompressOptions, Effort, compress, compress_delta, decompress,
    decompress_delta, decompress_into, decompress_with, frame_info,
};
use zt_core::{DType, Error};

fn sample_frames() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut s = 7u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    // bf16-like values: peaked exponents, random mantissas; some zeros; a tail byte.
    let mut bf16: Vec<u8> = (0..3000)
        .flat_map(|i| {
            let r = next();
            if i % 3 == 0 {
                [0, 0]
            } else {
                [r as u8, 0x3c + (r >> 8) as u8 % 3]
            }
        })
        .collect();
    bf16.push(0x42);
    let palette: Vec<u8> = (0..2000u32)
        .flat_map(|i| (0x3f80_0000u32 + (i * 31 % 5) * 4096).to_le_bytes())
        .collect();
    let tiled: Vec<u8> = (0..200u8).cycle().take(9000).collect();
    for (data, dtype) in [
        (bf16.clone(), Some(DType::BF16)),
        (palette, Some(DType::F32)),
        (tiled, None),
        (b"hello, hello, hello".to_vec(), None),
    ] {
        // Fast and Default code the exponent-like streams with Huffman, Max with rANS.
        for effort in [Effort::Fast, Effort::Default, Effort::Max] {
            let o = CompressOptions {
                effort,
                chunk_size: 4096,
                threads: None,
            };
            out.push((compress(&data, dtype, &o).unwrap(), data.clone()));
        }
    }
    // fp16-like values with random signs (sign bits apart from the byte planes), at Default.
    let f16: Vec<u8> = (0..3000)
        .flat_map(|_| {
            let r = next();
            [
                r as u8,
                ((r >> 16) as u8 & 0x80) | (0x24 + (r >> 8) as u8 % 6),
            ]
        })
        .collect();
    let o = CompressOptions {
        chunk_size: 4096,
        ..CompressOptions::default()
    };
    out.push((compress(&f16, Some(DType::F16), &o).unwrap(), f16));
    out
}

#[test]
fn every_truncation_is_an_error() {
    for (frame, data) in sample_frames() {
        for cut in 0..frame.len() {
            assert!(
                decompress(&frame[..cut]).is_err(),
                "cut {cut} of {}",
                frame.len()
            );
            assert!(frame_info(&frame[..cut]).is_err() || cut >= 20);
        }
        assert_eq!(decompress(&frame).unwrap(), data);
        // Extra bytes after the frame are refused too.
        let mut long = frame.clone();
        long.push(0);
        assert!(decompress(&long).is_err());
    }
}

#[test]
fn every_bit_flip_is_caught_or_harmless() {
    for (frame, data) in sample_frames() {
        for byte in 0..frame.len() {
            for bit in 0..8 {
                let mut bad = frame.clone();
                bad[byte] ^= 1 << bit;
                match decompress(&bad) {
                    Err(_) => {}
                    // A flip in bits the decoder never reads (say, the padding of the last
                    // packed palette byte) may leave the output intact; it must be intact.
                    Ok(out) => assert_eq!(out, data, "flip {byte}:{bit} changed the output"),
                }
            }
        }
    }
}

#[test]
fn garbage_is_refused() {
    let mut s = 99u64;
    for len in [0usize, 1, 3, 4, 5, 16, 100, 1000] {
        for _ in 0..50 {
            let mut g: Vec<u8> = (0..len)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    s as u8
                })
                .collect();
            if len >= 5 {
                g[..5].copy_from_slice(b"ZTC1\x01");
            }
            assert!(decompress(&g).is_err());
            assert!(decompress_delta(&g, &g).is_err());
        }
    }
    let e = decompress(b"PK\x03\x04 not a frame").unwrap_err();
    assert!(matches!(e, Error::BadMagic { .. }), "{e}");
}

/// Builds a frame from raw header fields with a correct header checksum.
fn craft(
    dtype: u8,
    flags: u8,
    decoded: u64,
    segments: &[(u8, u64, u64)],
    payload: &[u8],
) -> Vec<u8> {
    fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut f = b"ZTC1\x01".to_vec();
    f.push(dtype);
    f.push(flags);
    varint(&mut f, decoded);
    varint(&mut f, 4096);
    varint(&mut f, segments.len() as u64);
    for &(kind, len, arg) in segments {
        f.push(kind);
        varint(&mut f, len);
        varint(&mut f, arg);
    }
    f.extend_from_slice(&0u32.to_le_bytes()); // data crc (wrong, on purpose where it matters)
    let crc = crc_fast::crc32_iscsi(&f);
    f.extend_from_slice(&crc.to_le_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn hostile_headers_are_refused_before_allocating() {
    // A 1 TiB copy of a one-byte stored chunk: structurally valid, refused by the limit.
    let bomb = craft(0, 0, 1 << 40, &[(0, 1, 2), (1, (1 << 40) - 1, 1)], &[0, 7]);
    let info = frame_info(&bomb).unwrap();
    assert_eq!(info.decoded_len, 1 << 40);
    let limited = DecompressOptions {
        max_decoded_len: 1 << 20,
        ..Default::default()
    };
    assert!(matches!(
        decompress_with(&bomb, &limited),
        Err(Error::LimitExceeded { .. })
    ));
    // The same frame at a size we can afford decodes, then fails its checksum.
    let small = craft(0, 0, 1000, &[(0, 1, 2), (1, 999, 1)], &[0, 7]);
    assert!(matches!(
        decompress(&small),
        Err(Error::ChecksumMismatch { .. })
    ));
    // Declared lengths beyond the format limit.
    assert!(matches!(
        frame_info(&craft(0, 0, u64::MAX, &[], &[])),
        Err(Error::LimitExceeded { .. })
    ));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("copy before the start", craft(0, 0, 10, &[(1, 10, 1)], &[])),
        (
            "copy too far back",
            craft(0, 0, 10, &[(0, 5, 6), (1, 5, 6)], &[0, 1, 2, 3, 4, 5]),
        ),
        (
            "zero distance",
            craft(0, 0, 10, &[(0, 5, 6), (1, 5, 0)], &[0, 1, 2, 3, 4, 5]),
        ),
        (
            "segments overrun",
            craft(0, 0, 4, &[(0, 5, 6)], &[0, 1, 2, 3, 4, 5]),
        ),
        (
            "segments short",
            craft(0, 0, 9, &[(0, 5, 6)], &[0, 1, 2, 3, 4, 5]),
        ),
        (
            "payload overruns",
            craft(0, 0, 5, &[(0, 5, 600)], &[0, 1, 2, 3, 4, 5]),
        ),
        (
            "payload left over",
            craft(0, 0, 5, &[(0, 5, 6)], &[0, 1, 2, 3, 4, 5, 6]),
        ),
        ("empty segment", craft(0, 0, 0, &[(0, 0, 0)], &[])),
        ("huge chunk", craft(0, 0, 1 << 30, &[(0, 1 << 30, 1)], &[5])),
        ("unknown kind", craft(0, 0, 1, &[(9, 1, 1)], &[0])),
        ("unknown dtype", craft(99, 0, 0, &[], &[])),
        ("unknown flag", craft(0, 2, 0, &[], &[])),
        ("unknown transform", craft(0, 0, 1, &[(0, 1, 1)], &[77])),
        ("segment count", {
            // The count claims far more entries than the frame holds (checksum kept valid).
            let mut f = craft(0, 0, 0, &[], &[]);
            f[10] = 0x7f;
            let n = f.len() - 4;
            let crc = crc_fast::crc32_iscsi(&f[..n]);
            f[n..].copy_from_slice(&crc.to_le_bytes());
            f
        }),
    ];
    for (what, frame) in cases {
        let r = decompress(&frame);
        assert!(r.is_err(), "{what}: accepted");
        let mut out = vec![0u8; 5];
        assert!(decompress_into(&frame, &mut out).is_err(), "{what}");
    }
    // The empty frame is valid.
    let empty = compress(&[], Some(DType::F32), &CompressOptions::default()).unwrap();
    assert_eq!(decompress(&empty).unwrap(), Vec::<u8>::new());
}

#[test]
fn delta_frames_survive_corruption_checks() {
    let base: Vec<u8> = (0..20_000u32)
        .flat_map(|i| i.wrapping_mul(2654435761).to_le_bytes())
        .collect();
    let mut cur = base.clone();
    cur[1000] ^= 0x55;
    let f = compress_delta(&cur, &base, Some(DType::U32), &CompressOptions::default()).unwrap();
    for cut in 0..f.len() {
        assert!(decompress_delta(&f[..cut], &base).is_err());
    }
    for byte in 0..f.len() {
        let mut bad = f.clone();
        bad[byte] ^= 0x20;
        if let Ok(out) = decompress_delta(&bad, &base) {
            assert_eq!(out, cur);
        }
    }
}

/// Writes the committed fuzz seeds (`cargo test -p zt-codec --test hostile -- --ignored`).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/codec");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, (frame, _)) in sample_frames().into_iter().enumerate() {
        std::fs::write(dir.join(format!("frame-{i}.ztc")), frame).unwrap();
    }
    // Round-trip seeds: selector byte (dtype, effort) + payload.
    for (i, sel) in [4u8, 2, 3, 18, 31].into_iter().enumerate() {
        let mut v = vec![sel];
        v.extend((0..600u32).flat_map(|k| ((k % 7) as u16 * 0x0101 + 0x3c00).to_le_bytes()));
        std::fs::write(dir.join(format!("roundtrip-{i}.bin")), v).unwrap();
    }
}
