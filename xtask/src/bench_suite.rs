//! `cargo xtask bench`: the benchmark tables of seed 002, measured in one run, side by side,
//! for our Rust API, our Python API (`crates/ztensor-py`), upstream zTensor 2.x and each
//! format's reference library, with a raw read and write of the same bytes as the machine's
//! limit.
//!
//! Sections (`cargo xtask bench SECTION`, all of them by default):
//!
//! - `formats`: cold reads of a Llama-3.2-1B-shaped model (bf16, f16 where a format has no
//!   bf16) from .zt, safetensors, PyTorch (zip and legacy), GGUF, .npz, ONNX and HDF5, by our
//!   readers (zero-copy and copying), upstream zTensor's and the format's own library
//!   ([`crate::bench_formats`] measures the Rust side against raw reads, interleaved);
//! - `read` / `write`: the format comparison at `--size-mb` (512 MB by default) on the Large,
//!   Mixed and Small workloads ([`crate::workloads`]): each library writes (with fsync) and reads
//!   (cold and warm) its own format; ours and upstream zTensor use `.zt`;
//! - `compression`: Dense fp32 / Quantized int8 / Pruned 80% / Ternary as `.zt` raw, zstd-3
//!   and our ztc1 codec (and upstream zTensor's zstd): sizes, cold reads, writes;
//! - `codec`: [`crate::bench_codec`] (ztc1 against zstd, z4ai and ZipNN);
//! - `io` (not part of `all`): [`crate::bench`], `.zt` against raw on one model, with the
//!   opening cost of files of 10 to 100000 tensors.
//!
//! Method: cold reads `sync`, drop the file(s) from the page cache with
//! `posix_fadvise(DONTNEED)` (in Rust and, in `benchmark/peers.py`, with `os.posix_fadvise`),
//! then time opening and reading every tensor and touching every byte (a sum of u64 words that
//! must match the model's, so zero-copy readers really read and every reader is checked);
//! warm reads skip the drop; writes include the fsync. Each figure is the median of `--runs`
//! timed runs after `--warmup` untimed ones. Throughputs are GB/s (10^9 bytes per second) of
//! tensor data, like the seed's tables. The Python side runs in the venvs of [`crate::venv`],
//! which the xtask creates; whatever is missing is reported and skipped.
//!
//! Output: markdown on stdout and in `benchmark/results/latest.md`, JSON in `latest.json`, a
//! PNG chart in `latest.png` (`benchmark/plot.py`, matplotlib), and with `--update-readme` the
//! README's section between `<!-- bench:start -->` and `<!-- bench:end -->`
//! ([`crate::bench_report`]).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ztensor::ComponentOptions;

use crate::bench_formats::{self, file_len, read_ours, read_raw, write_model_safetensors};
use crate::model::Model;
use crate::sys::{Machine, drop_from_page_cache};
use crate::util::{Stats, format_duration, format_size, measure, remove_if_present, touch};
use crate::venv::Pythons;
use crate::workloads::{Kind, Layout};

/// Seed of the generated workloads (each adds its index).
const SEED: u64 = 0x5EED_0002;

/// The sections of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// formats, read, write, compression and codec
    All,
    /// Cross-format cold reads of the Llama-shaped model
    Formats,
    /// Read throughput, Large / Mixed / Small
    Read,
    /// Write throughput, Large / Mixed / Small
    Write,
    /// Compression ratio and throughput
    Compression,
    /// The ztc1 codec against zstd, z4ai and ZipNN
    Codec,
    /// .zt against raw I/O and the opening cost (not part of all)
    Io,
}

impl Which {
    fn has(self, section: Which) -> bool {
        self == section || (self == Which::All && section != Which::Io)
    }
}

/// Resolved settings of one run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub which: Which,
    /// The Llama-shaped model of `formats`, MiB.
    pub model_mb: u64,
    /// Each workload of `read`, `write` and `compression`, MiB.
    pub size_mb: u64,
    /// MB per workload of `codec`.
    pub codec_mb: f64,
    pub runs: usize,
    pub warmup: usize,
    pub quick: bool,
    /// Run the Python side (reference libraries, our Python API, upstream zTensor).
    pub peers: bool,
    /// Build our Python package into the bench venv first (`maturin develop`).
    pub build_python: bool,
    /// Scratch directory (git-ignored).
    pub dir: PathBuf,
    /// Where latest.md, latest.json and latest.png go.
    pub out: PathBuf,
    pub update_readme: bool,
    /// The workspace root.
    pub root: PathBuf,
}

