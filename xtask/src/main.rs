//! Project automation for the ztensor workspace, run as `cargo xtask <command>` (an alias for
//! `cargo run --quiet --release --package xtask --`).
//!
//! - `bench [SECTION] [--quick] [--model-mb N] [--size-mb N] [--runs R] [--warmup W]
//!   [--no-peers] [--no-python-build] [--out DIR] [--update-readme]`: the benchmark tables of
//!   seed 002 in one run (see `bench_suite.rs`): cross-format cold reads of a Llama-3.2-1B-shaped
//!   model (`formats`), read and write throughput on Large / Mixed / Small workloads (`read`,
//!   `write`), compression (`compression`) and the codec (`codec`), for our Rust API, our
//!   Python API, upstream zTensor 2.x and each format's reference library, against raw reads and
//!   writes of the same bytes. Creates its Python venvs (`.venv-bench`, `.venv-bench-zt2`) from
//!   `benchmark/requirements*.txt`; writes `benchmark/results/latest.{md,json,png}` and, with
//!   `--update-readme`, the README's benchmark section. Scratch files go to
//!   `benchmark/scratch` (git-ignored).
//! - `bench io [--size-mb N] [--dir DIR] [--runs R] [--warmup W] [--json PATH] [--quick]`: the
//!   `.zt` I/O benchmark (see `bench.rs`): on one sample model (1024 MiB by default, 128 with
//!   `--quick`) a plain-file baseline and ztensor for writing (with fsync), cold and warm reads,
//!   plus `ZtReader::open` alone on files of 10, 1000 and 100000 tiny tensors.
//! - `gen-onnx [--check]`: regenerates `crates/zt-onnx/src/generated/onnx.rs` from the vendored
//!   `onnx.proto` (prost-build + protox, no system `protoc`); `--check` fails if the checked-in
//!   file differs.
//! - `bench-codec [--mb 32] [--quick] [--threads N] [--only NAME] [--no-peers]`: the ztc1
//!   weight codec against zstd, z4ai and ZipNN on the z4ai benchmark's workloads (see
//!   `bench_codec.rs`); peers come from the venv `.venv-bench` when it exists.
//!
//! - `fuzz [--time S] [TARGET...]`: runs every cargo-fuzz target (or those named) for S seconds
//!   each (600 by default) from the committed seed corpora, through `scripts/fuzz.sh`, which
//!   installs cargo-fuzz into `.tools/` and needs the nightly toolchain. Crashers land in
//!   `fuzz/artifacts/<target>/`; the command fails on the first one.
//!
//! Sizes are MiB (2^20 bytes) and throughputs MiB/s of tensor data.

mod bench;
mod bench_codec;
mod bench_formats;
mod bench_report;
mod bench_suite;
mod gen_onnx;
mod model;
mod sys;
mod util;
mod venv;
mod workloads;

use std::path::{Path, PathBuf};

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "ztensor project automation")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Benchmark ztensor against the reference libraries and raw I/O (seed 002's tables).
    Bench(BenchArgs),
    /// Regenerate zt-onnx's prost code from its vendored onnx.proto.
    GenOnnx {
        /// Fail if the checked-in code differs instead of rewriting it
        #[arg(long)]
        check: bool,
    },
    /// Benchmark the ztc1 codec (zt-codec) against zstd, z4ai and ZipNN.
    BenchCodec(BenchCodecArgs),
    /// Run the cargo-fuzz targets from their committed seed corpora (scripts/fuzz.sh).
    Fuzz {
        /// Seconds per target
        #[arg(long, default_value_t = 600)]
        time: u64,
        /// Targets to run [default: every target]
        targets: Vec<String>,
    },
}

#[derive(Debug, Args)]
struct BenchCodecArgs {
    /// MB (10^6 bytes) per workload [default: 32, 8 with --quick]
    #[arg(long)]
    mb: Option<f64>,
    /// Timed runs per measurement, best kept [default: 3, 2 with --quick]
    #[arg(long)]
    runs: Option<usize>,
    /// Worker threads for every codec [default: all CPUs]
    #[arg(long)]
    threads: Option<usize>,
    /// Only workloads whose name contains this
    #[arg(long)]
    only: Option<String>,
    /// Skip the Python peers (z4ai, ZipNN)
    #[arg(long)]
    no_peers: bool,
    /// Only these efforts of ours (fast, default, max; repeatable) [default: all three]
    #[arg(long, value_parser = parse_effort)]
    effort: Vec<ztensor::codec::Effort>,
    /// Also write the figures to this JSON file
    #[arg(long)]
    json: Option<PathBuf>,
    /// A short run: 8 MB, 2 runs, no zstd-19 and no z4ai max
    #[arg(long)]
    quick: bool,
}

