//! `zt`: the ztensor command-line tool. It reads every format the `ztensor` facade reads
//! (`.zt` of every version, safetensors, PyTorch, GGUF, NumPy, ONNX) and writes `.zt` (and
//! safetensors), speaking only to the facade.
//!
//! | command | what it does |
//! |---|---|
//! | `info FILE...` (`ls`) | tensors (format, dtypes, shape, encodings, stored and decoded size, ratio), file format, size, metadata; `--json` |
//! | `convert IN... -o OUT` | any formats into one `.zt`; into safetensors when `OUT` ends in `.safetensors` |
//! | `compress IN -o OUT` | into `.zt` with zstd (level 3 unless `--zstd LEVEL`) |
//! | `decompress IN -o OUT` | into `.zt` with raw components, or into safetensors |
//! | `verify FILE...` | structure and every digest; `--deep` decodes every component |
//! | `diff A B` | tensors only in A, only in B, different, equal; `--json` |
//! | `merge IN... -o OUT` | several files into one `.zt`; `--rename-duplicates` |
//! | `append FILE --from SRC...` | adds the tensors of SRC to the `.zt` FILE, crash-safe |
//! | `remove FILE NAME...` (`rm`) | drops tensors, in place (atomically) or into `-o OUT` |
//! | `migrate IN -o OUT` | legacy `ZTEN0001`, zTensor 1.x or 2.x `.zt` into a current `.zt` |
//! | `demo` | the main job on a built-in Llama-shaped sample model |
//!
//! # Behaviour
//!
//! - Exit status: 0 success, 1 failure (the first error is printed as one line,
//!   `zt: error: ...`, naming the file and the tensor), 2 usage error. `diff` follows `cmp`: 0
//!   equal, 1 different, 2 trouble (usage, or a file that cannot be read).
//! - An existing output is never overwritten without `--force`. Outputs appear atomically: they
//!   are written under a temporary name in the same directory and renamed into place, so an
//!   interrupted run leaves the old file (or none). `remove` without `-o` and `append` change
//!   FILE in place, just as safely.
//! - Progress bars go to stderr, only when it is a terminal (never with `--quiet`).
//!
//! # `info --json`
//!
//! One document for all the files given (sizes in bytes; `null` where a size is not known
//! without reading the data, as for tensors of some foreign formats that are converted on read):
//!
//! ```json
//! {
//!   "files": [
//!     {
//!       "path": "model.zt",
//!       "format": "zt",            // zt | zt2 | safetensors | pickle | gguf | npy | npz | onnx | hdf5
//!       "legacy": false,           // true for a ZTEN0001 .zt
//!       "file_size": 123456,
//!       "unfinished_tail": 0,      // bytes of an interrupted append after the last footer
//!       "tensor_count": 2,
//!       "stored_bytes": 1000,      // all tensors, as stored (compressed)
//!       "decoded_bytes": 4000,
//!       "metadata": { "key": "value" },
//!       "tensors": [               // sorted by name
//!         {
//!           "name": "w",
//!           "format": "dense",     // dense | sparse_csr | sparse_coo | quantized_group | other names (gguf.q4_0, ...)
//!           "shape": [2, 2],
//!           "dtypes": ["f32"],     // the primary component's first; "f32:complex64" with a logical type
//!           "encodings": ["zstd"], // raw | zstd | others
//!           "stored_bytes": 12,
//!           "decoded_bytes": 16,
//!           "ratio": 1.33,         // decoded / stored; null when unknown
//!           "components": {
//!             "data": { "dtype": "f32", "logical_type": null, "encoding": "zstd", "offset": 64,
//!                       "stored_bytes": 12, "decoded_bytes": 16, "digest": "crc32c:0x1234ABCD" }
//!           },
//!           "attributes": null     // or an object
//!         }
//!       ]
//!     }
//!   ]
//! }
//! ```
//!
//! Metadata and attribute values are JSON values; those JSON cannot hold are tagged objects:
//! `{"$bytes": "<hex>"}`, `{"$float": "nan" | "inf" | "-inf"}`, `{"$int": "<decimal>"}` beyond
//! 64 bits, `{"$tag": N, "value": V}`, and `{"$map": [[K, V], ...]}` for non-text keys.
//!
//! # `diff --json`
//!
//! ```json
//! {
//!   "a": "a.zt", "b": "b.safetensors",
//!   "equal": false,               // what the exit status says
//!   "only_in_a": ["x"], "only_in_b": [],
//!   "different": [ { "name": "w", "differences": ["bytes"] } ],
//!                                 // format | shape | components | dtype | attributes | bytes
//!   "equal_tensors": ["b"],
//!   "metadata": { "only_in_a": [], "only_in_b": ["k"], "different": [] }
//! }
//! ```
//!
//! Tensors are compared by their decoded component bytes, so a file and its conversion to
//! another format (or another compression) compare equal. Metadata counts unless
//! `--ignore-metadata`, except the root attributes that only describe how one file is stored
//! (`zt.base` of a checkpoint delta, `zt.safetensors_header` of a restorable conversion).

