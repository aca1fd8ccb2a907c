"""Small shared helpers for the zTensor 1.x Python interop scripts.

Pure Python, no third-party imports (numpy/ztensor are imported by the callers).
Used by:
  * tests/fixtures/zt1/generate.py   (fixture generator, imports this via sys.path)
  * tests/interop/zt1_cases.py        (write-side interop cases)

Contents:
  * cbor_decode(buf)          -- tiny CBOR decoder (maps -> dict in file order,
                                 half/single/double floats, bytes, tags -> CborTag)
  * cbor_encode(value)        -- CBOR encoder following the ztensor 1.2.3 writer
                                 rules (definite lengths, shortest ints, shortest
                                 exact float, NaN = f9 7e00, dict insertion order)
  * read_zt1_manifest(path)   -- parse a ZTEN1000 file's footer + manifest
                                 (read_zt1_manifest_bytes for an in-memory image)
  * read_legacy_manifest(path)-- parse a ZTEN0001 file's CBOR array
  * crc32c(data)              -- CRC-32C (Castagnoli)
  * attr_to_json / json_to_attr -- attribute values <-> JSON form used by the
                                 fixtures: bytes -> {"$bytes": hex},
                                 NaN/+-inf -> {"$float": "nan"|"inf"|"-inf"}
"""

import json
import math
import struct

MAGIC_V1 = b"ZTEN1000"
MAGIC_LEGACY = b"ZTEN0001"


# --------------------------------------------------------------------------
# CBOR decoding
# --------------------------------------------------------------------------


class CborTag:
    def __init__(self, tag, value):
        self.tag = tag
        self.value = value

    def __repr__(self):
        return f"CborTag({self.tag}, {self.value!r})"


class CborSimple:
    def __init__(self, value):
        self.value = value

    def __repr__(self):
        return f"CborSimple({self.value})"


_BREAK = object()


class _Dec:
    def __init__(self, buf):
        self.buf = bytes(buf)
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.buf):
            raise ValueError("CBOR: unexpected end of data")
        b = self.buf[self.pos : self.pos + n]
        self.pos += n
        return b

    def arg(self, info):
        if info < 24:
            return info
        if info == 24:
            return self.take(1)[0]
        if info == 25:
            return struct.unpack(">H", self.take(2))[0]
        if info == 26:
            return struct.unpack(">I", self.take(4))[0]
        if info == 27:
            return struct.unpack(">Q", self.take(8))[0]
        if info == 31:
            return None  # indefinite
        raise ValueError(f"CBOR: bad additional info {info}")

    def item(self):
        ib = self.take(1)[0]
        major, info = ib >> 5, ib & 31
        if major == 7:
            if info == 20:
                return False
            if info == 21:
                return True
            if info in (22, 23):
                return None
            if info == 25:
                return struct.unpack(">e", self.take(2))[0]
            if info == 26:
                return struct.unpack(">f", self.take(4))[0]
            if info == 27:
                return struct.unpack(">d", self.take(8))[0]
            if info == 31:
                return _BREAK
            if info == 24:
                return CborSimple(self.take(1)[0])
            return CborSimple(info)
        n = self.arg(info)
        if major == 0:
            return n
        if major == 1:
            return -1 - n
        if major in (2, 3):
            if n is None:
                chunks = []
                while True:
                    c = self.item()
                    if c is _BREAK:
                        break
                    chunks.append(c)
                return (b"" if major == 2 else "").join(chunks)
            raw = self.take(n)
            return raw if major == 2 else raw.decode("utf-8")
        if major == 4:
            out = []
            if n is None:
                while True:
                    v = self.item()
                    if v is _BREAK:
                        break
                    out.append(v)
            else:
                for _ in range(n):
                    out.append(self.item())
            return out
        if major == 5:
            out = {}
            count = 0
            while n is None or count < n:
                k = self.item()
                if k is _BREAK:
                    break
                v = self.item()
                if isinstance(k, list):
                    k = tuple(k)
                out[k] = v
                count += 1
            return out
        if major == 6:
            return CborTag(n, self.item())
        raise AssertionError("unreachable")


def cbor_decode(buf):
    """Decode the first CBOR item of buf. Returns (value, bytes_consumed)."""
    d = _Dec(buf)
    v = d.item()
    return v, d.pos


# --------------------------------------------------------------------------
# CBOR encoding (ztensor 1.2.3 / ciborium flavour)
# --------------------------------------------------------------------------


def _head(major, n):
    if n < 24:
        return bytes([(major << 5) | n])
    if n < 0x100:
        return bytes([(major << 5) | 24, n])
    if n < 0x10000:
        return bytes([(major << 5) | 25]) + struct.pack(">H", n)
    if n < 0x100000000:
        return bytes([(major << 5) | 26]) + struct.pack(">I", n)
    if n < 0x10000000000000000:
        return bytes([(major << 5) | 27]) + struct.pack(">Q", n)
    raise ValueError("CBOR: integer too large")


def encode_float(x):
    """Shortest of half/single/double that round-trips exactly; NaN -> f9 7e00."""
    if math.isnan(x):
        return b"\xf9\x7e\x00"
    try:
        h = struct.pack(">e", x)
        if struct.unpack(">e", h)[0] == x:
            return b"\xf9" + h
    except (OverflowError, struct.error):
        pass
    try:
        f = struct.pack(">f", x)
        if struct.unpack(">f", f)[0] == x:
            return b"\xfa" + f
    except (OverflowError, struct.error):
        pass
    return b"\xfb" + struct.pack(">d", x)


