//! `cargo xtask bench formats`, the Rust half: cold reads through `ztensor::open` of one model
//! in every format ztensor reads, each against a plain read of the same file, measured in the
//! same run. [`crate::bench_suite`] adds the copying reads and the Python readers (ours, the
//! reference libraries, upstream zTensor) on the same files.
//!
//! The workload is the Llama-shaped sample model of [`crate::model`] (about `--model-mb`). The
//! xtask writes it as `.zt` (raw) and as safetensors (bf16); `benchmark/make_formats.py`, run
//! with the bench venv, reads that safetensors file with the reference libraries and writes
//! the same tensors as a PyTorch zip checkpoint and a legacy `torch.save` pickle (bf16), GGUF
//! (f16 tensors), `.npz` (`np.savez`, stored, f16), ONNX (`raw_data` initializers, bf16; external
//! data when the tensors exceed 1800 MiB, protobuf's 2 GiB limit) and HDF5 (contiguous
//! datasets, f16). Formats without bf16 get float16, converted by torch with round to nearest
//! even. A format whose generation fails is skipped with the reason; the script's outcome is
//! kept in `formats.json` and reused while the model, the seed and the script stay the same.
//!
//! Every file is checked once against the model (names, shapes, dtype, every byte; the f16
//! formats against the model converted here with `half`). Then, for each format:
//!
//! - raw (the baseline): drop the file(s) from the page cache (`sync` + `posix_fadvise`
//!   `DONTNEED`, checked once with `mincore`), `read_exact` the whole file into a reused,
//!   preallocated buffer and sum every byte as u64 words;
//! - ours: drop the file(s), `ztensor::open`, then `dense` of every tensor in the reader's name
//!   order, summing every byte the same way (the sum must match the model's), and counting the
//!   results that were borrowed from the reader's map (zero-copy) against those it copied.
//!
//! Raw and ours alternate within each round (raw first in even rounds, ours first in odd
//! ones) and every format takes its turn in every round, so noise from other processes falls on
//! both sides alike. The first `--warmup` rounds are not counted; figures are medians of the
//! `--runs` rounds after them, as MiB/s of tensor bytes (the raw figure reads the whole file,
//! headers included, in the same time base), and ours/raw is the ratio of those throughputs.
//! The paired column is the median of the per-round ratios raw time / ours time, each taken
//! from two reads that ran back to back, and best the ratio of the fastest runs; the JSON report
//! has every median, minimum and maximum. Last, `ztensor::open` alone is timed cold, and
//! `mincore` tells how much of the file one cold open brought into the page cache (what opening
//! reads, readahead included).
//!
//! A file that was written but does not read back right is reported (the suite fails the run
//! after its tables); a format that could not be written is only skipped.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::hint::black_box;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use half::{bf16, f16};
use ztensor::safetensors::{SafetensorsTensor, write_safetensors};
use ztensor::{ComponentOptions, DType};

use crate::model::{Config, Model};
use crate::sys::{drop_from_page_cache, read_ahead_kib, resident_fraction};
use crate::util::{
    MIB, Stats, format_duration, format_mib, format_size, measure, print_table, touch,
};

/// Seed of the benchmark model's PRNG (the one `cargo xtask bench` uses).
const SEED: u64 = 0xBE7C_2025;
/// ONNX models whose tensor data exceeds this many MiB keep it in an external data file.
const ONNX_EXTERNAL_MIB: u64 = 1800;
/// The script's record of what it wrote, in the scratch directory.
const MANIFEST: &str = "formats.json";

/// Resolved settings of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Approximate size of the model in MiB.
    pub size_mb: u64,
    /// Scratch directory for the files (git-ignored).
    pub dir: PathBuf,
    /// Timed rounds (the median is reported).
    pub runs: usize,
    /// Untimed rounds before them.
    pub warmup: usize,
    /// The Python of the bench venv (torch, safetensors, gguf, numpy, onnx, h5py), or why
    /// there is none.
    pub python: Result<PathBuf, String>,
    /// `benchmark/make_formats.py`.
    pub script: PathBuf,
}

/// The element type a format stores the model's weights in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// The model's own bytes.
    Bf16,
    /// The model converted to IEEE half precision (for formats without bf16).
    F16,
}

