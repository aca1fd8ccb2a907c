//! `cargo xtask bench io`: `.zt` I/O against plain-file baselines, measured in the same run.
//!
//! The workload is the Llama-shaped sample model (bf16, about `--size-mb`). Every `.zt`
//! operation is paired with the plain-file operation that moves the same bytes:
//!
//! - write: `File::write_all` of the concatenated tensor bytes in 8 MiB chunks plus
//!   `sync_all`, against `Writer::create` + `add_dense` per tensor + `finish` (which fsyncs);
//! - cold read (after `sync` and `posix_fadvise(DONTNEED)` on the file): `read_exact` into a
//!   preallocated buffer, against `ZtReader::open` + `dense` per tensor (zero-copy, so the pages
//!   are faulted in) and against `read_component_into` (a copy into the same kind of buffer);
//!   every byte is summed as u64 words either way, and the sum is checked;
//! - warm read: the same with the file in the page cache;
//! - `ZtReader::open` alone, cold and warm, and on files of 10, 1000 and 100000 tiny tensors, to
//!   show that opening reads the manifest and nothing else.
//!
//! Each figure is the median of `--runs` runs after `--warmup` untimed ones.

use std::fs::{self, File};
use std::hint::black_box;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ztensor::{ComponentOptions, DType, TensorReader, Writer, ZtReader};

use crate::model::{self, Config, Model};
use crate::sys::{Machine, drop_from_page_cache, read_ahead_kib, resident_fraction};
use crate::util::{
    MIB, Stats, format_duration, format_mib, format_size, measure, print_table, remove_if_present,
    touch,
};

/// Seed of the benchmark model's PRNG.
const SEED: u64 = 0xBE7C_2025;
/// Size of each `write_all` of the plain-file baseline.
const WRITE_CHUNK: usize = 8 << 20;
/// Tensor counts of the open-scaling files.
const SCALING_COUNTS: [usize; 3] = [10, 1_000, 100_000];

/// Resolved settings of one benchmark run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Measure the writes (otherwise the files are written once, untimed).
    pub write: bool,
    /// Measure the reads and the opening costs.
    pub read: bool,
    pub size_mb: u64,
    pub dir: PathBuf,
    pub runs: usize,
    pub warmup: usize,
    pub json: Option<PathBuf>,
}

/// One measured operation.
#[derive(Debug, serde::Serialize)]
struct Row {
    group: &'static str,
    operation: &'static str,
    /// Tensor bytes moved per run (none for `open` alone).
    bytes: Option<u64>,
    #[serde(flatten)]
    stats: Stats,
    mib_per_s: Option<f64>,
    /// This row's MiB/s over its group's baseline (ours / raw).
    ratio_vs_baseline: Option<f64>,
    baseline: bool,
}

/// Opening cost of one file.
#[derive(Debug, serde::Serialize)]
struct ScalingRow {
    file: String,
    tensors: usize,
    file_bytes: u64,
    manifest_bytes: u64,
    open_warm: Stats,
    open_cold: Stats,
    /// Bytes of the file in the page cache after one cold open (`mincore`): what opening read,
    /// kernel readahead included.
    cached_after_cold_open: u64,
}

#[derive(Debug, serde::Serialize)]
struct Report {
    machine: Machine,
    dir: PathBuf,
    read_ahead_kib: Option<u64>,
    model: Config,
    tensors: usize,
    data_bytes: u64,
    zt_file_bytes: u64,
    runs: usize,
    warmup: usize,
    rows: Vec<Row>,
    scaling: Vec<ScalingRow>,
}