mod demo;
mod diff;
mod info;
mod output;
mod readers;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use ztensor::codec::Effort;
use ztensor::{ChecksumAlgorithm, Compression, ConvertOptions, TensorReader};

use crate::output::Progress;
use crate::readers::{Progressed, Renamed, total_bytes};

#[derive(Debug, Parser)]
#[command(
    name = "zt",
    version,
    about = "Inspect, convert, compress, verify and edit tensor files (.zt, safetensors, PyTorch, GGUF, NumPy, ONNX)",
    after_help = "Exit status: 0 success, 1 failure, 2 usage error (diff: 0 equal, 1 different, 2 trouble).\n\
                  Outputs are written atomically and never overwrite an existing file without --force."
)]
struct Cli {
    /// Never draw progress bars
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the tensors, format, size and metadata of files
    #[command(visible_alias = "ls")]
    Info(InfoArgs),
    /// Convert files of any format into one .zt (or one file into .safetensors)
    Convert(ConvertArgs),
    /// Write a file as .zt with compressed components (zstd level 3 unless told otherwise)
    Compress(CompressArgs),
    /// Write a file as .zt with raw components, or as .safetensors
    Decompress(DecompressArgs),
    /// Check structure and every digest (--deep: decode every component too)
    Verify(VerifyArgs),
    /// Compare the tensors of two files; exit 0 when equal, 1 when different
    Diff(DiffArgs),
    /// Merge several files of any format into one .zt
    Merge(MergeArgs),
    /// Add the tensors of other files to an existing .zt file
    Append(AppendArgs),
    /// Remove tensors from a .zt file
    #[command(visible_alias = "rm")]
    Remove(RemoveArgs),
    /// Rewrite a legacy (ZTEN0001), zTensor 1.x or 2.x .zt file as a current .zt
    Migrate(MigrateArgs),
    /// Store a fine-tuned checkpoint relative to its base, or expand such a delta
    #[command(subcommand)]
    Delta(DeltaCommand),
    /// Run ztensor's main job on a built-in Llama-shaped sample model
    Demo(DemoArgs),
}

#[derive(Debug, Args)]
struct InfoArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print one JSON document (its shape is in the crate docs: `cargo doc -p ztensor-cli`)
    #[arg(long)]
    json: bool,
    /// Exact byte counts instead of KiB/MiB/GiB
    #[arg(short, long)]
    bytes: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ChecksumArg {
    None,
    Crc32c,
    Sha256,
}

impl From<ChecksumArg> for ChecksumAlgorithm {
    fn from(c: ChecksumArg) -> ChecksumAlgorithm {
        match c {
            ChecksumArg::None => ChecksumAlgorithm::None,
            ChecksumArg::Crc32c => ChecksumAlgorithm::Crc32c,
            ChecksumArg::Sha256 => ChecksumAlgorithm::Sha256,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EffortArg {
    /// Quickest to encode and decode
    Fast,
    /// The balance of ratio and speed
    Default,
    /// Smallest files; slow to encode, decodes as fast as the others
    Max,
}

impl From<EffortArg> for Effort {
    fn from(e: EffortArg) -> Effort {
        match e {
            EffortArg::Fast => Effort::Fast,
            EffortArg::Default => Effort::Default,
            EffortArg::Max => Effort::Max,
        }
    }
}

/// How written components are stored.
#[derive(Debug, Args)]
struct StorageArgs {
    /// Compress every component with zstd at this level (1-22; negative: faster)
    #[arg(long, value_name = "LEVEL", allow_negative_numbers = true,
          value_parser = clap::value_parser!(i32).range(-131072..=22))]
    zstd: Option<i32>,
    /// Compress every component with ztensor's weight codec (encoding ztc1: smaller than zstd
    /// on model weights; zTensor 1.2.3 cannot read it) at this effort
    #[arg(long, value_enum, value_name = "EFFORT", num_args = 0..=1,
          default_missing_value = "default", conflicts_with = "zstd")]
    codec: Option<EffortArg>,
    /// Digest stored with every component
    #[arg(long, value_enum, default_value_t = ChecksumArg::None)]
    checksum: ChecksumArg,
}

