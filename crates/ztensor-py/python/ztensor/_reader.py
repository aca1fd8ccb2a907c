"""``Reader``: per-tensor access to any tensor file ztensor reads."""

import os

import numpy as np

from . import _dtypes
from ._native import _Reader
from ._types import Tensor, TensorMetadata, primary_component


def _names_arg(name):
    if isinstance(name, str):
        return None
    if isinstance(name, (list, tuple)):
        return list(name)
    raise TypeError("name must be a str or a list of str")


class Reader:
    """Reads a tensor file of any supported format, detected from its bytes.

    Formats: ``.zt`` (zTensor 1.x and 2.x), safetensors, PyTorch ``.pt/.pth/.bin`` (zip and
    legacy, loaded without running any pickled code), GGUF, ``.npy/.npz``, ONNX, and HDF5 when
    built with it.

    Dict-like: ``reader["name"]`` (a :class:`Tensor`), ``"name" in reader``, ``len(reader)``,
    iteration over names. Arrays read with ``copy=False`` (the default) point into a private,
    copy-on-write map of the file where the bytes lie there raw: writing to them copies the page
    for this process only, never the file. Such arrays keep the file mapped after the reader is
    closed, for as long as they live.

    ``base``: open a checkpoint-delta ``.zt`` file against the base file it was made from.
    """

    def __init__(self, path, *, base=None):
        self._inner = _Reader(os.fspath(path), os.fspath(base) if base is not None else None)
        self._order = None

    # -- file ---------------------------------------------------------------------------------

    @property
    def format(self):
        """"zt", "zt2", "safetensors", "pickle", "gguf", "npy", "npz", "onnx" or "hdf5"."""
        return self._inner.format

    @property
    def path(self):
        return str(self._inner.path)

    def keys(self):
        """All tensor names (sorted, unless the format defines an order)."""
        return self._inner.names()

    def metadata(self, name=None):
        """File-level metadata with no argument (a dict: .zt root attributes, safetensors
        ``__metadata__``, GGUF key-values...); :class:`TensorMetadata` for a name; a list of
        them for a list of names."""
        if name is None:
            return self._inner.metadata()
        names = _names_arg(name)
        if names is None:
            return TensorMetadata._from_info(self._inner.info(name))
        return [TensorMetadata._from_info(self._inner.info(n)) for n in names]

    def _file_order(self, names):
        if self._order is None:
            self._order = {n: i for i, n in enumerate(self._inner.names_in_file_order())}
        for n in names:
            if n not in self._order:
                self._inner.info(n)  # raises the not-found error, with the file
        return sorted(names, key=self._order.__getitem__)

    def _many(self, names, read_one):
        """Reads in file order (sequential I/O), returns in the order asked."""
        got = {n: read_one(n) for n in self._file_order(names)}
        return {n: got[n] for n in names}

    # -- reading ------------------------------------------------------------------------------

    def read(self, name, *, copy=False):
        """Tensor(s) with all their components: str -> :class:`Tensor`, list -> dict."""
        names = _names_arg(name)
        if names is None:
            return self._read_tensor(name, copy)
        return self._many(names, lambda n: self._read_tensor(n, copy))

    def _read_tensor(self, name, copy):
        info = self._inner.info(name)
        fmt = info["format"]
        components = {}
        for role, c in info["components"].items():
            buf = self._inner.component(name, role, copy)
            shape = info["shape"] if (fmt == "dense" and role == "data") else None
            components[role] = _dtypes.to_numpy(buf, c["dtype"], c["type"], shape)
        role = primary_component(fmt, list(info["components"]))
        primary = info["components"].get(role, {})
        return Tensor(
            components,
            shape=info["shape"],
            dtype=primary.get("dtype"),
            format=fmt,
            type=primary.get("type"),
            attributes=info["attributes"],
        )

    def _read_array(self, name, copy):
        info = self._inner.info(name)
        if info["format"] != "dense":
            from ._errors import NotDenseError

            err = NotDenseError(
                f"{self.path}: tensor '{name}' is {info['format']}, not dense; use read()"
            )
            err.kind, err.path, err.tensor = "NotDense", self.path, name
            raise err
        c = info["components"]["data"]
        buf = self._inner.component(name, "data", copy)
        return _dtypes.to_numpy(buf, c["dtype"], c["type"], info["shape"]), buf, info

    def read_numpy(self, name, *, copy=False):
        """Dense tensor(s) as NumPy arrays: str -> ndarray, list -> dict."""
        names = _names_arg(name)
        if names is None:
            return self._read_array(name, copy)[0]
        return self._many(names, lambda n: self._read_array(n, copy)[0])

    def read_torch(self, name, *, copy=False, device="cpu"):
        """Dense tensor(s) as torch.Tensors on ``device``: str -> Tensor, list -> dict."""
        from .torch import _buffer_to_torch

        def one(n):
            _, buf, info = self._read_array(n, copy)
            c = info["components"]["data"]
            return _buffer_to_torch(buf, c["dtype"], c["type"], info["shape"], device)

        names = _names_arg(name)
        if names is None:
            return one(name)
        return self._many(names, one)

    def read_into(self, name, dst=None):
        """Copies dense tensor data into preallocated arrays: ``read_into(name, dst)`` or
        ``read_into({name: dst, ...})`` (read in file order).

        ``dst`` is a NumPy array or a torch.Tensor on any device. A C-contiguous CPU
        destination of the tensor's exact dtype and shape is decoded into directly; anything
        else goes through ``np.copyto`` / ``Tensor.copy_`` (which cast and broadcast).
        """
        if isinstance(name, dict):
            for n in self._file_order(list(name)):
                self._read_into_one(n, name[n])
            return None
        if dst is None:
            raise TypeError("read_into(name, dst) needs a destination")
        self._read_into_one(name, dst)
        return None

    def _read_into_one(self, name, dst):
        info = self._inner.info(name)
        if info["format"] == "dense" and _direct_target(dst, info):
            self._inner.read_into(name, "data", _byte_view(dst))
            return
        if isinstance(dst, np.ndarray):
            np.copyto(dst, self._read_array(name, False)[0])
        else:
            dst.copy_(self.read_torch(name))

    # -- checks and helpers -------------------------------------------------------------------

    def verify(self, decode=True):
        """Checks every digest (and that every component decodes): ``.zt`` files only.
        Returns the number of digests checked; raises ChecksumError on a mismatch."""
        return self._inner.verify(decode)

    def _map_range(self):
        """``(address, length)`` of the copy-on-write map that zero-copy arrays point into, or
        None. For tests and debugging."""
        return self._inner._map_range()

    # -- dict-like ----------------------------------------------------------------------------

    def __getitem__(self, name):
        if not isinstance(name, str):
            raise TypeError("tensor names are str")
        return self._read_tensor(name, False)

    def __contains__(self, name):
        return isinstance(name, str) and name in self._inner

    def __len__(self):
        return len(self._inner)

    def __iter__(self):
        return iter(self.keys())

    def close(self):
        """Drops this handle; arrays already read stay valid."""
        self._inner = _ClosedReader(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self):
        try:
            return f"<ztensor.Reader {self.path!r} [{self.format}, {len(self)} tensor(s)]>"
        except ValueError:
            return "<ztensor.Reader (closed)>"


