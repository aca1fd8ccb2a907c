"""The ztensor weight codec (``ztc1``): lossless, dtype-aware compression of weight bytes.

Frames are self-describing and checksummed; every effort tier decodes with the same
:func:`decompress`. ``.zt`` files can store components with it (``compression="codec"`` in
``save_file`` / ``Writer``).

>>> blob = compress(weights_bytes, dtype="bf16")
>>> decompress(blob) == weights_bytes
True
>>> out = bytearray(len(weights_bytes)); decompress(blob, out=out)   # no extra allocation
>>> back = decompress_array(compress_array(np_array))                 # dtype and shape kept
>>> blob = compress_delta(current, reference=previous, dtype="bf16")  # checkpoint deltas
>>> decompress_delta(blob, reference=previous) == current
True

Effort tiers: ``"fast"`` (fastest decode), ``"default"`` (balanced), ``"max"`` (smallest: every
candidate coding is tried; slow to encode). ``dtype`` names the element type so that floats are
split into exponent and mantissa streams: ``bf16``, ``fp16``, ``fp32``, ``fp64``, ``int8`` ..
``int64``, ``uint8`` .. ``uint64``, ``bool`` (NumPy names and dtypes work too); ``None`` codes
the input as opaque bytes. NumPy arrays passed without ``dtype`` use their own.

Everything runs without the GIL, on all cores unless ``threads`` says otherwise.
"""

import json
import struct

import numpy as np

from . import _dtypes
from ._errors import FormatError, UnsupportedError
from ._native import (
    codec_compress,
    codec_compress_delta,
    codec_decompress,
    codec_decompress_delta,
    codec_frame_info,
)

#: The effort tiers, fastest to decode first.
EFFORTS = ("fast", "default", "max")

_ALIASES = {
    "bf16": "bfloat16",
    "fp16": "float16",
    "fp32": "float32",
    "fp64": "float64",
    "half": "float16",
    "float": "float32",
    "double": "float64",
}


def _codec_dtype(dtype):
    """Storage dtype name for the codec, or None for opaque bytes."""
    if dtype is None:
        return None
    if isinstance(dtype, str):
        name = _ALIASES.get(dtype.lower(), dtype.lower())
        if name in _dtypes.SHORT_NAMES or name in _dtypes.ITEMSIZE:
            return _dtypes.storage_name(name)
    try:
        storage, _ = _dtypes.from_numpy_dtype(np.dtype(dtype))
    except (TypeError, UnsupportedError):
        raise ValueError(f"the codec has no dtype {dtype!r}") from None
    return storage


def _as_buffer(data, dtype):
    """``(buffer, dtype name)`` for bytes-like input, NumPy arrays and torch tensors."""
    if isinstance(data, np.ndarray):
        storage, logical, _, raw = _dtypes.array_bytes(data)
        if logical == "f4_e2m1":
            raw = np.ascontiguousarray(data).reshape(-1).view(np.uint8)
        return raw, _codec_dtype(dtype) if dtype is not None else storage
    if type(data).__module__.startswith("torch"):
        from .torch import _torch_bytes

        storage, _, _, raw = _torch_bytes(data)
        return raw, _codec_dtype(dtype) if dtype is not None else storage
    return data, _codec_dtype(dtype)


def _check_effort(effort):
    if effort not in EFFORTS:
        raise ValueError(f"effort must be one of {EFFORTS}, not {effort!r}")
    return effort


def compress(data, dtype=None, effort="default", *, chunk_size=None, threads=None):
    """Compresses a bytes-like object (or NumPy array / torch tensor) into one frame."""
    buf, dtype = _as_buffer(data, dtype)
    return codec_compress(buf, dtype, _check_effort(effort), chunk_size, threads)


def decompress(blob, out=None, *, threads=None, max_decoded_len=None):
    """Decodes a frame into new ``bytes``, or into ``out`` (a writable buffer of exactly the
    decoded size: bytearray, NumPy array...), which is then returned. ``max_decoded_len``
    refuses frames that declare more (bound what you accept from untrusted sources)."""
    if out is None:
        return codec_decompress(blob, None, threads, max_decoded_len)
    codec_decompress(blob, _writable_bytes(out), threads, max_decoded_len)
    return out