impl StorageArgs {
    fn compression(&self, default: Compression) -> Compression {
        match (self.zstd, self.codec) {
            (Some(level), _) => Compression::Zstd(level),
            (None, Some(effort)) => Compression::Codec(effort.into()),
            (None, None) => default,
        }
    }

    fn is_default(&self) -> bool {
        self.zstd.is_none() && self.codec.is_none() && matches!(self.checksum, ChecksumArg::None)
    }
}

#[derive(Debug, Args)]
struct OutputArgs {
    /// The file to write
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// Overwrite OUT if it exists
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, Args)]
struct ConvertArgs {
    #[arg(required = true, value_name = "IN")]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    storage: StorageArgs,
    /// Leave the sources' file-level metadata out
    #[arg(long)]
    drop_metadata: bool,
    /// Keep a safetensors source's JSON header, so that converting the result back to
    /// safetensors gives the identical file
    #[arg(long)]
    restorable: bool,
}

#[derive(Debug, Args)]
struct CompressArgs {
    #[arg(value_name = "IN")]
    input: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Debug, Args)]
struct DecompressArgs {
    #[arg(value_name = "IN")]
    input: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
    /// Digest stored with every component (.zt output)
    #[arg(long, value_enum, default_value_t = ChecksumArg::None)]
    checksum: ChecksumArg,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also decode every compressed component and check its size
    #[arg(long)]
    deep: bool,
    /// The base of checkpoint-delta files (`zt delta create`): checked to be the file they were
    /// made against, and used to decode their components with --deep
    #[arg(long)]
    base: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DiffArgs {
    a: PathBuf,
    b: PathBuf,
    /// Print one JSON document (its shape is in the crate docs)
    #[arg(long)]
    json: bool,
    /// Compare tensors only, not file-level metadata
    #[arg(long)]
    ignore_metadata: bool,
}

#[derive(Debug, Args)]
struct MergeArgs {
    #[arg(required = true, num_args = 1.., value_name = "IN")]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    storage: StorageArgs,
    /// Keep a tensor whose name an earlier input already has as NAME#K (K: the input's
    /// position, from 1) instead of failing
    #[arg(long)]
    rename_duplicates: bool,
}

#[derive(Debug, Args)]
struct AppendArgs {
    /// The .zt file to add to (changed in place; an interrupted append leaves it as it was)
    file: PathBuf,
    /// Files of any format whose tensors are added (their metadata is not)
    #[arg(long, required = true, num_args = 1.., value_name = "SRC")]
    from: Vec<PathBuf>,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Debug, Args)]
struct RemoveArgs {
    /// The .zt file
    file: PathBuf,
    /// Tensors to remove
    #[arg(required = true)]
    names: Vec<String>,
    /// Write the result here instead of replacing FILE
    #[arg(short, long, value_name = "OUT")]
    output: Option<PathBuf>,
    /// Overwrite OUT if it exists
    #[arg(short, long)]
    force: bool,
}

#[derive(Debug, Args)]
struct MigrateArgs {
    #[arg(value_name = "IN")]
    input: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Subcommand)]
enum DeltaCommand {
    /// Write NEW as a .zt delta against BASE: unchanged tensors cost nothing, changed ones are
    /// stored as codec-compressed XOR deltas where that is smaller
    Create(DeltaCreateArgs),
    /// Expand DELTA (made against BASE) into a standalone .zt, or .safetensors by OUT's name
    Apply(DeltaApplyArgs),
}

