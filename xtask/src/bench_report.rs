//! The output of `cargo xtask bench`: markdown tables (stdout and `latest.md`), the JSON report
//! (`latest.json`), a PNG chart (`latest.png`, drawn by `benchmark/plot.py` with the bench
//! venv's matplotlib) and, with `--update-readme`, the README's section between
//! `<!-- bench:start -->` and `<!-- bench:end -->`.
//!
//! Every table gives GB/s (10^9 bytes of tensor data per second, median), "–" where a reader or
//! writer does not apply and "failed" where it failed (the reasons follow the table). "ours" is
//! our Rust API, zero-copy for reads; "best peer" the fastest of upstream zTensor and the
//! reference libraries on the same workload (any of their modes).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::bench_suite::{
    Key, Measurement, OURS_PYTHON, OURS_RUST, Op, RAW, Report, Settings, UPSTREAM, reference,
};
use crate::util::format_table;
use crate::workloads::{Kind, Layout};

const START: &str = "<!-- bench:start -->";
const END: &str = "<!-- bench:end -->";

/// Prints the tables and writes latest.md, latest.json, latest.png and (when asked) README.md.
pub fn publish(report: &Report, settings: &Settings, python: Option<&PathBuf>) -> Result<()> {
    let tables = tables(report);
    let mut md = format!("# `cargo xtask bench` results\n\n{}\n", run_line(report));
    md += &tables;
    if let Some(codec) = &report.codec_markdown {
        md += &format!("\n## Lossless codec (`cargo xtask bench codec`)\n\n{codec}");
    }
    println!("\n{md}");

    let out = &settings.out;
    fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let md_path = out.join("latest.md");
    let json_path = out.join("latest.json");
    let png_path = out.join("latest.png");
    fs::write(&md_path, &md).with_context(|| format!("writing {}", md_path.display()))?;
    let json = serde_json::to_string_pretty(report).context("encoding the JSON report")?;
    fs::write(&json_path, json + "\n")
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!("wrote {} and {}", md_path.display(), json_path.display());
    match python {
        Some(python) => {
            let status = Command::new(python)
                .arg(settings.root.join("benchmark/plot.py"))
                .arg(&json_path)
                .arg(&png_path)
                .status()
                .with_context(|| format!("running {}", python.display()))?;
            if status.success() {
                println!("wrote {}", png_path.display());
            } else {
                println!("no chart: benchmark/plot.py failed ({status})");
            }
        }
        None => println!("no chart: the bench venv (matplotlib) is not available"),
    }
    if settings.update_readme {
        let readme = settings.root.join("README.md");
        let section = readme_section(report, &tables, &settings.root, out);
        update_readme(&readme, &section)?;
        println!("updated {}", readme.display());
    }
    Ok(())
}

/// When, where and how the figures were taken, then what could not be measured.
fn run_line(r: &Report) -> String {
    let m = &r.machine;
    let mut line = format!(
        "Measured on {}{} on {} CPUs ({}), {:.1} GiB RAM, Linux {}; {}model {} MiB, workloads \
         {} MiB; median of {} runs after {} warm-up runs.",
        r.date,
        r.commit
            .as_ref()
            .map_or_else(String::new, |c| format!(" at commit {c}")),
        m.nproc,
        m.cpu,
        m.memory_gib,
        m.kernel,
        if r.quick { "`--quick`: " } else { "" },
        r.model_mb,
        r.size_mb,
        r.runs,
        r.warmup
    );
    let version = |venv: &str, lib: &str| r.versions.get(venv)?.get(lib)?.as_str();
    let libs: Vec<String> = ["torch", "safetensors", "numpy", "gguf", "onnx", "h5py"]
        .iter()
        .filter_map(|lib| Some(format!("{lib} {}", version("bench", lib)?)))
        .collect();
    if !libs.is_empty() {
        line += &format!(" Reference libraries: {}.", libs.join(", "));
    }
    if let Some(v) = version("upstream", "ztensor") {
        line += &format!(" Upstream: zTensor {v} (PyPI).");
    }
    line += "\n";
    for note in &r.notes {
        line += &format!("\n- {note}");
    }
    line
}