/// Read or write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    Read,
    Write,
}

/// Implementations, as they appear in the JSON (`implementation`); reference libraries go by
/// their module name (`safetensors`, `torch`, `numpy`, `gguf`, `onnx`, `h5py`).
pub const RAW: &str = "raw";
pub const OURS_RUST: &str = "ours-rust";
pub const OURS_PYTHON: &str = "ours-python";
pub const UPSTREAM: &str = "upstream";

/// What one measurement is of.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Key {
    pub section: &'static str,
    pub workload: String,
    pub op: Op,
    /// Reads only: the file(s) were dropped from the page cache first.
    pub cold: bool,
    /// `zt`, `safetensors`, `pt`, ..., or `raw` for the plain file.
    pub format: &'static str,
    pub implementation: &'static str,
    /// Reads only: views of a memory map rather than copies.
    pub zero_copy: bool,
    /// `.zt` components: `zstd-3` or `ztc` (none: raw).
    pub compression: Option<&'static str>,
}

/// One figure of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Measurement {
    #[serde(flatten)]
    pub key: Key,
    pub tensor_bytes: u64,
    pub file_bytes: Option<u64>,
    pub stats: Option<Stats>,
    /// Tensor bytes / median time, in 10^9 bytes per second.
    pub gb_per_s: Option<f64>,
    pub error: Option<String>,
}

impl Measurement {
    fn new(key: Key, tensor_bytes: u64, outcome: Result<Stats>) -> Measurement {
        let (stats, error) = match outcome {
            Ok(stats) => (Some(stats), None),
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        Measurement {
            key,
            tensor_bytes,
            file_bytes: None,
            gb_per_s: stats.map(|s| tensor_bytes as f64 / 1e9 / s.median_s),
            stats,
            error,
        }
    }

    fn with_file_bytes(mut self, bytes: Option<u64>) -> Measurement {
        self.file_bytes = bytes;
        self
    }
}

/// A foreign format in `benchmark/peers.py`: its reference library, the file that library
/// writes in a workload directory (`make_formats.py`'s names), and whether the library can
/// read it zero-copy.
pub struct Reference {
    pub format: &'static str,
    pub lib: &'static str,
    pub file: &'static str,
    pub zero_copy: bool,
}

pub const REFERENCES: [Reference; 7] = [
    Reference {
        format: "safetensors",
        lib: "safetensors",
        file: "model.safetensors",
        zero_copy: true,
    },
    Reference {
        format: "pt",
        lib: "torch",
        file: "model.pt",
        zero_copy: true,
    },
    Reference {
        format: "pt-legacy",
        lib: "torch",
        file: "model-legacy.pt",
        zero_copy: false,
    },
    Reference {
        format: "npz",
        lib: "numpy",
        file: "model.npz",
        zero_copy: false,
    },
    Reference {
        format: "gguf",
        lib: "gguf",
        file: "model.gguf",
        zero_copy: true,
    },
    Reference {
        format: "onnx",
        lib: "onnx",
        file: "model.onnx",
        zero_copy: false,
    },
    Reference {
        format: "hdf5",
        lib: "h5py",
        file: "model.h5",
        zero_copy: false,
    },
];

pub fn reference(format: &str) -> Option<&'static Reference> {
    REFERENCES.iter().find(|r| r.format == format)
}

/// Everything one run produced, as `latest.json` holds it.
#[derive(Debug, serde::Serialize)]
pub struct Report {
    pub machine: Machine,
    pub commit: Option<String>,
    pub date: String,
    pub quick: bool,
    pub runs: usize,
    pub warmup: usize,
    pub model_mb: u64,
    pub size_mb: u64,
    /// Library versions by venv (`bench`, `upstream`).
    pub versions: BTreeMap<String, serde_json::Value>,
    /// What could not be measured, and why.
    pub notes: Vec<String>,
    /// Wall-clock seconds of the venv setup and of each section.
    pub seconds: BTreeMap<String, f64>,
    pub measurements: Vec<Measurement>,
    /// The Rust side of `formats` in detail (paired ratios, opening cost).
    pub formats_detail: Option<bench_formats::Outcome>,
    /// The codec benchmark's figures.
    pub codec: Option<serde_json::Value>,
    /// The codec benchmark's tables (markdown), for latest.md.
    #[serde(skip)]
    pub codec_markdown: Option<String>,
}