pub fn run(settings: &Settings) -> Result<()> {
    let Settings {
        write,
        read,
        size_mb,
        ref dir,
        runs,
        warmup,
        ..
    } = *settings;
    ensure!(size_mb > 0, "--size-mb must be at least 1");
    ensure!(runs > 0, "--runs must be at least 1");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let machine = Machine::detect();
    println!("{machine}");

    let (config, model) = generate_workload(size_mb);
    let read_ahead = read_ahead_kib(dir);
    println!(
        "median of {runs} runs after {warmup} warm-up runs; files in {} (device readahead {})",
        dir.display(),
        read_ahead.map_or_else(|| "unknown".to_owned(), |kib| format!("{kib} KiB"))
    );

    let raw_path = dir.join("model.raw");
    let zt_path = dir.join("model.zt");
    let mut rows = Vec::new();

    if write {
        println!("measuring writes ...");
        let data = &model.data;
        let stats = measure(runs, warmup, || {
            remove_if_present(&raw_path)?;
            let started = Instant::now();
            write_raw(&raw_path, data)?;
            Ok(started.elapsed())
        })?;
        rows.push(row(
            "write",
            "raw: File::write_all + sync_all",
            &model,
            stats,
            true,
        ));
        let stats = measure(runs, warmup, || {
            remove_if_present(&zt_path)?;
            let started = Instant::now();
            model.write_zt(&zt_path, ComponentOptions::raw())?;
            Ok(started.elapsed())
        })?;
        rows.push(row(
            "write",
            "zt: Writer add_dense + finish",
            &model,
            stats,
            false,
        ));
    } else {
        write_raw(&raw_path, &model.data)?;
        model.write_zt(&zt_path, ComponentOptions::raw())?;
    }
    // What every read below must sum to: the file is checked once here, each read by its sum.
    {
        let reader =
            ZtReader::open(&zt_path).with_context(|| format!("opening {}", zt_path.display()))?;
        model.check_reader(&reader)?;
    }
    let expected_sum = touch(&model.data);

    let mut scaling = Vec::new();
    if read {
        let mut buffer = vec![0xA5u8; model.data.len()];
        for cold in [true, false] {
            let group = if cold { "cold read" } else { "warm read" };
            println!("measuring {group}s ...");
            if cold {
                for path in [&raw_path, &zt_path] {
                    drop_from_page_cache(path)?;
                    let resident = resident_fraction(path)?;
                    println!(
                        "  {}: {:.1}% in the page cache after dropping it",
                        path.display(),
                        resident * 100.0
                    );
                    if resident > 0.01 {
                        println!(
                            "  warning: the page cache kept part of the file; cold figures are optimistic"
                        );
                    }
                }
            }
            let prepare = |path: &Path| {
                if cold {
                    drop_from_page_cache(path)
                } else {
                    Ok(())
                }
            };

            let stats = measure(runs, warmup, || {
                prepare(&raw_path)?;
                let started = Instant::now();
                let sum = read_raw(&raw_path, &mut buffer)?;
                let elapsed = started.elapsed();
                ensure!(
                    sum == expected_sum,
                    "{} read back wrong",
                    raw_path.display()
                );
                Ok(elapsed)
            })?;
            rows.push(row(
                group,
                "raw: read_exact into buffer",
                &model,
                stats,
                true,
            ));

            let stats = measure(runs, warmup, || {
                prepare(&zt_path)?;
                let started = Instant::now();
                let sum = read_zt_dense(&zt_path, &model)?;
                let elapsed = started.elapsed();
                ensure!(sum == expected_sum, "{} read back wrong", zt_path.display());
                Ok(elapsed)
            })?;
            rows.push(row(
                group,
                "zt: open + dense (zero-copy)",
                &model,
                stats,
                false,
            ));

            let stats = measure(runs, warmup, || {
                prepare(&zt_path)?;
                let started = Instant::now();
                let sum = read_zt_into(&zt_path, &model, &mut buffer)?;
                let elapsed = started.elapsed();
                ensure!(sum == expected_sum, "{} read back wrong", zt_path.display());
                Ok(elapsed)
            })?;
            rows.push(row(
                group,
                "zt: open + read_component_into",
                &model,
                stats,
                false,
            ));

            let stats = measure(runs, warmup, || {
                prepare(&zt_path)?;
                time_open(&zt_path)
            })?;
            rows.push(Row {
                group,
                operation: "zt: open only",
                bytes: None,
                stats,
                mib_per_s: None,
                ratio_vs_baseline: None,
                baseline: false,
            });
        }
        println!("measuring open() scaling ...");
        scaling = open_scaling(dir, &zt_path, runs, warmup)?;
    }
    set_ratios(&mut rows);

    println!();
    print_rows(&rows);
    if !scaling.is_empty() {
        println!();
        print_scaling(&scaling);
        println!(
            "read by cold open: bytes of the file in the page cache after one open of the dropped file (mincore), kernel readahead included"
        );
    }
    println!();
    println!("{machine}");

    if let Some(json) = &settings.json {
        let report = Report {
            machine,
            dir: dir.clone(),
            read_ahead_kib: read_ahead,
            model: config,
            tensors: model.tensors.len(),
            data_bytes: model.total_bytes(),
            zt_file_bytes: file_len(&zt_path)?,
            runs,
            warmup,
            rows,
            scaling,
        };
        let text = serde_json::to_string_pretty(&report).context("encoding the JSON report")?;
        fs::write(json, text + "\n").with_context(|| format!("writing {}", json.display()))?;
        println!("wrote {}", json.display());
    }
    Ok(())
}

