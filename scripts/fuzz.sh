#!/usr/bin/env bash
# Runs every cargo-fuzz target (or the ones named after the seconds) for the given number of
# seconds each (default 60), seeded from the committed fixtures. Installs cargo-fuzz into .tools/ on first use. Needs the nightly toolchain.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
seconds=${1:-60}

if [ ! -x .tools/bin/cargo-fuzz ]; then
    cargo install cargo-fuzz --locked --quiet --root .tools
fi
export PATH="$root/.tools/bin:$PATH"

# Seed corpora: committed files that each target should start from.
declare -A seeds=(
    [zt_reader]="tests/fixtures/zt1"
    [zt_manifest]="fuzz/seeds/zt_manifest"
    [zt2]="tests/fixtures/zt2"
    [safetensors]="tests/fixtures/safetensors"
    [onnx]="tests/fixtures/onnx"
    [gguf]="tests/fixtures/gguf"
    [npy]="tests/fixtures/npz"
    [npz]="tests/fixtures/npz"
    [codec]="fuzz/seeds/codec"
    [pickle]="fuzz/seeds/pickle"
    [pytorch]="tests/fixtures/pickle"
)

targets=("${@:2}")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    echo "fuzzing $target for ${seconds}s"
    log="fuzz/artifacts/$target.log"
    mkdir -p fuzz/artifacts
    status=0
    cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$corpus" ${seeds[$target]:-} -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    grep -E "^stat::number_of_executed_units|^#[0-9]+ +DONE|ERROR|SUMMARY|panicked" "$log" || true
    if [ "$status" -ne 0 ]; then
        tail -n 40 "$log" >&2
        echo "fuzz target $target failed (log: $log, artifacts in fuzz/artifacts/$target)" >&2
        exit "$status"
    fi
done