/// Runs the selected sections and writes the report.
pub fn run(settings: &Settings) -> Result<()> {
    let s = settings;
    ensure!(s.runs > 0, "--runs must be at least 1");
    ensure!(s.size_mb > 0, "--size-mb must be at least 1");
    fs::create_dir_all(&s.dir).with_context(|| format!("creating {}", s.dir.display()))?;
    let machine = Machine::detect();
    println!("{machine}");

    let clock = Instant::now();
    let pythons = if s.peers {
        println!("preparing the Python venvs ...");
        crate::venv::prepare(&s.root, s.build_python, &s.dir.join("logs"))
    } else {
        Pythons::none("--no-peers")
    };
    let setup_seconds = clock.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut report = Report {
        machine,
        commit: git_commit(&s.root),
        date: today_utc(),
        quick: s.quick,
        runs: s.runs,
        warmup: s.warmup,
        model_mb: s.model_mb,
        size_mb: s.size_mb,
        versions: BTreeMap::new(),
        notes: Vec::new(),
        seconds: BTreeMap::new(),
        measurements: Vec::new(),
        formats_detail: None,
        codec: None,
        codec_markdown: None,
    };
    report.seconds.insert("setup".to_owned(), setup_seconds);
    for (what, outcome) in [
        ("reference libraries", pythons.bench.as_ref().err()),
        ("ztensor (Python)", pythons.ours.as_ref().err()),
        ("zTensor 2.x", pythons.upstream.as_ref().err()),
    ] {
        if let Some(reason) = outcome {
            report
                .notes
                .push(format!("{what}: not available: {reason}"));
        }
    }
    let runner = Runner {
        settings: s,
        pythons: &pythons,
        script: s.root.join("benchmark/peers.py"),
    };

    let timed = |report: &mut Report, name: &str, clock: Instant| {
        let seconds = clock.elapsed().as_secs_f64();
        println!("{name} took {}", format_duration(seconds));
        report.seconds.insert(name.to_owned(), seconds);
    };
    if s.which.has(Which::Formats) {
        println!("\n== formats: cross-format cold reads of the Llama-shaped model ==");
        let clock = Instant::now();
        formats(&runner, &mut report)?;
        timed(&mut report, "formats", clock);
    }
    if s.which.has(Which::Read) || s.which.has(Which::Write) {
        println!("\n== read / write: Large, Mixed, Small ==");
        let clock = Instant::now();
        read_write(&runner, &mut report)?;
        timed(&mut report, "read/write", clock);
    }
    if s.which.has(Which::Compression) {
        println!("\n== compression ==");
        let clock = Instant::now();
        compression(&runner, &mut report)?;
        timed(&mut report, "compression", clock);
    }
    if s.which.has(Which::Codec) {
        println!("\n== codec ==");
        let clock = Instant::now();
        let (dir, venv, script) = crate::bench_codec::default_paths(&s.root);
        let outcome = crate::bench_codec::run(&crate::bench_codec::Settings {
            mb: s.codec_mb,
            runs: if s.quick { 2 } else { 3 },
            threads: report.machine.nproc,
            only: None,
            peers: s.peers && pythons.bench.is_ok(),
            efforts: Vec::new(),
            slow: !s.quick,
            json: None,
            dir,
            venv,
            script,
        })?;
        report.codec = Some(outcome.rows);
        report.codec_markdown = Some(outcome.markdown);
        timed(&mut report, "codec", clock);
    }

    println!(
        "\nmeasured in {} (after {} of venv setup)",
        format_duration(started.elapsed().as_secs_f64()),
        format_duration(setup_seconds)
    );
    // The chart needs matplotlib: the bench venv's, even when the peers were not run.
    let venv_python = crate::venv::bench_dir(&s.root).join("bin/python");
    let plot_python = pythons
        .bench
        .clone()
        .ok()
        .or_else(|| venv_python.exists().then_some(venv_python));
    crate::bench_report::publish(&report, s, plot_python.as_ref())?;

    let failed: Vec<&str> = report
        .formats_detail
        .iter()
        .flat_map(|o| &o.skipped)
        .filter(|s| s.read_back_failed)
        .map(|s| s.format)
        .collect();
    ensure!(
        failed.is_empty(),
        "ztensor did not read back {} right (see above)",
        failed.join(", ")
    );
    let wrong: Vec<String> = report
        .measurements
        .iter()
        .filter(|m| {
            m.key.implementation == OURS_RUST
                && m.error.as_deref().is_some_and(|e| e.contains("wrong"))
        })
        .map(|m| format!("{} {}", m.key.workload, m.key.format))
        .collect();
    ensure!(
        wrong.is_empty(),
        "our Rust reader read back wrong bytes: {}",
        wrong.join(", ")
    );
    Ok(())
}

