"""PyTorch save/load, a drop-in for ``safetensors.torch``.

>>> from ztensor.torch import save_file, load_file
>>> save_file({"w": torch.zeros(2, 2)}, "model.zt")
>>> load_file("model.zt", device="cpu")["w"].shape
torch.Size([2, 2])

Also ``save_model`` / ``load_model`` (tied weights stored once, as safetensors does) and
``load_file(..., copy=False)``: zero-copy tensors over a private copy-on-write map of the file.
Supported dtypes: float64/32/16, bfloat16, int64/32/16/8, uint64/32/16/8, bool, complex64/128
and the FP8 types (float8_e4m3fn, float8_e5m2, float8_e4m3fnuz, float8_e5m2fnuz,
float8_e8m0fnu).
"""

import os
from collections import defaultdict
from typing import Dict, List, Optional, Tuple, Union

import numpy as np

try:
    import torch
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("ztensor.torch needs PyTorch: pip install torch") from e

from . import _common, _dtypes
from ._errors import UnsupportedError
from ._reader import Reader
from ._writer import Writer


def _dtype_table():
    storage = {
        "float64": torch.float64,
        "float32": torch.float32,
        "float16": torch.float16,
        "bfloat16": torch.bfloat16,
        "int64": torch.int64,
        "int32": torch.int32,
        "int16": torch.int16,
        "int8": torch.int8,
        "uint8": torch.uint8,
        "bool": torch.bool,
    }
    for name in ("uint16", "uint32", "uint64"):
        if hasattr(torch, name):
            storage[name] = getattr(torch, name)
    logical = {"complex64": torch.complex64, "complex128": torch.complex128}
    for zt_name, torch_name in (
        ("f8_e4m3fn", "float8_e4m3fn"),
        ("f8_e5m2", "float8_e5m2"),
        ("f8_e4m3fnuz", "float8_e4m3fnuz"),
        ("f8_e5m2fnuz", "float8_e5m2fnuz"),
        ("f8_e8m0", "float8_e8m0fnu"),
    ):
        if hasattr(torch, torch_name):
            logical[zt_name] = getattr(torch, torch_name)
    return storage, logical


_STORAGE_TO_TORCH, _LOGICAL_TO_TORCH = _dtype_table()
_TORCH_TO_STORAGE = {v: k for k, v in _STORAGE_TO_TORCH.items()}
_TORCH_TO_LOGICAL = {v: k for k, v in _LOGICAL_TO_TORCH.items()}


def _torch_dtype(storage, logical=None):
    """The torch dtype for a storage dtype and logical type."""
    if logical is not None:
        if logical in _LOGICAL_TO_TORCH:
            return _LOGICAL_TO_TORCH[logical]
        raise UnsupportedError(
            f"torch has no dtype for logical type '{logical}'; use read_numpy() or read()"
        )
    if storage not in _STORAGE_TO_TORCH:
        raise UnsupportedError(f"torch has no dtype for '{storage}'; use read_numpy()")
    return _STORAGE_TO_TORCH[storage]


def _from_torch_dtype(dtype):
    if dtype in _TORCH_TO_STORAGE:
        return _TORCH_TO_STORAGE[dtype], None
    if dtype in _TORCH_TO_LOGICAL:
        logical = _TORCH_TO_LOGICAL[dtype]
        if logical == "complex64":
            return "float32", logical
        if logical == "complex128":
            return "float64", logical
        return "uint8", logical
    raise UnsupportedError(f"cannot store torch dtype {dtype} in a tensor file")


def _device(device):
    if isinstance(device, int):
        return f"cuda:{device}"
    return device


