"""ztensor.Reader / ztensor.open: dict-like access, metadata, reads, zero-copy, errors."""

import gc
import os

import numpy as np
import pytest

import ztensor
from ztensor.numpy import save_file

from conftest import rss_bytes


@pytest.fixture
def sample(tmp_path):
    path = tmp_path / "sample.zt"
    with ztensor.Writer(path) as w:
        w.set_metadata({"name": "sample", "n": 3, "nested": {"a": [1, 2.5, None, True]}})
        w.write_numpy("w", np.arange(12, dtype=np.float32).reshape(3, 4), checksum="crc32c")
        w.write_numpy("b", np.arange(4, dtype=np.int64), compress=True, checksum="sha256")
        w.write(
            "csr",
            ztensor.Tensor(
                {
                    "values": np.array([1, 2, 3], np.float32),
                    "indices": np.array([0, 2, 1], np.uint64),
                    "indptr": np.array([0, 2, 3], np.uint64),
                },
                shape=[2, 3],
                format="sparse_csr",
            ),
        )
    return path


def test_dict_like(sample):
    with ztensor.open(sample) as r:
        assert r.format == "zt"
        assert r.path == str(sample)
        assert len(r) == 3
        assert list(r) == r.keys() == ["b", "csr", "w"]
        assert "w" in r and "nope" not in r and 3 not in r
        t = r["w"]
        assert isinstance(t, ztensor.Tensor)
        assert t.shape == [3, 4] and t.dtype == "float32" and t.format == "dense"
        assert np.array_equal(np.asarray(t), np.arange(12, dtype=np.float32).reshape(3, 4))
        with pytest.raises(KeyError):
            r["nope"]
        with pytest.raises(TypeError):
            r[0]
    with pytest.raises(ValueError, match="closed"):
        r.keys()
    assert "closed" in repr(r)


def test_metadata(sample):
    r = ztensor.Reader(sample)
    assert r.metadata() == {"name": "sample", "n": 3, "nested": {"a": [1, 2.5, None, True]}}
    m = r.metadata("b")
    assert isinstance(m, ztensor.TensorMetadata)
    assert (m.name, m.shape, m.dtype, m.type, m.format) == ("b", [4], "int64", None, "dense")
    c = m.components["data"]
    assert c["encoding"] == "zstd" and c["decoded_length"] == 32
    assert c["digest"].startswith("sha256:") and c["offset"] % 64 == 0
    assert [x.name for x in r.metadata(["w", "csr"])] == ["w", "csr"]
    csr = r.metadata("csr")
    assert csr.format == "sparse_csr" and csr.dtype == "float32"
    assert set(csr.components) == {"values", "indices", "indptr"}
    with pytest.raises(ztensor.TensorNotFoundError):
        r.metadata("nope")
    with pytest.raises(TypeError):
        r.metadata(3)


def test_read_variants(sample):
    r = ztensor.Reader(sample)
    for copy in (False, True):
        w = r.read_numpy("w", copy=copy)
        assert w.shape == (3, 4) and w.dtype == np.float32
        d = r.read_numpy(["w", "b"], copy=copy)
        assert list(d) == ["w", "b"]
        assert d["b"].tolist() == [0, 1, 2, 3]
        t = r.read("csr", copy=copy)
        assert t.format == "sparse_csr" and t.shape == [2, 3]
        assert t.components["indptr"].tolist() == [0, 2, 3]
        ts = r.read(["csr", "w"], copy=copy)
        assert list(ts) == ["csr", "w"]
    with pytest.raises(ztensor.NotDenseError) as e:
        r.read_numpy("csr")
    assert isinstance(e.value, TypeError) and e.value.tensor == "csr"
    with pytest.raises(KeyError):
        r.read_numpy(["w", "missing"])
    with pytest.raises(TypeError):
        r.read_numpy(7)


def test_read_into(sample):
    r = ztensor.Reader(sample)
    dst = np.empty((3, 4), np.float32)
    assert r.read_into("w", dst) is None
    assert np.array_equal(dst, r.read_numpy("w"))
    out = {"w": np.empty((3, 4), np.float32), "b": np.empty(4, np.int64)}
    r.read_into(out)
    assert out["b"].tolist() == [0, 1, 2, 3]
    wide = np.empty((3, 4), np.float64)  # another dtype: np.copyto casts
    r.read_into("w", wide)
    assert np.array_equal(wide, dst)
    with pytest.raises(ValueError):
        r.read_into("w", np.empty((2, 2), np.float32))
    with pytest.raises(TypeError):
        r.read_into("w")


def test_zero_copy_points_into_the_map(sample):
    r = ztensor.Reader(sample)
    lo, n = r._map_range()
    assert n == os.path.getsize(sample)
    w = r.read_numpy("w")
    addr = w.__array_interface__["data"][0]
    assert lo <= addr and addr + w.nbytes <= lo + n
    assert w.flags.writeable
    copy = r.read_numpy("w", copy=True)
    caddr = copy.__array_interface__["data"][0]
    assert not lo <= caddr < lo + n
    # Compressed tensors are decoded into memory of their own.
    b = r.read_numpy("b")
    assert not lo <= b.__array_interface__["data"][0] < lo + n
    # Arrays outlive the reader.
    del r
    gc.collect()
    assert w.sum() == 66