/// What the sections share: the settings, the venvs and the peers script.
struct Runner<'a> {
    settings: &'a Settings,
    pythons: &'a Pythons,
    script: PathBuf,
}

impl Runner<'_> {
    fn runs(&self) -> (usize, usize) {
        (self.settings.runs, self.settings.warmup)
    }

    /// Times a read in Rust: the files dropped first when `cold`, then `read`, whose sum must
    /// be `expected`.
    fn rust_read(
        &self,
        files: &[PathBuf],
        cold: bool,
        expected: u64,
        mut read: impl FnMut() -> Result<u64>,
    ) -> Result<Stats> {
        let (runs, warmup) = self.runs();
        measure(runs, warmup, || {
            if cold {
                for f in files {
                    drop_from_page_cache(f)?;
                }
            }
            let clock = Instant::now();
            let sum = read()?;
            let elapsed = clock.elapsed();
            ensure!(
                sum == expected,
                "read back wrong bytes (sum {sum:#x}, expected {expected:#x})"
            );
            Ok(elapsed)
        })
    }

    /// Times a write in Rust (`write` must fsync): the file is removed before each run. With
    /// `timed` false it is written once, untimed.
    fn rust_write(
        &self,
        path: &Path,
        timed: bool,
        mut write: impl FnMut() -> Result<()>,
    ) -> Result<(Stats, u64)> {
        let (runs, warmup) = if timed { self.runs() } else { (1, 0) };
        let stats = measure(runs, warmup, || {
            remove_if_present(path)?;
            let clock = Instant::now();
            write()?;
            Ok(clock.elapsed())
        })?;
        Ok((stats, file_len(path)?))
    }
}

/// The venv a [`Batch`] runs in.
#[derive(Debug, Clone, Copy)]
enum Venv {
    /// The reference libraries and our Python package.
    Bench,
    /// Upstream zTensor 2.x.
    Upstream,
}

/// Runs `bench` in the bench venv, then `upstream` in upstream zTensor's.
fn run_both(
    runner: &Runner<'_>,
    bench: Batch,
    upstream: Batch,
    runs: (usize, usize),
    report: &mut Report,
) -> Result<Vec<Measurement>> {
    let mut out = bench.run(runner, Venv::Bench, runs, report)?;
    out.extend(upstream.run(runner, Venv::Upstream, runs, report)?);
    Ok(out)
}

/// The Python tasks for one venv, with what each measures.
#[derive(Default)]
struct Batch {
    tasks: Vec<PyTask>,
    keys: Vec<(Key, u64)>,
}

#[derive(Debug, serde::Serialize)]
struct PyTask {
    id: usize,
    op: Op,
    lib: &'static str,
    format: &'static str,
    files: Vec<PathBuf>,
    source: Option<PathBuf>,
    dir: Option<PathBuf>,
    compress: Option<&'static str>,
    /// A write through `ztensor.convert(source, file)`.
    convert: bool,
    zero_copy: bool,
    cold: bool,
    expected_sum: u64,
    tensors: usize,
}

impl Batch {
    fn read(&mut self, key: Key, lib: &'static str, files: Vec<PathBuf>, w: &Info) {
        self.tasks.push(PyTask {
            id: self.tasks.len(),
            op: Op::Read,
            lib,
            format: key.format,
            files,
            source: None,
            dir: None,
            compress: None,
            convert: false,
            zero_copy: key.zero_copy,
            cold: key.cold,
            expected_sum: w.expected_sum,
            tensors: w.tensors,
        });
        self.keys.push((key, w.tensor_bytes));
    }

    /// A write of the workload's `source.safetensors` by `lib`.
    fn write(&mut self, key: Key, lib: &'static str, file: PathBuf, w: &Info) {
        self.write_from(key, lib, file, w.dir.join("source.safetensors"), false, w);
    }

    fn write_from(
        &mut self,
        key: Key,
        lib: &'static str,
        file: PathBuf,
        source: PathBuf,
        convert: bool,
        w: &Info,
    ) {
        self.tasks.push(PyTask {
            id: self.tasks.len(),
            op: Op::Write,
            lib,
            format: key.format,
            files: vec![file],
            source: Some(source),
            dir: Some(w.dir.clone()),
            compress: key.compression,
            convert,
            zero_copy: false,
            cold: false,
            expected_sum: w.expected_sum,
            tensors: w.tensors,
        });
        self.keys.push((key, w.tensor_bytes));
    }