def _torch_bytes(tensor):
    """``(storage, logical, shape, uint8 ndarray)`` of a tensor's bytes on the CPU."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, not {type(tensor).__name__}")
    if tensor.layout != torch.strided:
        raise ValueError("sparse tensors cannot be written as dense; call .to_dense() first")
    storage, logical = _from_torch_dtype(tensor.dtype)
    t = tensor.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_complex():
        t = t.resolve_conj()
    t = t.resolve_neg().contiguous()
    raw = t.reshape(-1).view(torch.uint8).numpy()
    return storage, logical, list(tensor.shape), raw


def _buffer_to_torch(buf, storage, logical, shape, device="cpu"):
    """A tensor over a native buffer: zero-copy when it is writable and aligned for the dtype
    (a copy otherwise: torch has no read-only tensors), then moved to ``device``."""
    dtype = _torch_dtype(storage, logical)
    shape = _dtypes.logical_shape(shape, len(buf), storage, logical)
    itemsize = torch.empty((), dtype=dtype).element_size()
    if len(buf) == 0:
        t = torch.empty(shape, dtype=dtype)
    else:
        if buf.writable and buf.address % itemsize == 0:
            raw = torch.frombuffer(buf, dtype=torch.uint8)
        else:
            raw = torch.from_numpy(np.frombuffer(buf, dtype=np.uint8).copy())
        t = raw.view(dtype).reshape(shape)
    device = _device(device)
    if str(device) != "cpu":
        t = t.to(device)
    return t


def _numpy_to_torch(arr, device="cpu"):
    """A NumPy array (any dtype ztensor stores, ml_dtypes included) as a torch.Tensor."""
    storage, logical = _dtypes.from_numpy_dtype(arr.dtype)
    dtype = _torch_dtype(storage, logical)
    a = np.ascontiguousarray(arr)
    if not a.flags.writeable:
        a = a.copy()
    raw = torch.from_numpy(a.reshape(-1).view(np.uint8))
    t = raw.view(dtype).reshape(arr.shape)
    device = _device(device)
    if str(device) != "cpu":
        t = t.to(device)
    return t


# -- shared tensors (tied weights), as safetensors.torch handles them ----------------------------


def _storage_ptr(t):
    try:
        return t.untyped_storage().data_ptr()
    except Exception:  # pragma: no cover - meta or exotic tensors
        return 0


def _storage_size(t):
    try:
        return t.untyped_storage().nbytes()
    except Exception:  # pragma: no cover
        return t.nelement() * t.element_size()


def _shared_groups(state_dict):
    """Sets of names whose tensors overlap in memory."""
    by_storage = defaultdict(set)
    for name, t in state_dict.items():
        if t.device.type != "meta" and _storage_ptr(t) != 0 and _storage_size(t) != 0:
            by_storage[(t.device, _storage_ptr(t), _storage_size(t))].add(name)
    groups = []
    for names in sorted(by_storage.values(), key=sorted):
        if len(names) < 2:
            groups.append(names)
            continue
        # Views of one storage that do not overlap are not shared.
        spans = sorted(
            (state_dict[n].data_ptr(), state_dict[n].data_ptr() + state_dict[n].nbytes, n)
            for n in names
        )
        start, stop, first = spans[0]
        groups.append({first})
        for s, e, n in spans[1:]:
            if s >= stop:
                groups.append({n})
            else:
                groups[-1].add(n)
            stop = max(stop, e)
    return groups


def _covers_storage(t):
    return t.data_ptr() == _storage_ptr(t) and t.nelement() * t.element_size() == _storage_size(t)


def _names_to_drop(state_dict, preferred=()):
    """``{kept name: [names dropped]}`` for every group of shared tensors."""
    preferred = set(preferred)
    drop = defaultdict(list)
    for group in _shared_groups(state_dict):
        if len(group) < 2:
            continue
        complete = {n for n in group if _covers_storage(state_dict[n])}
        if not complete:
            raise RuntimeError(
                f"Cannot save the shared tensors {sorted(group)}: none of them covers the whole "
                "storage they share, so saving one would lose the others."
            )
        keep = min(complete)
        if preferred & complete:
            keep = min(preferred & complete)
        for n in sorted(group):
            if n != keep:
                drop[keep].append(n)
    return drop


def _check_tensors(tensors):
    if not isinstance(tensors, dict):
        raise ValueError(f"Expected a dict of [str, torch.Tensor] but received {type(tensors)}")
    sparse = []
    for k, v in tensors.items():
        if not isinstance(v, torch.Tensor):
            raise ValueError(f"Key `{k}` is invalid, expected torch.Tensor but received {type(v)}")
        if v.layout != torch.strided:
            sparse.append(k)
    if sparse:
        raise ValueError(
            f"You are trying to save sparse tensors: `{sparse}`, which is not supported; "
            "call `.to_dense()` first."
        )
    shared = [sorted(g) for g in _shared_groups(tensors) if len(g) > 1]
    if shared:
        raise RuntimeError(
            f"Some tensors share memory, this would store their data twice: {shared}. "
            "Use `save_model` to store shared tensors once."
        )
    for k, v in tensors.items():
        if not v.is_contiguous():
            raise ValueError(
                f"You are trying to save a non contiguous tensor: `{k}`; call `.contiguous()` "
                "on it first."
            )


def save_file(
    tensors: Dict[str, "torch.Tensor"],
    filename: Union[str, os.PathLike],
    metadata: Optional[Dict[str, str]] = None,
    compression: Union[bool, int, str] = False,
) -> None:
    """Saves ``tensors`` to a ``.zt`` file (tensors on any device; they are read back to the
    CPU to be written).

    Raises like ``safetensors.torch.save_file``: ValueError for non-tensors, sparse or
    non-contiguous tensors, RuntimeError for tensors sharing memory. ``metadata`` (str -> str)
    and ``compression`` are as in :func:`ztensor.numpy.save_file`.
    """
    _check_tensors(tensors)
    metadata = _common.check_metadata(metadata)
    with Writer(filename) as w:
        if metadata:
            w.set_metadata(metadata)
        for name, t in tensors.items():
            w.write_torch(name, t, compress=compression)


def save(
    tensors: Dict[str, "torch.Tensor"],
    metadata: Optional[Dict[str, str]] = None,
    compression: Union[bool, int, str] = False,
) -> bytes:
    """The bytes of the ``.zt`` file :func:`save_file` would write."""
    _check_tensors(tensors)
    return _common.to_bytes(save_file, tensors, metadata, compression)


def load_file(
    filename: Union[str, os.PathLike],
    device: Union[str, int, "torch.device"] = "cpu",
    copy: bool = False,
) -> Dict[str, "torch.Tensor"]:
    """Loads every tensor of a file (any supported format) onto ``device``.

    With ``copy=False`` (default) CPU tensors whose bytes lie raw in the file share a private
    copy-on-write map of it: writes stay in this process, never reach the file.
    """
    reader = Reader(filename)
    return reader.read_torch(reader.keys(), copy=copy, device=device)


def load(data: bytes, device: Union[str, int] = "cpu") -> Dict[str, "torch.Tensor"]:
    """Loads tensors from the bytes of a tensor file (independent copies)."""
    return _common.from_bytes(data, lambda p: load_file(p, device=device, copy=True))


def save_model(
    model: "torch.nn.Module",
    filename: Union[str, os.PathLike],
    metadata: Optional[Dict[str, str]] = None,
    force_contiguous: bool = True,
    compression: Union[bool, int, str] = False,
) -> None:
    """Saves a module's state dict, storing tensors that share memory (tied weights) once; the
    metadata records each dropped name with the name kept (as safetensors does)."""
    state_dict = model.state_dict()
    metadata = dict(_common.check_metadata(metadata) or {})
    for kept, dropped in _names_to_drop(state_dict).items():
        for name in dropped:
            metadata.setdefault(name, kept)
            del state_dict[name]
    if force_contiguous:
        state_dict = {k: v.contiguous() for k, v in state_dict.items()}
    try:
        save_file(state_dict, filename, metadata=metadata or None, compression=compression)
    except ValueError as e:
        raise ValueError(f"{e} Or use save_model(..., force_contiguous=True).") from e


def load_model(
    model: "torch.nn.Module",
    filename: Union[str, os.PathLike],
    strict: bool = True,
    device: Union[str, int] = "cpu",
    copy: bool = False,
) -> Tuple[List[str], List[str]]:
    """Loads a file into ``model``; returns ``(missing, unexpected)`` key lists. Tied weights
    saved once by :func:`save_model` count as present. With ``strict``, any missing or
    unexpected key raises RuntimeError."""
    state_dict = load_file(filename, device=device, copy=copy)
    tied = _names_to_drop(model.state_dict(), preferred=state_dict.keys())
    missing, unexpected = model.load_state_dict(state_dict, strict=False)
    missing = set(missing)
    unexpected = list(unexpected)
    for dropped in tied.values():
        for name in dropped:
            if name in missing:
                missing.remove(name)
            else:
                unexpected.append(name)
    if strict and (missing or unexpected):
        msg = f"Error(s) in loading state_dict for {model.__class__.__name__}:"
        if missing:
            msg += "\n    Missing key(s) in state_dict: " + ", ".join(
                f'"{k}"' for k in sorted(missing)
            )
        if unexpected:
            msg += "\n    Unexpected key(s) in state_dict: " + ", ".join(
                f'"{k}"' for k in sorted(unexpected)
            )
        raise RuntimeError(msg)
    return sorted(missing), unexpected


__all__ = ["save_file", "save", "load_file", "load", "save_model", "load_model"]