impl Precision {
    fn dtype(self) -> DType {
        match self {
            Precision::Bf16 => DType::BF16,
            Precision::F16 => DType::F16,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Bf16 => "bf16",
            Precision::F16 => "f16",
        }
    }
}

/// Who writes a format's file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Producer {
    /// This xtask, through ztensor's writers.
    Xtask,
    /// `make_formats.py`, through the format's reference library.
    Script,
}

/// One format of the benchmark.
#[derive(Debug)]
pub struct Spec {
    /// The key in `formats.json` and in the report.
    pub key: &'static str,
    /// The main file, in the scratch directory.
    file: &'static str,
    /// What `TensorReader::format_name` must say for it.
    reader: &'static str,
    pub precision: Precision,
    producer: Producer,
    /// How the file is written, for the table.
    pub written_by: &'static str,
}

/// Every format ztensor reads (`.npy` is skipped: one array per file).
const SPECS: [Spec; 8] = [
    Spec {
        key: "zt",
        file: "model.zt",
        reader: "zt",
        precision: Precision::Bf16,
        producer: Producer::Xtask,
        written_by: "ztensor Writer (raw)",
    },
    Spec {
        key: "safetensors",
        file: "model.safetensors",
        reader: "safetensors",
        precision: Precision::Bf16,
        producer: Producer::Xtask,
        written_by: "ztensor write_safetensors",
    },
    Spec {
        key: "pt",
        file: "model.pt",
        reader: "pickle",
        precision: Precision::Bf16,
        producer: Producer::Script,
        written_by: "torch.save (zip)",
    },
    Spec {
        key: "pt-legacy",
        file: "model-legacy.pt",
        reader: "pickle",
        precision: Precision::Bf16,
        producer: Producer::Script,
        written_by: "torch.save (legacy)",
    },
    Spec {
        key: "gguf",
        file: "model.gguf",
        reader: "gguf",
        precision: Precision::F16,
        producer: Producer::Script,
        written_by: "gguf.GGUFWriter",
    },
    Spec {
        key: "npz",
        file: "model.npz",
        reader: "npz",
        precision: Precision::F16,
        producer: Producer::Script,
        written_by: "numpy.savez (stored)",
    },
    Spec {
        key: "onnx",
        file: "model.onnx",
        reader: "onnx",
        precision: Precision::Bf16,
        producer: Producer::Script,
        written_by: "onnx raw_data",
    },
    Spec {
        key: "hdf5",
        file: "model.h5",
        reader: "hdf5",
        precision: Precision::F16,
        producer: Producer::Script,
        written_by: "h5py (contiguous)",
    },
];

/// What every tensor must read back as, by the precision of its format.
struct Expected<'a> {
    bf16: &'a [u8],
    f16: &'a [u8],
}

impl Expected<'_> {
    fn get(&self, precision: Precision) -> &[u8] {
        match precision {
            Precision::Bf16 => self.bf16,
            Precision::F16 => self.f16,
        }
    }
}

/// A format whose file(s) exist and read back right, ready to be measured.
#[derive(Debug)]
pub struct Workload {
    pub spec: &'static Spec,
    /// The main file first, then any file it refers to (ONNX external data).
    pub files: Vec<PathBuf>,
    pub file_bytes: u64,
    /// The writing library and its version, when the script reported it.
    library: Option<String>,
    /// What every correct read of the tensors sums to ([`touch`]).
    pub expected_sum: u64,
}

/// What one read through `ztensor::open` saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OursRead {
    pub sum: u64,
    pub borrowed: usize,
    pub owned: usize,
}