/// The tables of every section that was measured.
fn tables(r: &Report) -> String {
    let mut out = String::new();
    let has = |section: &str| r.measurements.iter().any(|m| m.key.section == section);
    if has("formats") {
        out += &formats_table(r);
    }
    if has("read") {
        for cold in [true, false] {
            out += &lms_table(r, Op::Read, cold);
        }
    }
    if has("write") {
        out += &lms_table(r, Op::Write, false);
    }
    if has("compression") {
        out += &compression_tables(r);
    }
    out
}

fn find(r: &Report, want: impl Fn(&Key) -> bool) -> Option<&Measurement> {
    r.measurements.iter().find(|m| want(&m.key))
}

/// Bytes in decimal units, as the throughputs are.
fn decimal_size(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= 1e9 {
        format!("{:.2} GB", b / 1e9)
    } else {
        format!("{:.1} MB", b / 1e6)
    }
}

fn cell(m: Option<&Measurement>) -> String {
    match m {
        None => "–".to_owned(),
        Some(m) => m
            .gb_per_s
            .map_or_else(|| "failed".to_owned(), |v| format!("{v:.2}")),
    }
}

fn ratio(ours: Option<f64>, other: Option<f64>) -> String {
    match (ours, other) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "–".to_owned(),
    }
}

/// The best throughput among `ms`.
fn best<'a>(ms: impl IntoIterator<Item = &'a Measurement>) -> Option<f64> {
    ms.into_iter()
        .filter_map(|m| m.gb_per_s)
        .max_by(f64::total_cmp)
}

/// The failures among `ms`, one line each.
fn failures<'a>(ms: impl IntoIterator<Item = &'a Measurement>) -> String {
    let mut lines: Vec<String> = Vec::new();
    for m in ms {
        if let Some(e) = &m.error {
            let k = &m.key;
            let line = format!(
                "- {} {} of {} ({}{}): {e}",
                label(k.implementation),
                if k.op == Op::Read { "read" } else { "write" },
                k.workload,
                k.format,
                if k.zero_copy { ", zero-copy" } else { "" }
            );
            if !lines.contains(&line) {
                lines.push(line);
            }
        }
    }
    if lines.is_empty() {
        String::new()
    } else {
        format!("\nFailed:\n\n{}\n", lines.join("\n"))
    }
}

fn label(implementation: &str) -> &str {
    match implementation {
        OURS_RUST => "ztensor (Rust)",
        OURS_PYTHON => "ztensor (Python)",
        UPSTREAM => "zTensor 2.x",
        RAW => "raw",
        other => other,
    }
}

