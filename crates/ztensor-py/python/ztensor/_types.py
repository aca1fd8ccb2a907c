"""``Tensor`` (a tensor and its component arrays) and ``TensorMetadata``."""

import numpy as np

from . import _dtypes
from ._errors import NotDenseError

# The component that carries a tensor's element type, by format.
_PRIMARY = {"dense": "data", "sparse_csr": "values", "sparse_coo": "values"}

#: Components each known format must have.
REQUIRED_COMPONENTS = {
    "dense": ("data",),
    "sparse_csr": ("values", "indices", "indptr"),
    "sparse_coo": ("values", "coords"),
    "quantized_group": ("packed_weight", "scales"),
}


def primary_component(format, names):
    """The role that gives a tensor its dtype: data, values, or the first by name."""
    role = _PRIMARY.get(format)
    if role in names:
        return role
    return min(names) if names else None


class TensorMetadata:
    """What is known about a tensor before its data is read (``Reader.metadata(name)``).

    Attributes: ``name``, ``shape`` (list of int), ``dtype`` (storage dtype of the primary
    component, e.g. ``"float32"``), ``type`` (logical type such as ``"f8_e4m3fn"``, or None),
    ``format`` (``"dense"``, ``"sparse_csr"``, ...), ``components`` (role -> dict with
    ``dtype``, ``type``, ``offset``, ``length`` (stored bytes), ``encoding``,
    ``decoded_length``, ``digest``) and ``attributes`` (dict or None).
    """

    __slots__ = ("name", "shape", "dtype", "type", "format", "components", "attributes")

    def __init__(self, name, shape, dtype, format, *, type=None, components=None, attributes=None):
        self.name = name
        self.shape = list(shape)
        self.dtype = dtype
        self.type = type
        self.format = format
        self.components = components if components is not None else {}
        self.attributes = attributes

    @classmethod
    def _from_info(cls, info):
        comps = info["components"]
        role = primary_component(info["format"], list(comps))
        primary = comps.get(role) if role else None
        return cls(
            info["name"],
            info["shape"],
            primary["dtype"] if primary else None,
            info["format"],
            type=primary["type"] if primary else None,
            components=comps,
            attributes=info["attributes"],
        )

    @property
    def nbytes(self):
        """Decoded bytes of all components."""
        return sum(c.get("decoded_length") or 0 for c in self.components.values())

    def __eq__(self, other):
        if not isinstance(other, TensorMetadata):
            return NotImplemented
        return all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    def __repr__(self):
        extra = f" type='{self.type}'" if self.type else ""
        fmt = f" format='{self.format}'" if self.format != "dense" else ""
        return (
            f"<TensorMetadata name='{self.name}' shape={self.shape} dtype='{self.dtype}'"
            f"{extra}{fmt}>"
        )


class Tensor:
    """A tensor as stored: its component arrays, shape, dtype, format and attributes.

    Dense tensors have one ``"data"`` component; ``sparse_csr`` has ``values``, ``indices``
    and ``indptr``; ``sparse_coo`` has ``values`` and ``coords`` (ndim x nnz);
    ``quantized_group`` has ``packed_weight``, ``scales`` (and optional ``zeros``) with
    ``bits`` and ``group_size`` in ``attributes``.

    >>> t = Tensor({"data": np.ones((3, 4), dtype=np.float32)})
    >>> t.shape, t.dtype, t.format
    ([3, 4], 'float32', 'dense')
    """

    __slots__ = ("shape", "dtype", "type", "format", "components", "attributes")

    def __init__(self, components, *, shape=None, dtype=None, format="dense", type=None, attributes=None):
        if not isinstance(components, dict):
            raise TypeError("components must be a dict of name -> array")
        components = {k: np.asarray(v) for k, v in components.items()}
        role = primary_component(format, list(components))
        required = REQUIRED_COMPONENTS.get(format, ())
        missing = [r for r in required if r not in components]
        if missing:
            raise ValueError(f"a {format} tensor needs the component(s) {missing}")
        if shape is None:
            if format != "dense":
                raise ValueError(f"a {format} tensor needs an explicit shape")
            shape = components["data"].shape
        if dtype is None or type is None:
            if role is None:
                raise ValueError("a tensor needs at least one component")
            storage, logical = _dtypes.from_numpy_dtype(components[role].dtype)
            dtype = storage if dtype is None else dtype
            type = logical if type is None else type
        self.shape = [int(d) for d in shape]
        self.dtype = _dtypes.storage_name(str(dtype))
        self.type = type
        self.format = format
        self.components = components
        self.attributes = dict(attributes) if attributes is not None else None

    def numpy(self):
        """The dense data as a NumPy array."""
        if self.format != "dense":
            raise NotDenseError(f"numpy() needs a dense tensor; this one is {self.format}")
        return self.components["data"]

    def torch(self, *, device="cpu"):
        """The dense data as a torch.Tensor on ``device``."""
        from .torch import _numpy_to_torch

        return _numpy_to_torch(self.numpy(), device=device)

    def __array__(self, dtype=None, copy=None):
        arr = self.numpy()
        if dtype is not None:
            arr = arr.astype(dtype)
        return arr.copy() if copy else arr

    def __eq__(self, other):
        if not isinstance(other, Tensor):
            return NotImplemented
        return (
            self.shape == other.shape
            and self.dtype == other.dtype
            and self.type == other.type
            and self.format == other.format
            and self.attributes == other.attributes
            and self.components.keys() == other.components.keys()
            and all(
                self.components[k].dtype == other.components[k].dtype
                and self.components[k].shape == other.components[k].shape
                and self.components[k].tobytes() == other.components[k].tobytes()
                for k in self.components
            )
        )

    __hash__ = None

    def __repr__(self):
        extra = f" type='{self.type}'" if self.type else ""
        return (
            f"<ztensor.Tensor shape={self.shape} dtype='{self.dtype}'{extra} "
            f"format='{self.format}'>"
        )