/// The figures of one format.
#[derive(Debug, serde::Serialize)]
pub struct FormatRow {
    pub format: &'static str,
    reader: &'static str,
    written_by: &'static str,
    library: Option<String>,
    dtype: &'static str,
    files: Vec<String>,
    file_bytes: u64,
    tensor_bytes: u64,
    pub raw: Stats,
    pub ours: Stats,
    /// Tensor bytes over the median raw read of the whole file.
    raw_mib_per_s: f64,
    /// Tensor bytes over the median open + dense of every tensor.
    ours_mib_per_s: f64,
    /// `ours_mib_per_s / raw_mib_per_s`.
    ratio: f64,
    /// Median of the per-round ratios raw time / ours time: each round's pair ran back to back,
    /// so this one is less exposed to noise that drifts over the run.
    paired_ratio_median: f64,
    paired_ratio_min: f64,
    paired_ratio_max: f64,
    /// `dense` results borrowed from the reader's map (zero-copy) in one read.
    borrowed: usize,
    /// `dense` results the reader copied or converted in one read.
    owned: usize,
    /// `ztensor::open` alone on the dropped file(s).
    open_cold: Stats,
    /// Bytes of the file(s) in the page cache after one cold open (`mincore`): what opening
    /// read, kernel readahead and read-around included.
    cached_after_cold_open: u64,
}

/// A format that was not measured, and why.
#[derive(Debug, serde::Serialize)]
pub struct Skipped {
    pub format: &'static str,
    pub reason: String,
    /// The file was written but ztensor did not read it back right: a failure of the run.
    pub read_back_failed: bool,
}

/// What [`run`] measured, and the files it measured, for the suite's other readers.
#[derive(Debug, serde::Serialize)]
pub struct Outcome {
    pub dir: PathBuf,
    pub read_ahead_kib: Option<u64>,
    pub model: Config,
    pub tensors: usize,
    pub data_bytes: u64,
    pub runs: usize,
    pub warmup: usize,
    pub formats: Vec<FormatRow>,
    pub skipped: Vec<Skipped>,
    #[serde(skip)]
    pub workloads: Vec<Workload>,
}

/// Writes (or reuses) the files, checks them, measures ours against raw, prints the table.
pub fn run(settings: &Settings) -> Result<Outcome> {
    let Settings {
        size_mb,
        ref dir,
        runs,
        warmup,
        ..
    } = *settings;
    ensure!(size_mb > 0, "--model-mb must be at least 1");
    ensure!(runs > 0, "--runs must be at least 1");
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;

    let (config, model) = crate::bench::generate_workload(size_mb);

    println!("writing model.zt and model.safetensors ...");
    model.write_zt(&dir.join("model.zt"), ComponentOptions::raw())?;
    write_model_safetensors(&model, &dir.join("model.safetensors"))?;
    let mut skipped = Vec::new();
    let generated = script_formats(settings, config)?;

    // The f16 formats are checked against the model converted here, independently of torch.
    let f16_data = bf16_to_f16(&model.data);
    let expected = Expected {
        bf16: &model.data,
        f16: &f16_data,
    };
    let (bf16_sum, f16_sum) = (touch(expected.bf16), touch(expected.f16));

    println!("checking every file against the model ...");
    let mut workloads = Vec::new();
    for spec in &SPECS {
        let found = match spec.producer {
            Producer::Xtask => Ok((vec![dir.join(spec.file)], None)),
            Producer::Script => generated
                .get(spec.key)
                .cloned()
                .unwrap_or_else(|| Err("make_formats.py did not report it".to_owned())),
        };
        let (files, library) = match found {
            Ok(found) => found,
            Err(reason) => {
                if skipped.iter().any(|s: &Skipped| s.reason == reason) {
                    println!("  {}: skipped (the same reason)", spec.key);
                } else {
                    println!("  {}: skipped: {reason}", spec.key);
                }
                skipped.push(Skipped {
                    format: spec.key,
                    reason,
                    read_back_failed: false,
                });
                continue;
            }
        };
        let checked = check_file(&files[0], spec, &model, expected.get(spec.precision));
        if let Err(e) = checked {
            let reason = format!("reading it back failed: {e:#}");
            println!("  {}: skipped: {reason}", spec.key);
            skipped.push(Skipped {
                format: spec.key,
                reason,
                read_back_failed: true,
            });
            continue;
        }
        let mut file_bytes = 0;
        for file in &files {
            file_bytes += file_len(file)?;
        }
        println!(
            "  {}: {} ({}) reads back byte for byte",
            spec.key,
            files
                .iter()
                .map(|f| file_name(f))
                .collect::<Vec<_>>()
                .join(" + "),
            format_size(file_bytes),
        );
        workloads.push(Workload {
            spec,
            files,
            file_bytes,
            library,
            expected_sum: match spec.precision {
                Precision::Bf16 => bf16_sum,
                Precision::F16 => f16_sum,
            },
        });
    }
    ensure!(!workloads.is_empty(), "no format could be measured");

    let read_ahead = read_ahead_kib(dir);
    println!(
        "cold reads: median of {runs} rounds after {warmup} warm-up rounds, raw and ours interleaved; files in {} (device readahead {})",
        dir.display(),
        read_ahead.map_or_else(|| "unknown".to_owned(), |kib| format!("{kib} KiB"))
    );
    check_drops(&workloads)?;
    let rows = measure_all(&workloads, &model, runs, warmup)?;

    println!();
    print_rows(&rows);
    print_skipped(&skipped);
    println!(
        "MiB/s of tensor data ({}) over the median time; raw: whole file read_exact into a buffer; ours: ztensor::open + dense of every tensor; ours/raw: of the medians; paired: median of the per-round ratios; best: of the fastest runs; zero-copy: dense results borrowed from the map; open (cold): ztensor::open alone, median; read by open: bytes in the page cache after one cold open (mincore), readahead included",
        format_mib(model.total_bytes())
    );
    Ok(Outcome {
        dir: dir.clone(),
        read_ahead_kib: read_ahead,
        model: config,
        tensors: model.tensors.len(),
        data_bytes: model.total_bytes(),
        runs,
        warmup,
        formats: rows,
        skipped,
        workloads,
    })
}