fn formats_table(r: &Report) -> String {
    let ms: Vec<&Measurement> = r
        .measurements
        .iter()
        .filter(|m| m.key.section == "formats")
        .collect();
    let mut formats: Vec<&str> = Vec::new();
    for m in &ms {
        if !formats.contains(&m.key.format) {
            formats.push(m.key.format);
        }
    }
    let rows: Vec<Vec<String>> = formats
        .iter()
        .map(|&format| {
            let get = |implementation: &str, zero_copy: bool| {
                find(r, |k| {
                    k.section == "formats"
                        && k.op == Op::Read
                        && k.format == format
                        && k.implementation == implementation
                        && k.zero_copy == zero_copy
                })
            };
            let lib = reference(format).map(|x| x.lib);
            let of_lib = |zc| lib.and_then(|l| get(l, zc));
            let raw = get(RAW, false).and_then(|m| m.gb_per_s);
            let ours = get(OURS_RUST, true).and_then(|m| m.gb_per_s);
            let peers = [
                get(UPSTREAM, true),
                get(UPSTREAM, false),
                of_lib(false),
                of_lib(true),
            ];
            vec![
                format!(".{format}"),
                lib.unwrap_or("–").to_owned(),
                cell(get(RAW, false)),
                cell(get(OURS_RUST, true)),
                cell(get(OURS_RUST, false)),
                cell(get(OURS_PYTHON, true)),
                cell(get(OURS_PYTHON, false)),
                cell(peers[0]),
                cell(peers[1]),
                cell(peers[2]),
                cell(peers[3]),
                ratio(ours, raw),
                ratio(ours, best(peers.into_iter().flatten())),
            ]
        })
        .collect();
    let detail = r.formats_detail.as_ref();
    let mut out = format!(
        "\n## Cross-format reading\n\nLlama 3.2 1B shapes ({} tensors, {}, bf16; f16 in \
         GGUF, .npz and HDF5), cold reads, GB/s. `copy`: arrays of their own instead of views of \
         the file's map; †: the library's own zero-copy read (safetensors `safe_open`, \
         `torch.load(mmap=True)`, GGUF's memmap).\n\n",
        detail.map_or(0, |d| d.tensors),
        decimal_size(detail.map_or(0, |d| d.data_bytes)),
    );
    out += &format_table(
        &[
            "format",
            "library",
            "raw read",
            "ztensor (Rust)",
            "Rust, copy",
            "ztensor (Python)",
            "Python, copy",
            "zTensor 2.x",
            "2.x, copy",
            "library",
            "library†",
            "ours / raw",
            "ours / best peer",
        ],
        2,
        &rows,
    );
    out += &failures(ms);
    out
}

/// The rows of the format comparison: label, implementation, format, zero-copy.
const READ_ROWS: [(&str, &str, &str, bool); 16] = [
    ("raw read (the machine's limit)", RAW, "raw", false),
    ("ztensor (Rust)", OURS_RUST, "zt", true),
    ("ztensor (Rust, copy)", OURS_RUST, "zt", false),
    ("ztensor (Python)", OURS_PYTHON, "zt", true),
    ("ztensor (Python, copy)", OURS_PYTHON, "zt", false),
    ("zTensor 2.x", UPSTREAM, "zt", true),
    ("zTensor 2.x (copy)", UPSTREAM, "zt", false),
    (
        "safetensors (load_file)",
        "safetensors",
        "safetensors",
        false,
    ),
    (
        "safetensors (safe_open)†",
        "safetensors",
        "safetensors",
        true,
    ),
    ("pickle (torch.load)", "torch", "pt", false),
    ("pickle (torch.load mmap)†", "torch", "pt", true),
    ("npz (numpy)", "numpy", "npz", false),
    ("gguf (copy)", "gguf", "gguf", false),
    ("gguf†", "gguf", "gguf", true),
    ("onnx", "onnx", "onnx", false),
    ("hdf5 (h5py)", "h5py", "hdf5", false),
];

const WRITE_ROWS: [(&str, &str, &str); 11] = [
    ("raw write (the machine's limit)", RAW, "raw"),
    ("ztensor (Rust)", OURS_RUST, "zt"),
    ("ztensor (Python)", OURS_PYTHON, "zt"),
    ("zTensor 2.x", UPSTREAM, "zt"),
    ("safetensors (ztensor, Rust)", OURS_RUST, "safetensors"),
    ("safetensors", "safetensors", "safetensors"),
    ("pickle (torch.save)", "torch", "pt"),
    ("npz (numpy.savez)", "numpy", "npz"),
    ("gguf (GGUFWriter)", "gguf", "gguf"),
    ("onnx", "onnx", "onnx"),
    ("hdf5 (h5py)", "h5py", "hdf5"),
];

