#!/usr/bin/env python3
"""Writes the workloads of `cargo xtask bench formats` with the formats' reference libraries.

The xtask writes the benchmark model once as safetensors (bf16); this script reads that file
with the `safetensors` library and writes the same tensors, in the same order, as:

| key         | file              | written by                                          | dtype |
|-------------|-------------------|-----------------------------------------------------|-------|
| pt          | model.pt          | torch.save (zip, the default)                       | bf16  |
| pt-legacy   | model-legacy.pt   | torch.save(_use_new_zipfile_serialization=False)    | bf16  |
| gguf        | model.gguf        | gguf.GGUFWriter, GGML type F16                      | f16   |
| npz         | model.npz         | numpy.savez (stored, not compressed)                | f16   |
| onnx        | model.onnx        | onnx.helper.make_tensor(raw=True) + onnx.save_model | bf16  |
| hdf5        | model.h5          | h5py create_dataset (contiguous, no filters)        | f16   |

Formats without bf16 (GGUF here by choice, NumPy and HDF5 by necessity) get float16, converted
by torch (`Tensor.to(torch.float16)`, round to nearest even). ONNX models whose tensor data
exceeds `--onnx-external-mb` keep it in `model.onnx.data` (external data), since a protobuf
message cannot exceed 2 GiB.

Each format is written on its own: one that fails is reported and skipped. The outcome goes to
`formats.json` in the output directory (files, dtype, seconds, library versions, or the error),
which the xtask reads. Run with the fixtures venv:

    .venv-fixtures/bin/python benchmark/make_formats.py --source DIR/model.safetensors --out-dir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
from pathlib import Path


def load_tensors(source: Path):
    """The tensors of `source` in its data order (name order for a single-dtype file)."""
    from safetensors import safe_open

    tensors = {}
    with safe_open(str(source), framework="pt") as f:
        for name in f.keys():
            tensors[name] = f.get_tensor(name)
    return tensors


def fsync_path(path: Path) -> None:
    """Flushes a written file to disk, as the xtask's own writers do."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def f16_numpy(tensor):
    import torch

    return tensor.to(torch.float16).contiguous().numpy()


def write_pt(tensors, out: Path, legacy: bool) -> dict:
    import torch

    path = out / ("model-legacy.pt" if legacy else "model.pt")
    if legacy:
        torch.save(tensors, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(tensors, path)
    return {"files": [path.name], "dtype": "bf16", "library": f"torch {torch.__version__}"}


def write_gguf(tensors, out: Path) -> dict:
    import gguf

    path = out / "model.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    for name, tensor in tensors.items():
        writer.add_tensor(name, f16_numpy(tensor), raw_dtype=gguf.GGMLQuantizationType.F16)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"files": [path.name], "dtype": "f16", "library": f"gguf {version_of('gguf')}"}


def write_npz(tensors, out: Path) -> dict:
    import numpy as np

    path = out / "model.npz"
    np.savez(path, **{name: f16_numpy(t) for name, t in tensors.items()})
    return {"files": [path.name], "dtype": "f16", "library": f"numpy {np.__version__}"}


def write_onnx(tensors, out: Path, external_above: int) -> dict:
    import onnx
    import torch
    from onnx import TensorProto, helper

    path = out / "model.onnx"
    data_name = "model.onnx.data"
    initializers = []
    total = 0
    for name, tensor in tensors.items():
        raw = tensor.contiguous().view(torch.int16).numpy().tobytes()
        total += len(raw)
        initializers.append(
            helper.make_tensor(name, TensorProto.BFLOAT16, list(tensor.shape), raw, raw=True)
        )
    graph = helper.make_graph([], "llama", inputs=[], outputs=[], initializer=initializers)
    model = helper.make_model(graph, producer_name="ztensor benchmark/make_formats.py")
    del initializers
    external = total > external_above
    (out / data_name).unlink(missing_ok=True)
    if external:
        onnx.save_model(
            model,
            str(path),
            save_as_external_data=True,
            all_tensors_to_one_file=True,
            location=data_name,
            size_threshold=0,
        )
        files = [path.name, data_name]
    else:
        onnx.save_model(model, str(path))
        files = [path.name]
    return {
        "files": files,
        "dtype": "bf16",
        "external_data": external,
        "library": f"onnx {onnx.__version__}",
    }


def write_hdf5(tensors, out: Path) -> dict:
    import h5py

    path = out / "model.h5"
    with h5py.File(path, "w") as f:
        for name, tensor in tensors.items():
            # No chunks, filters or maxshape: a contiguous dataset.
            f.create_dataset(name, data=f16_numpy(tensor))
    return {"files": [path.name], "dtype": "f16", "library": f"h5py {version_of('h5py')}"}


def version_of(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, required=True, help="the xtask's safetensors file")
    parser.add_argument("--out-dir", type=Path, required=True)
    parser.add_argument("--key", default="", help="stored in formats.json for the xtask's cache")
    parser.add_argument(
        "--onnx-external-mb",
        type=float,
        default=1800.0,
        help="ONNX tensor data above this many MiB goes to model.onnx.data",
    )
    parser.add_argument("--only", nargs="*", help="format keys to write (default: all)")
    args = parser.parse_args()

    writers = {
        "pt": lambda t: write_pt(t, args.out_dir, legacy=False),
        "pt-legacy": lambda t: write_pt(t, args.out_dir, legacy=True),
        "gguf": lambda t: write_gguf(t, args.out_dir),
        "npz": lambda t: write_npz(t, args.out_dir),
        "onnx": lambda t: write_onnx(t, args.out_dir, int(args.onnx_external_mb * 2**20)),
        "hdf5": lambda t: write_hdf5(t, args.out_dir),
    }
    keys = args.only or list(writers)
    report = {"key": args.key, "source": args.source.name, "python": sys.version.split()[0]}
    formats = {}
    try:
        tensors = load_tensors(args.source)
    except Exception as e:  # noqa: BLE001 - reported to the xtask, which skips every format
        reason = f"reading {args.source} failed: {type(e).__name__}: {e}"
        print(reason, file=sys.stderr)
        formats = {key: {"error": reason} for key in keys}
        tensors = None
    if tensors is not None:
        for key in keys:
            if key not in writers:
                formats[key] = {"error": f"unknown format key {key!r}"}
                continue
            started = time.perf_counter()
            try:
                entry = writers[key](tensors)
                for name in entry["files"]:
                    fsync_path(args.out_dir / name)
                entry["seconds"] = round(time.perf_counter() - started, 3)
                print(f"  {key}: wrote {', '.join(entry['files'])} in {entry['seconds']:.1f} s")
            except Exception as e:  # noqa: BLE001 - one format failing must not stop the others
                traceback.print_exc(file=sys.stderr)
                entry = {"error": f"{type(e).__name__}: {e}"}
                print(f"  {key}: failed: {entry['error']}")
            formats[key] = entry
            sys.stdout.flush()
    report["formats"] = formats
    manifest = args.out_dir / "formats.json"
    manifest.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