/// Writes the model as safetensors (ztensor's writer): the source of every format the script
/// writes, and the safetensors file of the benchmarks.
pub fn write_model_safetensors(model: &Model, path: &Path) -> Result<()> {
    let tensors: Vec<SafetensorsTensor<'_>> = model
        .tensors
        .iter()
        .map(|t| SafetensorsTensor::new(&t.name, model.dtype, &t.shape, model.bytes(t)))
        .collect();
    write_safetensors(path, &tensors, None)
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The files of each script-written format by key, or why there are none: from `formats.json`
/// when it was written for this model and script, otherwise by running `make_formats.py`.
type Generated = BTreeMap<String, Result<(Vec<PathBuf>, Option<String>), String>>;

fn script_formats(settings: &Settings, config: Config) -> Result<Generated> {
    let keys = SPECS.iter().filter(|s| s.producer == Producer::Script);
    let all_skipped = |reason: String| -> Generated {
        keys.clone()
            .map(|s| (s.key.to_owned(), Err(reason.clone())))
            .collect()
    };
    let dir = &settings.dir;
    let python = match &settings.python {
        Ok(python) => python,
        Err(reason) => return Ok(all_skipped(format!("no reference libraries: {reason}"))),
    };
    let script = match fs::read(&settings.script) {
        Ok(script) => script,
        Err(e) => {
            return Ok(all_skipped(format!(
                "cannot read {}: {e}",
                settings.script.display()
            )));
        }
    };
    // Everything the script's output depends on.
    let key = format!(
        "layers={} vocab={} seed={SEED:#x} onnx_external_mib={ONNX_EXTERNAL_MIB} script={:016x}",
        config.layers,
        config.vocab,
        fnv1a(&script)
    );
    let manifest = dir.join(MANIFEST);
    // Reused only when every format was written and is still there: a failure is retried.
    if let Some(generated) = read_manifest(&manifest, &key)?
        && keys.clone().all(|s| {
            generated.get(s.key).is_some_and(|outcome| {
                outcome.as_ref().is_ok_and(|(files, _)| {
                    files
                        .iter()
                        .all(|f| f.metadata().is_ok_and(|m| m.len() > 0))
                })
            })
        })
    {
        println!(
            "reusing the files make_formats.py wrote for this model ({}; delete it to regenerate)",
            manifest.display()
        );
        return Ok(generated);
    }

    println!(
        "writing the other formats with {} {} ...",
        python.display(),
        settings.script.display()
    );
    crate::util::remove_if_present(&manifest)?;
    let started = Instant::now();
    let status = Command::new(python)
        .arg(&settings.script)
        .arg("--source")
        .arg(dir.join("model.safetensors"))
        .arg("--out-dir")
        .arg(dir)
        .arg("--key")
        .arg(&key)
        .arg("--onnx-external-mb")
        .arg(ONNX_EXTERNAL_MIB.to_string())
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    println!(
        "make_formats.py took {}",
        format_duration(started.elapsed().as_secs_f64())
    );
    match read_manifest(&manifest, &key)? {
        Some(generated) => Ok(generated),
        None => Ok(all_skipped(format!(
            "make_formats.py failed ({status}) without writing {MANIFEST}"
        ))),
    }
}

/// Parses the script's `formats.json`; `None` when it is missing or was written for another key.
fn read_manifest(path: &Path, key: &str) -> Result<Option<Generated>> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let manifest: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if manifest["key"].as_str() != Some(key) {
        return Ok(None);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut generated = Generated::new();
    let formats = manifest["formats"].as_object().into_iter().flatten();
    for (format, entry) in formats {
        let outcome = if let Some(error) = entry["error"].as_str() {
            Err(format!("make_formats.py failed: {error}"))
        } else if let Some(files) = entry["files"].as_array().filter(|f| !f.is_empty()) {
            files
                .iter()
                .map(|f| f.as_str().map(|f| dir.join(f)))
                .collect::<Option<Vec<_>>>()
                .map(|files| (files, entry["library"].as_str().map(str::to_owned)))
                .ok_or_else(|| format!("{}: bad file list for {format}", path.display()))
        } else {
            Err(format!("{}: no files listed for {format}", path.display()))
        };
        generated.insert(format.clone(), outcome);
    }
    Ok(Some(generated))
}

/// FNV-1a, 64 bits: a stable fingerprint of the script for the cache key.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// The model's bf16 bytes as f16 bytes (round to nearest even, as torch converts).
fn bf16_to_f16(data: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; data.len()];
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = (data.len() / 2).div_ceil(threads).max(1) * 2;
    std::thread::scope(|scope| {
        for (src, dst) in data.chunks(chunk).zip(out.chunks_mut(chunk)) {
            scope.spawn(move || {
                for (s, d) in src.chunks_exact(2).zip(dst.chunks_exact_mut(2)) {
                    let value = bf16::from_le_bytes([s[0], s[1]]).to_f32();
                    d.copy_from_slice(&f16::from_f32(value).to_le_bytes());
                }
            });
        }
    });
    out
}

