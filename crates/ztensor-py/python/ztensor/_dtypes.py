"""dtype tables: ztensor storage dtypes and logical types <-> NumPy (and ml_dtypes)."""

import math

import numpy as np

from ._errors import UnsupportedError

#: Storage dtypes by their NumPy-style name (what the Python API shows as ``dtype``).
STORAGE_DTYPES = (
    "float64",
    "float32",
    "float16",
    "bfloat16",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint64",
    "uint32",
    "uint16",
    "uint8",
    "bool",
)

#: Bytes per element of each storage dtype.
ITEMSIZE = {
    "float64": 8,
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "int64": 8,
    "int32": 4,
    "int16": 2,
    "int8": 1,
    "uint64": 8,
    "uint32": 4,
    "uint16": 2,
    "uint8": 1,
    "bool": 1,
}

#: Short names used in .zt manifests, accepted wherever a dtype name is.
SHORT_NAMES = {
    "f64": "float64",
    "f32": "float32",
    "f16": "float16",
    "bf16": "bfloat16",
    "i64": "int64",
    "i32": "int32",
    "i16": "int16",
    "i8": "int8",
    "u64": "uint64",
    "u32": "uint32",
    "u16": "uint16",
    "u8": "uint8",
    "bool": "bool",
}

# Logical types whose elements are one byte each, by the ml_dtypes name NumPy arrays use.
_FP8_TO_ML = {
    "f8_e4m3fn": "float8_e4m3fn",
    "f8_e5m2": "float8_e5m2",
    "f8_e4m3fnuz": "float8_e4m3fnuz",
    "f8_e5m2fnuz": "float8_e5m2fnuz",
    "f8_e8m0": "float8_e8m0fnu",
}
_ML_TO_FP8 = {v: k for k, v in _FP8_TO_ML.items()}

_PLAIN = {name: np.dtype(name) for name in STORAGE_DTYPES if name != "bfloat16"}


def storage_name(name):
    """The NumPy-style storage name for a short or long dtype name."""
    name = SHORT_NAMES.get(name, name)
    if name not in ITEMSIZE:
        raise UnsupportedError(f"unknown dtype '{name}'")
    return name


def ml_dtypes():
    """The ml_dtypes module, or an error that says it is needed."""
    try:
        import ml_dtypes as ml
    except ImportError as e:  # pragma: no cover - ml_dtypes is a test dependency
        raise UnsupportedError(
            "bfloat16 and FP8 arrays need the ml_dtypes package (pip install ml_dtypes)"
        ) from e
    return ml


def numpy_dtype(storage, logical=None):
    """The NumPy dtype of elements stored as ``storage`` with logical type ``logical``.

    FP4 (``f4_e2m1``) is not here: it is packed two per byte and unpacked by :func:`to_numpy`.
    """
    if logical is not None:
        if logical in _FP8_TO_ML:
            return np.dtype(getattr(ml_dtypes(), _FP8_TO_ML[logical]))
        if logical == "complex64":
            return np.dtype(np.complex64)
        if logical == "complex128":
            return np.dtype(np.complex128)
    if storage == "bfloat16":
        return np.dtype(ml_dtypes().bfloat16)
    return _PLAIN[storage]


def from_numpy_dtype(dtype):
    """``(storage, logical)`` names for a NumPy dtype."""
    dtype = np.dtype(dtype)
    name = dtype.name
    if name in _PLAIN and dtype.kind in "fiub":
        return name, None
    if dtype.kind == "c":
        if dtype.itemsize == 8:
            return "float32", "complex64"
        if dtype.itemsize == 16:
            return "float64", "complex128"
    if name == "bfloat16":
        return "bfloat16", None
    if name in _ML_TO_FP8:
        return "uint8", _ML_TO_FP8[name]
    if name == "float4_e2m1fn":
        return "uint8", "f4_e2m1"
    raise UnsupportedError(f"cannot store NumPy dtype {dtype} in a tensor file")


def array_bytes(arr):
    """``(storage, logical, shape, bytes)`` of an array: ``bytes`` is a C-contiguous uint8 view
    (a copy only when the array is not contiguous, not little-endian, or is FP4)."""
    arr = np.asarray(arr)
    storage, logical = from_numpy_dtype(arr.dtype)
    shape = list(arr.shape)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    arr = np.ascontiguousarray(arr)
    if logical == "f4_e2m1":
        codes = arr.reshape(-1).view(np.uint8) & 0x0F
        if codes.size % 2:
            codes = np.concatenate([codes, np.zeros(1, np.uint8)])
        packed = codes[0::2] | (codes[1::2] << 4)
        return storage, logical, shape, packed
    return storage, logical, shape, arr.reshape(-1).view(np.uint8)


def logical_shape(shape, nbytes, storage, logical):
    """The shape of the NumPy array for a dense tensor: complex tensors written by zTensor 1.2
    carry a trailing storage dimension of 2 that the complex dtype absorbs."""
    if logical in ("complex64", "complex128"):
        numel = math.prod(shape)
        if nbytes != numel * 2 * ITEMSIZE[storage] and shape and shape[-1] == 2:
            return list(shape[:-1])
    return list(shape)


def to_numpy(buf, storage, logical, shape):
    """An array over ``buf`` (a buffer of decoded bytes) without copying where possible."""
    raw = np.frombuffer(buf, dtype=np.uint8)
    if logical == "f4_e2m1":
        numel = raw.size * 2 if shape is None else math.prod(shape)
        codes = np.empty(raw.size * 2, dtype=np.uint8)
        codes[0::2] = raw & 0x0F
        codes[1::2] = raw >> 4
        out = codes[:numel].view(ml_dtypes().float4_e2m1fn)
        return out if shape is None else out.reshape(shape)
    known = logical is None or logical in _FP8_TO_ML or logical in ("complex64", "complex128")
    if not known:
        # A logical type this version does not know: the storage elements as they are.
        dtype = numpy_dtype(storage)
        arr = raw.view(dtype)
        return arr.reshape(shape) if math.prod(shape) == arr.size else arr
    dtype = numpy_dtype(storage, logical)
    if raw.size % dtype.itemsize:
        raise UnsupportedError(
            f"{raw.size} bytes are not a whole number of {dtype} elements"
        )
    arr = raw.view(dtype)
    if shape is None:
        return arr
    return arr.reshape(logical_shape(shape, raw.size, storage, logical))