fn parse_effort(s: &str) -> Result<ztensor::codec::Effort, String> {
    match s {
        "fast" => Ok(ztensor::codec::Effort::Fast),
        "default" => Ok(ztensor::codec::Effort::Default),
        "max" => Ok(ztensor::codec::Effort::Max),
        _ => Err(format!("unknown effort {s:?} (fast, default, max)")),
    }
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Which section to measure
    #[arg(value_enum, default_value_t = bench_suite::Which::All)]
    which: bench_suite::Which,
    /// The Llama-shaped model of `formats`, MiB [default: the full shape, about 2.8 GiB; 128
    /// with --quick]
    #[arg(long)]
    model_mb: Option<u64>,
    /// Each workload of read, write and compression, MiB [default: 512, 32 with --quick]; for
    /// `io`, the model [default: 1024, 128 with --quick]
    #[arg(long)]
    size_mb: Option<u64>,
    /// Scratch directory [default: benchmark/scratch in the workspace]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Timed runs per measurement (the median is reported) [default: 5, 3 with --quick]
    #[arg(long)]
    runs: Option<usize>,
    /// Untimed runs before them [default: 2, 1 with --quick]
    #[arg(long)]
    warmup: Option<usize>,
    /// Where latest.md, latest.json and latest.png go [default: benchmark/results]
    #[arg(long)]
    out: Option<PathBuf>,
    /// `io` only: also write the figures to this JSON file
    #[arg(long)]
    json: Option<PathBuf>,
    /// Only our Rust API and raw I/O: no Python venvs
    #[arg(long)]
    no_peers: bool,
    /// Use the ztensor package the bench venv has instead of building crates/ztensor-py
    #[arg(long)]
    no_python_build: bool,
    /// Rewrite README.md's section between <!-- bench:start --> and <!-- bench:end -->
    #[arg(long)]
    update_readme: bool,
    /// A short run (under 3 minutes on 2 idle cores once the venvs exist): 128 MiB model,
    /// 32 MiB workloads, 4 MB codec workloads, 3 runs, 1 warm-up (explicit options still win)
    #[arg(long)]
    quick: bool,
}

/// The workspace root (the parent of this crate's directory).
fn workspace_root() -> &'static Path {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir)
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Bench(args) if args.which == bench_suite::Which::Io => {
            let quick = args.quick;
            bench::run(&bench::Settings {
                write: true,
                read: true,
                size_mb: args.size_mb.unwrap_or(if quick { 128 } else { 1024 }),
                dir: args
                    .dir
                    .unwrap_or_else(|| workspace_root().join("benchmark/scratch")),
                runs: args.runs.unwrap_or(if quick { 3 } else { 5 }),
                warmup: args.warmup.unwrap_or(if quick { 1 } else { 2 }),
                json: args.json,
            })
        }
        Command::Bench(args) => {
            let quick = args.quick;
            let root = workspace_root();
            bench_suite::run(&bench_suite::Settings {
                which: args.which,
                model_mb: args.model_mb.unwrap_or(if quick {
                    128
                } else {
                    model::Config::full().total_bytes().div_ceil(1 << 20)
                }),
                size_mb: args.size_mb.unwrap_or(if quick { 32 } else { 512 }),
                codec_mb: if quick { 4.0 } else { 32.0 },
                runs: args.runs.unwrap_or(if quick { 3 } else { 5 }),
                warmup: args.warmup.unwrap_or(if quick { 1 } else { 2 }),
                quick,
                peers: !args.no_peers,
                build_python: !args.no_python_build,
                dir: args.dir.unwrap_or_else(|| root.join("benchmark/scratch")),
                out: args.out.unwrap_or_else(|| root.join("benchmark/results")),
                update_readme: args.update_readme,
                root: root.to_owned(),
            })
        }
        Command::GenOnnx { check } => gen_onnx::run(workspace_root(), check),
        Command::BenchCodec(a) => {
            let (dir, venv, script) = bench_codec::default_paths(workspace_root());
            bench_codec::run(&bench_codec::Settings {
                mb: a.mb.unwrap_or(if a.quick { 8.0 } else { 32.0 }),
                runs: a.runs.unwrap_or(if a.quick { 2 } else { 3 }),
                threads: a.threads.unwrap_or_else(|| sys::Machine::detect().nproc),
                only: a.only,
                peers: !a.no_peers,
                efforts: a.effort,
                slow: !a.quick,
                json: a.json,
                dir,
                venv,
                script,
            })
            .map(drop)
        }
        Command::Fuzz { time, targets } => {
            let status = std::process::Command::new("bash")
                .arg(workspace_root().join("scripts/fuzz.sh"))
                .arg(time.to_string())
                .args(&targets)
                .current_dir(workspace_root())
                .status()?;
            anyhow::ensure!(status.success(), "fuzzing failed ({status})");
            Ok(())
        }
    }
}