def test_large_file_zero_copy_does_not_grow_rss(tmp_path):
    path = tmp_path / "big.zt"
    size = 256 << 20
    chunk = np.arange(size // 4 // 8, dtype=np.float32)
    with ztensor.Writer(path) as w:
        for i in range(8):
            w.write_numpy(f"t{i}", chunk)
    gc.collect()
    before = rss_bytes()
    r = ztensor.Reader(path)
    arrays = r.read_numpy(r.keys())
    grown = rss_bytes() - before
    assert sum(a.nbytes for a in arrays.values()) == size
    assert grown < 16 << 20, f"RSS grew by {grown >> 20} MiB loading 256 MiB zero-copy"
    lo, n = r._map_range()
    for a in arrays.values():
        addr = a.__array_interface__["data"][0]
        assert lo <= addr and addr + a.nbytes <= lo + n


def test_verify_finds_corruption(sample, tmp_path):
    r = ztensor.Reader(sample)
    assert r.verify() == 2
    data = bytearray(sample.read_bytes())
    off = r.metadata("w").components["data"]["offset"]
    data[off] ^= 0xFF
    bad = tmp_path / "bad.zt"
    bad.write_bytes(bytes(data))
    with pytest.raises(ztensor.ChecksumError) as e:
        ztensor.Reader(bad).verify()
    assert e.value.path == str(bad) and e.value.tensor == "w" and e.value.kind == "ChecksumMismatch"
    assert isinstance(e.value, ztensor.FormatError) and isinstance(e.value, ValueError)


def test_bad_files_raise_format_errors(tmp_path):
    junk = tmp_path / "junk.zt"
    junk.write_bytes(b"ZTEN1000" + b"\0" * 40)
    with pytest.raises(ztensor.ZTensorError) as e:
        ztensor.Reader(junk)
    assert e.value.path == str(junk)
    empty = tmp_path / "e.bin"
    empty.write_bytes(b"")
    with pytest.raises(ztensor.ZTensorError):
        ztensor.Reader(empty)
    with pytest.raises(ztensor.ZTensorError):
        ztensor.Reader(tmp_path)  # a directory


def test_verify_is_zt_only(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros(3))
    r = ztensor.Reader(tmp_path / "a.npy")
    assert r.format == "npy"
    with pytest.raises(ztensor.UnsupportedError):
        r.verify()


def test_foreign_zero_copy_read_only_where_unmapped(tmp_path):
    """npz has no known map: its zero-copy arrays are read-only, and torch gets a copy."""
    np.save(tmp_path / "a.npy", np.arange(100, dtype=np.float64))
    r = ztensor.Reader(tmp_path / "a.npy")
    a = r.read_numpy("a")
    assert np.array_equal(a, np.arange(100))
    assert not a.flags.writeable and r._map_range() is None
    assert r.read_numpy("a", copy=True).flags.writeable
    torch = pytest.importorskip("torch")
    t = r.read_torch("a")
    t.add_(1)  # a private copy: torch has no read-only tensors
    assert np.array_equal(r.read_numpy("a"), np.arange(100))


def test_delta_files_open_with_their_base(tmp_path, rng):
    base = {"w": rng.standard_normal(4096).astype(np.float32), "b": np.ones(8, np.float32)}
    tuned = {"w": base["w"].copy(), "b": base["b"], "new": np.arange(3, dtype=np.int16)}
    tuned["w"][::50] += 1
    save_file(base, tmp_path / "base.zt")
    save_file(tuned, tmp_path / "tuned.zt")
    summary = ztensor.create_delta(tmp_path / "base.zt", tmp_path / "tuned.zt", tmp_path / "d.zt")
    assert summary["tensors"] == 3 and summary["copies"] == 1
    assert summary["file_size"] < tuned["w"].nbytes
    with pytest.raises(ztensor.BaseFileError):
        ztensor.Reader(tmp_path / "d.zt").read_numpy("w")
    r = ztensor.Reader(tmp_path / "d.zt", base=tmp_path / "base.zt")
    for k, v in tuned.items():
        assert r.read_numpy(k).tobytes() == v.tobytes()
        assert r.read_numpy(k, copy=True).tobytes() == v.tobytes()
    # The unchanged tensor is served from the base file without a copy (read-only there).
    assert not r.read_numpy("b").flags.writeable
    save_file({"w": base["w"] * 2, "b": base["b"]}, tmp_path / "other.zt")
    with pytest.raises(ztensor.BaseFileError):
        ztensor.Reader(tmp_path / "d.zt", base=tmp_path / "other.zt")
    assert ztensor.apply_delta(tmp_path / "base.zt", tmp_path / "d.zt", tmp_path / "full.zt") == 3
    out = ztensor.numpy.load_file(tmp_path / "full.zt")
    assert all(out[k].tobytes() == v.tobytes() for k, v in tuned.items())
    with pytest.raises(ztensor.ZTensorError):  # base is no delta file
        ztensor.Reader(tmp_path / "base.zt", base=tmp_path / "base.zt")
