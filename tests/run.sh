#!/usr/bin/env bash
# Runs every test of the workspace on a fresh machine: the README's test command, and what
# .ci/run calls. It installs what it needs inside the clone (a Python venv in .venv/ with the
# reference libraries, one in .venv-py/ for the ztensor Python package and its tests,
# cargo-fuzz in .tools/) and nothing outside it except Debian packages.
#
#   bash tests/run.sh            everything (lint, Rust tests, Python interop, short fuzz runs)
#   FUZZ_SECONDS=0 bash tests/run.sh   skip the fuzz runs
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
fuzz_seconds=${FUZZ_SECONDS:-15}

# Each step says how much disk is free as it starts: the whole run needs about 15 GB (target/
# ~6 GB, torch in .venv-py ~5.5 GB, fuzz and miri builds), so a full disk is recognised as such.
step() {
    printf '\n==> %s\n' "$*"
    df -h . | tail -n 1 | awk '{print "    (disk: " $4 " free of " $2 ")"}'
}
if [ "${CI:-}" = true ]; then
    # A clean clone builds everything once: incremental state would only take disk.
    export CARGO_INCREMENTAL=0
fi

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

step "Python package ztensor (crates/ztensor-py): maturin develop into .venv-py, pytest"
# A venv apart from .venv: the package is named `ztensor` like the zTensor 1.2.3 that .venv
# holds for ZT_PYTHON (the package's interop tests run 1.2.3 through ZT_PYTHON in a
# subprocess). VIRTUAL_ENV tells maturin which venv to install into: without it, it picks
# .venv in the current directory.
if [ ! -x .venv-py/bin/python ]; then
    python3 -m venv .venv-py
fi
.venv-py/bin/python -m pip install --quiet --disable-pip-version-check -r tests/python-requirements-py.txt
VIRTUAL_ENV="$root/.venv-py" .venv-py/bin/maturin develop --quiet -m crates/ztensor-py/Cargo.toml
.venv-py/bin/python -m pytest -q crates/ztensor-py/tests

step "The facade with every optional format (hdf5 links libhdf5)"
cargo nextest run -p ztensor --features hdf5 --no-fail-fast

step "Miri: the AVX2 rANS, field-split and Huffman store code of zt-codec, and its decode into fresh memory (its only unsafe outside mmap)"
# Miri cannot run mmap or FFI, so it checks the pure-Rust unsafe code: the AVX2 kernels, with
# AVX2 enabled at compile time so that the vector paths are the ones taken. Deterministic floats:
# miri otherwise perturbs libm results, which changes rANS frequency tables between calls.
if rustup +nightly component add miri rust-src >/dev/null 2>&1; then
    MIRIFLAGS="-Zmiri-deterministic-floats" RUSTFLAGS="-C target-feature=+avx2" \
        cargo +nightly miri test -p zt-codec --lib --quiet -- transform::tests rans::tests::vector \
        huffman::tests::fast_and_careful huffman::tests::spec_worked
    # Decoding into fresh (uninitialized) output goes through rayon, whose crossbeam-epoch
    # breaks the Stacked Borrows model and casts integers to pointers (not ours): Tree Borrows
    # and permissive provenance here (no page of warnings), and the codec's kept worker pools
    # outlive the test, so leaks are not errors.
    MIRIFLAGS="-Zmiri-deterministic-floats -Zmiri-tree-borrows -Zmiri-permissive-provenance -Zmiri-ignore-leaks" \
        RUSTFLAGS="-C target-feature=+avx2" \
        cargo +nightly miri test -p zt-codec --lib --quiet -- tests::fresh_outputs
else
    echo "WARNING: miri is not installable here (rustup component add miri failed); skipped" >&2
fi

step "Generated ONNX code matches the vendored onnx.proto"
cargo xtask gen-onnx --check

step "Fixtures regenerate identically with the reference libraries"
.venv/bin/python tests/fixtures/zt1/generate.py --check

if [ "$fuzz_seconds" -gt 0 ]; then
    if [ "${CI:-}" = true ]; then
        # The fuzz builds (address sanitizer, their own target dir) come last and need a few GB
        # more; a CI clone's workspace build is no longer needed by then. A CI machine once ran
        # out of disk linking the last fuzz target.
        step "Free the workspace build before fuzzing (CI only)"
        cargo clean --quiet
    fi
    step "Fuzz targets, ${fuzz_seconds}s each"
    bash scripts/fuzz.sh "$fuzz_seconds"
fi

step "All tests passed"
