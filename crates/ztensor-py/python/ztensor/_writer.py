"""``Writer``: builds ``.zt`` files tensor by tensor."""

import os

import numpy as np

from . import _dtypes
from ._errors import InvalidArgumentError
from ._native import _Writer
from ._types import Tensor

_EFFORTS = ("fast", "default", "max")


def compression_spec(compression):
    """The native spec string for a ``compression`` / ``compress`` argument.

    ``None``/``False``/``0``/``"raw"``: stored raw. ``True``/``"zstd"``: zstd level 3. An int
    (1..22): zstd at that level. ``"codec"`` or ``"codec:fast|default|max"``: the ztensor weight
    codec (lossless, dtype-aware; files using it need ztensor >= 0.1 to read, zTensor 1.2.3
    refuses them). ``"zstd:LEVEL"`` also works.
    """
    if compression is None or compression is False:
        return "raw"
    if compression is True:
        return "zstd:3"
    if isinstance(compression, (int, np.integer)):
        level = int(compression)
        if level == 0:
            return "raw"
        if not 1 <= level <= 22:
            raise ValueError(f"zstd level must be 1..22, got {level}")
        return f"zstd:{level}"
    if isinstance(compression, str):
        c = compression.lower()
        if c in ("raw", "none"):
            return "raw"
        if c == "zstd":
            return "zstd:3"
        if c.startswith("zstd:"):
            return c
        if c == "codec":
            return "codec:default"
        if c.startswith("codec:") and c[6:] in _EFFORTS:
            return c
    raise ValueError(
        f"unknown compression {compression!r}: use False, True, a zstd level 1..22, 'zstd', "
        "'codec' or 'codec:fast' / 'codec:default' / 'codec:max'"
    )


def _checksum(checksum):
    if checksum is None or checksum is False:
        return "none"
    if checksum not in ("none", "crc32c", "sha256"):
        raise ValueError(f"checksum must be 'none', 'crc32c' or 'sha256', not {checksum!r}")
    return checksum


def _index_array(arr, what):
    arr = np.asarray(arr)
    if arr.dtype.kind not in "iu":
        raise InvalidArgumentError(f"{what} must be integers, not {arr.dtype}")
    if arr.dtype.kind == "i" and arr.size and arr.min() < 0:
        raise InvalidArgumentError(f"{what} has negative entries")
    return arr.astype(np.uint64, copy=False).reshape(-1)


def _check_sparse(tensor):
    """Components of a sparse tensor with u64 indices, checked against its shape (the file
    format stores u64 indices; scipy and torch use int32/int64)."""
    comps = dict(tensor.components)
    shape = tensor.shape
    nnz = np.asarray(comps["values"]).size
    if tensor.format == "sparse_csr":
        if len(shape) != 2:
            raise InvalidArgumentError(f"a CSR tensor is 2-D, not {shape}")
        indices = _index_array(comps["indices"], "CSR indices")
        indptr = _index_array(comps["indptr"], "CSR indptr")
        if indices.size != nnz:
            raise InvalidArgumentError(f"CSR has {nnz} values but {indices.size} indices")
        if indptr.size != shape[0] + 1 or indptr[0] != 0 or indptr[-1] != nnz or np.any(
            np.diff(indptr.astype(np.int64)) < 0
        ):
            raise InvalidArgumentError("CSR indptr must rise from 0 to the number of values, rows + 1 long")
        if indices.size and indices.max() >= shape[1]:
            raise InvalidArgumentError(f"CSR column index {indices.max()} out of range for {shape[1]} columns")
        comps["indices"], comps["indptr"] = indices, indptr
    elif tensor.format == "sparse_coo":
        coords = _index_array(comps["coords"], "COO coords")
        if coords.size != len(shape) * nnz:
            raise InvalidArgumentError(f"COO needs {len(shape)} x {nnz} coordinates, got {coords.size}")
        rows = coords.reshape(len(shape), nnz) if nnz else coords.reshape(len(shape), 0)
        for dim, extent in enumerate(shape):
            if nnz and rows[dim].max() >= extent:
                raise InvalidArgumentError(
                    f"COO coordinate {rows[dim].max()} out of range for dimension {dim} of size {extent}"
                )
        comps["coords"] = coords
    return comps


