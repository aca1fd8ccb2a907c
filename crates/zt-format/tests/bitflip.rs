//! Every single-bit flip of small checksummed `.zt` files: verification catches every flip in
//! component data, header and footer; none panics. The format has no manifest checksum, so a
//! flip inside the manifest is either refused (it breaks the CBOR, a dtype, an offset, a length
//! or a digest) or gives a different but valid file (a letter of a name or attribute text); the
//! test counts those and checks that they never change a tensor's bytes unnoticed.

use std::collections::BTreeMap;

use zt_codec::Effort;
use zt_core::{ChecksumAlgorithm, DType, TensorReader};
use zt_format::{ComponentOptions, OpenOptions, Writer, ZtReader};

/// Everything a reader can observe of a file: names, shapes, dtypes, attributes and bytes.
fn observe(path: &std::path::Path) -> Result<BTreeMap<String, (String, Vec<u8>)>, String> {
    let options = OpenOptions {
        verify_checksums: true,
        ..Default::default()
    };
    let reader = ZtReader::open_with(path, options).map_err(|e| e.to_string())?;
    reader.verify_all(true).map_err(|e| e.to_string())?;
    let mut seen = BTreeMap::new();
    for name in reader.names() {
        let info = reader.info(name).map_err(|e| e.to_string())?;
        let bytes = reader.dense(name).map_err(|e| e.to_string())?.into_owned();
        seen.insert(name.to_owned(), (format!("{info:?}"), bytes));
    }
    seen.insert(
        "<metadata>".into(),
        (format!("{:?}", reader.metadata()), Vec::new()),
    );
    Ok(seen)
}

fn sample(path: &std::path::Path, checksum: ChecksumAlgorithm) {
    let mut w = Writer::create(path).unwrap();
    w.set_attribute("model", "tiny");
    let f32s: Vec<u8> = (0..24u32)
        .flat_map(|i| (i as f32 * 0.25).to_le_bytes())
        .collect();
    w.add_dense(
        "w",
        [4, 6],
        DType::F32,
        &f32s,
        ComponentOptions::raw().with_checksum(checksum),
    )
    .unwrap();
    let bf16: Vec<u8> = (0..300u16)
        .flat_map(|i| (0x3c00 + i % 37).to_le_bytes())
        .collect();
    w.add_dense(
        "z",
        [300],
        DType::BF16,
        &bf16,
        ComponentOptions::zstd(3).with_checksum(checksum),
    )
    .unwrap();
    w.add_dense(
        "c",
        [300],
        DType::BF16,
        &bf16,
        ComponentOptions::codec(Effort::Default).with_checksum(checksum),
    )
    .unwrap();
    w.finish().unwrap();
}

#[test]
fn every_bit_flip_of_a_checksummed_file_is_caught_or_visible() {
    for checksum in [ChecksumAlgorithm::Crc32c, ChecksumAlgorithm::Sha256] {
        let dir = tempfile::tempdir().unwrap();
        let original = dir.path().join("original.zt");
        sample(&original, checksum);
        let expected = observe(&original).unwrap();
        let bytes = std::fs::read(&original).unwrap();
        let reader = ZtReader::open(&original).unwrap();
        let manifest = reader.layout().manifest;
        let data_ranges: Vec<(u64, u64)> = reader
            .names()
            .iter()
            .map(|n| {
                let r = reader.info(n).unwrap().components["data"].location.unwrap();
                (r.offset, r.offset + r.length)
            })
            .collect();
        let flipped = dir.path().join("flipped.zt");
        let (mut refused, mut harmless, mut renamed) = (0, 0, 0);
        for byte in 0..bytes.len() {
            for bit in 0..8 {
                let mut copy = bytes.clone();
                copy[byte] ^= 1 << bit;
                std::fs::write(&flipped, &copy).unwrap();
                let at = byte as u64;
                let in_data = data_ranges.iter().any(|&(s, e)| (s..e).contains(&at));
                let in_manifest =
                    (manifest.offset..manifest.offset + manifest.length).contains(&at);
                let result = observe(&flipped);
                // Data flips are always caught (digest or the codec's own CRC).
                assert!(
                    !(in_data && result.is_ok()),
                    "flip {byte}:{bit} in component data went unnoticed"
                );
                match result {
                    Err(_) => refused += 1,
                    Ok(seen) if seen == expected => harmless += 1,
                    Ok(seen) => {
                        // Only the unprotected manifest can change what is read, and then
                        // not the bytes of a tensor under its (unchanged) name.
                        assert!(
                            in_manifest && !in_data,
                            "flip {byte}:{bit} changed the file unnoticed"
                        );
                        for (name, (_, data)) in &seen {
                            if let Some((_, old)) = expected.get(name) {
                                assert_eq!(data, old, "flip {byte}:{bit} changed '{name}'");
                            }
                        }
                        renamed += 1;
                    }
                }
            }
        }
        eprintln!(
            "{checksum:?}: {} flips: {refused} refused, {harmless} harmless (padding), \
             {renamed} valid manifest edits",
            bytes.len() * 8
        );
        assert!(refused > bytes.len() * 4);
    }
}