    /// Runs the tasks with the venv's Python, unless there are none or no such Python.
    fn run(
        self,
        runner: &Runner<'_>,
        venv: Venv,
        runs: (usize, usize),
        report: &mut Report,
    ) -> Result<Vec<Measurement>> {
        let (python, name) = match venv {
            Venv::Bench => (runner.pythons.bench.as_ref(), "bench"),
            Venv::Upstream => (runner.pythons.upstream.as_ref(), "upstream"),
        };
        let Ok(python) = python else {
            return Ok(Vec::new());
        };
        if self.tasks.is_empty() {
            return Ok(Vec::new());
        }
        let dir = &runner.settings.dir;
        let plan_path = dir.join(format!("plan-{name}.json"));
        let out_path = dir.join(format!("results-{name}.json"));
        let plan = serde_json::json!({"runs": runs.0, "warmup": runs.1, "tasks": self.tasks});
        fs::write(&plan_path, serde_json::to_string_pretty(&plan)?)
            .with_context(|| format!("writing {}", plan_path.display()))?;
        remove_if_present(&out_path)?;
        println!("running {} tasks in the {name} venv ...", self.tasks.len());
        let status = Command::new(python)
            .arg(&runner.script)
            .arg("--plan")
            .arg(&plan_path)
            .arg("--out")
            .arg(&out_path)
            .status()
            .with_context(|| format!("running {}", python.display()))?;
        let parsed: Option<serde_json::Value> = fs::read_to_string(&out_path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok());
        let Some(parsed) = parsed else {
            let reason = format!("peers.py failed in the {name} venv ({status})");
            report.notes.push(reason.clone());
            return Ok(self
                .keys
                .into_iter()
                .map(|(key, bytes)| Measurement::new(key, bytes, Err(anyhow::anyhow!("{reason}"))))
                .collect());
        };
        report
            .versions
            .insert(name.to_owned(), parsed["versions"].clone());
        let results = parsed["results"].as_array().cloned().unwrap_or_default();
        let mut out = Vec::new();
        for (id, (key, bytes)) in self.keys.into_iter().enumerate() {
            let result = results.iter().find(|r| r["id"].as_u64() == Some(id as u64));
            let outcome = match result {
                None => Err(anyhow::anyhow!("peers.py reported nothing")),
                Some(r) => match r["error"].as_str() {
                    Some(e) => Err(anyhow::anyhow!("{e}")),
                    None => Stats::from_seconds(
                        r["times"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|t| t.as_f64())
                            .collect(),
                    ),
                },
            };
            let file_bytes = result.and_then(|r| r["file_bytes"].as_u64());
            out.push(Measurement::new(key, bytes, outcome).with_file_bytes(file_bytes));
        }
        Ok(out)
    }
}

