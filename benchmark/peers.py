#!/usr/bin/env python3
"""Times the Python side of `cargo xtask bench`: each format's reference library and a
`ztensor` package (ours, or upstream zTensor 2.x in its own venv), on files the xtask prepared.

The xtask writes a plan (JSON) of tasks and runs this script once per venv:

    python benchmark/peers.py --plan plan.json --out results.json

A task is a write or a read of one workload by one library:

- write: `{"id", "op": "write", "lib", "format", "source", "dir", "files", "compress",
  "convert"}`. The workload's tensors are loaded (untimed) from the xtask's `source`
  safetensors file; each run removes the old file, then writes with the library
  (`make_formats.WRITERS`, or `ztensor.numpy.save_file`) and fsyncs, timed. With `convert`,
  `ztensor.convert(source, file)` writes instead. The last run's file stays for the reads.
- read: `{"id", "op": "read", "lib", "files", "zero_copy", "cold", "expected_sum", "tensors"}`.
  Cold runs first `os.sync()` and drop every file of the task from the page cache with
  `posix_fadvise(POSIX_FADV_DONTNEED)`, untimed. The timed part opens the file with the library
  and reads every tensor, zero-copy (a view of a memory map) or copied (an array of its own),
  and touches every byte: a wrapping sum of the tensor's little-endian u64 words (and tail
  bytes), the same sum the xtask computes, so a wrong byte fails the task and a lazy map is
  really read.

Every task runs `warmup` untimed and `runs` timed times. The result file holds the times in
seconds per task id, or the error that stopped it: a library that cannot read a file is
reported, not fatal (set PEERS_TRACEBACK=1 to see its traceback).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path

import numpy as np

MASK = (1 << 64) - 1


# -- touching bytes --------------------------------------------------------------------------


def byte_view(obj) -> np.ndarray:
    """The bytes of an array, tensor or buffer as a flat uint8 array, without copying."""
    if isinstance(obj, np.ndarray):
        return obj.reshape(-1).view(np.uint8)
    if type(obj).__module__.startswith("torch"):
        import torch

        return obj.detach().reshape(-1).view(torch.uint8).numpy()
    view = memoryview(obj)
    return np.frombuffer(view.cast("B") if view.format != "B" or view.ndim != 1 else view, np.uint8)


def touch(obj) -> int:
    """Wrapping sum of the little-endian u64 words of `obj`'s bytes, plus its tail bytes (what
    the xtask's `touch` computes): every byte is read, and the result checks them."""
    b = byte_view(obj)
    words = b.size // 8
    total = 0
    if words:
        # uint64 additions wrap, which is the sum we want.
        total = int(np.add.reduce(b[: words * 8].view("<u8"), dtype=np.uint64))
    if b.size % 8:
        total += int(b[words * 8 :].sum(dtype=np.uint64))
    return total & MASK


def touch_all(arrays) -> tuple[int, int]:
    total = count = 0
    for a in arrays:
        total = (total + touch(a)) & MASK
        count += 1
    return total, count


# -- the readers: fn(path, zero_copy) -> (sum, tensor count) ---------------------------------


def read_safetensors(path, zero_copy):
    if zero_copy:
        # safe_open maps the file; get_tensor gives a tensor over that map.
        from safetensors import safe_open

        total = count = 0
        with safe_open(path, framework="pt") as f:
            for name in f.keys():
                total = (total + touch(f.get_tensor(name))) & MASK
                count += 1
        return total, count
    from safetensors.torch import load_file

    return touch_all(load_file(path).values())


def read_torch(path, zero_copy):
    import torch

    # mmap=True maps the zip's storages instead of reading them (zip checkpoints only).
    tensors = torch.load(path, mmap=zero_copy, weights_only=True, map_location="cpu")
    return touch_all(tensors.values())


def read_numpy(path, zero_copy):
    if zero_copy:
        raise NotImplementedError("numpy.load has no memory map for .npz members")
    with np.load(path) as z:
        return touch_all(z[name] for name in z.files)


def read_gguf(path, zero_copy):
    import gguf

    reader = gguf.GGUFReader(path)
    # `data` is a view of the reader's np.memmap; np.array copies it.
    arrays = (t.data if zero_copy else np.array(t.data) for t in reader.tensors)
    result = touch_all(arrays)
    del reader
    return result


def read_onnx(path, zero_copy):
    if zero_copy:
        raise NotImplementedError("onnx.load parses the protobuf into memory")
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    return touch_all(numpy_helper.to_array(t) for t in model.graph.initializer)


def read_h5py(path, zero_copy):
    if zero_copy:
        raise NotImplementedError("h5py reads datasets into arrays")
    import h5py

    with h5py.File(path, "r") as f:
        return touch_all(f[name][()] for name in f.keys())


def read_ztensor(path, zero_copy):
    # ztensor.numpy.load_file is the same call in ours and upstream 2.x: copy=False gives
    # views of the file's map where the format allows it.
    import ztensor.numpy

    return touch_all(ztensor.numpy.load_file(path, copy=not zero_copy).values())


READERS = {
    "safetensors": read_safetensors,
    "torch": read_torch,
    "numpy": read_numpy,
    "gguf": read_gguf,
    "onnx": read_onnx,
    "h5py": read_h5py,
    "ztensor": read_ztensor,
}


# -- the writers ----------------------------------------------------------------------------


