#!/usr/bin/env python3
"""Write-side interop cases for zTensor 1.x (`.zt`, magic ZTEN1000).

Each case describes one `.zt` file as an ordered list of tensor writes. The Rust
writer must produce, for every case, a file that is BYTE-IDENTICAL to what the
real `ztensor==1.2.3` Python package writes for the same writes, and that file
must read back in 1.2.3 with exactly the case's values.

Run with the interpreter of the test venv (see tests/python-requirements.txt):

    python tests/interop/zt1_cases.py spec OUT.json
        Write the JSON list of cases (format documented below).

    python tests/interop/zt1_cases.py write-ref REFDIR [--spec SPEC.json]
        Write every case with the real ztensor 1.2.3 API into REFDIR/<file>.
        Without --spec the cases are built in memory (same data as `spec`).

    python tests/interop/zt1_cases.py check OURSDIR REFDIR [--spec SPEC.json]
        For every case:
          * OURSDIR/<file> must be byte-identical to REFDIR/<file>; on a
            mismatch a hex diff hint is printed, naming the region (header,
            padding, blob of tensor/component, manifest, footer) of the first
            differing byte according to the reference file's manifest;
          * the reference file's layout and manifest are checked against the
            case (offsets, alignment, dtype/type/encoding/digest, attributes);
          * OURSDIR/<file> is opened with ztensor 1.2.3 (Reader, metadata,
            reader[name], read_numpy, read()) and every tensor's dtype, shape,
            format, attributes and component bytes must equal the case data.
        The last line printed is "N passed, N failed"; the exit status is 1 if
        anything failed (2 for usage errors).

    Self-test of the scripts against 1.2.3 (must pass):
        python tests/interop/zt1_cases.py write-ref /tmp/ref
        python tests/interop/zt1_cases.py check /tmp/ref /tmp/ref

Spec JSON (list, one object per case; tensors in WRITE ORDER):

    [{"file": "dtypes_raw.zt",
      "writer": "Writer" | "save_file",     # which 1.2.3 entry point wrote it
      "compression": 0,                      # save_file only (0 = raw, N = zstd N)
      "notes": "free text",
      "tensors": [
        {"name": "t",                        # any UTF-8 text, may be ""
         "api": "write_numpy" | "add" | "write" | "save_file",
         "format": "dense" | "sparse_csr" | "sparse_coo" | "quantized_group",
         "shape": [2, 3],                    # exactly as stored in the manifest
         "dtype": "f32",                     # dtype of the primary component
         "type": null | "f8_e4m3fn" | ...,   # Tensor(type=...) argument
         "data_hex": "…" | null,             # dense "data" bytes (null if not dense)
         "components": {"<role>": {"dtype": "f32", "type": null | "…", "hex": "…"}},
         "component_order": ["values", "indices", "indptr"],  # blob WRITE order
         "compress": 0 | 1 | 3 | 19 | 22,    # 0 = raw, else zstd level (all components)
         "checksum": "none" | "crc32c" | "sha256",            # all components
         "attributes": null | {…},           # JSON form, see below
         "attributes_cbor_hex": null | "…"   # the exact CBOR of the manifest's
        }]}]                                 #   object "attributes" map

    * `components[role].type` is the `type` key that 1.2.3 puts in the manifest
      (only on dense `data` or on a component named `values`).
    * `attributes` JSON form: CBOR bytes -> {"$bytes": "<hex>"}, NaN/inf floats ->
      {"$float": "nan"|"inf"|"-inf"}; integers outside i64 are already turned into
      floats (as 1.2.3 does). Nested maps keep their key order, which matters for
      the bytes: parse with serde_json's `preserve_order`, or use
      `attributes_cbor_hex`. The top level of the map is sorted by the writer.
    * JSON objects do not keep order in every parser, so the component write
      order is given explicitly in `component_order`.
"""

import hashlib
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import zt1lib  # noqa: E402

