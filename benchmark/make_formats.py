#!/usr/bin/env python3
"""Writes the workloads of `cargo xtask bench` with the formats' reference libraries.

The xtask writes each benchmark model once as safetensors; this script reads that file with
the `safetensors` library and writes the same tensors, in the same order, as:

| key         | file              | written by                                          |
|-------------|-------------------|-----------------------------------------------------|
| pt          | model.pt          | torch.save (zip, the default)                       |
| pt-legacy   | model-legacy.pt   | torch.save(_use_new_zipfile_serialization=False)    |
| gguf        | model.gguf        | gguf.GGUFWriter (type from the numpy dtype)         |
| npz         | model.npz         | numpy.savez (stored, not compressed)                |
| onnx        | model.onnx        | onnx.helper.make_tensor(raw=True) + onnx.save_model |
| hdf5        | model.h5          | h5py create_dataset (contiguous, no filters)        |
| safetensors | model.safetensors | safetensors.torch.save_file (only when asked for)   |

Tensors keep their dtype, except bf16 where a format has none (GGUF here by choice, NumPy and
HDF5 by necessity): those get float16, converted by torch (`Tensor.to(torch.float16)`, round to
nearest even). ONNX models whose tensor data exceeds `--onnx-external-mb` keep it in
`model.onnx.data` (external data), since a protobuf message cannot exceed 2 GiB.
`benchmark/peers.py` times these same writers (`WRITERS`) for the write benchmark.

Each format is written on its own: one that fails is reported and skipped. The outcome goes to
`formats.json` in the output directory (files, dtype, seconds, library versions, or the error),
which the xtask reads. Run with the bench venv (`cargo xtask bench` creates it):

    .venv-bench/bin/python benchmark/make_formats.py --source DIR/model.safetensors --out-dir DIR
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


def numpy_of(tensor):
    """`tensor` as a numpy array: bf16 (which numpy lacks) as float16, anything else as is."""
    import torch

    if tensor.dtype == torch.bfloat16:
        tensor = tensor.to(torch.float16)
    return tensor.contiguous().numpy()


def dtype_name(array) -> str:
    return {"float16": "f16", "float32": "f32", "int8": "i8"}.get(array.dtype.name, array.dtype.name)


def write_pt(tensors, out: Path, legacy: bool) -> dict:
    import torch

    path = out / ("model-legacy.pt" if legacy else "model.pt")
    if legacy:
        torch.save(tensors, path, _use_new_zipfile_serialization=False)
    else:
        torch.save(tensors, path)
    return {"files": [path.name], "dtype": torch_dtype_name(tensors), "library": f"torch {torch.__version__}"}


def torch_dtype_name(tensors) -> str:
    dtypes = {str(t.dtype).removeprefix("torch.") for t in tensors.values()}
    names = {"bfloat16": "bf16", "float16": "f16", "float32": "f32", "int8": "i8"}
    return ",".join(sorted(names.get(d, d) for d in dtypes))


def write_gguf(tensors, out: Path) -> dict:
    import gguf

    path = out / "model.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    dtype = None
    for name, tensor in tensors.items():
        array = numpy_of(tensor)
        dtype = dtype_name(array)
        # The GGML type follows the numpy dtype (F16, F32, I8).
        writer.add_tensor(name, array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return {"files": [path.name], "dtype": dtype, "library": f"gguf {version_of('gguf')}"}


def write_npz(tensors, out: Path) -> dict:
    import numpy as np

    path = out / "model.npz"
    arrays = {name: numpy_of(t) for name, t in tensors.items()}
    np.savez(path, **arrays)
    dtype = dtype_name(next(iter(arrays.values()))) if arrays else None
    return {"files": [path.name], "dtype": dtype, "library": f"numpy {np.__version__}"}


def write_onnx(tensors, out: Path, external_above: int) -> dict:
    import onnx
    import torch
    from onnx import TensorProto, helper

    path = out / "model.onnx"
    data_name = "model.onnx.data"
    initializers = []
    total = 0
    types = {
        torch.bfloat16: TensorProto.BFLOAT16,
        torch.float16: TensorProto.FLOAT16,
        torch.float32: TensorProto.FLOAT,
        torch.int8: TensorProto.INT8,
    }
    for name, tensor in tensors.items():
        raw = tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        total += len(raw)
        initializers.append(
            helper.make_tensor(name, types[tensor.dtype], list(tensor.shape), raw, raw=True)
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
        "dtype": torch_dtype_name(tensors),
        "external_data": external,
        "library": f"onnx {onnx.__version__}",
    }


def write_hdf5(tensors, out: Path) -> dict:
    import h5py

    path = out / "model.h5"
    dtype = None
    with h5py.File(path, "w") as f:
        for name, tensor in tensors.items():
            array = numpy_of(tensor)
            dtype = dtype_name(array)
            # No chunks, filters or maxshape: a contiguous dataset.
            f.create_dataset(name, data=array)
    return {"files": [path.name], "dtype": dtype, "library": f"h5py {version_of('h5py')}"}


def write_safetensors(tensors, out: Path) -> dict:
    import safetensors
    from safetensors.torch import save_file

    path = out / "model.safetensors"
    save_file(tensors, str(path))
    return {
        "files": [path.name],
        "dtype": torch_dtype_name(tensors),
        "library": f"safetensors {safetensors.__version__}",
    }


# Every writer by format key: `fn(tensors, out_dir, onnx_external_bytes)`. The command line
# writes the first six by default; peers.py times them all.
WRITERS = {
    "pt": lambda t, out, _: write_pt(t, out, legacy=False),
    "pt-legacy": lambda t, out, _: write_pt(t, out, legacy=True),
    "gguf": lambda t, out, _: write_gguf(t, out),
    "npz": lambda t, out, _: write_npz(t, out),
    "onnx": lambda t, out, external: write_onnx(t, out, external),
    "hdf5": lambda t, out, _: write_hdf5(t, out),
    "safetensors": lambda t, out, _: write_safetensors(t, out),
}
DEFAULT_KEYS = ["pt", "pt-legacy", "gguf", "npz", "onnx", "hdf5"]


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

    external = int(args.onnx_external_mb * 2**20)
    keys = args.only or DEFAULT_KEYS
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
            if key not in WRITERS:
                formats[key] = {"error": f"unknown format key {key!r}"}
                continue
            started = time.perf_counter()
            try:
                entry = WRITERS[key](tensors, args.out_dir, external)
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