def load_source(path: Path) -> dict:
    """The tensors of the xtask's safetensors file as numpy arrays (bf16 as ml_dtypes), read
    with a few lines of numpy so that a venv without safetensors or torch can load it too."""
    dtypes = {"F32": "<f4", "F16": "<f2", "I8": "i1", "U8": "u1", "I32": "<i4", "I64": "<i8"}
    with open(path, "rb") as f:
        header_len = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(header_len))
        data = np.fromfile(f, dtype=np.uint8)
    out = {}
    entries = [(k, v) for k, v in header.items() if k != "__metadata__"]
    entries.sort(key=lambda kv: kv[1]["data_offsets"][0])
    for name, info in entries:
        start, end = info["data_offsets"]
        raw = data[start:end]
        if info["dtype"] == "BF16":
            import ml_dtypes

            array = raw.view(ml_dtypes.bfloat16)
        else:
            array = raw.view(dtypes[info["dtype"]])
        out[name] = array.reshape(info["shape"])
    return out


def as_torch(arrays: dict) -> dict:
    import torch

    out = {}
    for name, a in arrays.items():
        if a.dtype.name == "bfloat16":
            out[name] = torch.from_numpy(a.view(np.int16)).view(torch.bfloat16)
        else:
            out[name] = torch.from_numpy(a)
    return out


def fsync_file(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_with(task: dict, arrays: dict, tensors_torch):
    """One write of `task`: returns nothing; the file(s) are `task["files"]`."""
    if task["lib"] == "ztensor":
        import ztensor.numpy

        compress = task.get("compress")
        ztensor.numpy.save_file(arrays, task["files"][0], compression=compress == "zstd-3")
        return
    from make_formats import WRITERS

    WRITERS[task["format"]](tensors_torch(), Path(task["dir"]), 1800 << 20)


# -- running tasks ---------------------------------------------------------------------------


def drop_from_page_cache(path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def run_read(task: dict, runs: int, warmup: int) -> dict:
    reader = READERS[task["lib"]]
    files = task["files"]
    times = []
    gc.collect()
    for i in range(warmup + runs):
        # The young generations hold whatever the last read left in cycles (a full collection
        # costs a quarter of a second once torch is imported); the maps must be gone before
        # the page cache is dropped.
        gc.collect(1)
        if task["cold"]:
            os.sync()
            for f in files:
                drop_from_page_cache(f)
        started = time.perf_counter()
        total, count = reader(files[0], task["zero_copy"])
        elapsed = time.perf_counter() - started
        if count != task["tensors"]:
            raise ValueError(f"read {count} tensors, expected {task['tensors']}")
        if total != task["expected_sum"]:
            raise ValueError(f"read back wrong bytes (sum {total:#x}, expected {task['expected_sum']:#x})")
        if i >= warmup:
            times.append(elapsed)
    return {"times": times}


def run_write(task: dict, runs: int, warmup: int, source_cache: dict) -> dict:
    source = task["source"]
    files = [Path(f) for f in task["files"]]
    if task.get("convert"):
        # Upstream zTensor 2.x's own converter: the .zt it writes for a model it reads.
        import ztensor

        return time_writes(files, runs, warmup, lambda: ztensor.convert(source, task["files"][0]))
    if source_cache.get("path") != source:
        source_cache.clear()
        gc.collect()
        source_cache["path"] = source
        source_cache["arrays"] = load_source(Path(source))
    arrays = source_cache["arrays"]

    def tensors_torch():
        if "torch" not in source_cache:
            source_cache["torch"] = as_torch(arrays)
        return source_cache["torch"]

    if task["lib"] != "ztensor":
        tensors_torch()  # converted once, untimed (from_numpy shares the memory anyway)
    return time_writes(files, runs, warmup, lambda: write_with(task, arrays, tensors_torch))


def time_writes(files: list, runs: int, warmup: int, write) -> dict:
    """Times `write()` plus the fsync of `files`, each run on removed files."""
    times = []
    gc.collect()
    for i in range(warmup + runs):
        for f in files:
            f.unlink(missing_ok=True)
        gc.collect(1)
        started = time.perf_counter()
        write()
        for f in files:
            fsync_file(f)
        elapsed = time.perf_counter() - started
        if i >= warmup:
            times.append(elapsed)
    return {"times": times, "file_bytes": sum(f.stat().st_size for f in files)}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in ["numpy", "torch", "safetensors", "gguf", "onnx", "h5py", "ztensor"]:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))  # make_formats

    plan = json.loads(args.plan.read_text())
    runs, warmup = plan["runs"], plan["warmup"]
    results = []
    source_cache: dict = {}
    for task in plan["tasks"]:
        label = f"{task['op']} {task['lib']} {Path(task['files'][0]).name}"
        started = time.perf_counter()
        try:
            if task["op"] == "write":
                result = run_write(task, runs, warmup, source_cache)
            else:
                if task["op"] == "read" and source_cache:
                    source_cache.clear()  # the reads need the memory more
                result = run_read(task, runs, warmup)
            status = f"{len(result['times'])} runs"
        except Exception as e:  # noqa: BLE001 - reported to the xtask, which shows why
            if os.environ.get("PEERS_TRACEBACK"):
                traceback.print_exc(file=sys.stderr)
            result = {"error": f"{type(e).__name__}: {e}".splitlines()[0][:300]}
            status = f"failed: {result['error']}"
        result["id"] = task["id"]
        results.append(result)
        print(f"  {label}: {status} ({time.perf_counter() - started:.1f} s)", flush=True)
    args.out.write_text(json.dumps({"versions": versions(), "results": results}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