#[derive(Debug, Args)]
struct DeltaCreateArgs {
    /// The checkpoint the delta refers to (any format; it must stay byte-identical)
    base: PathBuf,
    /// The checkpoint to store (any format)
    new: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
    /// Codec effort for changed tensors
    #[arg(long, value_enum, value_name = "EFFORT", default_value = "default")]
    codec: EffortArg,
    /// Digest stored with every component
    #[arg(long, value_enum, default_value_t = ChecksumArg::Crc32c)]
    checksum: ChecksumArg,
}

#[derive(Debug, Args)]
struct DeltaApplyArgs {
    /// The checkpoint the delta was made against
    base: PathBuf,
    /// The delta file (from `zt delta create`)
    delta: PathBuf,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Approximate size of the sample model in MiB (at least one layer is kept: ~116 MiB)
    #[arg(long, default_value_t = 256, value_name = "MiB")]
    size: u64,
    /// Directory for the sample files (its sample*.zt files are replaced)
    /// [default: zt-demo in the system's temporary directory]
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// How a command ended when it did not fail outright.
enum Outcome {
    Success,
    /// Something was reported (a failed file, a difference): exit 1.
    Failure,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let is_diff = matches!(cli.command, Command::Diff(_));
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = run(cli, &mut out).and_then(|o| {
        out.flush()?;
        Ok(o)
    });
    match result {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failure) => ExitCode::from(1),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            drop(out.flush());
            eprintln!("zt: error: {}", output::one_line(&e));
            // `diff` follows `cmp`: 1 means "different", so trouble is 2.
            ExitCode::from(if is_diff { 2 } else { 1 })
        }
    }
}

/// `zt info ... | head` closes the pipe early: that is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<Outcome> {
    let progress = Progress::new(cli.quiet);
    match cli.command {
        Command::Info(args) => info(out, &args),
        Command::Convert(args) => convert(out, &args, progress),
        Command::Compress(args) => {
            // A safetensors input keeps its header: `decompress` to safetensors restores it
            // byte for byte.
            let options = ConvertOptions {
                compression: args.storage.compression(Compression::Zstd(3)),
                checksum: args.storage.checksum.into(),
                restorable: true,
                ..ConvertOptions::default()
            };
            write_zt(out, &[args.input], &args.output, &options, false, progress)
        }
        Command::Decompress(args) => {
            if is_safetensors(&args.output.output) {
                if !matches!(args.checksum, ChecksumArg::None) {
                    bail!("--checksum applies to .zt output; safetensors has no digests");
                }
                return to_safetensors(out, &args.input, &args.output);
            }
            let options = ConvertOptions {
                compression: Compression::Raw,
                checksum: args.checksum.into(),
                ..ConvertOptions::default()
            };
            write_zt(out, &[args.input], &args.output, &options, false, progress)
        }
        Command::Verify(args) => verify(out, &args, progress),
        Command::Diff(args) => diff(out, &args, progress),
        Command::Merge(args) => {
            let options = ConvertOptions {
                compression: args.storage.compression(Compression::Raw),
                checksum: args.storage.checksum.into(),
                ..ConvertOptions::default()
            };
            write_zt(
                out,
                &args.inputs,
                &args.output,
                &options,
                args.rename_duplicates,
                progress,
            )
        }
        Command::Append(args) => append(out, &args, progress),
        Command::Remove(args) => remove(out, &args),
        Command::Migrate(args) => {
            check_output(&args.output)?;
            let from = match ztensor::detect(&args.input)? {
                ztensor::FileFormat::Zt => match ztensor::ZtReader::open(&args.input)?.variant() {
                    ztensor::zt::Variant::Legacy => "legacy ZTEN0001 .zt",
                    _ => "zTensor 1.x .zt",
                },
                ztensor::FileFormat::ZtV2 => "zTensor 2.x .zt",
                other => other.name(),
            };
            let summary = ztensor::migrate(&args.input, &args.output.output)?;
            writeln!(
                out,
                "{}: {} from {from}, {}",
                args.output.output.display(),
                count(summary.tensors, "tensor"),
                output::size(summary.file_size, false),
            )?;
            Ok(Outcome::Success)
        }
        Command::Delta(DeltaCommand::Create(args)) => {
            check_output(&args.output)?;
            let options = ztensor::delta::DeltaOptions {
                effort: args.codec.into(),
                checksum: args.checksum.into(),
                ..ztensor::delta::DeltaOptions::default()
            };
            let s = ztensor::delta::create(&args.base, &args.new, &args.output.output, &options)?;
            writeln!(
                out,
                "{}: {}; components: {} unchanged, {} stored as deltas, {} in full; {} for {} of tensor data ({})",
                args.output.output.display(),
                count(s.tensors, "tensor"),
                s.copies,
                s.deltas,
                s.full,
                output::size(s.file_size, false),
                output::size(s.bytes_in, false),
                output::ratio_text(output::ratio(Some(s.bytes_in), Some(s.file_size))),
            )?;
            Ok(Outcome::Success)
        }
        Command::Delta(DeltaCommand::Apply(args)) => {
            check_output(&args.output)?;
            let to_safetensors = is_safetensors(&args.output.output);
            if to_safetensors && !args.storage.is_default() {
                bail!(
                    "--zstd, --codec and --checksum apply to .zt output; safetensors stores raw bytes"
                );
            }
            let options = ConvertOptions {
                compression: args.storage.compression(Compression::Raw),
                checksum: args.storage.checksum.into(),
                ..ConvertOptions::default()
            };
            let s = ztensor::delta::apply(&args.base, &args.delta, &args.output.output, &options)?;
            writeln!(
                out,
                "{}: {}, {}, {}",
                args.output.output.display(),
                if to_safetensors { "safetensors" } else { "zt" },
                count(s.tensors, "tensor"),
                output::size(s.file_size, false)
            )?;
            Ok(Outcome::Success)
        }
        Command::Demo(args) => {
            let dir = args
                .dir
                .unwrap_or_else(|| std::env::temp_dir().join("zt-demo"));
            demo::run(out, &dir, args.size)?;
            Ok(Outcome::Success)
        }
    }
}