def cbor_encode(v):
    """Encode like the 1.2.3 writer: dict keys in insertion order (callers sort
    where 1.2.3 sorts), ints shortest, floats shortest-exact, definite lengths."""
    if v is None:
        return b"\xf6"
    if v is True:
        return b"\xf5"
    if v is False:
        return b"\xf4"
    if isinstance(v, int):
        if v >= 0:
            return _head(0, v)
        return _head(1, -1 - v)
    if isinstance(v, float):
        return encode_float(v)
    if isinstance(v, str):
        raw = v.encode("utf-8")
        return _head(3, len(raw)) + raw
    if isinstance(v, (bytes, bytearray)):
        return _head(2, len(v)) + bytes(v)
    if isinstance(v, (list, tuple)):
        return _head(4, len(v)) + b"".join(cbor_encode(x) for x in v)
    if isinstance(v, dict):
        return _head(5, len(v)) + b"".join(cbor_encode(k) + cbor_encode(x) for k, x in v.items())
    if isinstance(v, CborTag):
        return _head(6, v.tag) + cbor_encode(v.value)
    raise TypeError(f"cannot CBOR-encode {type(v).__name__}")


def sorted_map(d):
    """dict sorted by UTF-8 bytes of its (str) keys (= Python str order)."""
    return {k: d[k] for k in sorted(d, key=lambda s: s.encode("utf-8"))}


def py_attr_as_written(v):
    """Apply the 1.2.3 python_to_cbor_value conversions: ints outside i64 -> float,
    numpy scalars -> int/float, tuples rejected like upstream."""
    if isinstance(v, bool) or v is None or isinstance(v, (str, bytes)):
        return v
    if isinstance(v, int):
        if -(2**63) <= v < 2**63:
            return v
        return float(v)
    if isinstance(v, float):
        return v
    if isinstance(v, list):
        return [py_attr_as_written(x) for x in v]
    if isinstance(v, dict):
        return {k: py_attr_as_written(x) for k, x in v.items()}
    raise TypeError(f"Cannot convert {type(v).__name__} to CBOR value")


def attributes_cbor(attrs):
    """CBOR bytes of an object's `attributes` map as 1.2.3 writes it
    (top level sorted by key bytes, nested maps in insertion order)."""
    return cbor_encode(sorted_map(py_attr_as_written(attrs)))


# --------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------


def read_zt1_manifest_bytes(data):
    """Parse a ZTEN1000 file image. Return (manifest, start, length, raw_manifest)."""
    data = bytes(data)
    if data[:8] != MAGIC_V1:
        raise ValueError(f"bad header magic {data[:8]!r}")
    if len(data) < 24 or data[-8:] != MAGIC_V1:
        raise ValueError("bad footer magic")
    n = struct.unpack("<Q", data[-16:-8])[0]
    start = len(data) - 16 - n
    if start < 8:
        raise ValueError(f"manifest length {n} too large")
    raw = data[start : start + n]
    m, _used = cbor_decode(raw)
    return m, start, n, raw


def read_zt1_manifest(path):
    """Return (manifest_dict, manifest_start, manifest_len, raw_manifest_bytes)."""
    with open(path, "rb") as f:
        return read_zt1_manifest_bytes(f.read())


def read_legacy_manifest(path):
    """Return (list_of_entries, manifest_start, manifest_len)."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != MAGIC_LEGACY:
        raise ValueError(f"{path}: not a ZTEN0001 file")
    n = struct.unpack("<Q", data[-8:])[0]
    start = len(data) - 8 - n
    m, _ = cbor_decode(data[start : start + n])
    return m, start, n


# --------------------------------------------------------------------------
# CRC-32C
# --------------------------------------------------------------------------

_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    t = _CRC32C_TABLE
    for b in bytes(data):
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


# --------------------------------------------------------------------------
# Attribute <-> JSON
# --------------------------------------------------------------------------


def attr_to_json(v):
    """Python attribute value (as returned by ztensor 1.2.3) -> JSON-able form."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        if math.isnan(v):
            return {"$float": "nan"}
        if math.isinf(v):
            return {"$float": "inf" if v > 0 else "-inf"}
        return v
    if isinstance(v, (bytes, bytearray)):
        return {"$bytes": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [attr_to_json(x) for x in v]
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if not isinstance(k, str):
                raise TypeError(f"non-text nested key {k!r} cannot be represented in JSON")
            out[k] = attr_to_json(x)
        return out
    if isinstance(v, (CborTag, CborSimple)):
        raise TypeError(f"{v!r} cannot be represented in JSON")
    # numpy scalars
    if hasattr(v, "item"):
        return attr_to_json(v.item())
    raise TypeError(f"cannot convert {type(v).__name__} to JSON")


def json_to_attr(v):
    """Inverse of attr_to_json."""
    if isinstance(v, dict):
        if set(v) == {"$bytes"}:
            return bytes.fromhex(v["$bytes"])
        if set(v) == {"$float"}:
            return float(v["$float"])
        return {k: json_to_attr(x) for k, x in v.items()}
    if isinstance(v, list):
        return [json_to_attr(x) for x in v]
    return v


def json_canon(v):
    """Canonical text of a JSON value (for equality incl. NaN markers / -0.0)."""
    return json.dumps(v, sort_keys=False, ensure_ascii=False, allow_nan=False)
