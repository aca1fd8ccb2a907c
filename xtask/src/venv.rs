//! The Python environments of `cargo xtask bench`, created and kept up to date by the xtask:
//!
//! - `.venv-bench`: the reference libraries, from `benchmark/requirements.txt` (pinned), plus
//!   our Python package (`crates/ztensor-py`) built into it with `maturin develop --release`
//!   when the crate exists;
//! - `.venv-bench-zt2`: upstream zTensor 2.x (`benchmark/requirements-zt2.txt`), whose import
//!   name `ztensor` is ours too, so it cannot share a venv with it.
//!
//! Both are git-ignored (`/.venv*`). A venv is (re)installed when its requirements file differs
//! from the copy stored in it after the last successful install. Whatever fails is reported as
//! a reason, and the benchmark goes on without that side.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// Where the installed requirements are recorded inside a venv.
const STAMP: &str = "xtask-requirements.txt";

/// The Python interpreters of the benchmark, or why each is missing.
#[derive(Debug, Clone)]
pub struct Pythons {
    /// `.venv-bench/bin/python`: the reference libraries.
    pub bench: Result<PathBuf, String>,
    /// Our Python package, importable from `bench`.
    pub ours: Result<(), String>,
    /// `.venv-bench-zt2/bin/python`: upstream zTensor 2.x.
    pub upstream: Result<PathBuf, String>,
}

impl Pythons {
    /// Every side is missing, for the same reason.
    pub fn none(reason: &str) -> Pythons {
        Pythons {
            bench: Err(reason.to_owned()),
            ours: Err(reason.to_owned()),
            upstream: Err(reason.to_owned()),
        }
    }
}

/// The bench venv's directory.
pub fn bench_dir(root: &Path) -> PathBuf {
    root.join(".venv-bench")
}

/// Creates or updates both venvs and builds our package into the first (unless `build_ours`
/// is false, when whatever `ztensor` the venv has is used). `log_dir` keeps the build log.
pub fn prepare(root: &Path, build_ours: bool, log_dir: &Path) -> Pythons {
    let bench = ensure(
        &bench_dir(root),
        &root.join("benchmark/requirements.txt"),
        log_dir,
    )
    .map_err(|e| format!("{e:#}"));
    let upstream = ensure(
        &root.join(".venv-bench-zt2"),
        &root.join("benchmark/requirements-zt2.txt"),
        log_dir,
    )
    .map_err(|e| format!("{e:#}"));
    let ours = match &bench {
        Err(e) => Err(e.clone()),
        Ok(_) if !build_ours => check_ours(root).map_err(|e| format!("{e:#}")),
        Ok(_) => build(root, log_dir).map_err(|e| format!("{e:#}")),
    };
    for (what, outcome) in [
        ("reference libraries", bench.as_ref().err()),
        ("ztensor (Python)", ours.as_ref().err()),
        ("zTensor 2.x", upstream.as_ref().err()),
    ] {
        if let Some(reason) = outcome {
            println!("  {what}: not available: {reason}");
        }
    }
    Pythons {
        bench,
        ours,
        upstream,
    }
}

/// Makes sure the venv at `dir` exists and has `requirements` installed; returns its Python.
pub fn ensure(dir: &Path, requirements: &Path, log_dir: &Path) -> Result<PathBuf> {
    let wanted = fs::read_to_string(requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let python = dir.join("bin/python");
    let stamp = dir.join(STAMP);
    if python.exists() && fs::read_to_string(&stamp).is_ok_and(|s| s == wanted) {
        return Ok(python);
    }
    if !python.exists() {
        println!("creating the venv {} ...", dir.display());
        run_logged(
            Command::new("python3").arg("-m").arg("venv").arg(dir),
            &log_dir.join("venv.log"),
        )
        .context("python3 -m venv")?;
    }
    println!(
        "installing {} into {} (once; torch is large) ...",
        requirements.display(),
        dir.display()
    );
    let name = dir.file_name().map_or_else(
        || "venv".to_owned(),
        |n| n.to_string_lossy().trim_start_matches('.').to_owned(),
    );
    run_logged(
        Command::new(&python)
            .args(["-m", "pip", "install", "--disable-pip-version-check", "-r"])
            .arg(requirements),
        &log_dir.join(format!("pip-{name}.log")),
    )
    .with_context(|| format!("pip install -r {}", requirements.display()))?;
    fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(python)
}

/// `maturin develop --release` of `crates/ztensor-py` into the bench venv.
fn build(root: &Path, log_dir: &Path) -> Result<()> {
    let manifest = root.join("crates/ztensor-py/Cargo.toml");
    if !manifest.exists() {
        bail!("no crates/ztensor-py in this checkout");
    }
    let venv = bench_dir(root);
    println!("building our Python package into {} ...", venv.display());
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![venv.join("bin")];
    dirs.extend(std::env::split_paths(&path));
    run_logged(
        Command::new(venv.join("bin/maturin"))
            .args(["develop", "--release", "-m"])
            .arg(&manifest)
            .env("VIRTUAL_ENV", &venv)
            .env("PATH", std::env::join_paths(dirs)?)
            .current_dir(root),
        &log_dir.join("maturin.log"),
    )
    .context("maturin develop (crates/ztensor-py)")?;
    check_ours(root)
}

/// Our package imports from the bench venv, and it is ours (not upstream 2.x).
fn check_ours(root: &Path) -> Result<()> {
    let out = Command::new(bench_dir(root).join("bin/python"))
        .args([
            "-c",
            "import ztensor, ztensor.numpy; print(getattr(ztensor, '__version__', '?'))",
        ])
        .output()
        .context("running the bench venv's Python")?;
    if !out.status.success() {
        bail!(
            "import ztensor failed: {}",
            last_line(&String::from_utf8_lossy(&out.stderr))
        );
    }
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if version.starts_with("2.") {
        bail!("the bench venv's ztensor is upstream {version}, not ours");
    }
    Ok(())
}

/// Runs `command` with its output in `log`; on failure the error quotes the log's last line.
fn run_logged(command: &mut Command, log: &Path) -> Result<()> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let file = fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let status = command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()
        .with_context(|| format!("starting {:?}", command.get_program()))?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        bail!("{status}: {} (log: {})", last_line(&text), log.display());
    }
    Ok(())
}

fn last_line(text: &str) -> &str {
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}
