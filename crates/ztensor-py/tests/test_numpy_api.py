"""ztensor.numpy: save_file / load_file / save / load, every dtype and compression."""

import os

import ml_dtypes
import numpy as np
import pytest

import ztensor
from ztensor.numpy import load, load_file, save, save_file

COMPRESSIONS = [False, True, 0, 1, 10, "zstd", "codec", "codec:fast", "codec:max", "raw"]


def all_dtypes(rng):
    out = {
        "f64": rng.standard_normal((3, 5)),
        "f32": rng.standard_normal((4, 4)).astype(np.float32),
        "f16": rng.standard_normal(7).astype(np.float16),
        "bf16": rng.standard_normal((2, 3)).astype(ml_dtypes.bfloat16),
        "i64": rng.integers(-(2**62), 2**62, 5, dtype=np.int64),
        "i32": rng.integers(-(2**30), 2**30, 5, dtype=np.int32),
        "i16": rng.integers(-(2**14), 2**14, 5, dtype=np.int16),
        "i8": rng.integers(-128, 127, 5, dtype=np.int8),
        "u64": rng.integers(0, 2**63, 5, dtype=np.uint64),
        "u32": rng.integers(0, 2**31, 5, dtype=np.uint32),
        "u16": rng.integers(0, 2**15, 5, dtype=np.uint16),
        "u8": rng.integers(0, 255, (2, 2, 2), dtype=np.uint8),
        "bool": rng.integers(0, 2, 9).astype(bool),
        "c64": (rng.standard_normal(3) + 1j * rng.standard_normal(3)).astype(np.complex64),
        "c128": rng.standard_normal((2, 2)) + 1j,
        "e4m3": rng.standard_normal(6).astype(ml_dtypes.float8_e4m3fn),
        "e5m2": rng.standard_normal(6).astype(ml_dtypes.float8_e5m2),
        "e4m3fnuz": rng.standard_normal(6).astype(ml_dtypes.float8_e4m3fnuz),
        "e5m2fnuz": rng.standard_normal(6).astype(ml_dtypes.float8_e5m2fnuz),
        "e8m0": np.array([1, 2, 4, 0.5], dtype=ml_dtypes.float8_e8m0fnu),
        "f4": np.array([0.5, -1, 2, 6, 0, -0.5, 3], dtype=ml_dtypes.float4_e2m1fn),
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 4), dtype=np.float32),
    }
    return out


def assert_same(a, b):
    assert a.dtype == b.dtype, (a.dtype, b.dtype)
    assert a.shape == b.shape
    assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("compression", COMPRESSIONS)
def test_round_trip_every_dtype(tmp_path, rng, compression):
    tensors = all_dtypes(rng)
    path = tmp_path / "all.zt"
    assert save_file(tensors, path, compression=compression) is None
    for copy in (False, True):
        loaded = load_file(path, copy=copy)
        assert list(loaded) == sorted(tensors)
        for name, arr in tensors.items():
            assert_same(loaded[name], arr)


def test_compression_is_recorded(tmp_path, rng):
    x = {"w": np.tile(rng.standard_normal(64).astype(np.float32), 64)}
    encodings = {}
    for c in (False, True, 9, "codec"):
        save_file(x, tmp_path / "c.zt", compression=c)
        meta = ztensor.Reader(tmp_path / "c.zt").metadata("w")
        encodings[str(c)] = meta.components["data"]["encoding"]
    assert encodings == {"False": "raw", "True": "zstd", "9": "zstd", "codec": "ztc1"}


@pytest.mark.parametrize("bad", [23, -1, "lz4", "codec:turbo", 1.5])
def test_bad_compression_is_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        save_file({"x": np.zeros(2)}, tmp_path / "x.zt", compression=bad)
    assert not (tmp_path / "x.zt").exists()
    assert os.listdir(tmp_path) == []


def test_metadata_round_trips(tmp_path):
    meta = {"format": "pt", "note": "ünïcode", "empty": ""}
    save_file({"x": np.zeros(2, np.float32)}, tmp_path / "m.zt", metadata=meta)
    assert ztensor.Reader(tmp_path / "m.zt").metadata() == meta
    with pytest.raises(TypeError):
        save_file({"x": np.zeros(2)}, tmp_path / "m2.zt", metadata={"a": 1})


def test_bytes_api(rng):
    tensors = {"a": rng.standard_normal((3, 3)).astype(np.float32), "b": np.arange(4)}
    data = save(tensors, metadata={"k": "v"}, compression=True)
    assert isinstance(data, bytes) and data[:8] == b"ZTEN1000"
    back = load(data)
    for k in tensors:
        assert_same(back[k], tensors[k])
        assert back[k].flags.writeable
    with pytest.raises(TypeError):
        load("not bytes")


def test_zero_copy_arrays_are_copy_on_write(tmp_path):
    x = np.arange(1000, dtype=np.float32)
    path = tmp_path / "w.zt"
    save_file({"x": x}, path)
    before = path.read_bytes()
    arr = load_file(path)["x"]
    assert arr.flags.writeable
    arr[:] = -1  # copy-on-write: private pages only
    assert path.read_bytes() == before
    assert_same(load_file(path)["x"], x)
    copied = load_file(path, copy=True)["x"]
    copied[0] = 5
    assert path.read_bytes() == before


def test_non_contiguous_and_big_endian_inputs(tmp_path):
    a = np.arange(24, dtype=np.float64).reshape(4, 6)[:, ::2]
    b = np.arange(5, dtype=">i4")
    save_file({"a": a, "b": b}, tmp_path / "x.zt")
    out = load_file(tmp_path / "x.zt")
    assert np.array_equal(out["a"], a) and out["a"].flags.c_contiguous
    assert np.array_equal(out["b"], b) and out["b"].dtype == np.dtype("<i4")


def test_invalid_tensors(tmp_path):
    with pytest.raises(ValueError):
        save_file([np.zeros(1)], tmp_path / "x.zt")
    with pytest.raises(ValueError):
        save_file({"x": [1, 2]}, tmp_path / "x.zt")
    with pytest.raises(ztensor.UnsupportedError):
        save_file({"x": np.array(["a", "b"])}, tmp_path / "x.zt")
    assert not (tmp_path / "x.zt").exists()


def test_load_file_reads_other_formats(tmp_path):
    from safetensors.numpy import save_file as st_save

    x = {"a": np.arange(6, dtype=np.int16).reshape(2, 3)}
    st_save(x, str(tmp_path / "x.safetensors"), metadata={"m": "1"})
    np.savez(tmp_path / "x.npz", **x)
    for f in ("x.safetensors", "x.npz"):
        assert_same(load_file(tmp_path / f)["a"], x["a"])
    assert ztensor.Reader(tmp_path / "x.safetensors").metadata() == {"m": "1"}


def test_missing_file():
    with pytest.raises(FileNotFoundError) as e:
        load_file("/nonexistent/file.zt")
    assert isinstance(e.value, ztensor.ZTensorError)
    assert e.value.path == "/nonexistent/file.zt"