ZT_TO_NP = {
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
NP_TO_ZT = {v: k for k, v in ZT_TO_NP.items()}
ALL_DTYPES = list(ZT_TO_NP)


def np_dtype(zt):
    import numpy as np

    if zt == "bf16":
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(ZT_TO_NP[zt])


# --------------------------------------------------------------------------
# Deterministic data
# --------------------------------------------------------------------------


def make_array(zt, n, rng, special=True):
    """n deterministic elements of dtype zt (flat numpy array)."""
    import numpy as np

    dt = np_dtype(zt)
    if zt in ("f64", "f32", "f16", "bf16"):
        vals = (rng.standard_normal(n) * 10).astype(np.float64)
        if special and n >= 6:
            vals[:6] = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.5]
        return vals.astype(np.float32).astype(dt) if zt == "bf16" else vals.astype(dt)
    if zt == "bool":
        return rng.integers(0, 2, n).astype(np.bool_)
    info = np.iinfo(dt)
    vals = rng.integers(info.min, info.max, n, dtype=dt, endpoint=True)
    if special and n >= 3:
        vals[:3] = [info.min, info.max, 0]
    return vals


def compressible(zt, n, rng):
    """Structured data that zstd compresses well and differently per level."""
    import numpy as np

    base = (np.arange(n) % 97) * 3 + (np.arange(n) // 113)
    noise = rng.integers(0, 4, n)
    v = base + noise
    if zt in ("f64", "f32", "f16", "bf16"):
        v = v.astype(np.float32) / 8
        return v.astype(np_dtype(zt))
    return (v % 120).astype(np_dtype(zt))


# --------------------------------------------------------------------------
# Tensor entries
# --------------------------------------------------------------------------


def entry(
    name,
    components,
    *,
    shape=None,
    format="dense",
    type=None,
    compress=0,
    checksum="none",
    attributes=None,
    api=None,
):
    """Build a JSON-able tensor entry from an ORDERED dict role -> numpy array."""
    comps = {}
    order = []
    for role, arr in components.items():
        zt = NP_TO_ZT[str(arr.dtype)]
        ctype = None
        if type is not None and ((format == "dense" and role == "data") or role == "values"):
            ctype = type
        comps[role] = {"dtype": zt, "type": ctype, "hex": arr.tobytes().hex()}
        order.append(role)
    if shape is None:
        assert format == "dense"
        shape = list(components["data"].shape)
    if format == "dense":
        primary = "data"
    elif format in ("sparse_csr", "sparse_coo"):
        primary = "values"
    else:
        primary = order[0]
    if api is None:
        api = "write_numpy" if (format == "dense" and order == ["data"] and type is None
                                and attributes is None and list(shape) != []) else "write"
    attrs = None
    attrs_hex = None
    if attributes is not None:
        written = zt1lib.py_attr_as_written(attributes)
        attrs = zt1lib.attr_to_json(written)
        attrs_hex = zt1lib.attributes_cbor(written).hex()
    return {
        "name": name,
        "api": api,
        "format": format,
        "shape": [int(x) for x in shape],
        "dtype": comps[primary]["dtype"] if primary in comps else None,
        "type": type,
        "data_hex": comps["data"]["hex"] if (format == "dense" and "data" in comps) else None,
        "components": comps,
        "component_order": order,
        "compress": int(compress),
        "checksum": checksum,
        "attributes": attrs,
        "attributes_cbor_hex": attrs_hex,
    }


def dense(name, arr, **kw):
    return entry(name, {"data": arr}, **kw)


def build_cases():
    import numpy as np

    cases = []

    def case(file, tensors, notes, writer="Writer", compression=0):
        c = {"file": file, "writer": writer, "notes": notes, "tensors": tensors}
        if writer == "save_file":
            c["compression"] = compression
        cases.append(c)

    # 1. golden file of the format sheet (199 bytes)
    case("single_f32.zt", [dense("a", np.arange(6, dtype=np.float32).reshape(2, 3))],
         "golden 199-byte file: one f32 [2,3] 0..5")

    # 2. empty file (48 bytes)
    case("empty.zt", [], "no tensors: exactly 48 bytes")

    # 3. every dtype, raw, several shapes
    rng = np.random.default_rng(101)
    shapes = [[2, 3], [7], [3, 1, 2], [5], [1, 4], [9], [2, 2, 2], [3], [4, 1], [6], [11], [3, 3], [13]]
    ts = []
    for zt, shp in zip(ALL_DTYPES, shapes):
        n = int(np.prod(shp))
        ts.append(dense(f"{zt}_t", make_array(zt, n, rng).reshape(shp)))
    case("dtypes_raw.zt", ts, "all 13 dtypes, raw, write_numpy, in dtype-table order")

    # 4. every dtype through Writer.add with positional options: zstd 3 + crc32c
    rng = np.random.default_rng(102)
    ts = []
    for i, zt in enumerate(reversed(ALL_DTYPES)):
        n = 17 + i
        ts.append(dense(f"add_{zt}", make_array(zt, n, rng), compress=3, checksum="crc32c", api="add"))
    case("dtypes_zstd_crc.zt", ts, "all dtypes, Writer.add(name, arr, 3, 'crc32c'), reverse table order")

    # 5. save_file: dict order is write order, names unsorted
    rng = np.random.default_rng(103)
    ts = [
        dense("zeta", make_array("f32", 10, rng), api="save_file"),
        dense("alpha", make_array("i16", 7, rng).reshape(7, 1), api="save_file"),
        dense("Mid", make_array("u8", 33, rng), api="save_file"),
        dense("beta", make_array("bf16", 4, rng).reshape(2, 2), api="save_file"),
    ]
    case("save_file_order.zt", ts, "ztensor.numpy.save_file, dict order != name order",
         writer="save_file", compression=0)
    rng = np.random.default_rng(104)
    ts = [
        dense("w", compressible("f32", 300, rng), compress=3, api="save_file"),
        dense("b", make_array("f64", 5, rng), compress=3, api="save_file"),
    ]
    case("save_file_zstd.zt", ts, "save_file(compression=True) == zstd level 3",
         writer="save_file", compression=3)

    # 6. zstd levels
    rng = np.random.default_rng(105)
    data = compressible("i32", 2048, rng)
    ts = [dense(f"lvl{lv}", data, compress=lv) for lv in (1, 3, 19, 22)]
    ts.append(dense("raw", data, compress=0))
    ts.append(dense("lvl19_small", make_array("u16", 5, rng), compress=19))
    ts.append(dense("lvl22_f64", compressible("f64", 400, rng), compress=22))
    case("zstd_levels.zt", ts, "same data at zstd levels 1/3/19/22 and raw")

    # 7. checksums
    rng = np.random.default_rng(106)
    ts = [
        dense("crc_raw", make_array("f32", 9, rng), checksum="crc32c"),
        dense("sha_raw", make_array("i64", 4, rng), checksum="sha256"),
        dense("crc_zstd", compressible("u16", 500, rng), compress=3, checksum="crc32c"),
        dense("sha_zstd", compressible("f16", 300, rng), compress=19, checksum="sha256"),
        dense("crc_empty", np.zeros(0, np.float32), checksum="crc32c"),
        dense("sha_zstd_empty", np.zeros((0, 4), np.int8), compress=3, checksum="sha256"),
        dense("crc_last", make_array("u8", 3, rng), checksum="crc32c"),
    ]
    case("checksums.zt", ts, "crc32c/sha256 on raw and zstd, incl. zero-length")

    # 8. sparse / quantized via Writer.write(Tensor); component dict order = blob order
    rng = np.random.default_rng(107)
    csr_vals = make_array("f32", 5, rng, special=False)
    csr_idx = np.array([0, 3, 1, 2, 3], np.uint64)
    csr_ptr = np.array([0, 2, 3, 5], np.uint64)
    coo_vals = make_array("i32", 4, rng, special=False)
    coo_coords = np.array([0, 1, 2, 2, 1, 0, 3, 2], np.uint64)  # ndim=2, nnz=4, SoA
    ts = [
        entry("csr", {"values": csr_vals, "indices": csr_idx, "indptr": csr_ptr},
              shape=[3, 4], format="sparse_csr"),
        entry("csr_rev", {"indptr": csr_ptr, "indices": csr_idx, "values": csr_vals},
              shape=[3, 4], format="sparse_csr", compress=3, checksum="crc32c"),
        entry("coo", {"values": coo_vals, "coords": coo_coords}, shape=[4, 3], format="sparse_coo"),
        entry("coo_cv", {"coords": coo_coords, "values": coo_vals.astype(np.float64)},
              shape=[4, 3], format="sparse_coo", checksum="sha256"),
        entry("coo_fp8", {"values": np.array([0x38, 0x40, 0xC0, 0x7F], np.uint8), "coords": coo_coords},
              shape=[4, 3], format="sparse_coo", type="f8_e5m2"),
        entry("quant", {
            "packed_weight": make_array("i32", 8, rng, special=False),
            "scales": make_array("f16", 4, rng, special=False),
            "zeros": make_array("f16", 4, rng, special=False),
        }, shape=[8, 8], format="quantized_group",
            attributes={"bits": 4, "group_size": 16, "packing": "8_per_i32"}),
    ]
    case("sparse.zt", ts, "sparse_csr/sparse_coo/quantized_group via Writer.write(Tensor)")

    # 9. logical types
    rng = np.random.default_rng(108)
    ts = [
        dense("fp8", np.array([0x00, 0x38, 0x40, 0xB8, 0x7E, 0x01], np.uint8).reshape(2, 3),
              type="f8_e4m3fn"),
        entry("c64", {"data": make_array("f32", 6, rng, special=False)}, shape=[3], type="complex64"),
        entry("c128", {"data": make_array("f64", 4, rng, special=False)}, shape=[2], type="complex128",
              compress=3, checksum="crc32c"),
        dense("fp8z", np.arange(64, dtype=np.uint8), type="f8_e5m2", compress=1),
    ]
    case("logical_types.zt", ts, "component `type` passthrough (fp8 on u8, complex on f32/f64)")

    # 10. attributes
    rng = np.random.default_rng(109)
    attrs_full = {
        "zkey": "last",
        "a": 1,
        "nested": {"z": 1, "a": {"y": [1, 2, {"q": None}], "b": b"\x00\xff"}, "m": 0.5},
        "floats": [0.1, 0.5, 1e10, -0.0, 65504.0, 5.960464477539063e-08, 1.0, float("nan"),
                   float("inf"), float("-inf"), 3.4028234663852886e38, 1e300],
        "bytes": b"\x00\x01\x02binary\xff",
        "empty_bytes": b"",
        "t": True,
        "f": False,
        "none": None,
        "ints": [0, 23, 24, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1,
                 -1, -24, -25, -256, -257, -(2**63)],
        "big": 2**63,
        "huge": 2**70,
        "neg_huge": -(2**63) - 1,
        "text": "héllo wörld ✓ 😀",
        "": "empty key",
        "B": "upper",
        "é": "e-acute",
        "😀": "emoji key",
        "list": [],
        "map": {},
    }
    ts = [
        entry("full", {"data": make_array("f32", 4, rng)}, attributes=attrs_full),
        entry("empty_attrs", {"data": make_array("u8", 3, rng)}, attributes={}),
        entry("no_attrs_via_write", {"data": make_array("i8", 3, rng)}),
        entry("with_zstd", {"data": compressible("f32", 128, rng)}, attributes={"k": "v", "n": 3},
              compress=3, checksum="sha256"),
    ]
    case("attributes.zt", ts, "object attributes of every CBOR kind 1.2.3 can write")

    # 11. names
    rng = np.random.default_rng(110)
    names = ["zz", "", "é", "😀", "a/b.c", "with space", "z\x00", "B", "aa", "ab", "a", "a.b", "日本語"]
    ts = [dense(nm, make_array("u8", i + 1, rng)) for i, nm in enumerate(names)]
    case("names.zt", ts, "unicode / empty / emoji / NUL names, unsorted write order")

    # 12. zero-size
    rng = np.random.default_rng(111)
    ts = [
        dense("first", make_array("u8", 3, rng)),
        dense("empty1", np.zeros(0, np.float32)),
        dense("empty2", np.zeros((2, 0), np.int64)),
        dense("after", make_array("f32", 2, rng)),
        dense("empty_zstd", np.zeros((0, 3), np.float16), compress=3),
        dense("empty_crc", np.zeros(0, np.bool_), checksum="crc32c"),
        dense("empty_bf16_sha", np.zeros(0, np_dtype("bf16")), checksum="sha256"),
        entry("csr_empty", {"values": np.zeros(0, np.float32), "indices": np.zeros(0, np.uint64),
                            "indptr": np.zeros(3, np.uint64)}, shape=[2, 5], format="sparse_csr"),
        dense("empty_last", np.zeros(0, np.uint32), checksum="crc32c"),
    ]
    case("zerosize.zt", ts, "zero-size tensors share offsets; last one at manifest start")

    # 13. scalars
    ts = [
        entry("s_i64", {"data": np.array(5)}, shape=[]),
        entry("s_f32_zstd", {"data": np.array(2.5, np.float32)}, shape=[], compress=3, checksum="crc32c"),
        dense("w_0d", np.array(7.5, np.float64).reshape(1)),  # write_numpy(0-d) stores shape [1]
        entry("s_bool", {"data": np.array(True)}, shape=[]),
    ]
    ts[2]["notes"] = "write_numpy(np.array(7.5)) stores shape [1]"
    case("scalars.zt", ts, "0-d objects via Tensor({'data': np.array(x)}) keep shape []")

    # 14. mixed big-ish file
    rng = np.random.default_rng(112)
    ts = []
    for i in range(24):
        zt = ALL_DTYPES[i % len(ALL_DTYPES)]
        n = int(rng.integers(0, 40))
        comp = [0, 1, 3][i % 3]
        ck = ["none", "crc32c", "sha256"][(i // 3) % 3]
        ts.append(dense(f"layer.{23 - i}.{zt}", make_array(zt, n, rng), compress=comp, checksum=ck))
    case("mixed.zt", ts, "24 objects mixing dtypes, compression and checksums")

    return cases


def spec_json():
    """The cases as they appear in the spec file (JSON round trip)."""
    return json.loads(json.dumps(build_cases(), ensure_ascii=False, allow_nan=False))


# --------------------------------------------------------------------------
# Writing with the real package
# --------------------------------------------------------------------------


def entry_components(t):
    """Ordered dict role -> flat numpy array from a spec entry."""
    import numpy as np

    out = {}
    for role in t["component_order"]:
        c = t["components"][role]
        out[role] = np.frombuffer(bytes.fromhex(c["hex"]), dtype=np_dtype(c["dtype"])).copy()
    return out


def _compress_arg(level):
    return level if level > 0 else False


def write_entry(w, t):
    """Write one spec tensor entry with a ztensor.Writer the way 1.2.3 users do."""
    import ztensor

    comps = entry_components(t)
    api = t["api"]
    comp = _compress_arg(t["compress"])
    if api in ("write_numpy", "add"):
        assert list(comps) == ["data"] and t["format"] == "dense"
        shape = t["shape"]
        arr = comps["data"].reshape(shape)
        if api == "add":
            w.add(t["name"], arr, comp, t["checksum"])
        else:
            w.write_numpy(t["name"], arr, compress=comp, checksum=t["checksum"])
    elif api == "write":
        attrs = zt1lib.json_to_attr(t["attributes"]) if t["attributes"] is not None else None
        if t["format"] == "dense" and "data" in comps:
            try:
                comps["data"] = comps["data"].reshape(t["shape"])
            except ValueError:
                pass  # logical types (complex) store more elements than shape says
        tensor = ztensor.Tensor(comps, shape=t["shape"], format=t["format"], type=t["type"],
                                attributes=attrs)
        w.write(t["name"], tensor, compress=comp, checksum=t["checksum"])
    else:
        raise ValueError(f"unknown api {api}")


def write_case(case, path):
    import ztensor

    if case["writer"] == "save_file":
        import ztensor.numpy as ztnp

        tensors = {}
        for t in case["tensors"]:
            assert t["checksum"] == "none" and t["compress"] == case["compression"]
            tensors[t["name"]] = entry_components(t)["data"].reshape(t["shape"])
        comp = case["compression"]
        ztnp.save_file(tensors, path, compression=(True if comp == 3 else _compress_arg(comp)))
        return
    w = ztensor.Writer(path)
    for t in case["tensors"]:
        write_entry(w, t)
    w.finish()


# --------------------------------------------------------------------------
# Checking
# --------------------------------------------------------------------------


class CaseFailure(Exception):
    pass


def _fail(msg):
    raise CaseFailure(msg)


def _regions(path):
    """(start, end, label) regions of a ZTEN1000 file from its own manifest."""
    size = os.path.getsize(path)
    m, start, n, _ = zt1lib.read_zt1_manifest(path)
    regs = [(0, 8, "header magic")]
    blobs = []
    for name, obj in m["objects"].items():
        for role, c in obj["components"].items():
            blobs.append((c["offset"], c["offset"] + c["length"], f"blob {name!r}/{role}"))
    blobs.sort()
    pos = 8
    for b in blobs:
        if b[0] > pos:
            regs.append((pos, b[0], "padding"))
        if b[1] > b[0]:
            regs.append(b)
        pos = max(pos, b[1])
    if start > pos:
        regs.append((pos, start, "gap before manifest"))
    regs.append((start, start + n, "CBOR manifest"))
    regs.append((start + n, start + n + 8, "manifest length u64"))
    regs.append((start + n + 8, size, "footer magic"))
    return regs


def _first_manifest_diff(a, b, path):
    """Describe the first difference between two decoded manifests (key order too)."""
    if isinstance(a, dict) and isinstance(b, dict):
        if list(a) != list(b):
            return f"{path}: keys ours={list(a)!r} ref={list(b)!r}"
        for k in a:
            d = _first_manifest_diff(a[k], b[k], f"{path}[{k!r}]")
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: length ours={len(a)} ref={len(b)}"
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_manifest_diff(x, y, f"{path}[{i}]")
            if d:
                return d
        return None
    same = type(a) is type(b) and (a == b or (a != a and b != b))
    if isinstance(a, float) and same:
        same = zt1lib.encode_float(a) == zt1lib.encode_float(b) and str(a) == str(b)
    return None if same else f"{path}: ours={a!r} ref={b!r}"


def diff_hint(ours, ref, ref_path):
    lines = [f"sizes: ours={len(ours)} ref={len(ref)}"]
    i = 0
    lim = min(len(ours), len(ref))
    while i < lim and ours[i] == ref[i]:
        i += 1
    lines.append(f"first difference at byte {i} (0x{i:x})")
    try:
        for s, e, label in _regions(ref_path):
            if s <= i < e or (s == e == i):
                lines.append(f"in the reference file this byte is in: {label} [{s}, {e})")
                break
    except Exception as ex:  # noqa: BLE001
        lines.append(f"(could not parse reference manifest: {ex})")
    lo = max(0, i - 16) & ~15
    hi = min(max(len(ours), len(ref)), lo + 64)
    for label, buf in (("ours", ours), ("ref ", ref)):
        for off in range(lo, hi, 16):
            chunk = buf[off : off + 16]
            lines.append(f"  {label} {off:08x}: {chunk.hex(' ')}")
    try:
        mo = zt1lib.read_zt1_manifest_bytes(ours)[0]
        mr = zt1lib.read_zt1_manifest_bytes(ref)[0]
    except Exception as ex:  # noqa: BLE001
        lines.append(f"(manifest of ours not parseable: {ex})")
    else:
        d = _first_manifest_diff(mo, mr, "manifest")
        lines.append("decoded manifests: " + (d if d else "equal (difference is in blobs/padding/encoding)"))
    return "\n".join(lines)


def check_layout(case, path):
    """Check the file's container layout and manifest against the case."""
    import zstandard

    data = open(path, "rb").read()
    m, start, n, raw = zt1lib.read_zt1_manifest(path)
    if zt1lib.cbor_encode(m) != raw:
        _fail("manifest is not in 1.2.3 canonical encoding (re-encoding differs)")
    if list(m) != ["version", "objects"] or m["version"] != "1.2.0":
        _fail(f"manifest root keys/version unexpected: {list(m)} {m.get('version')!r}")
    names = [t["name"] for t in case["tensors"]]
    if list(m["objects"]) != sorted(names, key=lambda s: s.encode("utf-8")):
        _fail(f"objects {list(m['objects'])!r} != sorted names {sorted(names)!r}")
    pos = 8
    for t in case["tensors"]:
        obj = m["objects"][t["name"]]
        want_keys = ["shape", "format"] + (["attributes"] if t["attributes"] is not None else []) + ["components"]
        if list(obj) != want_keys:
            _fail(f"{t['name']!r}: object keys {list(obj)} != {want_keys}")
        if obj["shape"] != t["shape"] or obj["format"] != t["format"]:
            _fail(f"{t['name']!r}: shape/format {obj['shape']}/{obj['format']} != {t['shape']}/{t['format']}")
        if t["attributes"] is not None:
            got = zt1lib.cbor_encode(obj["attributes"]).hex()
            if got != t["attributes_cbor_hex"]:
                _fail(f"{t['name']!r}: attributes CBOR {got} != {t['attributes_cbor_hex']}")
        if list(obj["components"]) != sorted(t["component_order"]):
            _fail(f"{t['name']!r}: components {list(obj['components'])} not sorted roles")
        for role in t["component_order"]:
            spec_c = t["components"][role]
            c = obj["components"][role]
            keys = ["dtype"] + (["type"] if spec_c["type"] else []) + ["offset", "length"]
            if t["compress"] > 0:
                keys += ["uncompressed_length", "encoding"]
            if t["checksum"] != "none":
                keys += ["digest"]
            if list(c) != keys:
                _fail(f"{t['name']!r}/{role}: component keys {list(c)} != {keys}")
            if c["dtype"] != spec_c["dtype"] or c.get("type") != spec_c["type"]:
                _fail(f"{t['name']!r}/{role}: dtype/type mismatch")
            pad = (-pos) % 64
            if c["offset"] != pos + pad:
                _fail(f"{t['name']!r}/{role}: offset {c['offset']} != expected {pos + pad} (write order)")
            if any(data[pos : pos + pad]):
                _fail(f"{t['name']!r}/{role}: non-zero padding before offset {c['offset']}")
            stored = data[c["offset"] : c["offset"] + c["length"]]
            pos = c["offset"] + c["length"]
            plain = bytes.fromhex(spec_c["hex"])
            if t["compress"] > 0:
                if c["encoding"] != "zstd" or c["uncompressed_length"] != len(plain):
                    _fail(f"{t['name']!r}/{role}: zstd fields wrong")
                co = zstandard.ZstdCompressor(level=t["compress"]).compressobj()
                if co.compress(plain) + co.flush() != stored:
                    _fail(f"{t['name']!r}/{role}: zstd frame differs from streaming level-{t['compress']} frame")
            elif stored != plain:
                _fail(f"{t['name']!r}/{role}: raw stored bytes differ from case data")
            if t["checksum"] == "crc32c":
                want = "crc32c:0x%08X" % zt1lib.crc32c(stored)
            elif t["checksum"] == "sha256":
                want = "sha256:" + hashlib.sha256(stored).hexdigest()
            else:
                want = None
            if c.get("digest") != want:
                _fail(f"{t['name']!r}/{role}: digest {c.get('digest')!r} != {want!r}")
    if start != pos:
        _fail(f"manifest starts at {start}, expected right after last blob at {pos}")
    if len(data) != start + n + 16:
        _fail("trailing bytes after footer")


def check_values(case, path):
    """Open the file with ztensor 1.2.3 and compare everything to the case."""
    import numpy as np
    import ztensor

    r = ztensor.Reader(path)
    if r.format != "zt":
        _fail(f"Reader.format = {r.format!r}")
    names = [t["name"] for t in case["tensors"]]
    if r.keys() != sorted(names, key=lambda s: s.encode("utf-8")):
        _fail(f"Reader.keys() = {r.keys()!r}")
    if len(r) != len(names) or not all(nm in r for nm in names):
        _fail("len()/__contains__ disagree with the case")
    dense_names = []
    for t in case["tensors"]:
        nm = t["name"]
        md = r.metadata(nm)
        if md.format != t["format"] or list(md.shape) != t["shape"]:
            _fail(f"{nm!r}: metadata format/shape {md.format}/{md.shape}")
        got_attrs = zt1lib.attr_to_json(md.attributes) if md.attributes is not None else None
        want_attrs = zt1lib.sorted_map(t["attributes"]) if t["attributes"] is not None else None
        if zt1lib.json_canon(got_attrs) != zt1lib.json_canon(want_attrs):
            _fail(f"{nm!r}: attributes {got_attrs!r} != {t['attributes']!r}")
        for role, c in t["components"].items():
            mc = md.components.get(role)
            if mc is None:
                _fail(f"{nm!r}: component {role!r} missing in metadata")
            if mc["dtype"] != ZT_TO_NP[c["dtype"]] or mc["type"] != c["type"]:
                _fail(f"{nm!r}/{role}: metadata dtype/type {mc['dtype']}/{mc['type']}")
            if mc["encoding"] != ("zstd" if t["compress"] > 0 else "raw"):
                _fail(f"{nm!r}/{role}: encoding {mc['encoding']}")
        if set(md.components) != set(t["components"]):
            _fail(f"{nm!r}: components {sorted(md.components)}")
        # read(): every component, any format
        logical_multi = t["type"] in ("complex64", "complex128")
        try:
            tens = r.read(nm)
            comps = {k: (v.tobytes(), str(v.dtype)) for k, v in tens.components.items()}
            if tens.format != t["format"] or list(tens.shape) != t["shape"]:
                _fail(f"{nm!r}: read() format/shape {tens.format}/{tens.shape}")
        except ValueError:
            if not logical_multi:
                raise
            # 1.2.3 reshapes dense data to the logical shape and fails for complex types
            comps = {}
            for role in t["components"]:
                buf, dt = r._inner._read_component_raw(nm, role)
                comps[role] = (buf.tobytes(), dt)
        for role, c in t["components"].items():
            b, dt = comps[role]
            if dt != ZT_TO_NP[c["dtype"]]:
                _fail(f"{nm!r}/{role}: read() dtype {dt}")
            if b != bytes.fromhex(c["hex"]):
                _fail(f"{nm!r}/{role}: read() bytes differ from case data")
        # dense paths
        if t["format"] == "dense" and not logical_multi:
            want = bytes.fromhex(t["data_hex"])
            want_shape = t["shape"] if t["shape"] else [len(want) // np_dtype(t["dtype"]).itemsize]
            for how, a in (("read_numpy", r.read_numpy(nm)),
                           ("read_numpy(copy)", r.read_numpy(nm, copy=True)),
                           ("reader[]", r[nm])):
                if str(a.dtype) != ZT_TO_NP[t["dtype"]]:
                    _fail(f"{nm!r}: {how} dtype {a.dtype}")
                if list(a.shape) != want_shape:
                    _fail(f"{nm!r}: {how} shape {list(a.shape)} != {want_shape}")
                if a.tobytes() != want:
                    _fail(f"{nm!r}: {how} values differ from case data")
                ref = np.frombuffer(want, dtype=np_dtype(t["dtype"])).reshape(want_shape)
                if a.dtype.kind == "f" or t["dtype"] == "bf16":
                    ok = np.array_equal(a.astype(np.float64), ref.astype(np.float64), equal_nan=True)
                else:
                    ok = np.array_equal(a, ref)
                if not ok:
                    _fail(f"{nm!r}: {how} values not equal")
            dense_names.append(nm)
    if dense_names:
        batch = r.read_numpy(dense_names)
        if set(batch) != set(dense_names):
            _fail("read_numpy(list) returned different names")
        by_name = {t["name"]: t for t in case["tensors"]}
        for nm, a in batch.items():
            if a.tobytes() != bytes.fromhex(by_name[nm]["data_hex"]):
                _fail(f"{nm!r}: read_numpy(list) values differ")


def run_check(ours_dir, ref_dir, cases):
    passed = failed = 0
    for case in cases:
        f = case["file"]
        ours_p = os.path.join(ours_dir, f)
        ref_p = os.path.join(ref_dir, f)
        problems = []
        try:
            ours = open(ours_p, "rb").read()
        except OSError as e:
            problems.append(f"cannot read ours: {e}")
            ours = None
        try:
            ref = open(ref_p, "rb").read()
        except OSError as e:
            problems.append(f"cannot read reference: {e}")
            ref = None
        if ours is not None and ref is not None and ours != ref:
            problems.append("NOT byte-identical to the 1.2.3 reference\n" + diff_hint(ours, ref, ref_p))
        if ref is not None:
            try:
                check_layout(case, ref_p)
            except Exception as e:  # noqa: BLE001
                problems.append(f"reference file does not match the case (script/spec bug?): {e!r}")
        if ours is not None:
            try:
                check_layout(case, ours_p)
            except Exception as e:  # noqa: BLE001
                problems.append(f"layout/manifest check on ours: {e}")
            try:
                check_values(case, ours_p)
            except Exception as e:  # noqa: BLE001
                problems.append(f"ztensor 1.2.3 read-back of ours failed: {type(e).__name__}: {e}")
        if problems:
            failed += 1
            print(f"FAIL {f}")
            for p in problems:
                print("  " + p.replace("\n", "\n  "))
        else:
            passed += 1
            print(f"ok   {f}")
    print(f"{passed} passed, {failed} failed")
    return failed == 0


def _load_spec(args):
    if "--spec" in args:
        i = args.index("--spec")
        path = args[i + 1]
        del args[i : i + 2]
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    return spec_json()


def main(argv):
    args = list(argv[1:])
    usage = ("usage: zt1_cases.py spec OUT.json | write-ref REFDIR [--spec S] | "
             "check OURSDIR REFDIR [--spec S]")
    if not args:
        print(usage, file=sys.stderr)
        return 2
    cmd = args.pop(0)
    if cmd == "spec" and len(args) == 1:
        with open(args[0], "w", encoding="utf-8") as fh:
            json.dump(spec_json(), fh, ensure_ascii=False, allow_nan=False, indent=1)
            fh.write("\n")
        print(f"wrote {len(build_cases())} cases to {args[0]}")
        return 0
    if cmd == "write-ref":
        cases = _load_spec(args)
        if len(args) != 1:
            print(usage, file=sys.stderr)
            return 2
        os.makedirs(args[0], exist_ok=True)
        for case in cases:
            write_case(case, os.path.join(args[0], case["file"]))
        print(f"wrote {len(cases)} reference files to {args[0]}")
        return 0
    if cmd == "check":
        cases = _load_spec(args)
        if len(args) != 2:
            print(usage, file=sys.stderr)
            return 2
        return 0 if run_check(args[0], args[1], cases) else 1
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