/// The section `formats`: [`bench_formats::run`] for raw and our zero-copy reads, then our
/// copying reads and the Python readers on the same files.
fn formats(runner: &Runner<'_>, report: &mut Report) -> Result<()> {
    let s = runner.settings;
    let outcome = bench_formats::run(&bench_formats::Settings {
        size_mb: s.model_mb,
        dir: s.dir.join("formats"),
        runs: s.runs,
        warmup: s.warmup,
        python: runner.pythons.bench.clone(),
        script: s.root.join("benchmark/make_formats.py"),
    })?;
    let bytes = outcome.data_bytes;
    let key = |format: &'static str, implementation: &'static str, zero_copy: bool| Key {
        section: "formats",
        workload: "llama".to_owned(),
        op: Op::Read,
        cold: true,
        format,
        implementation,
        zero_copy,
        compression: None,
    };
    for row in &outcome.formats {
        report.measurements.push(Measurement::new(
            key(row.format, RAW, false),
            bytes,
            Ok(row.raw),
        ));
        report.measurements.push(Measurement::new(
            key(row.format, OURS_RUST, true),
            bytes,
            Ok(row.ours),
        ));
    }
    println!("measuring our copying reads ...");
    for w in &outcome.workloads {
        let stats = runner.rust_read(&w.files, true, w.expected_sum, || {
            Ok(read_ours(&w.files[0], true)?.sum)
        });
        report.measurements.push(
            Measurement::new(key(w.spec.key, OURS_RUST, false), bytes, stats)
                .with_file_bytes(Some(w.file_bytes)),
        );
    }

    // Upstream zTensor 2.x does not read .zt files of the 1.x layout (ours): it reads the
    // .zt it converts from the safetensors file itself.
    let upstream_zt = outcome.dir.join("zt2.zt");
    let mut upstream_ok = false;
    if let (Some(zt), Ok(_)) = (
        outcome.workloads.iter().find(|w| w.spec.key == "zt"),
        &runner.pythons.upstream,
    ) {
        let info = Info {
            dir: outcome.dir.clone(),
            tensor_bytes: bytes,
            tensors: outcome.tensors,
            expected_sum: zt.expected_sum,
        };
        let mut convert = Batch::default();
        let key = Key {
            op: Op::Write,
            cold: false,
            ..key("zt", UPSTREAM, false)
        };
        let source = outcome.dir.join("model.safetensors");
        convert.write_from(key, "ztensor", upstream_zt.clone(), source, true, &info);
        let done = convert.run(runner, Venv::Upstream, (1, 0), report)?;
        upstream_ok = done.iter().all(|m| m.error.is_none());
        report
            .measurements
            .extend(done.into_iter().filter(|m| m.error.is_some()));
    }
    let mut bench = Batch::default();
    let mut upstream = Batch::default();
    for w in &outcome.workloads {
        let files = Info {
            dir: outcome.dir.clone(),
            tensor_bytes: bytes,
            tensors: outcome.tensors,
            expected_sum: w.expected_sum,
        };
        if let Some(r) = reference(w.spec.key) {
            bench.read(
                key(w.spec.key, r.lib, false),
                r.lib,
                w.files.clone(),
                &files,
            );
            if r.zero_copy {
                bench.read(key(w.spec.key, r.lib, true), r.lib, w.files.clone(), &files);
            }
        }
        for zero_copy in [true, false] {
            if runner.pythons.ours.is_ok() {
                let k = key(w.spec.key, OURS_PYTHON, zero_copy);
                bench.read(k, "ztensor", w.files.clone(), &files);
            }
            let k = key(w.spec.key, UPSTREAM, zero_copy);
            if w.spec.key != "zt" {
                upstream.read(k, "ztensor", w.files.clone(), &files);
            } else if upstream_ok {
                upstream.read(k, "ztensor", vec![upstream_zt.clone()], &files);
            }
        }
    }
    let runs = runner.runs();
    let measured = run_both(runner, bench, upstream, runs, report)?;
    report.measurements.extend(measured);
    report.formats_detail = Some(outcome);
    Ok(())
}

