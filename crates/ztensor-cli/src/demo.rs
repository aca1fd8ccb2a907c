//! `zt demo`: ztensor's main job on a built-in example.
//!
//! Writes a Llama-shaped sample model twice (raw, and zstd level 3 with crc32c digests), reads
//! both back through `ztensor::open`, checks every tensor byte for byte against what was
//! written, verifies every digest, shows that a flipped byte is caught, and prints a table.

use std::fs;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use ztensor::sample::{self, SampleConfig, SampleModel};
use ztensor::{ChecksumAlgorithm, ComponentOptions, OpenOptions, TensorReader, ZtReader};

use crate::output;

const MIB: f64 = (1u64 << 20) as f64;

struct Variant {
    file: &'static str,
    encoding: &'static str,
    options: ComponentOptions,
    /// Components expected to carry a digest.
    digests: bool,
}

pub fn run(out: &mut dyn Write, dir: &Path, size_mib: u64) -> Result<()> {
    ensure!(size_mib > 0, "--size must be at least 1 (MiB)");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let config = SampleConfig::for_target_bytes(size_mib << 20);
    let started = Instant::now();
    let model = SampleModel::generate(config, sample::DEMO_SEED);
    writeln!(
        out,
        "sample model: Llama 3.2 1B shapes, {} of {} layers, vocabulary {} of {}: {} bf16 tensors, {} (generated in {})",
        config.layers,
        sample::LAYERS,
        config.vocab,
        sample::VOCAB,
        model.tensors.len(),
        mib(model.total_bytes()),
        duration(started.elapsed().as_secs_f64()),
    )?;

    let variants = [
        Variant {
            file: "sample.zt",
            encoding: "raw",
            options: ComponentOptions::raw(),
            digests: false,
        },
        Variant {
            file: "sample-zstd.zt",
            encoding: "zstd-3 + crc32c",
            options: ComponentOptions::zstd(3).with_checksum(ChecksumAlgorithm::Crc32c),
            digests: true,
        },
    ];
    let logical_mib = model.total_bytes() as f64 / MIB;
    let mut rows = Vec::new();
    let mut raw_size = None;
    let mut digests_checked = 0;
    for variant in &variants {
        let path = dir.join(variant.file);
        let started = Instant::now();
        let size = model.write_zt(&path, variant.options)?;
        let write_s = started.elapsed().as_secs_f64();

        // Read back through the format-detecting entry point, as a user would.
        let started = Instant::now();
        let reader = ztensor::open(&path)?;
        ensure!(
            reader.format_name() == "zt",
            "{} detected as {}",
            path.display(),
            reader.format_name()
        );
        model.check_reader(reader.as_ref())?;
        let read_s = started.elapsed().as_secs_f64();
        drop(reader);

        let checked = verify_with_checksums(&path, &model)?;
        let expected = if variant.digests {
            model.tensors.len()
        } else {
            0
        };
        ensure!(
            checked == expected,
            "{}: {checked} digests checked, expected {expected}",
            path.display()
        );
        digests_checked += checked;

        let raw = *raw_size.get_or_insert(size);
        rows.push(vec![
            variant.file.to_owned(),
            variant.encoding.to_owned(),
            model.tensors.len().to_string(),
            format!("{size}"),
            format!("{:.3}", size as f64 / raw as f64),
            format!("{:.0}", logical_mib / write_s),
            format!("{:.0}", logical_mib / read_s),
        ]);
    }

    let rejection = corrupted_copy_is_rejected(&dir.join(variants[1].file), &model)?;

    writeln!(out)?;
    output::table(
        out,
        &[
            "file",
            "encoding",
            "tensors",
            "bytes on disk",
            "vs raw",
            "write MiB/s",
            "read MiB/s",
        ],
        2,
        &rows,
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "write: Writer::create + add_dense + finish (fsync); read: ztensor::open + dense + compare, warm page cache; MiB/s of tensor data ({})",
        mib(model.total_bytes())
    )?;
    writeln!(
        out,
        "OK: all {} tensors byte-identical in both files; {digests_checked} crc32c digests verified",
        model.tensors.len()
    )?;
    writeln!(
        out,
        "OK: a copy with one flipped byte is rejected: {rejection}"
    )?;
    writeln!(out, "files are in {}", dir.display())?;
    Ok(())
}

/// Reopens `path` with digest verification on, checks every digest and every tensor again, and
/// returns how many digests were checked.
fn verify_with_checksums(path: &Path, model: &SampleModel) -> Result<usize> {
    let options = OpenOptions {
        verify_checksums: true,
        ..OpenOptions::default()
    };
    let reader = ZtReader::open_with(path, options)?;
    let checked = reader.verify_all(true)?;
    model.check_reader(&reader)?;
    Ok(checked)
}

/// Copies `path`, flips one byte in the middle of the first tensor's stored data, and checks
/// that reading that tensor with verification fails. Returns the error it failed with.
fn corrupted_copy_is_rejected(path: &Path, model: &SampleModel) -> Result<String> {
    let copy = path.with_file_name("sample-corrupted.zt");
    fs::copy(path, &copy)
        .with_context(|| format!("copying {} to {}", path.display(), copy.display()))?;
    let result = (|| -> Result<String> {
        let name = &model.tensors[0].name;
        let offset = {
            let reader = ZtReader::open(&copy)?;
            let location = reader
                .info(name)?
                .components
                .get("data")
                .and_then(|c| c.location)
                .with_context(|| format!("{name} has no stored data"))?;
            location.offset + location.length / 2
        };
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&copy)
            .with_context(|| format!("opening {} for writing", copy.display()))?;
        let mut byte = [0u8; 1];
        file.read_exact_at(&mut byte, offset)
            .with_context(|| format!("reading {} at {offset}", copy.display()))?;
        byte[0] ^= 0x10;
        file.write_all_at(&byte, offset)
            .with_context(|| format!("writing {} at {offset}", copy.display()))?;
        drop(file);

        let options = OpenOptions {
            verify_checksums: true,
            ..OpenOptions::default()
        };
        let reader = ZtReader::open_with(&copy, options)?;
        match reader.dense(name) {
            Ok(_) => bail!(
                "{}: a flipped byte in {name} went unnoticed",
                copy.display()
            ),
            Err(e) => Ok(e.to_string()),
        }
    })();
    match fs::remove_file(&copy) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("removing {}", copy.display()));
        }
        _ => {}
    }
    result
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / MIB)
}

fn duration(seconds: f64) -> String {
    if seconds >= 1.0 {
        format!("{seconds:.2} s")
    } else {
        format!("{:.1} ms", seconds * 1e3)
    }
}