fn row(
    group: &'static str,
    operation: &'static str,
    model: &Model,
    stats: Stats,
    baseline: bool,
) -> Row {
    let bytes = model.total_bytes();
    Row {
        group,
        operation,
        bytes: Some(bytes),
        stats,
        mib_per_s: Some(bytes as f64 / MIB / stats.median_s),
        ratio_vs_baseline: None,
        baseline,
    }
}

/// Fills in each row's throughput relative to the baseline of its group.
fn set_ratios(rows: &mut [Row]) {
    let baselines: Vec<(&'static str, f64)> = rows
        .iter()
        .filter(|r| r.baseline)
        .filter_map(|r| Some((r.group, r.mib_per_s?)))
        .collect();
    for row in rows.iter_mut() {
        let baseline = baselines.iter().find(|(g, _)| *g == row.group);
        if let (Some(&(_, base)), Some(ours)) = (baseline, row.mib_per_s) {
            row.ratio_vs_baseline = Some(ours / base);
        }
    }
}

fn print_rows(rows: &[Row]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.group.to_owned(),
                r.operation.to_owned(),
                format_duration(r.stats.median_s),
                r.mib_per_s.map_or("-".to_owned(), |v| format!("{v:.0}")),
                if r.baseline {
                    "baseline".to_owned()
                } else {
                    r.ratio_vs_baseline
                        .map_or("-".to_owned(), |v| format!("{v:.2}x"))
                },
            ]
        })
        .collect();
    print_table(
        &["group", "operation", "median", "MiB/s", "ours/raw"],
        2,
        &cells,
    );
}

fn print_scaling(rows: &[ScalingRow]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.file.clone(),
                r.tensors.to_string(),
                format_size(r.file_bytes),
                format_size(r.manifest_bytes),
                format_duration(r.open_warm.median_s),
                format_duration(r.open_cold.median_s),
                format_duration(r.open_warm.median_s / r.tensors as f64),
                format_size(r.cached_after_cold_open),
            ]
        })
        .collect();
    print_table(
        &[
            "ZtReader::open on",
            "tensors",
            "file",
            "manifest",
            "warm",
            "cold",
            "warm per tensor",
            "read by cold open",
        ],
        1,
        &cells,
    );
}

/// The plain-file baseline: the concatenated tensor bytes, written in large chunks and synced.
pub(crate) fn write_raw(path: &Path, data: &[u8]) -> Result<()> {
    let mut file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    for chunk in data.chunks(WRITE_CHUNK) {
        file.write_all(chunk)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    file.sync_all()
        .with_context(|| format!("syncing {}", path.display()))
}

/// The plain-file baseline: the whole file into a preallocated buffer, every byte summed.
fn read_raw(path: &Path, buffer: &mut [u8]) -> Result<u64> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    file.read_exact(buffer)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(touch(buffer))
}

/// Opens the `.zt` file and sums every tensor through `dense`, which borrows from the map.
/// Tensors are visited in file order.
fn read_zt_dense(path: &Path, model: &Model) -> Result<u64> {
    let reader = ZtReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut sum = 0u64;
    for t in &model.tensors {
        let bytes = reader
            .dense(&t.name)
            .with_context(|| format!("reading {} from {}", t.name, path.display()))?;
        sum = sum.wrapping_add(touch(&bytes));
    }
    Ok(sum)
}

