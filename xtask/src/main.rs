//! Project automation for the ztensor workspace, run as `cargo xtask <command>` (an alias for
//! `cargo run --quiet --release --package xtask --`).
//!
//! - `demo [--dir DIR] [--size-mb N]`: ztensor's main job on a built-in example. Generates a
//!   Llama-shaped bf16 sample model in memory (Llama 3.2 1B shapes, scaled down to about N MiB,
//!   256 by default), writes it to `DIR/sample.zt` raw and to `DIR/sample-zstd.zt` with zstd
//!   level 3 and crc32c digests (`DIR` defaults to `target/demo`), reads both back through
//!   `ztensor::open`, checks every tensor byte for byte and every digest, checks that a copy
//!   with one flipped byte is rejected, and prints file, tensors, bytes on disk, ratio vs raw,
//!   write and read MiB/s. Exits non-zero on any mismatch.
//! - `bench [write|read|all] [--size-mb N] [--dir DIR] [--runs R] [--warmup W] [--json PATH]
//!   [--quick]`: the `.zt` I/O benchmark. On the same sample model (1024 MiB by default, in
//!   `benchmark/scratch`, which git ignores) it measures, in one run, a plain-file baseline and
//!   ztensor for writing (with fsync), cold reads (page cache dropped with `posix_fadvise`) and
//!   warm reads, plus `ZtReader::open` alone and on files of 10, 1000 and 100000 tiny tensors.
//!   Prints the median of R runs (5) after W warm-ups (2) as markdown tables with the machine
//!   description, and optionally writes the figures as JSON. `--quick` means 128 MiB, 3 runs,
//!   1 warm-up.
//! - `bench formats [--size-mb N] [--dir DIR] [--runs R] [--warmup W] [--json PATH] [--quick]`:
//!   cold reads through `ztensor::open` of the same model (1024 MiB by default, 256 with
//!   `--quick`) as .zt, safetensors, torch.save zip and legacy, GGUF, .npz, ONNX and HDF5, each
//!   against a raw read of the same file (see `bench_formats.rs`); the files other than .zt and
//!   safetensors are written by `benchmark/make_formats.py` with the `.venv-fixtures` venv.
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
mod demo;
mod gen_onnx;
mod model;
mod sys;
mod util;

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
    /// Write a Llama-shaped sample model raw and zstd-compressed, read it back and check it.
    Demo(DemoArgs),
    /// Benchmark .zt writes and reads against plain-file baselines.
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
    /// Also write the figures to this JSON file
    #[arg(long)]
    json: Option<PathBuf>,
    /// A short run: 8 MB, 2 runs, no zstd-19 and no z4ai max
    #[arg(long)]
    quick: bool,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Directory for the sample files [default: target/demo in the workspace]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Approximate size of the sample model in MiB
    #[arg(long, default_value_t = 256)]
    size_mb: u64,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Which operations to measure
    #[arg(value_enum, default_value_t = bench::Which::All)]
    which: bench::Which,
    /// Approximate size of the model in MiB [default: 1024, 128 with --quick (formats: 256)]
    #[arg(long)]
    size_mb: Option<u64>,
    /// Scratch directory [default: benchmark/scratch in the workspace (formats: .../formats)]
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Timed runs per operation (the median is reported) [default: 5, 3 with --quick]
    #[arg(long)]
    runs: Option<usize>,
    /// Untimed runs before them [default: 2, 1 with --quick]
    #[arg(long)]
    warmup: Option<usize>,
    /// Also write the figures to this JSON file
    #[arg(long)]
    json: Option<PathBuf>,
    /// A short run: 128 MiB (formats: 256), 3 runs, 1 warm-up (explicit options still win)
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
        Command::Demo(args) => {
            let dir = args
                .dir
                .unwrap_or_else(|| workspace_root().join("target/demo"));
            demo::run(&dir, args.size_mb)
        }
        Command::Bench(args) if args.which == bench::Which::Formats => {
            let (dir, python, script) = bench_formats::Settings::default_paths(workspace_root());
            bench_formats::run(&bench_formats::Settings {
                size_mb: args.size_mb.unwrap_or(if args.quick { 256 } else { 1024 }),
                dir: args.dir.unwrap_or(dir),
                runs: args.runs.unwrap_or(if args.quick { 3 } else { 5 }),
                warmup: args.warmup.unwrap_or(if args.quick { 1 } else { 2 }),
                json: args.json,
                python,
                script,
            })
        }
        Command::Bench(args) => {
            let quick = args.quick;
            let settings = bench::Settings {
                which: args.which,
                size_mb: args.size_mb.unwrap_or(if quick { 128 } else { 1024 }),
                dir: args
                    .dir
                    .unwrap_or_else(|| workspace_root().join("benchmark/scratch")),
                runs: args.runs.unwrap_or(if quick { 3 } else { 5 }),
                warmup: args.warmup.unwrap_or(if quick { 1 } else { 2 }),
                json: args.json,
            };
            bench::run(&settings)
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
                slow: !a.quick,
                json: a.json,
                dir,
                venv,
                script,
            })
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
