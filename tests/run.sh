#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: the README's test command, and what
# .ci/run calls. It installs what it needs inside the clone (a Python venv in .venv/ with the
# reference libraries, cargo-fuzz in .tools/) and nothing outside it except Debian packages.
#
#   bash tests/run.sh            everything (lint, Rust tests, Python interop, short fuzz runs)
#   FUZZ_SECONDS=0 bash tests/run.sh   skip the fuzz runs
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fuzz_seconds=${FUZZ_SECONDS:-15}

step() { printf '\n==> %s\n' "$*"; }

step "Python venv with the reference libraries (.venv)"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python-requirements.txt
export ZT_PYTHON="$root/.venv/bin/python"

step "cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "Rust tests (cargo nextest)"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --no-fail-fast
else
    cargo test --workspace --no-fail-fast
fi

step "The facade with every optional format (hdf5 links libhdf5)"
cargo nextest run -p ztensor --features hdf5 --no-fail-fast

step "Generated ONNX code matches the vendored onnx.proto"
cargo xtask gen-onnx --check

step "Fixtures regenerate identically with the reference libraries"
.venv/bin/python tests/fixtures/zt1/generate.py --check

if [ "$fuzz_seconds" -gt 0 ]; then
    step "Fuzz targets, ${fuzz_seconds}s each"
    bash scripts/fuzz.sh "$fuzz_seconds"
fi

step "All tests passed"