class Writer:
    """Writes a ``.zt`` file.

    Nothing appears under ``path`` until :meth:`finish` (called by the ``with`` block when it
    ends normally); if an exception leaves the block, or the writer is dropped unfinished, the
    partial file is deleted (an append is rolled back to the file as it was).

    >>> with Writer("model.zt") as w:
    ...     w.write_numpy("weight", np.zeros((4, 4), np.float32), compress="codec")
    """

    def __init__(self, path, *, metadata=None, _append=False):
        self._inner = _Writer(os.fspath(path), _append)
        if metadata:
            self.set_metadata(metadata)

    @classmethod
    def append(cls, path):
        """Opens an existing ``.zt`` file to add tensors after the ones it has."""
        return cls(path, _append=True)

    @property
    def path(self):
        return str(self._inner.path)

    @property
    def finished(self):
        return self._inner.finished

    def __contains__(self, name):
        return name in self._inner

    def set_metadata(self, metadata):
        """Sets file-level metadata (root attributes): any of None, bool, int, float, str,
        bytes, list and dict values."""
        if not isinstance(metadata, dict):
            raise TypeError("metadata must be a dict")
        self._inner.set_metadata(metadata)

    def write(self, name, tensor, *, compress=None, checksum="none"):
        """Writes a :class:`Tensor` of any format (dense, sparse, quantized)."""
        if not isinstance(tensor, Tensor):
            raise TypeError(f"write() takes a ztensor.Tensor, not {type(tensor).__name__}")
        from ._types import primary_component

        primary = primary_component(tensor.format, list(tensor.components))
        components = tensor.components
        if tensor.format in ("sparse_csr", "sparse_coo"):
            components = _check_sparse(tensor)
        parts = []
        for role, arr in components.items():
            storage, logical, shape, data = _dtypes.array_bytes(arr)
            if role == primary and tensor.type is not None and logical is None:
                # An explicit logical type over plain storage (e.g. FP8 held as uint8).
                logical = tensor.type
            parts.append((role, storage, logical, data))
        self._inner.add(
            name,
            tensor.shape,
            tensor.format,
            parts,
            tensor.attributes,
            compression_spec(compress),
            _checksum(checksum),
        )

    def write_numpy(self, name, data, *, compress=None, checksum="none", attributes=None):
        """Writes a dense tensor from a NumPy array (any dtype ztensor stores, bfloat16 and FP8
        from ml_dtypes, complex). Non-contiguous or big-endian arrays are copied first."""
        storage, logical, shape, raw = _dtypes.array_bytes(data)
        self._inner.add(
            name,
            shape,
            "dense",
            [("data", storage, logical, raw)],
            attributes,
            compression_spec(compress),
            _checksum(checksum),
        )

    def write_torch(self, name, data, *, compress=None, checksum="none", attributes=None):
        """Writes a dense tensor from a torch.Tensor (moved to the CPU and made contiguous as
        needed; bfloat16, FP8, bool and complex included)."""
        from .torch import _torch_bytes

        storage, logical, shape, raw = _torch_bytes(data)
        self._inner.add(
            name,
            shape,
            "dense",
            [("data", storage, logical, raw)],
            attributes,
            compression_spec(compress),
            _checksum(checksum),
        )

    def add(self, name, data, compress=None, checksum="none"):
        """Alias of :meth:`write_numpy`, kept for compatibility."""
        self.write_numpy(name, data, compress=compress, checksum=checksum)

    def finish(self):
        """Writes the manifest and footer and puts the file in place. Returns its size."""
        return self._inner.finish()

    def discard(self):
        """Abandons the file (nothing is left behind). No-op once finished."""
        self._inner.discard()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if self._inner.finished:
            return False
        if exc_type is None:
            self.finish()
        else:
            self.discard()
        return False

    def __repr__(self):
        state = "finished" if self.finished else "open"
        return f"<ztensor.Writer {self.path!r} ({state})>"