/// Checks that `path` opens as the expected format and holds exactly the model: the same
/// names, shapes and dtype, and `expected`'s bytes.
fn check_file(path: &Path, spec: &Spec, model: &Model, expected: &[u8]) -> Result<()> {
    let reader = ztensor::open(path).with_context(|| format!("opening {}", path.display()))?;
    ensure!(
        reader.format_name() == spec.reader,
        "{} opened as {}, expected {}",
        path.display(),
        reader.format_name(),
        spec.reader
    );
    model.check_reader_as(&*reader, spec.precision.dtype(), expected)
}

/// Drops every file once and checks with `mincore` that the page cache let it go.
fn check_drops(workloads: &[Workload]) -> Result<()> {
    for path in workloads.iter().flat_map(|w| &w.files) {
        drop_from_page_cache(path)?;
        let resident = resident_fraction(path)?;
        if resident > 0.01 {
            println!(
                "  warning: {:.1}% of {} stayed in the page cache after dropping it; cold figures are optimistic",
                resident * 100.0,
                path.display()
            );
        }
    }
    Ok(())
}

/// Drops all of a workload's files from the page cache.
pub fn drop_all(workload: &Workload) -> Result<()> {
    workload
        .files
        .iter()
        .try_for_each(|f| drop_from_page_cache(f))
}