/// Opens the `.zt` file and copies every tensor into `buffer` with `read_component_into`,
/// then sums the buffer.
fn read_zt_into(path: &Path, model: &Model, buffer: &mut [u8]) -> Result<u64> {
    let reader = ZtReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    for t in &model.tensors {
        reader
            .read_component_into(&t.name, "data", &mut buffer[t.range.clone()])
            .with_context(|| format!("reading {} from {}", t.name, path.display()))?;
    }
    Ok(touch(buffer))
}

/// Times `ZtReader::open` alone (closing the reader is not timed).
fn time_open(path: &Path) -> Result<Duration> {
    let started = Instant::now();
    let reader = ZtReader::open(path).with_context(|| format!("opening {}", path.display()))?;
    let elapsed = started.elapsed();
    black_box(reader.len());
    Ok(elapsed)
}

fn file_len(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path)
        .with_context(|| format!("reading the metadata of {}", path.display()))?
        .len())
}

/// Opening cost of files of 10, 1000 and 100000 tiny tensors, and of the benchmark's model.
fn open_scaling(
    dir: &Path,
    model_zt: &Path,
    runs: usize,
    warmup: usize,
) -> Result<Vec<ScalingRow>> {
    let mut files = Vec::new();
    for count in SCALING_COUNTS {
        let path = dir.join(format!("open-{count}-tensors.zt"));
        write_tiny_tensors(&path, count)?;
        files.push(path);
    }
    files.push(model_zt.to_owned());

    let mut rows = Vec::new();
    for path in files {
        let (tensors, manifest_bytes) = {
            let reader =
                ZtReader::open(&path).with_context(|| format!("opening {}", path.display()))?;
            (reader.len(), reader.layout().manifest.length)
        };
        let open_warm = measure(runs, warmup, || time_open(&path))?;
        let open_cold = measure(runs, warmup, || {
            drop_from_page_cache(&path)?;
            time_open(&path)
        })?;
        drop_from_page_cache(&path)?;
        time_open(&path)?;
        let file_bytes = file_len(&path)?;
        let cached = (resident_fraction(&path)? * file_bytes as f64).round() as u64;
        rows.push(ScalingRow {
            file: path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            ),
            tensors,
            file_bytes,
            manifest_bytes,
            open_warm,
            open_cold,
            cached_after_cold_open: cached,
        });
    }
    Ok(rows)
}

/// A file of `count` f32 tensors of 4 elements each, named like checkpoint weights.
fn write_tiny_tensors(path: &Path, count: usize) -> Result<()> {
    let mut writer =
        Writer::create(path).with_context(|| format!("creating {}", path.display()))?;
    for i in 0..count {
        let name = format!("model.layers.{}.block.{}.weight", i / 100, i % 100);
        let values: [f32; 4] = [i as f32, 1.0, 2.0, 3.0];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        writer
            .add_dense(&name, [4], DType::F32, &bytes, ComponentOptions::raw())
            .with_context(|| format!("writing {name} to {}", path.display()))?;
    }
    writer
        .finish()
        .with_context(|| format!("finishing {}", path.display()))?;
    Ok(())
}

/// Generates the Llama-shaped benchmark model of about `size_mb` MiB and says what it is.
pub(crate) fn generate_workload(size_mb: u64) -> (Config, Model) {
    let config = Config::for_target_bytes(size_mb << 20);
    let started = Instant::now();
    let model = Model::generate(config, SEED);
    println!(
        "workload: Llama 3.2 1B shapes, {} of {} layers, vocabulary {} of {}: {} bf16 tensors, {} (generated in {})",
        config.layers,
        model::LAYERS,
        config.vocab,
        model::VOCAB,
        model.tensors.len(),
        format_mib(model.total_bytes()),
        format_duration(started.elapsed().as_secs_f64()),
    );
    (config, model)
}
