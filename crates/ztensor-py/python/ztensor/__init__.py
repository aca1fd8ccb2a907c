"""ztensor: read any tensor file, write ``.zt``.

- ``ztensor.numpy`` / ``ztensor.torch``: ``save_file``, ``load_file``, ``save``, ``load`` (and
  ``save_model`` / ``load_model`` for torch), drop-in replacements for ``safetensors.numpy`` /
  ``safetensors.torch`` that also read ``.zt``, safetensors, PyTorch, GGUF, NumPy and ONNX files.
- :class:`Reader` (``ztensor.open``): per-tensor, zero-copy access to any of those formats.
- :class:`Writer`: builds ``.zt`` files with per-tensor compression (zstd or the weight codec)
  and checksums; ``Writer.append`` adds to an existing file.
- :class:`Tensor` / :class:`TensorMetadata`: dense, sparse (CSR, COO) and quantized tensors.
- :func:`remove_tensors`, :func:`replace_tensor`: whole-file edits.
- ``ztensor.codec``: the lossless weight codec on bytes and arrays.
- Errors: :class:`ZTensorError` and its subclasses (``ztensor.errors``).
"""

import os as _os

from . import _errors as errors
from . import codec
from ._errors import *  # noqa: F401,F403
from ._errors import ZTensorError
from ._native import __version__
from ._native import convert as _convert
from ._native import convert_to_safetensors as _convert_to_safetensors
from ._native import delta_apply as _delta_apply
from ._native import delta_create as _delta_create
from ._native import remove_tensors as _remove_tensors
from ._native import replace_tensor as _replace_tensor
from ._reader import Reader
from ._types import Tensor, TensorMetadata
from ._writer import Writer


def open(path, *, base=None):  # noqa: A001 - the documented name
    """Opens a tensor file of any supported format: same as ``Reader(path)``."""
    return Reader(path, base=base)


def remove_tensors(input, output, names):  # noqa: A002
    """Writes ``input`` (a ``.zt`` file) without the tensors in ``names`` to ``output`` (which may
    be ``input``). Kept tensors are copied as stored: compression, checksums and attributes are
    preserved. Every name must exist (TensorNotFoundError otherwise, before anything is written)."""
    if isinstance(names, str):
        names = [names]
    _remove_tensors(_os.fspath(input), _os.fspath(output), list(names))


def replace_tensor(path, name, data):
    """Overwrites the data of a raw (uncompressed) dense tensor of a ``.zt`` file in place.
    ``data`` (a NumPy array or torch tensor) must have the same byte size; checksums are
    recomputed."""
    from . import _dtypes

    if type(data).__module__.startswith("torch"):
        from .torch import _torch_bytes

        _, _, _, raw = _torch_bytes(data)
    else:
        _, _, _, raw = _dtypes.array_bytes(data)
    _replace_tensor(_os.fspath(path), name, raw)


def convert(sources, dest, *, compression=False, checksum="none", restorable=False, drop_metadata=False):
    """Converts one or more tensor files of any supported format into one ``.zt`` file.

    ``compression`` as in ``save_file``; ``checksum``: "none", "crc32c" or "sha256";
    ``restorable``: keep a safetensors source's header so that :func:`convert_to_safetensors`
    gives back the identical file. Returns ``{"tensors", "bytes_read", "file_size"}``.
    """
    from ._writer import _checksum, compression_spec

    if isinstance(sources, (str, bytes, _os.PathLike)):
        sources = [sources]
    return _convert(
        [_os.fspath(s) for s in sources],
        _os.fspath(dest),
        compression_spec(compression),
        _checksum(checksum),
        restorable,
        drop_metadata,
    )


def convert_to_safetensors(source, dest):
    """Writes the dense tensors of any readable file as a ``.safetensors`` file; returns its
    size."""
    return _convert_to_safetensors(_os.fspath(source), _os.fspath(dest))


def create_delta(base, target, dest, *, effort="default", checksum="crc32c", threads=None):
    """Writes ``dest``: a checkpoint-delta ``.zt`` file storing ``target`` relative to ``base``
    (both any readable format). Unchanged components cost nothing, changed ones are XOR-delta
    codec frames. Open it with ``Reader(dest, base=base)``; the base must be the very file
    (length and SHA-256 are checked). Returns ``{"tensors", "copies", "deltas", "full",
    "bytes_in", "file_size"}``. zTensor 1.2.3 refuses such files."""
    return _delta_create(
        _os.fspath(base), _os.fspath(target), _os.fspath(dest), effort, checksum, threads
    )


def apply_delta(base, delta, dest, *, compression=False, checksum="none"):
    """Expands a checkpoint-delta file into a standalone ``.zt`` file, or a ``.safetensors``
    file when ``dest`` ends so (byte-identical to the original safetensors target). Returns the
    number of tensors."""
    from ._writer import _checksum, compression_spec

    return _delta_apply(
        _os.fspath(base),
        _os.fspath(delta),
        _os.fspath(dest),
        compression_spec(compression),
        _checksum(checksum),
    )


__all__ = [
    "Reader",
    "Writer",
    "Tensor",
    "TensorMetadata",
    "open",
    "remove_tensors",
    "replace_tensor",
    "convert",
    "convert_to_safetensors",
    "create_delta",
    "apply_delta",
    "codec",
    "errors",
    "__version__",
] + errors.__all__