/// The format comparison at `--size-mb`: every library writes its format (timed when `write`
/// is selected), then reads it cold and warm (when `read` is).
fn read_write(runner: &Runner<'_>, report: &mut Report) -> Result<()> {
    let s = runner.settings;
    let (timed_writes, reads) = (s.which.has(Which::Write), s.which.has(Which::Read));
    let bytes = s.size_mb << 20;
    let mut rust = Vec::new();
    let mut infos = Vec::new();
    let mut bench = Batch::default();
    let mut upstream = Batch::default();
    for (i, layout) in Layout::ALL.into_iter().enumerate() {
        let dir = s.dir.join("lms").join(layout.name());
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let model = layout.model(bytes, SEED + i as u64);
        println!(
            "{}: {} float32 tensors, {}",
            layout.name(),
            model.tensors.len(),
            format_size(model.total_bytes())
        );
        write_model_safetensors(&model, &dir.join("source.safetensors"))?;
        let info = Info {
            dir,
            tensor_bytes: model.total_bytes(),
            tensors: model.tensors.len(),
            expected_sum: touch(&model.data),
        };
        let key = |format: &'static str, implementation: &'static str| Key {
            section: "write",
            workload: layout.name().to_owned(),
            op: Op::Write,
            cold: false,
            format,
            implementation,
            zero_copy: false,
            compression: None,
        };
        let raw_path = info.dir.join("model.raw");
        let zt_path = info.dir.join("model.zt");
        let st_path = info.dir.join("ours.safetensors");
        let writes: [RustWrite<'_>; 3] = [
            ("raw", RAW, &raw_path, &|| {
                crate::bench::write_raw(&raw_path, &model.data)
            }),
            ("zt", OURS_RUST, &zt_path, &|| {
                model.write_zt(&zt_path, ComponentOptions::raw()).map(drop)
            }),
            ("safetensors", OURS_RUST, &st_path, &|| {
                write_model_safetensors(&model, &st_path)
            }),
        ];
        for (format, implementation, path, write) in writes {
            let outcome = runner.rust_write(path, timed_writes, write);
            let file_bytes = outcome.as_ref().ok().map(|(_, b)| *b);
            rust.push(
                Measurement::new(
                    key(format, implementation),
                    info.tensor_bytes,
                    outcome.map(|(s, _)| s),
                )
                .with_file_bytes(file_bytes),
            );
        }
        for r in REFERENCES.iter().filter(|r| r.format != "pt-legacy") {
            bench.write(key(r.format, r.lib), r.lib, info.dir.join(r.file), &info);
        }
        if runner.pythons.ours.is_ok() {
            let k = key("zt", OURS_PYTHON);
            bench.write(k, "ztensor", info.dir.join("ours-python.zt"), &info);
        }
        upstream.write(
            key("zt", UPSTREAM),
            "ztensor",
            info.dir.join("zt2.zt"),
            &info,
        );
        infos.push((layout, info));
    }
    let runs = if timed_writes { runner.runs() } else { (1, 0) };
    let mut writes = rust;
    writes.extend(run_both(runner, bench, upstream, runs, report)?);
    let written = |workload: &str, format: &str, implementation: &str| {
        writes.iter().any(|m| {
            m.key.workload == workload
                && m.key.format == format
                && m.key.implementation == implementation
                && m.error.is_none()
        })
    };

    let mut measurements = Vec::new();
    if reads {
        let mut bench = Batch::default();
        let mut upstream = Batch::default();
        for (layout, info) in &infos {
            let name = layout.name();

            let raw = info.dir.join("model.raw");
            let zt = info.dir.join("model.zt");
            let mut buffer = vec![0u8; usize::try_from(info.tensor_bytes)?];
            for cold in [true, false] {
                let key = |format: &'static str, implementation: &'static str, zero_copy| Key {
                    section: "read",
                    workload: name.to_owned(),
                    op: Op::Read,
                    cold,
                    format,
                    implementation,
                    zero_copy,
                    compression: None,
                };
                println!(
                    "{name}: {} reads in Rust ...",
                    if cold { "cold" } else { "warm" }
                );
                let raw_files = [raw.clone()];
                let stats = runner.rust_read(&raw_files, cold, info.expected_sum, || {
                    read_raw(&raw_files, &mut buffer)
                });
                measurements.push(Measurement::new(
                    key("raw", RAW, false),
                    info.tensor_bytes,
                    stats,
                ));
                for zero_copy in [true, false] {
                    let zt_files = [zt.clone()];
                    let stats = runner.rust_read(&zt_files, cold, info.expected_sum, || {
                        Ok(read_ours(&zt, !zero_copy)?.sum)
                    });
                    measurements.push(Measurement::new(
                        key("zt", OURS_RUST, zero_copy),
                        info.tensor_bytes,
                        stats,
                    ));
                }
                for r in REFERENCES.iter().filter(|r| r.format != "pt-legacy") {
                    if !written(name, r.format, r.lib) {
                        continue;
                    }
                    let file = vec![info.dir.join(r.file)];
                    bench.read(key(r.format, r.lib, false), r.lib, file.clone(), info);
                    if r.zero_copy {
                        bench.read(key(r.format, r.lib, true), r.lib, file, info);
                    }
                }
                for zero_copy in [true, false] {
                    if runner.pythons.ours.is_ok() {
                        let k = key("zt", OURS_PYTHON, zero_copy);
                        bench.read(k, "ztensor", vec![zt.clone()], info);
                    }
                    if written(name, "zt", UPSTREAM) {
                        let k = key("zt", UPSTREAM, zero_copy);
                        upstream.read(k, "ztensor", vec![info.dir.join("zt2.zt")], info);
                    }
                }
            }
        }
        let runs = runner.runs();
        measurements.extend(run_both(runner, bench, upstream, runs, report)?);
    }
    if timed_writes {
        report.measurements.extend(writes);
    } else {
        // Only the failures matter when the writes were not the point.
        report
            .measurements
            .extend(writes.into_iter().filter(|m| m.error.is_some()));
    }
    report.measurements.extend(measurements);
    Ok(())
}

/// A write the Rust side times: format, implementation, file, and the write itself.
type RustWrite<'a> = (
    &'static str,
    &'static str,
    &'a Path,
    &'a dyn Fn() -> Result<()>,
);

/// A workload on disk (its data no longer needed): its directory, and what reading it must
/// give.
struct Info {
    dir: PathBuf,
    tensor_bytes: u64,
    tensors: usize,
    expected_sum: u64,
}

