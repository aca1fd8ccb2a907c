"""NumPy save/load, a drop-in for ``safetensors.numpy``.

>>> from ztensor.numpy import save_file, load_file
>>> save_file({"w": np.zeros((2, 2), np.float32)}, "model.zt", compression=True)
>>> load_file("model.zt")["w"].shape
(2, 2)

``load_file`` reads every format ztensor reads (``.zt``, safetensors, PyTorch, GGUF, NumPy,
ONNX, ...). bfloat16 and FP8 arrays use the ml_dtypes package.
"""

import os
from typing import Dict, Optional, Union

import numpy as np

from . import _common
from ._reader import Reader
from ._writer import Writer


def _check_tensors(tensors):
    if not isinstance(tensors, dict):
        raise ValueError(f"Expected a dict of [str, np.ndarray] but received {type(tensors)}")
    for k, v in tensors.items():
        if not isinstance(k, str):
            raise ValueError(f"Tensor names must be str, got {type(k)}")
        if not isinstance(v, np.ndarray):
            raise ValueError(f"Key `{k}` is invalid, expected np.ndarray but received {type(v)}")


def save_file(
    tensors: Dict[str, np.ndarray],
    filename: Union[str, os.PathLike],
    metadata: Optional[Dict[str, str]] = None,
    compression: Union[bool, int, str] = False,
) -> None:
    """Saves ``tensors`` to a ``.zt`` file.

    ``metadata`` (str -> str) is stored as file-level metadata and comes back from
    ``Reader(filename).metadata()``. ``compression``: False (raw), True (zstd level 3), an int
    (zstd level 1..22), ``"zstd"``, or ``"codec"`` / ``"codec:fast"`` / ``"codec:max"`` for the
    ztensor weight codec. The file appears only when complete.
    """
    _check_tensors(tensors)
    metadata = _common.check_metadata(metadata)
    with Writer(filename) as w:
        if metadata:
            w.set_metadata(metadata)
        for name, arr in tensors.items():
            w.write_numpy(name, arr, compress=compression)


def save(
    tensors: Dict[str, np.ndarray],
    metadata: Optional[Dict[str, str]] = None,
    compression: Union[bool, int, str] = False,
) -> bytes:
    """The bytes of the ``.zt`` file :func:`save_file` would write."""
    _check_tensors(tensors)
    return _common.to_bytes(save_file, tensors, metadata, compression)


def load_file(filename: Union[str, os.PathLike], copy: bool = False) -> Dict[str, np.ndarray]:
    """Loads every tensor of a file (any supported format) as NumPy arrays.

    With ``copy=False`` (default) arrays whose bytes lie raw in the file point into a private
    copy-on-write map of it: loading costs no copy and writes never reach the file. With
    ``copy=True`` every array owns its memory.
    """
    reader = Reader(filename)
    return reader.read_numpy(reader.keys(), copy=copy)


def load(data: bytes) -> Dict[str, np.ndarray]:
    """Loads tensors from the bytes of a tensor file (independent copies)."""
    return _common.from_bytes(data, lambda p: load_file(p, copy=True))


__all__ = ["save_file", "save", "load_file", "load"]