/// `1 tensor`, `2 tensors`.
fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Refuses to replace an existing file unless `--force` was given.
fn check_output(output: &OutputArgs) -> Result<()> {
    // symlink_metadata: a dangling link is still something we would replace.
    if !output.force && std::fs::symlink_metadata(&output.output).is_ok() {
        bail!(
            "{}: already exists; pass --force to overwrite it",
            output.output.display()
        );
    }
    Ok(())
}

fn is_safetensors(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

fn info(out: &mut dyn Write, args: &InfoArgs) -> Result<Outcome> {
    let mut outcome = Outcome::Success;
    let mut documents = Vec::new();
    for (i, path) in args.files.iter().enumerate() {
        let opened = match info::open(path) {
            Ok(opened) => opened,
            Err(e) => {
                // Report and go on: one unreadable file should not hide the others.
                out.flush()?;
                eprintln!("zt: error: {}", output::one_line(&e));
                outcome = Outcome::Failure;
                continue;
            }
        };
        if args.json {
            documents.push(info::file_json(path, &opened)?);
        } else {
            if i > 0 {
                writeln!(out)?;
            }
            info::print_file(out, path, &opened, args.bytes)?;
        }
    }
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &serde_json::json!({ "files": documents }))?;
        writeln!(out)?;
    }
    Ok(outcome)
}

fn convert(out: &mut dyn Write, args: &ConvertArgs, progress: Progress) -> Result<Outcome> {
    if is_safetensors(&args.output.output) {
        if args.inputs.len() != 1 {
            bail!("safetensors output takes one input; merge the inputs into a .zt first");
        }
        if !args.storage.is_default() {
            bail!(
                "--zstd, --codec and --checksum apply to .zt output; safetensors stores raw bytes"
            );
        }
        return to_safetensors(out, &args.inputs[0], &args.output);
    }
    let options = ConvertOptions {
        compression: args.storage.compression(Compression::Raw),
        checksum: args.storage.checksum.into(),
        drop_metadata: args.drop_metadata,
        restorable: args.restorable,
    };
    write_zt(out, &args.inputs, &args.output, &options, false, progress)
}

fn to_safetensors(out: &mut dyn Write, input: &Path, output: &OutputArgs) -> Result<Outcome> {
    check_output(output)?;
    let size = ztensor::convert_to_safetensors(input, &output.output)?;
    writeln!(
        out,
        "{}: safetensors, {}",
        output.output.display(),
        output::size(size, false)
    )?;
    Ok(Outcome::Success)
}