/// The interleaved rounds: in each, every format's raw and ours reads, cold.
fn measure_all(
    workloads: &[Workload],
    model: &Model,
    runs: usize,
    warmup: usize,
) -> Result<Vec<FormatRow>> {
    let tensor_bytes = model.total_bytes();
    let largest = workloads.iter().map(|w| w.file_bytes).max().unwrap_or(0);
    let mut buffer = vec![0xA5u8; usize::try_from(largest).context("file too large")?];

    let mut raw_times = vec![Vec::with_capacity(runs); workloads.len()];
    let mut ours_times = vec![Vec::with_capacity(runs); workloads.len()];
    let mut seen: Vec<Option<OursRead>> = vec![None; workloads.len()];
    let rounds = warmup + runs;
    for round in 0..rounds {
        let started = Instant::now();
        for (i, w) in workloads.iter().enumerate() {
            for ours in [round % 2 == 1, round % 2 == 0] {
                drop_all(w)?;
                let clock = Instant::now();
                if ours {
                    let read = read_ours(&w.files[0], false)?;
                    let elapsed = clock.elapsed().as_secs_f64();
                    ensure!(
                        read.sum == w.expected_sum,
                        "{}: ztensor read back a wrong sum",
                        w.files[0].display()
                    );
                    ensure!(
                        read.borrowed + read.owned == model.tensors.len(),
                        "{}: read {} tensors, expected {}",
                        w.files[0].display(),
                        read.borrowed + read.owned,
                        model.tensors.len()
                    );
                    if let Some(before) = seen[i] {
                        ensure!(before == read, "{}: two reads differ", w.files[0].display());
                    }
                    seen[i] = Some(read);
                    if round >= warmup {
                        ours_times[i].push(elapsed);
                    }
                } else {
                    read_raw(&w.files, &mut buffer)?;
                    if round >= warmup {
                        raw_times[i].push(clock.elapsed().as_secs_f64());
                    }
                }
            }
        }
        println!(
            "  round {}/{rounds}{} in {}",
            round + 1,
            if round < warmup { " (warm-up)" } else { "" },
            format_duration(started.elapsed().as_secs_f64())
        );
    }

    println!("measuring ztensor::open alone ...");
    let mut rows = Vec::new();
    for (((w, raw), ours), read) in workloads.iter().zip(raw_times).zip(ours_times).zip(seen) {
        let paired = Stats::from_seconds(raw.iter().zip(&ours).map(|(r, o)| r / o).collect())?;
        let raw = Stats::from_seconds(raw)?;
        let ours = Stats::from_seconds(ours)?;
        let read = read.context("no read was measured")?;
        let open_cold = measure(runs, warmup, || {
            drop_all(w)?;
            time_open(&w.files[0])
        })?;
        drop_all(w)?;
        time_open(&w.files[0])?;
        let mut cached = 0.0;
        for file in &w.files {
            cached += resident_fraction(file)? * file_len(file)? as f64;
        }
        let raw_mib_per_s = tensor_bytes as f64 / MIB / raw.median_s;
        let ours_mib_per_s = tensor_bytes as f64 / MIB / ours.median_s;
        rows.push(FormatRow {
            format: w.spec.key,
            reader: w.spec.reader,
            written_by: w.spec.written_by,
            library: w.library.clone(),
            dtype: w.spec.precision.name(),
            files: w.files.iter().map(|f| file_name(f)).collect(),
            file_bytes: w.file_bytes,
            tensor_bytes,
            raw,
            ours,
            raw_mib_per_s,
            ours_mib_per_s,
            ratio: ours_mib_per_s / raw_mib_per_s,
            paired_ratio_median: paired.median_s,
            paired_ratio_min: paired.min_s,
            paired_ratio_max: paired.max_s,
            borrowed: read.borrowed,
            owned: read.owned,
            open_cold,
            cached_after_cold_open: cached.round() as u64,
        });
    }
    Ok(rows)
}

/// The baseline: every file of the workload, one after the other, `read_exact` into `buffer`,
/// then every byte summed.
pub fn read_raw(files: &[PathBuf], buffer: &mut [u8]) -> Result<u64> {
    let mut at = 0usize;
    for path in files {
        let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        let len = file
            .metadata()
            .with_context(|| format!("reading the metadata of {}", path.display()))?
            .len();
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| at.checked_add(len))
            .filter(|&end| end <= buffer.len())
            .with_context(|| format!("{} grew since it was checked", path.display()))?;
        file.read_exact(&mut buffer[at..end])
            .with_context(|| format!("reading {}", path.display()))?;
        at = end;
    }
    Ok(touch(&buffer[..at]))
}

