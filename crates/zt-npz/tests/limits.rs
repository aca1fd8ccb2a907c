//! Resource limits (spec/limits.md): `.npz` archives whose counts and sizes lie give a clear
//! error within bounded memory; a real DEFLATE bomb costs nothing to open and at most
//! `MAX_DEFLATE_RATIO` times its compressed size to read. `hostile.rs` holds the wider corpus.
//!
//! One test in this binary, so the process-wide allocation counter sees only its own work.

use std::io::Write;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};
use zt_core::{Error, TensorReader};
use zt_npz::{MAX_DEFLATE_RATIO, NpzReader};

#[global_allocator]
static ALLOCATOR: zt_testkit::CountingAllocator = zt_testkit::CountingAllocator;

/// Worst case documented in spec/limits.md: about 2.5 KiB of bookkeeping (zip entry and
/// `TensorInfo`) per entry of 200 bytes or more.
const MULTIPLE: usize = 32;
const SLACK: usize = 1 << 20;

fn npy(shape: &str, data: &[u8]) -> Vec<u8> {
    let literal = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': {shape}, }}");
    let mut text = literal.into_bytes();
    while !(10 + text.len() + 1).is_multiple_of(64) {
        text.push(b' ');
    }
    text.push(b'\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((text.len() as u16).to_le_bytes());
    out.extend(text);
    out.extend_from_slice(data);
    out
}

fn zip(entries: &[(String, Vec<u8>)], method: CompressionMethod) -> Vec<u8> {
    let mut writer = ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in entries {
        writer.start_file(name.as_str(), options).unwrap();
        writer.write_all(bytes).unwrap();
    }
    writer.finish().unwrap().into_inner()
}

/// Replaces a zip's end-of-central-directory record with ZIP64 records claiming `entries`.
fn zip64_claiming(mut zip: Vec<u8>, entries: u64) -> Vec<u8> {
    let eocd = zip.len() - 22;
    let cd_size = u32::from_le_bytes(zip[eocd + 12..eocd + 16].try_into().unwrap());
    let cd_offset = u32::from_le_bytes(zip[eocd + 16..eocd + 20].try_into().unwrap());
    zip.truncate(eocd);
    let eocd64_at = zip.len() as u64;
    zip.extend(0x0606_4b50u32.to_le_bytes());
    zip.extend(44u64.to_le_bytes());
    zip.extend([45, 0, 45, 0]);
    zip.extend([0; 8]); // this disk, disk with the directory
    zip.extend(entries.to_le_bytes());
    zip.extend(entries.to_le_bytes());
    zip.extend(u64::from(cd_size).to_le_bytes());
    zip.extend(u64::from(cd_offset).to_le_bytes());
    zip.extend(0x0706_4b50u32.to_le_bytes());
    zip.extend(0u32.to_le_bytes());
    zip.extend(eocd64_at.to_le_bytes());
    zip.extend(1u32.to_le_bytes());
    zip.extend(0x0605_4b50u32.to_le_bytes());
    zip.extend([0; 4]);
    zip.extend([0xff; 12]);
    zip.extend([0; 2]);
    zip
}

#[test]
fn lying_sizes_are_refused_within_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("case.npz");
    // Opens (and, when `read`, reads every tensor), within `multiple` times the file.
    let run = |name: &str, bytes: &[u8], read: bool, multiple: usize| {
        std::fs::write(&path, bytes).unwrap();
        let (result, peak) = zt_testkit::CountingAllocator::measure(|| {
            let reader = NpzReader::open(&path)?;
            if read {
                for t in reader.names() {
                    reader.dense(t)?;
                }
            }
            Ok::<usize, Error>(reader.len())
        });
        let bound = multiple * bytes.len() + SLACK;
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

    // An archive whose ZIP64 end record claims 2^40 entries.
    let one = zip(
        &[("a.npy".into(), npy("(4,)", &[1, 2, 3, 4]))],
        CompressionMethod::Stored,
    );
    let err = run(
        "ZIP64 directory claiming 2^40 entries",
        &zip64_claiming(one, 1 << 40),
        true,
        MULTIPLE,
    )
    .unwrap_err();
    assert!(
        matches!(err.kind(), Error::Malformed { .. } | Error::Io(_)),
        "{err}"
    );

    // An .npy claiming 2^60 elements in a tiny file, alone and inside an archive.
    let huge = npy("(1152921504606846976,)", &[0; 16]);
    std::fs::write(dir.path().join("huge.npy"), &huge).unwrap();
    let (result, peak) =
        zt_testkit::CountingAllocator::measure(|| NpzReader::open(dir.path().join("huge.npy")));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err.kind(),
            Error::LengthMismatch { .. } | Error::Truncated { .. }
        ),
        "{err}"
    );
    assert!(peak <= MULTIPLE * huge.len() + SLACK);
    for method in [CompressionMethod::Stored, CompressionMethod::Deflated] {
        let archive = zip(&[("a.npy".into(), huge.clone())], method);
        let err = run(
            "entry header claiming 2^60 elements",
            &archive,
            true,
            MULTIPLE,
        )
        .unwrap_err();
        assert!(
            matches!(
                err.kind(),
                Error::LengthMismatch { .. } | Error::Truncated { .. }
            ),
            "{err}"
        );
    }

    // A real DEFLATE bomb: 16 MiB of zeros in ~16 KiB. Opening inflates only the .npy header;
    // reading allocates the declared size, which DEFLATE's ratio bounds by the stored bytes.
    let zeros = npy("(16777216,)", &vec![0; 16 << 20]);
    let bomb = zip(&[("a.npy".into(), zeros)], CompressionMethod::Deflated);
    assert_eq!(
        run("16 MiB deflate bomb, opened", &bomb, false, MULTIPLE).unwrap(),
        1
    );
    let ratio = MAX_DEFLATE_RATIO as usize;
    assert_eq!(
        run("16 MiB deflate bomb, read", &bomb, true, ratio).unwrap(),
        1
    );

    // 5,000 one-byte entries: the most bookkeeping per archive byte.
    let entries: Vec<(String, Vec<u8>)> = (0..5_000)
        .map(|i| (format!("{i}.npy"), npy("(1,)", &[7])))
        .collect();
    for method in [CompressionMethod::Stored, CompressionMethod::Deflated] {
        let archive = zip(&entries, method);
        assert_eq!(
            run("5,000 tiny entries", &archive, true, MULTIPLE).unwrap(),
            5_000
        );
    }
}