/// Opens every input, renames duplicates when asked, and writes them all into one `.zt`.
fn write_zt(
    out: &mut dyn Write,
    inputs: &[PathBuf],
    output: &OutputArgs,
    options: &ConvertOptions,
    rename_duplicates: bool,
    progress: Progress,
) -> Result<Outcome> {
    check_output(output)?;
    let readers = inputs
        .iter()
        .map(ztensor::open)
        .collect::<ztensor::Result<Vec<_>>>()?;
    let renamed = if rename_duplicates {
        let renames = duplicate_renames(&readers);
        for (k, map) in renames.iter().enumerate() {
            for (old, new) in map {
                eprintln!(
                    "zt: {}: '{old}' is written as '{new}'",
                    readers[k].path().display()
                );
            }
        }
        readers
            .iter()
            .zip(&renames)
            .map(|(r, map)| Renamed::new(r.as_ref(), map))
            .collect::<ztensor::Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let sources: Vec<&dyn TensorReader> = if rename_duplicates {
        renamed.iter().map(|r| r as &dyn TensorReader).collect()
    } else {
        readers.iter().map(|r| r.as_ref()).collect()
    };
    let total = sources.iter().map(|r| total_bytes(*r)).sum();
    let bar = progress.bytes(total, "writing");
    let wrapped: Vec<Progressed<'_>> = sources
        .iter()
        .map(|r| Progressed {
            inner: *r,
            bar: &bar,
        })
        .collect();
    let wrapped: Vec<&dyn TensorReader> = wrapped.iter().map(|r| r as &dyn TensorReader).collect();
    let summary = ztensor::convert_readers(&wrapped, &output.output, options)?;
    bar.finish_and_clear();
    writeln!(
        out,
        "{}: {}, {} read, {} written",
        output.output.display(),
        count(summary.tensors, "tensor"),
        output::size(summary.bytes_read, false),
        output::size(summary.file_size, false)
    )?;
    Ok(Outcome::Success)
}

/// For each reader, the names an earlier reader already has, mapped to `NAME#K` (K: the
/// reader's position from 1, bumped past names that are taken).
fn duplicate_renames(readers: &[Box<dyn TensorReader>]) -> Vec<BTreeMap<String, String>> {
    let mut taken: BTreeSet<String> = BTreeSet::new();
    let all: BTreeSet<&str> = readers.iter().flat_map(|r| r.names()).collect();
    let mut out = Vec::new();
    for (k, reader) in readers.iter().enumerate() {
        let mut map = BTreeMap::new();
        for name in reader.names() {
            if taken.insert(name.to_owned()) {
                continue;
            }
            let mut suffix = k + 1;
            let new = loop {
                let candidate = format!("{name}#{suffix}");
                if !all.contains(candidate.as_str()) && !taken.contains(&candidate) {
                    break candidate;
                }
                suffix += readers.len();
            };
            taken.insert(new.clone());
            map.insert(name.to_owned(), new);
        }
        out.push(map);
    }
    out
}

fn append(out: &mut dyn Write, args: &AppendArgs, progress: Progress) -> Result<Outcome> {
    let target = ztensor::ZtReader::open(&args.file)?;
    let mut seen: BTreeMap<String, PathBuf> = target
        .names()
        .into_iter()
        .map(|n| (n.to_owned(), args.file.clone()))
        .collect();
    drop(target);
    let sources = args
        .from
        .iter()
        .map(ztensor::open)
        .collect::<ztensor::Result<Vec<_>>>()?;
    // Every name is checked before the file is touched.
    for source in &sources {
        for name in source.names() {
            if let Some(first) = seen.insert(name.to_owned(), source.path().to_owned()) {
                bail!(
                    "tensor '{name}' of {} is already in {}; names must be unique",
                    source.path().display(),
                    first.display()
                );
            }
        }
    }
    let options = ztensor::ComponentOptions {
        compression: args.storage.compression(Compression::Raw),
        checksum: args.storage.checksum.into(),
    };
    let bar = progress.bytes(
        sources.iter().map(|s| total_bytes(s.as_ref())).sum(),
        "appending",
    );
    let mut writer = ztensor::Writer::append(&args.file)?;
    let mut added = 0;
    for source in &sources {
        let wrapped = Progressed {
            inner: source.as_ref(),
            bar: &bar,
        };
        ztensor::copy_tensors(&wrapped, &mut writer, options)?;
        added += source.len();
    }
    let size = writer.finish()?;
    bar.finish_and_clear();
    writeln!(
        out,
        "{}: {} added, {}",
        args.file.display(),
        count(added, "tensor"),
        output::size(size, false)
    )?;
    Ok(Outcome::Success)
}

fn remove(out: &mut dyn Write, args: &RemoveArgs) -> Result<Outcome> {
    let dest = match &args.output {
        Some(output) => {
            check_output(&OutputArgs {
                output: output.clone(),
                force: args.force,
            })?;
            output
        }
        None => &args.file,
    };
    let names: Vec<&str> = args.names.iter().map(String::as_str).collect();
    ztensor::remove_tensors(&args.file, dest, &names)?;
    let left = ztensor::ZtReader::open(dest)?.len();
    writeln!(
        out,
        "{}: {} removed, {left} left",
        dest.display(),
        count(names.iter().collect::<BTreeSet<_>>().len(), "tensor")
    )?;
    Ok(Outcome::Success)
}

fn verify(out: &mut dyn Write, args: &VerifyArgs, progress: Progress) -> Result<Outcome> {
    let mut outcome = Outcome::Success;
    let options = ztensor::VerifyOptions {
        deep: args.deep,
        base: args.base.clone(),
    };
    let mut base_required = false;
    let bar = progress.items(args.files.len() as u64, "verifying");
    for path in &args.files {
        bar.set_message(path.display().to_string());
        let report = ztensor::verify(path, &options);
        bar.inc(1);
        let report = match report {
            Ok(report) => report,
            Err(e) => {
                out.flush()?;
                bar.suspend(|| eprintln!("zt: error: {}", output::one_line(&e.into())));
                outcome = Outcome::Failure;
                continue;
            }
        };
        if report.unfinished_tail > 0 {
            bar.suspend(|| {
                eprintln!(
                    "zt: warning: {}: {} bytes after the last complete footer belong to an append that never finished; readers ignore them",
                    path.display(),
                    report.unfinished_tail
                )
            });
        }
        let mut line = format!(
            "{}: {}, {}, {} checked",
            path.display(),
            count(report.tensors, "tensor"),
            count(report.components, "component"),
            count(report.digests_checked, "digest")
        );
        if report.components_read > 0 {
            line.push_str(&format!(", {} read in full", report.components_read));
        }
        if report.is_ok() {
            writeln!(out, "OK {line}")?;
        } else {
            writeln!(
                out,
                "FAILED {line}, {} bad",
                count(report.failures.len(), "tensor")
            )?;
            out.flush()?;
            bar.suspend(|| {
                for failure in &report.failures {
                    eprintln!("zt: error: {failure}");
                }
            });
            base_required |= report
                .failures
                .iter()
                .any(|f| matches!(f.kind(), ztensor::Error::BaseRequired(_)));
            outcome = Outcome::Failure;
        }
    }
    bar.finish_and_clear();
    if base_required {
        eprintln!("zt: hint: a checkpoint delta needs its base: verify --deep --base BASE FILE");
    }
    Ok(outcome)
}

fn diff(out: &mut dyn Write, args: &DiffArgs, progress: Progress) -> Result<Outcome> {
    let a = ztensor::open(&args.a)?;
    let b = ztensor::open(&args.b)?;
    let cmp = diff::compare(a.as_ref(), b.as_ref(), progress)?;
    let equal = cmp.tensors_equal() && (args.ignore_metadata || cmp.metadata_equal());
    if args.json {
        serde_json::to_writer_pretty(
            &mut *out,
            &diff::to_json(a.as_ref(), b.as_ref(), &cmp, equal),
        )?;
        writeln!(out)?;
    } else {
        diff::print(out, a.as_ref(), b.as_ref(), &cmp, args.ignore_metadata)?;
    }
    Ok(if equal {
        Outcome::Success
    } else {
        Outcome::Failure
    })
}