/// The Large / Mixed / Small table of reads (cold or warm) or writes.
fn lms_table(r: &Report, op: Op, cold: bool) -> String {
    let section = if op == Op::Read { "read" } else { "write" };
    let ms: Vec<&Measurement> = r
        .measurements
        .iter()
        .filter(|m| m.key.section == section && (op == Op::Write || m.key.cold == cold))
        .collect();
    let get = |layout: Layout, implementation: &str, format: &str, zero_copy: bool| {
        ms.iter().copied().find(|m| {
            m.key.workload == layout.name()
                && m.key.implementation == implementation
                && m.key.format == format
                && (op == Op::Write || m.key.zero_copy == zero_copy)
        })
    };
    let rows_spec: Vec<(&str, &str, &str, bool)> = match op {
        Op::Read => READ_ROWS.to_vec(),
        Op::Write => WRITE_ROWS
            .iter()
            .map(|&(l, i, f)| (l, i, f, false))
            .collect(),
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    for (label, implementation, format, zero_copy) in rows_spec {
        let cells: Vec<Option<&Measurement>> = Layout::ALL
            .iter()
            .map(|&l| get(l, implementation, format, zero_copy))
            .collect();
        if cells.iter().all(Option::is_none) {
            continue;
        }
        let mut row = vec![label.to_owned()];
        row.extend(cells.into_iter().map(cell));
        rows.push(row);
    }
    let is_peer = |m: &&&Measurement| {
        m.key.implementation != RAW
            && m.key.implementation != OURS_RUST
            && m.key.implementation != OURS_PYTHON
    };
    for (name, of) in [("ours / raw", true), ("ours / best peer", false)] {
        let mut row = vec![format!("*{name}*")];
        for layout in Layout::ALL {
            let ours = get(layout, OURS_RUST, "zt", true).and_then(|m| m.gb_per_s);
            let other = if of {
                get(layout, RAW, "raw", false).and_then(|m| m.gb_per_s)
            } else {
                best(
                    ms.iter()
                        .filter(|m| m.key.workload == layout.name())
                        .filter(is_peer)
                        .copied(),
                )
            };
            row.push(ratio(ours, other));
        }
        rows.push(row);
    }
    let bytes = ms.first().map_or(0, |m| m.tensor_bytes);
    let title = match (op, cold) {
        (Op::Read, true) => "Read throughput, cold",
        (Op::Read, false) => "Read throughput, warm (file in the page cache)",
        (Op::Write, _) => "Write throughput (with fsync)",
    };
    let mut out = format!(
        "\n## {title}\n\nfloat32, {} per workload: Large = 50 MB tensors, Mixed = \
         realistic model shapes, Small = 10 KiB tensors. Each library {} its own format; ours \
         and zTensor 2.x `.zt`. GB/s.\n\n",
        decimal_size(bytes),
        if op == Op::Read { "reads" } else { "writes" }
    );
    let headers: Vec<&str> = std::iter::once("")
        .chain(Layout::ALL.iter().map(|l| l.title()))
        .collect();
    out += &format_table(&headers, 1, &rows);
    out += &failures(ms);
    out
}

fn compression_tables(r: &Report) -> String {
    let ms: Vec<&Measurement> = r
        .measurements
        .iter()
        .filter(|m| m.key.section == "compression")
        .collect();
    let get = |kind: Kind, op: Op, implementation: &str, compression: Option<&str>| {
        ms.iter().copied().find(|m| {
            m.key.workload == kind.name()
                && m.key.op == op
                && m.key.implementation == implementation
                && m.key.compression == compression
        })
    };
    let size = |kind: Kind, implementation: &str, compression: Option<&str>| {
        let m = get(kind, Op::Write, implementation, compression)?;
        Some(m.file_bytes? as f64 / m.tensor_bytes as f64)
    };
    let pct = |v: Option<f64>| v.map_or_else(|| "–".to_owned(), |v| format!("{:.0}%", v * 100.0));
    let reduction = |v: Option<f64>| pct(v.map(|v| 1.0 - v));
    let sizes: Vec<Vec<String>> = Kind::ALL
        .iter()
        .filter(|&&k| ms.iter().any(|m| m.key.workload == k.name()))
        .map(|&kind| {
            let zstd = size(kind, OURS_RUST, Some("zstd-3"));
            let ztc = size(kind, OURS_RUST, Some("ztc"));
            let up = size(kind, UPSTREAM, Some("zstd-3"));
            vec![
                kind.title().to_owned(),
                kind.description().to_owned(),
                pct(zstd),
                reduction(zstd),
                pct(ztc),
                reduction(ztc),
                pct(up),
                reduction(up),
            ]
        })
        .collect();
    let speeds: Vec<Vec<String>> = Kind::ALL
        .iter()
        .filter(|&&k| ms.iter().any(|m| m.key.workload == k.name()))
        .map(|&kind| {
            let mut row = vec![kind.title().to_owned()];
            for (implementation, variants) in [
                (OURS_RUST, &[None, Some("zstd-3"), Some("ztc")][..]),
                (UPSTREAM, &[None, Some("zstd-3")][..]),
            ] {
                for op in [Op::Read, Op::Write] {
                    for &c in variants {
                        row.push(cell(get(kind, op, implementation, c)));
                    }
                }
            }
            row
        })
        .collect();
    let bytes = ms.first().map_or(0, |m| m.tensor_bytes);
    let mut out = format!(
        "\n## Compression\n\n{} per workload, `.zt` files; size = file / tensor \
         bytes. zstd-3 is zstd level 3 per component; ztc is our lossless weight codec \
         (default effort); zTensor 2.x compresses with its `zt.zstd-seekable/1` encoding.\n\n",
        decimal_size(bytes)
    );
    out += &format_table(
        &[
            "workload",
            "data",
            "zstd-3 size",
            "reduction",
            "ztc size",
            "reduction",
            "zTensor 2.x zstd size",
            "reduction",
        ],
        2,
        &sizes,
    );
    out += "\nThroughput, GB/s of tensor data (reads cold):\n\n";
    out += &format_table(
        &[
            "workload",
            "read",
            "read zstd-3",
            "read ztc",
            "write",
            "write zstd-3",
            "write ztc",
            "2.x read",
            "2.x read zstd",
            "2.x write",
            "2.x write zstd",
        ],
        1,
        &speeds,
    );
    out += &failures(ms);
    out
}

/// What goes between the README's markers.
fn readme_section(r: &Report, tables: &str, root: &Path, out: &Path) -> String {
    let rel = out.strip_prefix(root).unwrap_or(out).display().to_string();
    // The README's own heading level is 2: the tables' sections go one level down.
    let tables = tables.replace("\n## ", "\n### ");
    format!(
        "{START}\n\nThe latest `cargo xtask bench` run. {}\n\nFull report with the codec \
         tables: [{rel}/latest.md]({rel}/latest.md); every figure: \
         [{rel}/latest.json]({rel}/latest.json).\n{chart}{tables}\n{END}",
        run_line(r).trim_end(),
        chart = if out.join("latest.png").exists() {
            format!("\n![benchmark chart]({rel}/latest.png)\n")
        } else {
            String::new()
        },
    )
}

/// Replaces the README's text between the markers (both kept) with `section`.
fn update_readme(path: &Path, section: &str) -> Result<()> {
    let text = fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (Some(start), Some(end)) = (text.find(START), text.find(END)) else {
        bail!("{} has no {START} ... {END} markers", path.display());
    };
    if end < start {
        bail!("{}: {END} comes before {START}", path.display());
    }
    let updated = format!("{}{section}{}", &text[..start], &text[end + END.len()..]);
    fs::write(path, updated).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench_suite::REFERENCES;

    #[test]
    fn readme_markers_are_replaced_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("README.md");
        fs::write(&path, format!("intro\n{START}\nold\n{END}\nafter\n")).unwrap();
        update_readme(&path, &format!("{START}\nnew\n{END}")).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("intro\n{START}\nnew\n{END}\nafter\n"));
        fs::write(&path, "no markers").unwrap();
        assert!(update_readme(&path, "x").is_err());
    }

    #[test]
    fn every_reference_format_has_a_read_row() {
        for r in REFERENCES.iter().filter(|r| r.format != "pt-legacy") {
            assert!(READ_ROWS.iter().any(|row| row.2 == r.format));
            assert!(WRITE_ROWS.iter().any(|row| row.2 == r.format));
        }
    }
}