class _ClosedReader:
    def __init__(self, path):
        self.path = path

    def __getattr__(self, attr):
        raise ValueError(f"I/O operation on a closed reader ({self.path})")

    def __len__(self):
        raise ValueError(f"I/O operation on a closed reader ({self.path})")

    def __contains__(self, name):
        raise ValueError(f"I/O operation on a closed reader ({self.path})")


def _direct_target(dst, info):
    """Whether ``dst`` can take the decoded bytes as they are."""
    c = info["components"]["data"]
    if c["type"] == "f4_e2m1" or c["decoded_length"] is None:
        return False
    if isinstance(dst, np.ndarray):
        try:
            want = _dtypes.numpy_dtype(c["dtype"], c["type"])
        except Exception:
            return False
        shape = _dtypes.logical_shape(info["shape"], c["decoded_length"], c["dtype"], c["type"])
        return (
            dst.dtype == want
            and list(dst.shape) == shape
            and dst.flags.c_contiguous
            and dst.flags.writeable
            and dst.nbytes == c["decoded_length"]
        )
    from .torch import _torch_dtype

    try:
        want = _torch_dtype(c["dtype"], c["type"])
    except Exception:
        return False
    shape = _dtypes.logical_shape(info["shape"], c["decoded_length"], c["dtype"], c["type"])
    return (
        getattr(dst, "device", None) is not None
        and dst.device.type == "cpu"
        and dst.dtype == want
        and list(dst.shape) == shape
        and dst.is_contiguous()
        and dst.numel() * dst.element_size() == c["decoded_length"]
    )


def _byte_view(dst):
    if isinstance(dst, np.ndarray):
        return dst.reshape(-1).view(np.uint8)
    import torch

    return dst.detach().reshape(-1).view(torch.uint8).numpy()