/// The compression section: each workload as `.zt` raw, zstd-3 and ztc (ours) and raw and
/// zstd (upstream zTensor), written (timed) and read back cold.
fn compression(runner: &Runner<'_>, report: &mut Report) -> Result<()> {
    let s = runner.settings;
    let bytes = s.size_mb << 20;
    let variants: [(&str, Option<&'static str>, ComponentOptions); 3] = [
        ("model.zt", None, ComponentOptions::raw()),
        ("model-zstd.zt", Some("zstd-3"), ComponentOptions::zstd(3)),
        (
            "model-ztc.zt",
            Some("ztc"),
            ComponentOptions::codec(ztensor::codec::Effort::Default),
        ),
    ];
    let upstream_variants = [("zt2.zt", None), ("zt2-zstd.zt", Some("zstd-3"))];
    let mut writes = Batch::default();
    let mut infos = Vec::new();
    for (i, kind) in Kind::ALL.into_iter().enumerate() {
        let dir = s.dir.join("compression").join(kind.name());
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let model: Model = kind.model(bytes, SEED + 100 + i as u64);
        println!(
            "{}: {} tensors, {}",
            kind.name(),
            model.tensors.len(),
            format_size(model.total_bytes())
        );
        let info = Info {
            dir,
            tensor_bytes: model.total_bytes(),
            tensors: model.tensors.len(),
            expected_sum: touch(&model.data),
        };
        let key = |op: Op, implementation: &'static str, compression: Option<&'static str>| Key {
            section: "compression",
            workload: kind.name().to_owned(),
            op,
            cold: op == Op::Read,
            format: "zt",
            implementation,
            zero_copy: false,
            compression,
        };
        for (file, compression, options) in &variants {
            let path = info.dir.join(file);
            let outcome =
                runner.rust_write(&path, true, || model.write_zt(&path, *options).map(drop));
            let file_bytes = outcome.as_ref().ok().map(|(_, b)| *b);
            report.measurements.push(
                Measurement::new(
                    key(Op::Write, OURS_RUST, *compression),
                    info.tensor_bytes,
                    outcome.map(|(s, _)| s),
                )
                .with_file_bytes(file_bytes),
            );
        }
        if runner.pythons.upstream.is_ok() {
            write_model_safetensors(&model, &info.dir.join("source.safetensors"))?;
            for (file, compression) in upstream_variants {
                let k = key(Op::Write, UPSTREAM, compression);
                writes.write(k, "ztensor", info.dir.join(file), &info);
            }
        }
        infos.push((kind, info));
    }
    let runs = runner.runs();
    let written = writes.run(runner, Venv::Upstream, runs, report)?;
    let mut reads = Batch::default();
    for (kind, info) in &infos {
        let key = |implementation: &'static str, compression: Option<&'static str>| Key {
            section: "compression",
            workload: kind.name().to_owned(),
            op: Op::Read,
            cold: true,
            format: "zt",
            implementation,
            zero_copy: false,
            compression,
        };
        println!("{}: cold reads in Rust ...", kind.name());
        for (file, compression, _) in &variants {
            let files = [info.dir.join(file)];
            let stats = runner.rust_read(&files, true, info.expected_sum, || {
                Ok(read_ours(&files[0], false)?.sum)
            });
            report.measurements.push(Measurement::new(
                key(OURS_RUST, *compression),
                info.tensor_bytes,
                stats,
            ));
        }
        for (file, compression) in upstream_variants {
            let ok = written.iter().any(|m| {
                m.key.workload == kind.name()
                    && m.key.compression == compression
                    && m.error.is_none()
            });
            if ok {
                let k = key(UPSTREAM, compression);
                reads.read(k, "ztensor", vec![info.dir.join(file)], info);
            }
        }
    }
    report.measurements.extend(written);
    let read = reads.run(runner, Venv::Upstream, runs, report)?;
    report.measurements.extend(read);
    Ok(())
}

/// The checked-out commit, when git tells.
fn git_commit(root: &Path) -> Option<String> {
    let out = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root)
        .output()
        .ok()?;
    let commit = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !commit.is_empty()).then_some(commit)
}

/// Today's date (UTC) as YYYY-MM-DD, from the system clock.
fn today_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_147), (2025, 2, 28));
        assert_eq!(civil_from_days(20_148), (2025, 3, 1));
    }

    #[test]
    fn every_section_but_io_is_in_all() {
        for w in [
            Which::Formats,
            Which::Read,
            Which::Write,
            Which::Compression,
            Which::Codec,
        ] {
            assert!(Which::All.has(w));
            assert!(w.has(w));
        }
        assert!(!Which::All.has(Which::Io));
        assert!(!Which::Read.has(Which::Write));
    }

    #[test]
    fn references_have_distinct_formats() {
        for (i, a) in REFERENCES.iter().enumerate() {
            assert!(REFERENCES[i + 1..].iter().all(|b| b.format != a.format));
        }
    }
}