def compress_delta(data, reference, dtype=None, effort="default", *, chunk_size=None, threads=None):
    """Compresses ``data`` relative to ``reference`` (same length: the previous checkpoint).
    Unchanged bytes cost almost nothing. The frame records the reference's length and digest,
    so decoding against any other reference fails loudly."""
    buf, dtype = _as_buffer(data, dtype)
    ref, _ = _as_buffer(reference, None)
    return codec_compress_delta(buf, ref, dtype, _check_effort(effort), chunk_size, threads)


def decompress_delta(blob, reference, out=None, *, threads=None, max_decoded_len=None):
    """Decodes a delta frame against the reference it was made with."""
    ref, _ = _as_buffer(reference, None)
    if out is None:
        return codec_decompress_delta(blob, ref, None, threads, max_decoded_len)
    codec_decompress_delta(blob, ref, _writable_bytes(out), threads, max_decoded_len)
    return out


def frame_info(blob):
    """A frame's header without decoding: decoded_length, dtype, is_delta, reference_length,
    chunk_size, segments, copy_segments, header_length, crc32c."""
    return codec_frame_info(blob)


def _writable_bytes(out):
    if isinstance(out, np.ndarray):
        if not out.flags.c_contiguous:
            raise ValueError("out must be C-contiguous")
        return out.reshape(-1).view(np.uint8)
    return out


# -- arrays: dtype and shape travel with the frame ----------------------------------------------

_ARRAY_MAGIC = b"ZTA1"


def _dtype_descr(dtype):
    if dtype.name in ("bfloat16",) or dtype.name.startswith("float8_") or dtype.name.startswith("float4_"):
        return dtype.name
    return dtype.newbyteorder("<").str if dtype.byteorder == ">" else dtype.str


def _dtype_from_descr(descr):
    if descr.startswith(("bfloat16", "float8_", "float4_")):
        return np.dtype(getattr(_dtypes.ml_dtypes(), descr))
    return np.dtype(descr)


def compress_array(arr, effort="default", *, chunk_size=None, threads=None):
    """Compresses a NumPy array; :func:`decompress_array` restores it with its dtype and shape.

    Layout: ``b"ZTA1"``, u32 LE length of a JSON header ``{"dtype", "shape"}``, the header, one
    codec frame of the array's little-endian bytes."""
    arr = np.asarray(arr)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    header = json.dumps(
        {"dtype": _dtype_descr(arr.dtype), "shape": list(arr.shape)}, separators=(",", ":")
    ).encode()
    frame = compress(arr, None, effort, chunk_size=chunk_size, threads=threads)
    return _ARRAY_MAGIC + struct.pack("<I", len(header)) + header + frame


def decompress_array(blob, *, threads=None, max_decoded_len=None):
    """The array stored by :func:`compress_array` (a new, writable array)."""
    view = memoryview(blob).cast("B")
    if len(view) < 8 or bytes(view[:4]) != _ARRAY_MAGIC:
        raise FormatError("not a compress_array blob (bad magic)")
    (n,) = struct.unpack("<I", view[4:8])
    if 8 + n > len(view):
        raise FormatError("compress_array blob is truncated")
    try:
        header = json.loads(bytes(view[8 : 8 + n]))
        dtype = _dtype_from_descr(header["dtype"])
        shape = [int(d) for d in header["shape"]]
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise FormatError(f"bad compress_array header: {e}") from None
    frame = view[8 + n :]
    info = codec_frame_info(frame)
    want = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if info["decoded_length"] != want or any(d < 0 for d in shape):
        raise FormatError(
            f"compress_array frame decodes to {info['decoded_length']} bytes but the header "
            f"says {shape} of {dtype} ({want} bytes)"
        )
    if max_decoded_len is not None and want > max_decoded_len:
        from ._errors import LimitExceededError

        raise LimitExceededError(f"array of {want} bytes exceeds max_decoded_len={max_decoded_len}")
    out = np.empty(shape, dtype=dtype)
    codec_decompress(frame, out.reshape(-1).view(np.uint8), threads, max_decoded_len)
    return out


__all__ = [
    "EFFORTS",
    "compress",
    "decompress",
    "compress_array",
    "decompress_array",
    "compress_delta",
    "decompress_delta",
    "frame_info",
]