/// `ztensor::open`, then `dense` of every tensor in file order, every byte summed. With `copy`
/// every tensor is copied into a vector of its own first (what a caller that must own its
/// tensors pays; already owned results are kept as they are).
pub fn read_ours(path: &Path, copy: bool) -> Result<OursRead> {
    let reader = ztensor::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut read = OursRead {
        sum: 0,
        borrowed: 0,
        owned: 0,
    };
    for name in reader.names_in_file_order() {
        let bytes = reader
            .dense(name)
            .with_context(|| format!("reading {name} from {}", path.display()))?;
        match bytes {
            Cow::Borrowed(_) => read.borrowed += 1,
            Cow::Owned(_) => read.owned += 1,
        }
        let bytes = if copy {
            Cow::Owned(bytes.into_owned())
        } else {
            bytes
        };
        read.sum = read.sum.wrapping_add(touch(&bytes));
    }
    Ok(read)
}

/// Times `ztensor::open` alone (closing the reader is not timed).
fn time_open(path: &Path) -> Result<Duration> {
    let started = Instant::now();
    let reader = ztensor::open(path).with_context(|| format!("opening {}", path.display()))?;
    let elapsed = started.elapsed();
    black_box(reader.len());
    Ok(elapsed)
}

pub fn file_len(path: &Path) -> Result<u64> {
    Ok(fs::metadata(path)
        .with_context(|| format!("reading the metadata of {}", path.display()))?
        .len())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// One line per reason, naming every format skipped for it.
pub fn print_skipped(skipped: &[Skipped]) {
    let mut reasons: Vec<(&str, Vec<&str>)> = Vec::new();
    for s in skipped {
        match reasons.iter_mut().find(|(reason, _)| *reason == s.reason) {
            Some((_, formats)) => formats.push(s.format),
            None => reasons.push((&s.reason, vec![s.format])),
        }
    }
    for (reason, formats) in reasons {
        println!("skipped {}: {reason}", formats.join(", "));
    }
}

fn print_rows(rows: &[FormatRow]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let total = r.borrowed + r.owned;
            let zero_copy = match (r.borrowed, r.owned) {
                (_, 0) => format!("yes ({}/{total})", r.borrowed),
                (0, _) => format!("no (0/{total})"),
                (b, _) => format!("partly ({b}/{total})"),
            };
            vec![
                r.format.to_owned(),
                r.written_by.to_owned(),
                r.dtype.to_owned(),
                format_size(r.file_bytes),
                format!("{:.0}", r.raw_mib_per_s),
                format!("{:.0}", r.ours_mib_per_s),
                format!("{:.2}x", r.ratio),
                format!("{:.2}x", r.paired_ratio_median),
                format!("{:.2}x", r.raw.min_s / r.ours.min_s),
                zero_copy,
                format_duration(r.open_cold.median_s),
                format_size(r.cached_after_cold_open),
            ]
        })
        .collect();
    print_table(
        &[
            "format",
            "written by",
            "dtype",
            "file",
            "raw MiB/s",
            "ours MiB/s",
            "ours/raw",
            "paired",
            "best",
            "zero-copy",
            "open (cold)",
            "read by open",
        ],
        3,
        &cells,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bf16_to_f16_rounds_like_torch() {
        // 1.0, -2.0, 2^-20 (a subnormal in f16), 1 + 2^-7 (exact in both).
        let values = [1.0f32, -2.0, 9.536_743e-7, 1.007_812_5];
        let bytes: Vec<u8> = values
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect();
        let out = bf16_to_f16(&bytes);
        let back: Vec<f32> = out
            .chunks_exact(2)
            .map(|p| f16::from_le_bytes([p[0], p[1]]).to_f32())
            .collect();
        assert_eq!(back, values);
        assert!(bf16_to_f16(&[]).is_empty());
    }

    #[test]
    fn specs_have_distinct_keys_and_files() {
        for (i, a) in SPECS.iter().enumerate() {
            for b in &SPECS[i + 1..] {
                assert_ne!(a.key, b.key);
                assert_ne!(a.file, b.file);
            }
        }
    }
}
